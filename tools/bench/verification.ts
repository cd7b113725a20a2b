/**
 * What reading a live fleet costs, and what checking a run against the previous run's key
 * index costs (lambda/run/verify-fleet.ts), on the exporter alone, each run in a child
 * process like every other case:
 *
 *  time    a fleet at 100 ms of latency, exported with no previous index (each run under a
 *          prefix of its own), then with a previous run's index present: without deletions,
 *          and with a share of the fleet deleted mid-run among devices already read (just
 *          behind the furthest page served). Read in cursor mode (the default), nothing is
 *          skipped and nothing is verified; read by offset (THINGPARK_PAGING=offset), the
 *          pages shift, devices are skipped, and the verification recovers them (lookups,
 *          a second sweep). Median of five runs each. Runs with deletions are audited:
 *          every device that existed throughout must be in the output.
 *  memory  a million devices, exported with no previous index (the first run), then with
 *          one: peak RSS of each.
 *
 * Successive exporter runs in one case share the stand-ins' bucket and prefix, so each run
 * compares itself with the one before, as a scheduled run does.
 */
import type { FleetChange } from '../stand-ins/simulator.ts';
import type { BenchSimulatorOptions } from './stand-ins.ts';

export interface VerificationCase {
  name: string;
  kind: 'time' | 'memory';
  fleet: number;
  latencyMs: number;
  pageSize: number;
  /** time: the shares of the fleet deleted mid-run, 0 for none. */
  deleted: number[];
  /** How the exporter reads the list: cursor mode (the default) or THINGPARK_PAGING=offset. */
  paging: 'cursor' | 'offset';
}

/** What main.ts measures of one exporter run. */
export interface ExporterRun {
  wallMs: number;
  maxRssMb: number;
  cpuMs: number;
  requests: number;
  /** Single-device requests the simulator answered. */
  lookups: number;
  /** EUIs of the devices the simulator deleted during the run. */
  removed: string[];
  /** Audited runs: devices that existed throughout the run and are not in its output. */
  missing?: number;
  summary?: Record<string, unknown>;
  failed?: string;
}

export interface VerificationRow {
  label: string;
  run: ExporterRun;
  runs: number;
  /** Audited rows: the most devices any of the runs missed (the median run's are in `run`). */
  missingAtMost?: number;
}

export interface VerificationResult {
  case: VerificationCase;
  rows: VerificationRow[];
}

/** The cases, their fleets scaled by `scale` (main.ts's --scale). */
export function verificationCases(quick: boolean, scale = 1): VerificationCase[] {
  const fleet = Math.round(100_000 * scale);
  const size = `${fleet / 1000}k`;
  const cases: VerificationCase[] = [
    { name: `live fleet: ${size} @ 100 ms, cursor paging`, kind: 'time', fleet, latencyMs: 100, pageSize: 1000, deleted: [0, 0.005], paging: 'cursor' },
    {
      name: `verification: ${size} @ 100 ms, offset paging`,
      kind: 'time',
      fleet,
      latencyMs: 100,
      pageSize: 1000,
      deleted: [0, 0.005, 0.0005],
      paging: 'offset',
    },
  ];
  const big = Math.round(1_000_000 * scale);
  if (!quick)
    cases.push({ name: `verification: ${big / 1000}k memory`, kind: 'memory', fleet: big, latencyMs: 0, pageSize: 1000, deleted: [], paging: 'cursor' });
  return cases;
}

/** A rough duration in seconds, at the rates progress.ts assumes (50,000 devices/s, 8 pages in flight). */
export function verificationSeconds(c: VerificationCase): number {
  const run = 1 + c.fleet / 50_000 + (Math.ceil(c.fleet / c.pageSize) * c.latencyMs) / 8000;
  return 2 + run * (c.kind === 'memory' ? 2 : REPEATS * (1 + c.deleted.length * 1.5));
}

const REPEATS = 5;

export async function runVerificationCase(
  c: VerificationCase,
  reset: (simulator: BenchSimulatorOptions) => Promise<void>,
  /** One exporter run; `audit`: count the devices that existed throughout and are missing from its output. */
  exporter: (env: Record<string, string>, audit: boolean) => Promise<ExporterRun>,
  step: (what: string) => void,
): Promise<VerificationResult> {
  const fleet = { fleet: c.fleet, latencyMs: c.latencyMs };
  const rows: VerificationRow[] = [];
  await reset(fleet);
  if (c.kind === 'memory') {
    step(`${c.name}: first run, no previous index`);
    const first = await exporter({}, false);
    step(`${c.name}: with the first run's index`);
    const second = await exporter({}, false);
    return {
      case: c,
      rows: [
        { label: 'no previous index', run: first, runs: 1 },
        { label: "a previous run's index", run: second, runs: 1 },
      ],
    };
  }
  const firsts: ExporterRun[] = [];
  for (let i = 0; i < REPEATS; i += 1) {
    step(`${c.name}: no previous index ${i + 1}/${REPEATS}`);
    firsts.push(await exporter({ SNAPSHOT_PREFIX: `first-${i}/` }, false));
  }
  rows.push({ label: 'no previous index', run: median(firsts), runs: REPEATS });
  for (const share of c.deleted) {
    const removed = Math.round(c.fleet * share);
    const runs: ExporterRun[] = [];
    for (let i = 0; i < REPEATS; i += 1) {
      // Every run starts from the whole fleet; the deletions land half-way through its pages
      // (offset: after the middle page; cursor: after as many requests, over every range).
      const half = Math.floor(c.fleet / c.pageSize / 2);
      const when = c.paging === 'offset' ? { afterPage: half } : { afterRequest: half };
      const changes: FleetChange[] = removed > 0 ? [{ ...when, remove: removed, at: 'served' }] : [];
      await reset({ ...fleet, changes });
      step(`${c.name}: ${label(share, removed)} ${i + 1}/${REPEATS}`);
      runs.push(await exporter({}, removed > 0));
    }
    const audited = runs.filter((run) => run.missing !== undefined).map((run) => run.missing as number);
    rows.push({ label: label(share, removed), run: median(runs), runs: runs.length, ...(audited.length > 0 ? { missingAtMost: Math.max(...audited) } : {}) });
  }
  return { case: c, rows };
}

/** The run of median wall time: a shared 2-core host is noisy. */
function median(runs: ExporterRun[]): ExporterRun {
  return [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(runs.length / 2)] as ExporterRun;
}

function label(share: number, removed: number): string {
  return share === 0 ? 'previous index, no deletions' : `${(100 * share).toFixed(2)}% (${removed}) deleted mid-run`;
}

/**
 * The live-fleet target, on the cursor case's runs with deletions: every device that
 * existed throughout exported (by every run), no single-device lookup, and page requests
 * at most 1.1 times the fleet's pages.
 */
export function liveFleetTargets(results: VerificationResult[]): { name: string; met: boolean; detail: string }[] {
  return results
    .filter(({ case: c }) => c.kind === 'time' && c.paging === 'cursor')
    .flatMap(({ case: c, rows }) =>
      rows
        .filter((row) => row.missingAtMost !== undefined)
        .map(({ label: what, run, missingAtMost }) => {
          const share = pageShare(c, run);
          const met = !run.failed && missingAtMost === 0 && run.lookups === 0 && share <= 1.1;
          return {
            name: `${c.name}, ${what}, with a previous run: every device that existed throughout exported, 0 lookups, page requests ≤ 1.1 × the fleet's pages`,
            met,
            detail: `${missingAtMost} missing at most, ${run.lookups} lookups, ${f2(share)} × the fleet's pages`,
          };
        }),
    );
}

/** Device-list requests over the fleet's pages (lookups are counted apart). */
export function pageShare(c: VerificationCase, run: ExporterRun): number {
  return (run.requests - run.lookups) / Math.ceil(c.fleet / c.pageSize);
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
// Summary fields come back as parsed JSON: a string or number shows as is, anything else as JSON.
const cell = (value: unknown): string => (value === undefined || value === null ? '–' : typeof value === 'string' ? value : JSON.stringify(value));

/**
 * One line per run: its time, its memory and what the verification did. The share is the
 * run's time over the same case without deletions, less one: what verifying cost.
 */
export function verificationTable(results: VerificationResult[]): string {
  const lines = [
    '| case | run | wall s | vs no deletions | peak RSS MB | CPU s | page requests (× fleet pages) | lookups | deleted mid-run | missing | recovered | removed | unresolved | verification requests | verification |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const { case: c, rows } of results) {
    const base = rows.find((row) => row.label.startsWith('previous index, no deletions'))?.run.wallMs;
    for (const { label: name, run, runs } of rows) {
      const s = run.summary ?? {};
      const share = base === undefined ? '–' : `${(100 * (run.wallMs / base - 1)).toFixed(1)} %`;
      lines.push(
        `| ${c.name} | ${name}${runs > 1 ? ` (median of ${runs})` : ''}${run.failed ? ' **failed**' : ''} | ${f2(run.wallMs / 1000)} | ${share} | ${f1(run.maxRssMb)} | ${f2(run.cpuMs / 1000)} | ` +
          `${run.requests} (${f2(pageShare(c, run))}) | ${run.lookups} | ${run.removed.length} | ${run.missing ?? '–'} | ${cell(s.recovered)} | ${cell(s.removed)} | ${cell(s.unresolved)} | ${cell(s.verificationRequests)} | ${cell(s.verification)} |`,
      );
    }
  }
  return lines.join('\n');
}
