/**
 * One invocation of the handler for `npm run bench:curate` (curate.ts), alone in its own
 * process so that its peak RSS is its own: BENCH_EVENT is the event (an export's, or
 * `{"curate": "<runId>"}`); the result goes back over IPC.
 */
import { benchContext } from './lambda-context.ts';

export interface CurateChildResult {
  wallMs: number;
  cpuMs: number;
  maxRssMb: number;
  summary: Record<string, unknown>;
}

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
const { handler } = await import('../../lambda/handler.ts');
const context = benchContext();
const event = JSON.parse(process.env.BENCH_EVENT ?? '{}') as unknown;
const cpuBefore = process.cpuUsage();
const start = performance.now();
const summary = (await handler(event, context)) as unknown as Record<string, unknown>;
const wallMs = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
const result: CurateChildResult = { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024, summary };
process.send?.(result, () => process.exit(0));
