/**
 * `npm run bench:curate`: what curating a run costs, next to exporting it, and what the
 * curated tables save. Against the local stand-ins, each invocation of the real handler in
 * a child process of its own (curate-child.ts, bundled by esbuild as the Lambda runs its
 * bundle) under the deployed function's heap limit:
 *
 *  1. export a fleet (1,000,000 devices by default, BENCH_CURATE_DEVICES to change), then
 *     curate it: a first run, nothing to compare with;
 *  2. change the fleet as a day does (1 % deleted, 1 % added, the health of 5 % changed),
 *     export it again and curate it: compared with the first run's state;
 *  3. compare the second run's Parquet with its gzip NDJSON: bytes stored, and bytes DuckDB
 *     reads for the same query of healthState (its profiler's total_bytes_read);
 *  4. time what the fleet signals add to the second curation, per device (signals-cost.ts);
 *  5. for each brief size of BENCH_CURATE_BRIEF_KB (2, 10 and 20 KB by default; empty for
 *     none), export the fleet with briefs grown to that size (a history of numbers, as the
 *     7.3 brief's daily up/down counts and driver metadata make them) and curate it: peak
 *     RSS against the function's memory (MEMORY_MB), which must stay within 70 %.
 *
 * Each step's peak RSS is the kernel's (the child's maxRSS); next to it, the peaks of
 * `process.memoryUsage()` sampled every 100 ms (curate-child.ts): the V8 heap (heapTotal),
 * and `external`, the Buffers and typed arrays outside it. What RSS holds beyond the two is
 * code, stacks, and memory the allocator keeps after it was freed. BENCH_MEMORY_TRACE=<file>
 * appends every sample of every step there, to see how each part moves over a run.
 *
 * Prints a table and the targets, and writes .bench/curate.md and .bench/results-curate.json.
 */
import { bundleChild } from './bundle.ts';
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { HEAP_MB, MEMORY_MB } from '../../infra/function-runtime.ts';
import { simulatedBrief, type Brief } from '../stand-ins/fleet.ts';
import { testS3 } from '../inspect/snapshot.ts';
import { startStandIns, type StandIns } from '../stand-ins/standins.ts';
import { quietAwsSdk } from '../cli.ts';
import type { CurateChildResult, MemoryPeaks } from './curate-child.ts';
import { signalsCost } from './signals-cost.ts';

const fleet = Number(process.env.BENCH_CURATE_DEVICES ?? 1_000_000);
const briefKbs = (process.env.BENCH_CURATE_BRIEF_KB ?? '2,10,20')
  .split(',')
  .filter((kb) => kb.trim() !== '')
  .map(Number);
const TARGETS = { rssMb: 384, bytesShare: 0.5, queryShare: 0.1, memoryShare: 0.7, signalsShare: 0.05 };

// s3rver keeps objects as files under os.tmpdir(): a tmpfs keeps disk speed out of the figures.
// BENCH_CURATE_DIR puts them on a disk instead, for runs larger than the tmpfs (1M briefs of
// 20 KB make a raw snapshot of some 12 GB).
const objectsDir = process.env.BENCH_CURATE_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : undefined);
if (objectsDir) process.env.TMPDIR = objectsDir;
quietAwsSdk();

/**
 * Lambda's most for one invocation. An export longer than that stops and is invoked again
 * with its answer, a curation with the same event, as the state machine does. Curations
 * given less (BENCH_CURATE_SECONDS, a development aid) go on sooner, to measure what going
 * on costs; given more, one invocation measures what a curation in one piece would need.
 */
const INVOCATION_SECONDS = 900;
const curateSeconds = Number(process.env.BENCH_CURATE_SECONDS ?? INVOCATION_SECONDS);
/** A development aid: exports given less (BENCH_EXPORT_SECONDS) continue sooner, to measure what a resumed invocation costs. */
const exportSeconds = Number(process.env.BENCH_EXPORT_SECONDS ?? INVOCATION_SECONDS);

async function invoke(childFile: string, standIns: StandIns, event: unknown): Promise<CurateChildResult> {
  const child = fork(childFile, [], {
    // Development aids: BENCH_FLAGS_CURATE adds node flags to every child; BENCH_PROFILE=curate
    // writes each child's V8 CPU profile to .bench/profiles.
    execArgv: [
      `--max-old-space-size=${HEAP_MB}`,
      ...(process.env.BENCH_FLAGS_CURATE?.split(' ').filter(Boolean) ?? []),
      ...(process.env.BENCH_PROFILE === 'curate' ? ['--cpu-prof', `--cpu-prof-dir=${resolve('.bench/profiles')}`] : []),
    ],
    env: {
      ...process.env,
      ...standIns.env,
      BENCH_EVENT: JSON.stringify(event),
      BENCH_INVOCATION_SECONDS: String(isCuration(event) ? curateSeconds : exportSeconds),
      // Exports here never curate inline: each step is measured alone.
      CURATE_INLINE_MIN_REMAINING_SECONDS: '900',
      TMPDIR: '/tmp',
      NODE_NO_WARNINGS: '1',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolveResult, reject) => {
    let received: CurateChildResult | undefined;
    child.on('message', (message) => (received = message as CurateChildResult));
    child.on('exit', (code) => (received ? resolveResult(received) : reject(new Error(`the child for ${JSON.stringify(event)} exited with ${code}`))));
  });
}

function isCuration(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'curate' in event;
}

/**
 * One step: an invocation, and for an export that stops with "continue" or a curation that
 * answers "curating", each invocation after it; times summed, peaks the highest.
 */
async function invokeUntilDone(childFile: string, standIns: StandIns, event: unknown): Promise<CurateChildResult & { invocations: number }> {
  let result = { ...(await invoke(childFile, standIns, event)), invocations: 1 };
  while (result.summary.status === 'continue' || result.summary.status === 'curating') {
    const next = await invoke(childFile, standIns, result.summary.status === 'continue' ? result.summary : event);
    const memory = { ...result.memory };
    for (const part of Object.keys(memory) as (keyof MemoryPeaks)[]) memory[part] = Math.max(memory[part], next.memory[part]);
    result = {
      wallMs: result.wallMs + next.wallMs,
      cpuMs: result.cpuMs + next.cpuMs,
      maxRssMb: Math.max(result.maxRssMb, next.maxRssMb),
      memory,
      summary: next.summary,
      invocations: result.invocations + 1,
    };
  }
  return result;
}

/**
 * The bytes one DuckDB query reads from local copies of `keys`: what this process read
 * from files while it ran (Linux's /proc/self/io `rchar`; DuckDB runs in this process and
 * reads with pread), and what DuckDB's profiler counts (`total_bytes_read`: Parquet reads
 * only, its JSON reader's are not counted).
 */
async function bytesRead(
  standIns: StandIns,
  bucket: string,
  keys: string[],
  query: (files: string) => string,
): Promise<{ bytes: number; profiled: number; rows: unknown[] }> {
  const s3 = testS3(standIns.s3Url);
  const directory = await mkdtemp(join(tmpdir(), 'bench-curate-'));
  try {
    const paths: string[] = [];
    for (const [index, key] of keys.entries()) {
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const path = join(directory, `${index}-${key.split('/').at(-1)}`);
      await writeFile(path, (await object.Body?.transformToByteArray()) ?? new Uint8Array());
      paths.push(path);
    }
    const profile = join(directory, 'profile.json');
    const connection = await (await DuckDBInstance.create(':memory:')).connect();
    await connection.run("SET enable_profiling = 'json'");
    await connection.run(`SET profiling_output = '${profile}'`);
    const before = await readChars();
    const reader = await connection.runAndReadAll(query(`[${paths.map((path) => `'${path}'`).join(', ')}]`));
    const read = (await readChars()) - before;
    const rows = reader.getRowObjectsJS();
    await connection.run("SET enable_profiling = 'no_output'");
    connection.closeSync();
    const { total_bytes_read: profiled } = JSON.parse(await readFile(profile, 'utf8')) as { total_bytes_read: number };
    return { bytes: read, profiled, rows };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Bytes this process has read through read(2) and pread(2), files and sockets alike. */
async function readChars(): Promise<number> {
  const io = await readFile('/proc/self/io', 'utf8');
  return Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
}

/**
 * Briefs grown to about `kb` KB: a `history` of integers, one of 64 varied lists by device
 * (so gzip, whose window is 32 KB, finds no more repetition than in real histories).
 */
function grownTo(kb: number): (brief: Brief) => Brief {
  const base = JSON.stringify(simulatedBrief(0)).length + ',"history":[]'.length;
  const numbers = Math.max(0, Math.round((kb * 1024 - base) / 6));
  const lists = Array.from({ length: 64 }, (_, list) => Array.from({ length: numbers }, (_, k) => 10_000 + ((list * 7919 + k * 104_729) % 90_000)));
  return (brief) => ({ ...brief, history: lists[Number(String(brief.name).replace(/^sensor-/, '')) % 64] });
}

const f1 = (n: number) => n.toFixed(1);
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

const started = Date.now();
const childFile = await bundleChild('tools/bench/curate-child.ts', 'curate-child');
const standIns = await startStandIns({ simulator: { fleet } });
try {
  const step = async (name: string, event: unknown) => {
    console.log(`${name} ...`);
    const result = await invokeUntilDone(childFile, standIns, event);
    const invocations = result.invocations > 1 ? ` in ${result.invocations} invocations` : '';
    const tooLong = result.wallMs > INVOCATION_SECONDS * 1000 && result.invocations === 1 ? `, longer than one invocation's ${INVOCATION_SECONDS} s` : '';
    console.log(
      `  ${f1(result.wallMs / 1000)} s${invocations}${tooLong}, ${f1(result.cpuMs / 1000)} s CPU, peak RSS ${f1(result.maxRssMb)} MB (heap ${f1(result.memory.heapTotal)} MB, external ${f1(result.memory.external)} MB)`,
    );
    return { name, ...result };
  };
  const firstExport = await step(`export ${int(fleet)} devices (first run)`, { label: 'bench-first' });
  const firstRun = firstExport.summary.runId as string;
  const firstCuration = await step('curate it (first run: nothing to compare with)', { curate: firstRun });

  // A day's changes: 1 % deleted from the middle of the list, 1 % added at its end, 5 % changing health.
  const live = standIns.platform.fleet();
  live.remove(Math.floor(fleet * 0.3), Math.floor(fleet / 100));
  live.insert(live.size, Math.floor(fleet / 100));
  standIns.platform.options.revise = (brief: Brief) =>
    Number(String(brief.name).replace(/^sensor-/, '')) % 20 === 7
      ? { ...brief, healthState: brief.healthState === 'ACTIVE' ? 'BATTERY_LOW' : 'ACTIVE' }
      : brief;

  const secondExport = await step(`export the changed fleet (second run)`, { label: 'bench-second' });
  const secondRun = secondExport.summary.runId as string;
  const secondCuration = await step("curate it (compared with the first run's state)", { curate: secondRun });
  const curated = secondCuration.summary as {
    devices: number;
    added: number;
    removed: number;
    changed: number;
    comparedFrom: string;
    snapshotFiles: { key: string; bytes: number }[];
  };
  const raw = secondExport.summary as { bucket: string; bytes: number; dataKeys: string[]; manifestKey: string };
  const parquetBytes = curated.snapshotFiles.reduce((sum, file) => sum + file.bytes, 0);

  console.log('query healthState over both ...');
  const overJson = await bytesRead(
    standIns,
    raw.bucket,
    raw.dataKeys,
    (files) => `SELECT healthState, count(*)::INTEGER AS n FROM read_json_auto(${files}) GROUP BY 1 ORDER BY 1`,
  );
  const overParquet = await bytesRead(
    standIns,
    raw.bucket,
    curated.snapshotFiles.map(({ key }) => key),
    (files) => `SELECT health_state, count(*)::INTEGER AS n FROM read_parquet(${files}) GROUP BY 1 ORDER BY 1`,
  );
  const answer = (rows: unknown[]) => JSON.stringify(rows.map((row) => Object.values(row as Record<string, unknown>)));
  const sameAnswer = answer(overJson.rows) === answer(overParquet.rows);

  console.log('time the fleet signals over the second run ...');
  const signals = await signalsCost(standIns.s3Url, raw);

  const sized = [];
  for (const kb of briefKbs) {
    standIns.platform.options.revise = grownTo(kb);
    const exported = await step(`export ${int(fleet)} devices of ${kb} KB briefs`, { label: `bench-${kb}kb` });
    const curation = await step(`curate them (briefs of ${kb} KB)`, { curate: exported.summary.runId as string });
    sized.push({ kb, exported, curation, share: curation.maxRssMb / MEMORY_MB });
  }

  const steps = [firstExport, firstCuration, secondExport, secondCuration, ...sized.flatMap(({ exported, curation }) => [exported, curation])];
  const peak = Math.max(firstCuration.maxRssMb, secondCuration.maxRssMb);
  const targets = [
    { name: `curating ${int(fleet)} devices: peak RSS ≤ ${TARGETS.rssMb} MB`, met: peak <= TARGETS.rssMb, detail: `${f1(peak)} MB at most` },
    {
      name: 'Parquet ≤ half the bytes of the gzip NDJSON of the same run',
      met: parquetBytes <= raw.bytes * TARGETS.bytesShare,
      detail: `${mb(parquetBytes)} MB against ${mb(raw.bytes)} MB: ${f1((100 * parquetBytes) / raw.bytes)} %`,
    },
    {
      name: 'a query of healthState reads ≤ 10 % of the bytes over Parquet that it reads over NDJSON',
      met: overParquet.bytes <= overJson.bytes * TARGETS.queryShare && sameAnswer,
      detail: `${int(overParquet.bytes)} bytes against ${int(overJson.bytes)}: ${((100 * overParquet.bytes) / overJson.bytes).toFixed(2)} % (DuckDB's profiler: ${int(overParquet.profiled)} bytes of Parquet); same answer: ${sameAnswer ? 'yes' : 'NO'}`,
    },
    {
      name: 'fleet signals ≤ 5 % of the curation time',
      met: signals.ms <= secondCuration.wallMs * TARGETS.signalsShare,
      detail: `${f1(signals.ms)} ms over ${int(signals.devices)} devices against the second curation's ${int(secondCuration.wallMs)} ms: ${((100 * signals.ms) / secondCuration.wallMs).toFixed(2)} % (${((100 * signals.ms) / secondCuration.cpuMs).toFixed(2)} % of its ${int(secondCuration.cpuMs)} ms of CPU)`,
    },
    ...sized.map(({ kb, curation, share }) => ({
      name: `curating ${int(fleet)} devices of ${kb} KB briefs: peak RSS ≤ ${100 * TARGETS.memoryShare} % of the function's ${MEMORY_MB} MB`,
      met: share <= TARGETS.memoryShare,
      detail: `${f1(curation.maxRssMb)} MB: ${f1(100 * share)} %; ${int(curation.wallMs / 1000)} s in ${curation.invocations} invocation${curation.invocations === 1 ? '' : 's'}${
        curation.invocations === 1 && curation.wallMs > INVOCATION_SECONDS * 1000 ? `, longer than one invocation's ${INVOCATION_SECONDS} s` : ''
      }`,
    })),
  ];
  const lines = [
    '| step | invocations | wall s | CPU s | peak RSS MB | peak heap MB | peak external MB |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...steps.map(
      (s) =>
        `| ${s.name} | ${s.invocations} | ${f1(s.wallMs / 1000)} | ${f1(s.cpuMs / 1000)} | ${f1(s.maxRssMb)} | ${f1(s.memory.heapTotal)} | ${f1(s.memory.external)} |`,
    ),
  ];
  const markdown = [
    `# Curation benchmark`,
    '',
    `\`npm run bench:curate\` (tools/bench/curate.ts) on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, heap limit ${HEAP_MB} MB; took ${int((Date.now() - started) / 1000)} s.`,
    '',
    ...targets.map((t) => `- ${t.met ? '✅ met' : '❌ not met'}: ${t.name} (${t.detail})`),
    '',
    ...lines,
    '',
    `Second run: ${int(curated.devices)} devices; ${int(curated.added)} added, ${int(curated.removed)} removed, ${int(curated.changed)} changed (compared from its ${curated.comparedFrom}).`,
    `Bytes stored: gzip NDJSON ${int(raw.bytes)}, Parquet ${int(parquetBytes)}. Bytes DuckDB read for healthState: NDJSON ${int(overJson.bytes)}, Parquet ${int(overParquet.bytes)}.`,
    '',
  ].join('\n');
  console.log(`\n${markdown}`);
  await mkdir(resolve('.bench'), { recursive: true });
  await writeFile(resolve('.bench', 'curate.md'), markdown);
  await writeFile(
    resolve('.bench', 'results-curate.json'),
    JSON.stringify({ fleet, briefKbs, memoryMb: MEMORY_MB, steps, parquetBytes, rawBytes: raw.bytes, overJson, overParquet, signals, targets }, null, 2),
  );
  if (!targets.every((t) => t.met)) process.exitCode = 1;
} finally {
  await standIns.stop();
}
