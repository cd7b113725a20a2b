/**
 * `npm run bench [-- --quick]`: the exporter against a baseline and a raw floor, on this
 * machine, against the local stand-ins; writes BENCHMARKS.md (full run) or prints only.
 *
 * The stand-ins (simulator + token server, SSM, s3rver on a tmpfs) run in a process of
 * their own (stand-ins.ts) and serve pages rendered once; each approach runs alone in a
 * child process (child.ts) so its peak RSS and CPU are its own. This process only starts
 * them and writes up. See BENCHMARKS.md for what each approach is and how outputs are
 * compared.
 */
import { bundleChild } from './bundle.ts';
import { checkCores, onCore } from './cores.ts';
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem, type as osType, release } from 'node:os';
import { resolve } from 'node:path';
import { HEAP_MB } from '../../infra/function-runtime.ts';
import { MAX_CONCURRENCY_TIMES_PAGE_SIZE } from '../../lambda/common/config.ts';
import { DEFAULTS } from '../../lambda/common/env.ts';
import { testS3 } from '../inspect/snapshot.ts';
import type { Paging } from '../../lambda/common/paging.ts';
import { simulatedEui, type Identifiers } from '../stand-ins/identifiers.ts';
import type { OffsetCap, RateLimit } from '../stand-ins/simulator.ts';
import { DEMO } from '../stand-ins/standins.ts';
import { drawChart, type ChartRow } from './chart.ts';
import type { ChildParams, ChildResult } from './child.ts';
import { coldStart, type ColdStart } from './coldstart.ts';
import { COLD_START_ESTIMATE_S, Progress, duration, estimateSeconds, repeatsOf } from './progress.ts';
import { quietAwsSdk } from '../cli.ts';
import { startBenchStandIns, type BenchSimulatorOptions, type BenchStandIns, type StandInCounts } from './stand-ins.ts';
import { KNOB_CASES, knobSection, knobSettings, knobTable, withKnobSection, type KnobRow, type KnobSetting } from './knobs.ts';
import { digestObjects, type Digest } from './verify.ts';
import {
  liveFleetTargets,
  runVerificationCase,
  verificationCases,
  verificationSeconds,
  verificationTable,
  type VerificationCase,
  type VerificationResult,
} from './verification.ts';

const quick = process.argv.includes('--quick');
// One case by its exact name (e.g. '100k @ 100 ms'), else every case whose name contains it.
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
// Development aid: run the exporter alone (no baseline, floor or comparison).
const exporterOnly = process.argv.includes('--exporter-only');
// A knob to sweep: the page size of the cases without a rate limit (1000 unless given).
const pageSize = Number(process.argv.find((arg) => arg.startsWith('--page-size='))?.slice('--page-size='.length) ?? 1000);
// Every fleet times this (1 unless given; e.g. 0.1 runs the 100k cases at 10k): a check of the bench itself, not a measurement.
const scale = Number(process.argv.find((arg) => arg.startsWith('--scale='))?.slice('--scale='.length) ?? 1);
// The knob sweep (knobs.ts) instead of the cases.
const sweepKnobs = process.argv.includes('--knobs');

// s3rver keeps objects as files under os.tmpdir(): a tmpfs keeps disk speed out of the figures.
if (existsSync('/dev/shm')) process.env.TMPDIR = '/dev/shm';

interface Case {
  name: string;
  fleet: number;
  latencyMs: number;
  pageSize: number;
  rateLimit?: RateLimit;
  /** How the simulator makes the fleet's EUIs: 'skewed' (one OUI holds 95 %, IMEIs among DevEUIs) unless given. */
  identifiers: Identifiers;
  /** How the exporter reads the list: cursor mode (the default, THINGPARK_PAGING=auto) or offsets (THINGPARK_PAGING=offset). */
  paging: Paging;
  /** Whether the baseline and the floor run too; else the exporter alone. */
  compare: boolean;
  /** Speed-up over the baseline this case is held to. */
  times?: number;
  /** The platform's offset cap: the exporter in cursor mode must read past it, and offset paging must fail on it. */
  offsetCap?: OffsetCap;
  /** The pair the cursor-versus-offset target compares: cursor mode on a skewed fleet against offsets on a uniform one. */
  reference?: 'cursor-skewed' | 'offset-uniform';
}

/** A fleet of `devices` at this bench's scale, and its name in case names. */
const scaled = (devices: number): number => Math.max(1000, Math.round(devices * scale));
const sizeName = (fleet: number): string => `${fleet / 1000}k`;
const OFFSET_PAGING = { THINGPARK_PAGING: 'offset', THINGPARK_FIRST_PAGE_INDEX: '1' } as const;

const cases: Case[] = [];
const skewed = { identifiers: 'skewed', paging: 'cursor', compare: true } as const;
// At 100k devices, latencies from a nearby platform to a distant one: the window should
// follow them (more pages in flight the longer a page takes), the fixed approaches not.
const latencies = (fleet: number): number[] => (fleet === 100_000 && !quick ? [0, 20, 100, 300] : [0, 100]);
const speedTargets: Record<string, number> = { '100000@100': 8, '100000@300': 12, '1000000@100': 8 };
for (const nominal of quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) {
  const fleet = scaled(nominal);
  for (const latencyMs of latencies(nominal)) {
    const times = speedTargets[`${nominal}@${latencyMs}`];
    const reference = nominal === 100_000 && latencyMs === 100 ? ({ reference: 'cursor-skewed' } as const) : {};
    cases.push({ name: `${sizeName(fleet)} @ ${latencyMs} ms`, fleet, latencyMs, pageSize, ...skewed, ...(times ? { times } : {}), ...reference });
  }
}
// Today's offset path on a fleet that suits it, for cursor mode on a skewed one to be held against.
const reference = scaled(100_000);
cases.push({
  name: `${sizeName(reference)} @ 100 ms, uniform fleet, offset paging`,
  fleet: reference,
  latencyMs: 100,
  pageSize,
  identifiers: 'uniform',
  paging: 'offset',
  compare: false,
  reference: 'offset-uniform',
});
// A fleet ten times what offset paging can reach: cursor mode reads all of it, offsets fail on it.
cases.push({
  name: `${sizeName(reference)} @ 100 ms, offset cap ${sizeName(reference / 10)}`,
  fleet: reference,
  latencyMs: 100,
  pageSize,
  identifiers: 'skewed',
  paging: 'cursor',
  compare: false,
  offsetCap: { devices: reference / 10, end: 'refuse' },
});
// Rate-limited, in cursor mode: page size 100 so a run is hundreds of requests, long enough
// for the rate to mean something. NGINX-like first (429, no Retry-After), then 503 with Retry-After.
cases.push({ name: 'rate 50/s, 429', fleet: scaled(100_000), latencyMs: 0, pageSize: 100, ...skewed, rateLimit: { perSecond: 50, burst: 5, status: 429 } });
if (!quick || only) {
  cases.push({
    name: 'rate 20/s, 503 + Retry-After',
    fleet: scaled(40_000),
    latencyMs: 0,
    pageSize: 100,
    ...skewed,
    rateLimit: { perSecond: 20, burst: 2, status: 503, retryAfter: 'seconds' },
  });
}

// The window as the exporter will configure it (lambda/common/config.ts), for the floor and the write-up.
const concurrency = Number(process.env.THINGPARK_CONCURRENCY ?? DEFAULTS.THINGPARK_CONCURRENCY);
const ceilingGiven = process.env.THINGPARK_MAX_CONCURRENCY !== undefined && process.env.THINGPARK_MAX_CONCURRENCY !== '';
const ceilingFor = (pageSize: number): number =>
  ceilingGiven
    ? Number(process.env.THINGPARK_MAX_CONCURRENCY)
    : Math.max(concurrency, Math.min(DEFAULTS.THINGPARK_MAX_CONCURRENCY, Math.floor(MAX_CONCURRENCY_TIMES_PAGE_SIZE / pageSize)));

interface Measured extends ChildResult {
  requests: number;
  rejected: number;
  grants: number;
  /** Single-device requests, and the EUIs the fleet's changes deleted (verification cases). */
  lookups: number;
  removed: string[];
  maxInFlight: number;
  connections: number;
  /** How many runs the figures are the median of. */
  runs?: number;
  /** CPU the stand-ins' process spent serving this approach. */
  standInsCpuMs: number;
  /** Accepted device-list requests per second between the first and the last. */
  acceptedRate: number;
  digest?: Digest;
}

interface CaseResult {
  case: Case;
  exporter: Measured;
  /** Compared cases only. */
  baseline?: Measured;
  floor?: Measured;
  /** The exporter's output holds every device of the fleet, each once. */
  complete: boolean;
  /** Compared cases: the exporter's output holds the same rows as the baseline's. */
  identical?: boolean;
  /** Cases with an offset cap: the exporter told to page by offset (THINGPARK_PAGING=offset). */
  offsetRun?: Measured;
}

let childFile = '';

async function runChild(standIns: BenchStandIns, mode: string, params: ChildParams, env: Record<string, string>, core?: number): Promise<Measured> {
  await standIns.clear();
  const child = fork(childFile, [], {
    ...onCore(core, [
      // The exporter under the deployed function's heap limit; the baseline with room for
      // the whole fleet in memory, which is how it works (a million devices would not fit
      // the function's memory).
      ...(mode === 'exporter' ? [`--max-old-space-size=${HEAP_MB}`] : []),
      ...(mode === 'baseline' ? ['--max-old-space-size=16384'] : []),
      // Development aids: BENCH_FLAGS_<MODE> adds node flags to that child; BENCH_PROFILE=<mode>
      // writes its V8 CPU profile to .bench/profiles.
      ...(process.env[`BENCH_FLAGS_${mode.toUpperCase()}`]?.split(' ').filter(Boolean) ?? []),
      ...(process.env.BENCH_PROFILE === mode ? ['--cpu-prof', `--cpu-prof-dir=${resolve('.bench/profiles')}`] : []),
    ]),
    env: { ...process.env, ...standIns.env, ...env, BENCH_MODE: mode, BENCH_PARAMS: JSON.stringify(params), TMPDIR: '/tmp', NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const result = await new Promise<ChildResult>((resolveResult, reject) => {
    let received: ChildResult | undefined;
    child.on('message', (message) => {
      received = message as ChildResult;
    });
    child.on('exit', (code) => (received ? resolveResult(received) : reject(new Error(`${mode} exited with ${code}`))));
  }).catch((error: unknown): ChildResult => {
    // A failed approach is a result too (the table shows it), not the end of the bench.
    const reason = error instanceof Error ? error.message : String(error);
    const nan = Number.NaN;
    return { mode, failed: reason, wallMs: nan, loadMs: 0, maxRssMb: nan, cpuMs: nan, workCpuMs: nan, devices: 0, pages: 0, wasted: 0, dataKeys: [] };
  });
  const counts: StandInCounts = await standIns.counts();
  const spanS = (counts.lastAt - counts.firstAt) / 1000;
  return {
    ...result,
    requests: counts.requests,
    rejected: counts.rejected,
    grants: counts.grants,
    lookups: counts.lookups,
    removed: counts.removed,
    maxInFlight: counts.maxInFlight,
    connections: counts.connections,
    standInsCpuMs: counts.cpuMs,
    acceptedRate: spanS > 0 ? (counts.requests - counts.rejected) / spanS : Number.NaN,
  };
}

function childParams(c: Pick<Case, 'fleet' | 'latencyMs' | 'pageSize'>): ChildParams {
  return {
    pageSize: c.pageSize,
    concurrency,
    maxConcurrency: ceilingFor(c.pageSize),
    clientId: DEMO.clientId,
    clientSecret: DEMO.clientSecret,
    bucket: DEMO.bucket,
    baselineKey: `bench/baseline/${c.fleet}-${c.latencyMs}.ndjson.gz`,
    runId: 'baseline',
  };
}

/** A verification case (verification.ts): the exporter alone, run after run on one set of stand-ins. */
async function runVerification(c: VerificationCase): Promise<VerificationResult> {
  const standIns = await startBenchStandIns({ simulator: { fleet: c.fleet, latencyMs: c.latencyMs }, prerender: c.pageSize });
  try {
    const paging = c.paging === 'offset' ? OFFSET_PAGING : {};
    const exporter = async (env: Record<string, string>, audit: boolean) => {
      const run = await runChild(standIns, 'exporter', childParams(c), { THINGPARK_PAGE_SIZE: String(c.pageSize), ...paging, ...env });
      return audit ? { ...run, missing: await missingThroughout(standIns, run, c.fleet) } : run;
    };
    const reset = (simulator: BenchSimulatorOptions) => standIns.reset({ simulator, prerender: c.pageSize });
    return await runVerificationCase(c, reset, exporter, (what) => progress.step(what));
  } finally {
    await standIns.stop();
  }
}

/** Devices of the generated (skewed) fleet that no change deleted, and that a run's output lacks. */
async function missingThroughout(standIns: BenchStandIns, run: Measured, fleet: number): Promise<number> {
  const exported = new Set<string>();
  await digestObjects(testS3(standIns.s3Url), DEMO.bucket, run.dataKeys, exported);
  const removed = new Set(run.removed);
  let missing = 0;
  for (let i = 0; i < fleet; i += 1) {
    const eui = simulatedEui(i, 'skewed');
    if (!removed.has(eui) && !exported.has(eui)) missing += 1;
  }
  return missing;
}

async function runCase(c: Case): Promise<CaseResult> {
  progress.step(`${c.name}: rendering the pages`);
  const simulator = { fleet: c.fleet, latencyMs: c.latencyMs, identifiers: c.identifiers, rateLimit: c.rateLimit, offsetCap: c.offsetCap };
  const standIns = await startBenchStandIns({ simulator, prerender: c.pageSize });
  try {
    const params = childParams(c);
    const env = { THINGPARK_PAGE_SIZE: String(c.pageSize), ...(c.paging === 'offset' ? OFFSET_PAGING : {}) };
    // Median by wall time where a case runs more than once (progress.ts says when).
    const repeats = repeatsOf(c);
    const median = async (mode: string): Promise<Measured> => {
      const runs: Measured[] = [];
      for (let i = 0; i < repeats; i += 1) {
        progress.step(`${c.name}: ${mode} ${i + 1}/${repeats}`);
        runs.push(await runChild(standIns, mode, params, env));
      }
      runs.sort((a, b) => a.wallMs - b.wallMs);
      return { ...(runs[Math.floor(runs.length / 2)] as Measured), runs: runs.length };
    };
    const s3 = testS3(standIns.s3Url);
    const exporter = await median('exporter');
    progress.step(`${c.name}: checking the output`);
    const euis = new Set<string>();
    exporter.digest = await digestObjects(s3, DEMO.bucket, exporter.dataKeys, euis);
    const complete = !exporter.failed && exporter.digest.rows === c.fleet && euis.size === c.fleet;
    euis.clear();
    if (c.offsetCap) {
      progress.step(`${c.name}: exporter, offset paging`);
      return { case: c, exporter, complete, offsetRun: await runChild(standIns, 'exporter', params, { ...env, ...OFFSET_PAGING }) };
    }
    if (!c.compare || exporterOnly) return { case: c, exporter, complete };
    const baseline = await median('baseline');
    // Rate-limited, the floor is the limit itself (computed in the table), not a run.
    const floor = c.rateLimit ? undefined : await median('floor');
    progress.step(`${c.name}: comparing the outputs`);
    baseline.digest = await digestObjects(s3, DEMO.bucket, baseline.dataKeys);
    const identical = complete && exporter.digest.rows === baseline.digest.rows && exporter.digest.sum === baseline.digest.sum;
    return { case: c, exporter, baseline, floor, complete, identical };
  } finally {
    await standIns.stop();
  }
}

/** The knob sweep (knobs.ts): the speed-up targets' cases, skewed, in cursor mode, setting by setting. */
async function runKnobs(): Promise<string> {
  checkCores(knobSettings().flatMap((setting) => (setting.cores ? [setting.cores.standIns, setting.cores.exporter] : [])));
  const tables: string[] = [];
  for (const knobCase of KNOB_CASES) tables.push(await runKnobsFor(knobCase));
  return tables.join('\n\n');
}

/**
 * One case's settings, each page size and placement against stand-ins of their own; the
 * baseline once, at pages of 1000, unpinned.
 */
async function runKnobsFor({ devices, latencyMs }: { devices: number; latencyMs: number }): Promise<string> {
  const fleet = scaled(devices);
  const settings = knobSettings().filter((setting) => setting.devices === devices && setting.latencyMs === latencyMs);
  const rows: KnobRow[] = [];
  let baselineMs = Number.NaN;
  const groupOf = (setting: KnobSetting) => `${setting.pageSize} ${setting.cores?.standIns ?? ''}`;
  for (const key of new Set(settings.map(groupOf))) {
    const group = settings.filter((setting) => groupOf(setting) === key);
    const { pageSize: size, cores } = group[0] as KnobSetting;
    const standIns = await startBenchStandIns({ simulator: { fleet, latencyMs, identifiers: 'skewed' }, prerender: size }, cores?.standIns);
    try {
      const params = childParams({ fleet, latencyMs, pageSize: size });
      if (size === 1000 && cores === undefined) baselineMs = (await runChild(standIns, 'baseline', params, {})).wallMs;
      for (const setting of group) rows.push(await knobRow(standIns, params, setting));
    } finally {
      await standIns.stop();
    }
  }
  rows.sort((a, b) => settings.indexOf(a.setting) - settings.indexOf(b.setting));
  return knobTable(`${sizeName(fleet)} @ ${latencyMs} ms`, rows, baselineMs);
}

/** A setting's median run of three, by wall time. */
async function knobRow(standIns: BenchStandIns, params: ChildParams, setting: KnobSetting): Promise<KnobRow> {
  const runs: Measured[] = [];
  for (let i = 0; i < 3; i += 1) {
    console.log(`  ${sizeName(scaled(setting.devices))} @ ${setting.latencyMs} ms, ${setting.label} ${i + 1}/3`);
    runs.push(await runChild(standIns, 'exporter', params, { THINGPARK_PAGE_SIZE: String(setting.pageSize), ...setting.env }, setting.cores?.exporter));
  }
  const m = [...runs].sort((a, b) => a.wallMs - b.wallMs)[1] as Measured;
  const { wallMs, workCpuMs, maxRssMb, requests, maxInFlight } = m;
  return { setting, wallMs, workCpuMs, maxRssMb, requests, maxInFlight, ranges: Number(m.summary?.ranges ?? 0), ...(m.failed ? { failed: m.failed } : {}) };
}

// ---------------------------------------------------------------------------------------

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
const int = (n: number): string => Math.round(n).toLocaleString('en-US');

function floorMs(r: CaseResult): number {
  if (r.floor) return r.floor.wallMs;
  const limit = r.case.rateLimit as RateLimit;
  // The best any client can do: the burst at once, then the rest at the limit.
  const pages = Math.ceil(r.case.fleet / r.case.pageSize);
  return (Math.max(0, pages - limit.burst - 1) / limit.perSecond) * 1000;
}

/** How an approach read the list: the exporter as its summary says (mode, EUI ranges, fallback); the others page by offset. */
function pagingOf(name: string, m: Measured): string {
  if (name !== 'exporter') return name === 'baseline' ? 'offset, one page at a time' : 'offset';
  const summary = m.summary ?? {};
  if (m.failed) return `failed: ${m.failedCode ?? m.failed.slice(0, 80)}`;
  const ranges = typeof summary.ranges === 'number' && summary.ranges > 0 ? `, ${summary.ranges} ranges` : '';
  const fallback = typeof summary.fallback === 'string' ? `, fell back (${summary.fallback})` : '';
  return `${String(summary.paging)}${ranges}${fallback}`;
}

function table(results: CaseResult[]): string {
  const lines = [
    '| case | approach | paging | wall s | devices/s | CPU s | CPU µs/device | stand-ins CPU s | peak RSS MB | data files | page requests (wasted) | token grants | rejected | max in flight | connections |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const runs: [string, Measured | undefined, string][] = [
      ['exporter', r.exporter, 'exporter'],
      ['exporter', r.offsetRun, 'exporter, THINGPARK_PAGING=offset'],
      ['baseline', r.baseline, 'baseline'],
      ['floor', r.floor, 'floor'],
    ];
    for (const [name, m, label] of runs) {
      if (!m) {
        if (name === 'floor' && r.case.rateLimit && r.baseline) {
          lines.push(
            `| ${r.case.name} | floor (limit) | – | ${f2(floorMs(r) / 1000)} | ${int((r.case.fleet * 1000) / floorMs(r))} | – | – | – | – | – | ${Math.ceil(r.case.fleet / r.case.pageSize)} | – | 0 | – | – |`,
          );
        }
        continue;
      }
      lines.push(
        `| ${r.case.name} | ${label}${m.failed ? ' **failed**' : ''}${(m.runs ?? 1) > 1 ? ` (median of ${m.runs})` : ''} | ${pagingOf(name, m)} | ${f2(m.wallMs / 1000)} | ${int((m.devices * 1000) / m.wallMs)} | ` +
          `${f2(m.workCpuMs / 1000)} | ${f1((m.workCpuMs * 1000) / m.devices)} | ${f2(m.standInsCpuMs / 1000)} | ${f1(m.maxRssMb)} | ${m.dataKeys.length || '–'} | ` +
          `${m.requests} (${m.wasted}) | ${m.grants} | ${m.rejected} | ${m.maxInFlight} | ${m.connections} |`,
      );
    }
  }
  return lines.join('\n');
}

function ratios(results: CaseResult[]): string {
  const lines = [
    '| case | exporter / baseline (time) | speed-up vs baseline | exporter / floor (time) | output complete | output identical to baseline | rows |',
    '|---|---:|---:|---:|---|---|---:|',
  ];
  const yes = (flag: boolean | undefined): string => (flag === undefined ? '–' : flag ? 'yes' : '**NO**');
  for (const r of results) {
    const vsBaseline = r.baseline ? r.exporter.wallMs / r.baseline.wallMs : Number.NaN;
    const vsFloor = r.baseline ? r.exporter.wallMs / floorMs(r) : Number.NaN;
    lines.push(
      `| ${r.case.name} | ${f2(vsBaseline)} | ${f1(1 / vsBaseline)}× | ${f2(vsFloor)} | ${yes(r.complete)} | ${yes(r.identical)} | ${int(r.exporter.digest?.rows ?? 0)} |`,
    );
  }
  return lines.join('\n');
}

function rateTable(results: CaseResult[]): string {
  const lines = [
    '| case | approach | limit /s | accepted /s (first→last request) | of limit | requests | rejected | rejected % |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results.filter((x) => x.case.rateLimit)) {
    const limit = (r.case.rateLimit as RateLimit).perSecond;
    for (const [name, m] of [
      ['exporter', r.exporter],
      ['baseline', r.baseline],
    ] as const) {
      if (!m) continue;
      lines.push(
        `| ${r.case.name} | ${name} | ${limit} | ${f1(m.acceptedRate)} | ${f1((100 * m.acceptedRate) / limit)} % | ${m.requests} | ${m.rejected} | ${f1((100 * m.rejected) / m.requests)} % |`,
      );
    }
  }
  return lines.join('\n');
}

interface Target {
  name: string;
  met: boolean;
  detail: string;
}

function targets(results: CaseResult[], verified: VerificationResult[]): Target[] {
  const out: Target[] = [];
  for (const r of results) {
    if (r.case.times === undefined || !r.baseline) continue;
    const speedup = r.baseline.wallMs / r.exporter.wallMs;
    out.push({
      name: `${r.case.name} (${r.case.identifiers} fleet, ${pagingOf('exporter', r.exporter)}): ≥ ${r.case.times}× faster than baseline`,
      met: speedup >= r.case.times,
      detail: `${f1(speedup)}×`,
    });
  }
  const cursor = results.find((r) => r.case.reference === 'cursor-skewed');
  const offset = results.find((r) => r.case.reference === 'offset-uniform');
  if (cursor && offset) {
    const speed = offset.exporter.wallMs / cursor.exporter.wallMs;
    out.push({
      name: `${cursor.case.name}: cursor mode on a skewed fleet ≥ 0.9× as fast as offset paging on a uniform fleet`,
      met: speed >= 0.9 && cursor.complete && offset.complete,
      detail: `${f2(speed)}×: ${f2(cursor.exporter.wallMs / 1000)} s against ${f2(offset.exporter.wallMs / 1000)} s`,
    });
  }
  const largest = Math.max(...results.filter((r) => !r.case.rateLimit).map((r) => r.case.fleet));
  const big = results.filter((r) => !r.case.rateLimit && r.case.fleet === largest && largest >= scaled(1_000_000));
  if (big.length > 0) {
    const peak = Math.max(...big.map((r) => r.exporter.maxRssMb));
    out.push({ name: `${sizeName(largest)} devices: exporter peak RSS ≤ 256 MB`, met: peak <= 256, detail: `${f1(peak)} MB at most` });
  }
  const zero = results.filter((r) => r.floor && r.case.latencyMs === 0);
  if (zero.length > 0) {
    const worst = zero.map((r) => ({ name: r.case.name, ratio: r.exporter.wallMs / floorMs(r) }));
    const met = worst.every((w) => w.ratio <= 1.5);
    out.push({ name: 'zero latency: exporter ≤ 1.5× the raw floor', met, detail: worst.map((w) => `${w.name}: ${f2(w.ratio)}×`).join(', ') });
  }
  for (const r of results.filter((x) => x.case.rateLimit)) {
    const limit = (r.case.rateLimit as RateLimit).perSecond;
    const share = r.exporter.acceptedRate / limit;
    const rejected = r.exporter.rejected / r.exporter.requests;
    out.push({
      name: `${r.case.name} (${pagingOf('exporter', r.exporter)}): ≥ 90 % of the limit, ≤ 5 % rejected`,
      met: share >= 0.9 && rejected <= 0.05 && r.complete,
      detail: `${f1(100 * share)} % of the limit, ${f1(100 * rejected)} % rejected`,
    });
  }
  for (const r of results.filter((x) => x.case.offsetCap)) {
    const code = r.offsetRun?.failedCode;
    out.push({
      name: `${r.case.name} (a fleet 10× the cap): complete in cursor mode; offset paging fails with OFFSET_LIMIT`,
      met: r.complete && r.exporter.summary?.paging === 'cursor' && code === 'OFFSET_LIMIT',
      detail: `cursor mode: ${int(r.exporter.digest?.rows ?? 0)} of ${int(r.case.fleet)} devices, each once${r.complete ? '' : ' (**incomplete**)'}; offset paging: ${code ?? (r.offsetRun?.failed ? 'failed without a code' : 'did not fail')}`,
    });
  }
  out.push(...liveFleetTargets(verified));
  const compared = results.filter((r) => r.identical !== undefined);
  const identical = compared.every((r) => r.identical);
  out.push({
    name: 'output identical to the baseline',
    met: identical,
    detail: identical ? `every compared case (${compared.length})` : 'NOT in every compared case',
  });
  const whole = results.every((r) => r.complete);
  out.push({ name: 'output complete: every device once', met: whole, detail: whole ? 'every case' : 'NOT in every case' });
  return out;
}

/** The exporter's CPU against the floor's in the largest zero-latency case. */
function cpuRatioText(results: CaseResult[]): string {
  const zero = results.filter((r) => !r.case.rateLimit && r.case.latencyMs === 0 && r.floor).at(-1);
  if (!zero?.floor) return '';
  return ` (${zero.case.name}: ${f1(zero.exporter.workCpuMs / zero.floor.workCpuMs)}× the floor's CPU)`;
}

/** What the chart draws: devices/s, peak RSS and most in flight, by case and approach. */
function chartRows(results: CaseResult[]): ChartRow[] {
  return results.flatMap((r) =>
    (
      [
        ['exporter', r.exporter],
        ['baseline', r.baseline],
        ['floor', r.floor],
      ] as const
    ).flatMap(([approach, m]): ChartRow[] => {
      if (!m)
        return r.case.rateLimit && r.baseline && approach === 'floor'
          ? [{ case: r.case.name, approach, devicesPerSecond: (r.case.fleet * 1000) / floorMs(r) }]
          : [];
      return [{ case: r.case.name, approach, devicesPerSecond: (m.devices * 1000) / m.wallMs, peakRssMb: m.maxRssMb, maxInFlight: m.maxInFlight }];
    }),
  );
}

function coldTable(cold: ColdStart[]): string {
  const lines = ['| bundle | size KB | gzip KB | import() median ms (5 fresh processes) | runs ms | RSS after import MB |', '|---|---:|---:|---:|---|---:|'];
  for (const c of cold) {
    lines.push(
      `| ${c.variant} | ${int(c.bytes / 1024)} | ${int(c.gzipBytes / 1024)} | ${f1(c.importMs)} | ${c.importRuns.map((ms) => ms.toFixed(0)).join(', ')} | ${f1(c.rssMb)} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------

quietAwsSdk();
const started = Date.now();
childFile = await bundleChild('tools/bench/child.ts', 'child');
if (sweepKnobs) {
  // About 4 s a run at 100k devices, 22 s at a million; a baseline is a page at a time, 30 ms of work each.
  const runsS = knobSettings().reduce((sum, setting) => sum + 3 * (2 + (2 * scale * setting.devices) / 100_000), 0);
  const baselinesS = KNOB_CASES.reduce((sum, { devices, latencyMs }) => sum + (((scale * devices) / 1000) * (latencyMs + 30)) / 1000, 0);
  console.log(`knob sweep: ${knobSettings().length} settings, 3 runs each, about ${duration(runsS + baselinesS + 10)}`);
  const section = `Measured by \`npm run bench -- --knobs${scale === 1 ? '' : ` --scale=${scale}`}\` on ${new Date().toISOString().slice(0, 10)}.\n\n${await runKnobs()}`;
  console.log(section);
  await mkdir(resolve('.bench'), { recursive: true });
  // Only a full-scale sweep is a measurement: it goes into BENCHMARKS.md; a scaled one checks the sweep itself.
  const target = scale === 1 ? resolve('BENCHMARKS.md') : resolve('.bench', 'knobs.md');
  const before = existsSync(target) ? await readFile(target, 'utf8') : '';
  await writeFile(target, withKnobSection(before, section));
  console.log(`wrote ${target}`);
  process.exit(0);
}
const exact = [...cases, ...verificationCases(quick, scale)].some((c) => c.name === only);
const chosen = (c: { name: string }): boolean => !only || (exact ? c.name === only : c.name.includes(only));
const selected = cases.filter(chosen);
const verifying = verificationCases(quick, scale).filter(chosen);
// Pages in flight on average, for the estimates: the window grew to about this at 100 ms.
const inFlight = Math.min(ceilingFor(pageSize), 2 * concurrency);
// The exporter alone where nothing is compared; twice where offset paging runs too (it fails early).
const caseSeconds = (c: Case): number => estimateSeconds(c, inFlight, exporterOnly || !c.compare) * (c.offsetCap ? 1.5 : 1);
const expectedS =
  selected.reduce((sum, c) => sum + caseSeconds(c), 0) +
  verifying.reduce((sum, c) => sum + verificationSeconds(c), 0) +
  (exporterOnly || selected.length === 0 ? 0 : COLD_START_ESTIMATE_S);
const caseCount = selected.length + verifying.length;
console.log(
  `${caseCount} case${caseCount === 1 ? '' : 's'}, expected to take about ${duration(expectedS)} ` +
    '(rates measured on a shared 2-core machine); a progress line follows every 10 s.',
);
const progress = new Progress(expectedS);
const results: CaseResult[] = [];
for (const c of selected) {
  console.log(`${c.name} (about ${duration(caseSeconds(c))}) ...`);
  const result = await runCase(c);
  results.push(result);
  const { exporter, baseline, floor, offsetRun } = result;
  console.log(
    `  exporter (${pagingOf('exporter', exporter)}) ${f2(exporter.wallMs / 1000)} s ${f1(exporter.maxRssMb)} MB cpu ${f2(exporter.workCpuMs / 1000)} s (${f1((exporter.workCpuMs * 1000) / exporter.devices)} µs/device) ` +
      `stand-ins cpu ${f2(exporter.standInsCpuMs / 1000)} s (${exporter.requests} req, ${exporter.wasted} wasted, ${exporter.rejected} rejected, in flight ≤ ${exporter.maxInFlight}, ${exporter.connections} conn, ${exporter.dataKeys.length} files of ${f1(Number(exporter.summary?.bytes ?? 0) / 2 ** 20)} MiB)` +
      (baseline ? ` | baseline ${f2(baseline.wallMs / 1000)} s ${f1(baseline.maxRssMb)} MB` : '') +
      (floor
        ? ` | floor ${f2(floor.wallMs / 1000)} s ${f1(floor.maxRssMb)} MB cpu ${f2(floor.workCpuMs / 1000)} s stand-ins cpu ${f2(floor.standInsCpuMs / 1000)} s in flight ≤ ${floor.maxInFlight}`
        : ` | accepted ${f1(exporter.acceptedRate)}/s`) +
      (offsetRun ? ` | offset paging: ${pagingOf('exporter', offsetRun)} after ${f2(offsetRun.wallMs / 1000)} s` : '') +
      ` | complete: ${result.complete}, identical: ${result.identical ?? '–'}`,
    process.env.BENCH_VERBOSE ? `\n  memory: exporter ${JSON.stringify(exporter.memory)} floor ${JSON.stringify(floor?.memory)}` : '',
  );
}
const verified: VerificationResult[] = [];
for (const c of verifying) {
  console.log(`${c.name} (about ${duration(verificationSeconds(c))}) ...`);
  verified.push(await runVerification(c));
  console.log(verificationTable(verified.slice(-1)));
}
const scaleText = scale === 1 ? '' : ` -- --scale=${scale}`;
// A profiling aid: with nothing to compare against, there is no table to write. With only
// verification cases selected, their table above is the result.
if (exporterOnly || selected.length === 0) {
  await mkdir(resolve('.bench'), { recursive: true });
  if (verified.length > 0) await writeFile(resolve('.bench', 'results-verification.json'), JSON.stringify(verified, null, 2));
  for (const t of liveFleetTargets(verified)) console.log(`- ${t.met ? '✅ met' : '❌ not met'}: ${t.name} (${t.detail})`);
  process.exit(0);
}
console.log('cold start ...');
progress.step('cold start');
const cold = await coldStart();
progress.stop();
const met = targets(results, verified);
const elapsedS = (Date.now() - started) / 1000;

const cpu = cpus()[0]?.model ?? 'unknown CPU';
const machine = `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 1024 ** 3)} GB RAM, ${osType()} ${release()}, Node ${process.version}`;
const command = `npm run bench${quick ? ' -- --quick' : ''}${scaleText}`;
const targetLines = met.map((t) => `- ${t.met ? '✅ met' : '❌ not met'}: ${t.name} (${t.detail})`).join('\n');
const full = !quick && !only && pageSize === 1000 && scale === 1;
// The chart sits beside the markdown that shows it: docs/ for BENCHMARKS.md, .bench/ otherwise.
const chartFile = full ? resolve('docs', 'bench.svg') : resolve('.bench', 'bench.quick.svg');
const chartLink = full ? 'docs/bench.svg' : 'bench.quick.svg';
const windowText =
  `the window starts at ${concurrency} pages in flight (THINGPARK_CONCURRENCY${process.env.THINGPARK_CONCURRENCY ? '' : ', default'}) ` +
  `and may grow to ${ceilingFor(pageSize)} (THINGPARK_MAX_CONCURRENCY${ceilingGiven ? '' : ', default'})`;

const markdown = `# Benchmarks

Measured by \`${command}\` (tools/bench/main.ts) on ${new Date().toISOString().slice(0, 10)}; the whole run took ${int(elapsedS)} s.
Machine: ${machine}. Exporter and floor: ${windowText}.

## Targets

${targetLines}

## Results

![Devices per second, peak RSS and most pages in flight, by case and approach](${chartLink})

${table(results)}

${ratios(results)}

### Rate-limited runs

${rateTable(results)}

${verified.length > 0 ? `## Verification against the previous run\n\n${verificationTable(verified)}\n\n` : ''}## Cold start

${coldTable(cold)}

## Method

- **Stand-ins** (ThingPark simulator with its token server, SSM endpoint, s3rver with its
  files on /dev/shm) run in a process of their own (tools/bench/stand-ins.ts), fresh for
  each case, reached over loopback; the fleet is tools/stand-ins/fleet.ts's deterministic
  briefs (~0.8 KB of JSON each), pages of ${pageSize} (100 in the rate-limited cases). Each
  page's JSON is rendered once, before the case starts, and the same bytes are served to
  every request for it: serving costs next to nothing and the same for every approach
  (**stand-ins CPU s** is what that process spent while one approach ran). Latency is added
  by the simulator to every page.
- Each approach runs alone in a child process: tools/bench/child.ts bundled by esbuild (as
  the Lambda runs its bundle), under plain \`node\`; peak RSS is that child's
  \`process.resourceUsage().maxRSS\`.
- **Fleets and paging**: the simulator plays the 7.3 spec; its fleet is skewed (one OUI
  holds 95 % of the devices, IMEIs among the DevEUIs) unless a case says uniform. The
  exporter reads as deployed, in cursor mode (EUI ranges read at once), unless a case says
  offset paging (\`THINGPARK_PAGING=offset\`); the baseline and the floor page by offset.
  The **paging** column says how each approach read the list (for the exporter, from its
  summary: mode, EUI ranges, fallback). The offset-cap case runs the exporter twice: in
  cursor mode, which must read the whole fleet, then by offset, which must fail with
  \`OFFSET_LIMIT\`. **Output complete** is every device of the fleet once (rows and distinct
  EUIs); the live-fleet runs with deletions are audited against the fleet less what the
  simulator deleted.
- **exporter**: the real \`lambda/handler.ts\`, cold: SSM credentials, token grant,
  adaptive paging, gzip multipart upload, manifest and pointer, under the deployed
  function's V8 heap limit (\`--max-old-space-size=${HEAP_MB}\`, infra/function-runtime.ts).
  Wall time is the handler call (module loading excluded; see Cold start). The export
  alone: curating inline is off (\`CURATE_INLINE_MIN_REMAINING_SECONDS=900\`; curating
  is measured by \`npm run bench:curate\`).
- **baseline**: what the platform's samples do: one client-credentials POST, pages one
  after another, every brief kept in an array, then gzip NDJSON rows (brief +
  \`exportRunId\`) and one PutObject. On a 429/503 it waits Retry-After (else 1 s). It
  runs with a 16 GB heap limit: holding the fleet is how it works, and a million devices
  would not fit the function's memory.
- **floor**: the fastest way to just fetch: one token, page indexes requested in order
  through the exporter's own window (lambda/platform/adaptive-window.ts, same start,
  ceiling and growth rule), reading and parsing each page (needed to see \`more\`) and
  dropping it; no order, no output. In rate-limited cases the floor is the limit itself:
  (pages − burst) ÷ rate.
- **data files** are the data files a run wrote: a cursor read writes each EUI range to
  files of its own, so that the snapshot is in EUI order (docs/performance.md, "Order").
- **page requests** are device-list requests the simulator received (retries included);
  **wasted** are pages requested past the last one; **connections** are TCP connections
  the simulator accepted from that process (keep-alive reuses them).
- **Output identical**: both outputs are downloaded, gunzipped and streamed; each row minus
  \`exportRunId\` is re-serialised with sorted keys and hashed, and the hashes are summed:
  equal row counts and sums mean the same multiset of rows (order-independent, constant
  memory, so it works for a million rows).
- Accepted rate = accepted device-list requests ÷ time from the first to the last request.
- **CPU s** is the child's user + system CPU time over the work alone (the span of wall
  s; module loading excluded), all its threads (gzip, garbage collection), from
  \`process.cpuUsage()\`; **CPU µs/device** is that over the devices. Cases up to 100k
  devices without a rate limit run each approach three times and show the median run (by
  wall time); the others run once.
- **max in flight** is the most device-list requests the simulator had open at once: for
  the exporter and the floor, how wide their window grew.

## Reading the figures

The stand-ins still share the machine's two cores with the approach being measured, but
they serve bytes rendered beforehand, and their CPU is shown apart. At zero latency every
approach is bound by CPU, not by the platform: the floor only parses each page, while the
exporter parses it, cuts each device's NDJSON row out of the page's text, keys it,
compresses it and uploads it${cpuRatioText(results)}. With latency, the exporter overlaps
waiting with that work, which the baseline (one page at a time) cannot, and its window
widens with the latency until its own CPU (or the platform's rate limit) is what bounds it.

Where a speed target is missed, the knob sweep above shows the settings tried: the
window's start and ceiling, the page size, and where the stand-ins run (the exporter alone
on one core, or sharing theirs). docs/performance.md, "Why the speed targets are not met",
says which differences are the machine's noise and where the exporter's time goes.
`;

console.log(`\n${table(results)}\n\n${ratios(results)}\n\n${rateTable(results)}\n\n${coldTable(cold)}\n\n${targetLines}\n\ntook ${int(elapsedS)} s`);
await mkdir(resolve('.bench'), { recursive: true });
await writeFile(resolve('.bench', `results-${full ? 'full' : quick ? 'quick' : 'partial'}.json`), JSON.stringify({ results, cold, met }, null, 2));
await writeFile(chartFile, await drawChart(chartRows(results)));
if (full) {
  const knobs = existsSync(resolve('BENCHMARKS.md')) ? knobSection(await readFile(resolve('BENCHMARKS.md'), 'utf8')) : undefined;
  await writeFile(resolve('BENCHMARKS.md'), knobs === undefined ? markdown : withKnobSection(markdown, knobs));
  console.log('wrote BENCHMARKS.md and docs/bench.svg');
} else {
  await writeFile(resolve('.bench', 'BENCHMARKS.quick.md'), markdown);
  console.log('wrote .bench/BENCHMARKS.quick.md and .bench/bench.quick.svg (a full run writes BENCHMARKS.md and docs/bench.svg)');
}
