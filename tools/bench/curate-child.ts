/**
 * One invocation of the handler for `npm run bench:curate` (curate.ts), alone in its own
 * process so that its peak RSS is its own: BENCH_EVENT is the event (an export's, or
 * `{"curate": "<runId>"}`); the result goes back over IPC. Besides the kernel's peak RSS,
 * `process.memoryUsage()` is sampled every 100 ms while the handler runs and each part's
 * peak kept (`memory`), to tell the V8 heap from what lies outside it: `external` is memory
 * V8 objects hold outside the heap (Buffers, typed arrays, zlib's state), `arrayBuffers`
 * the part of it that is ArrayBuffer backing stores. With BENCH_MEMORY_TRACE set to a path,
 * every sample is also appended there, one JSON line each, after a line naming the event.
 * BENCH_INVOCATION_SECONDS is the time the invocation is given (900, Lambda's most, unless set).
 */
import { appendFileSync } from 'node:fs';
import { benchContext } from './lambda-context.ts';

/** Peaks of `process.memoryUsage()`'s parts over the handler's run, in MB. */
export interface MemoryPeaks {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface CurateChildResult {
  wallMs: number;
  cpuMs: number;
  maxRssMb: number;
  memory: MemoryPeaks;
  summary: Record<string, unknown>;
}

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
const { handler } = await import('../../lambda/handler.ts');
const event = JSON.parse(process.env.BENCH_EVENT ?? '{}') as unknown;
const context = benchContext(Number(process.env.BENCH_INVOCATION_SECONDS ?? 900));
const trace = process.env.BENCH_MEMORY_TRACE;
const memory: MemoryPeaks = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const cpuBefore = process.cpuUsage();
const start = performance.now();
const sample = () => {
  const usage = process.memoryUsage();
  for (const part of Object.keys(memory) as (keyof MemoryPeaks)[]) memory[part] = Math.max(memory[part], usage[part] / 2 ** 20);
  if (trace) appendFileSync(trace, `${JSON.stringify({ ms: Math.round(performance.now() - start), ...usage })}\n`);
};
if (trace) appendFileSync(trace, `${JSON.stringify({ event })}\n`);
const sampler = setInterval(sample, 100);
const summary = (await handler(event, context)) as unknown as Record<string, unknown>;
clearInterval(sampler);
sample();
const wallMs = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
const result: CurateChildResult = { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024, memory, summary };
process.send?.(result, () => process.exit(0));
