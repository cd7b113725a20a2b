/**
 * One approach of one benchmark case, alone in its own process so its peak RSS is its own.
 * The parent (main.ts) forks this file with BENCH_MODE and BENCH_PARAMS set and the
 * stand-ins' environment; the result goes back over IPC.
 *
 *  exporter  the real Lambda handler (lambda/handler.ts), cold, with a fake context
 *  baseline  what Actility's samples do: one token, sequential pages, every device kept
 *            in memory, then one gzip NDJSON PutObject (same row format as the exporter)
 *  floor     the fastest way to just fetch: one token, pages requested in index order
 *            through the exporter's own window (lambda/platform/adaptive-window.ts: same
 *            start, ceiling and growth), each read and parsed (parsing is needed to see
 *            `more`) and dropped; no ordering, no de-duplication, no output
 */
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AdaptiveWindow } from '../../lambda/platform/adaptive-window.ts';
import { benchContext } from './lambda-context.ts';

export interface ChildParams {
  /** baseline and floor: the page size, token endpoint and client the exporter reads from SSM. */
  pageSize: number;
  /** The floor's window: where it starts and its ceiling, as the exporter's. */
  concurrency: number;
  maxConcurrency: number;
  clientId: string;
  clientSecret: string;
  bucket: string;
  baselineKey: string;
  runId: string;
}

export interface ChildResult {
  mode: string;
  /** Work time: from first request (or handler call) to the last byte stored. */
  wallMs: number;
  /** Module loading before the work (exporter only). */
  loadMs: number;
  maxRssMb: number;
  /** User + system CPU time of the whole process, module loading included. */
  cpuMs: number;
  /** User + system CPU time of the work alone (wallMs's span), all threads of the process. */
  workCpuMs: number;
  devices: number;
  pages: number;
  wasted: number;
  dataKeys: string[];
  summary?: Record<string, unknown>;
  /** Peaks of process.memoryUsage(), sampled every 200 ms. */
  memory?: Record<string, number>;
  /** Why the run failed: the exporter's error, or set by the parent when the child died without a result. */
  failed?: string;
  /** The exporter's error code, where it failed with one (e.g. OFFSET_LIMIT). */
  failedCode?: string;
}

const mode = process.env.BENCH_MODE ?? '';
const params = JSON.parse(process.env.BENCH_PARAMS ?? '{}') as ChildParams;
const DEVICES = '/thingpark/wireless/rest/subscriptions/mine/devices';
const base = process.env.THINGPARK_BASE_URL ?? '';

async function token(): Promise<string> {
  const response = await fetch(`${base}/users-auth/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: params.clientId, client_secret: params.clientSecret }),
  });
  if (!response.ok) throw new Error(`token: HTTP ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

interface Page {
  briefs: Record<string, unknown>[];
  more?: boolean;
}

/** One page; a rate-limited answer is waited out (Retry-After, else 1 s) and asked again. */
async function page(bearer: string, index: number): Promise<Page> {
  for (;;) {
    const response = await fetch(`${base}${DEVICES}?pageIndex=${index}&pageSize=${params.pageSize}`, {
      headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' },
    });
    const body = await response.text();
    if (response.status === 429 || response.status === 503) {
      const seconds = Number(response.headers.get('retry-after'));
      await new Promise((resolve) => setTimeout(resolve, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000));
      continue;
    }
    if (response.status !== 200) throw new Error(`page ${index}: HTTP ${response.status}`);
    return JSON.parse(body) as Page;
  }
}

type Work = Omit<ChildResult, 'mode' | 'maxRssMb' | 'cpuMs'>;

/** CPU time of this process since `from` (a process.cpuUsage()), all threads, in ms. */
const cpuSince = (from: NodeJS.CpuUsage): number => {
  const { user, system } = process.cpuUsage(from);
  return (user + system) / 1000;
};

async function exporter(): Promise<Work> {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  // Errors only: the rate-limited cases retry by design, one WARN line each, which would
  // break up the benchmark's own lines; the summary counts the retries.
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
  // The export alone, as the baseline and the floor do: 900 s never curates inline (curating
  // is measured by its own benchmark, curate.ts).
  process.env.CURATE_INLINE_MIN_REMAINING_SECONDS = '900';
  const loadStart = performance.now();
  const { handler } = await import('../../lambda/handler.ts');
  const loadMs = performance.now() - loadStart;
  const context = benchContext();
  const start = performance.now();
  const cpu = process.cpuUsage();
  const summary = await handler({ label: 'bench' }, context).catch((error: unknown) => error as Error & { code?: string });
  if (summary instanceof Error) {
    // A run expected to fail (offset paging past the platform's cap) is a result: its code is the point.
    const failed = { wallMs: performance.now() - start, workCpuMs: cpuSince(cpu), loadMs, devices: 0, pages: 0, wasted: 0, dataKeys: [] };
    return { ...failed, failed: summary.message, ...(summary.code === undefined ? {} : { failedCode: summary.code }) };
  }
  return {
    wallMs: performance.now() - start,
    workCpuMs: cpuSince(cpu),
    loadMs,
    devices: summary.devices,
    pages: summary.pages,
    wasted: summary.wastedRequests,
    dataKeys: summary.dataKeys,
    summary: summary as unknown as Record<string, unknown>,
  };
}

async function baseline(): Promise<Work> {
  const s3 = new S3Client({});
  const start = performance.now();
  const cpu = process.cpuUsage();
  const bearer = await token();
  const devices: Record<string, unknown>[] = [];
  let pages = 0;
  // Pages start at 1, as the spec says (the samples were written for it).
  for (let index = 1; ; index += 1) {
    const { briefs, more } = await page(bearer, index);
    pages += 1;
    devices.push(...briefs);
    if (more === false || briefs.length === 0) break;
  }
  // The samples' shape, chunked only because one string of 1M rows exceeds V8's limit.
  const chunks: Buffer[] = [];
  for (let i = 0; i < devices.length; i += 10_000) {
    const rows = devices.slice(i, i + 10_000).map((brief) => JSON.stringify({ ...brief, exportRunId: params.runId }));
    chunks.push(Buffer.from(`${rows.join('\n')}\n`));
  }
  const body = gzipSync(Buffer.concat(chunks));
  await s3.send(new PutObjectCommand({ Bucket: params.bucket, Key: params.baselineKey, Body: body, ContentType: 'application/gzip' }));
  return { wallMs: performance.now() - start, workCpuMs: cpuSince(cpu), loadMs: 0, devices: devices.length, pages, wasted: 0, dataKeys: [params.baselineKey] };
}

async function floor(): Promise<Work> {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const bearer = await token();
  const window = new AdaptiveWindow(params.maxConcurrency, { initial: params.concurrency });
  // Pages start at 1, as the spec says.
  let next = 1;
  let end = Number.POSITIVE_INFINITY;
  let devices = 0;
  let requests = 0;
  // As many workers as the window may ever admit; the window decides how many send at once.
  const worker = async (): Promise<void> => {
    while (next < end) {
      const index = next;
      next += 1;
      const ticket = await window.acquire(index);
      if (index >= end) {
        window.release();
        break;
      }
      requests += 1;
      const response = await fetch(`${base}${DEVICES}?pageIndex=${index}&pageSize=${params.pageSize}`, {
        headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' },
      });
      const body = await response.text();
      // Handed back on the next turn, as the exporter does, so the connection is reused.
      setImmediate(() => window.release());
      if (response.status !== 200) throw new Error(`page ${index}: HTTP ${response.status}`);
      window.succeeded(ticket);
      const { briefs, more } = JSON.parse(body) as Page;
      if (index < end) devices += briefs.length;
      if (more === false || briefs.length === 0) end = Math.min(end, index + 1);
    }
  };
  await Promise.all(Array.from({ length: params.maxConcurrency }, worker));
  return { wallMs: performance.now() - start, workCpuMs: cpuSince(cpu), loadMs: 0, devices, pages: end, wasted: requests - end, dataKeys: [] };
}

// Where the memory goes (sampled): V8 heap vs Buffers outside it.
const peaks = { heapUsedMb: 0, heapTotalMb: 0, externalMb: 0, arrayBuffersMb: 0 };
const sampler = setInterval(() => {
  const usage = process.memoryUsage();
  peaks.heapUsedMb = Math.max(peaks.heapUsedMb, usage.heapUsed / 2 ** 20);
  peaks.heapTotalMb = Math.max(peaks.heapTotalMb, usage.heapTotal / 2 ** 20);
  peaks.externalMb = Math.max(peaks.externalMb, usage.external / 2 ** 20);
  peaks.arrayBuffersMb = Math.max(peaks.arrayBuffersMb, usage.arrayBuffers / 2 ** 20);
}, 200);
sampler.unref();

const run = { exporter, baseline, floor }[mode];
if (!run) throw new Error(`BENCH_MODE must be exporter, baseline or floor, got "${mode}"`);
const result = await run();
const usage = process.resourceUsage();
const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000;
const report: ChildResult = { mode, ...result, maxRssMb: usage.maxRSS / 1024, cpuMs, memory: peaks };
process.send?.(report, () => process.exit(0));
