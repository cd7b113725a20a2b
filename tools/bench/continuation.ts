/**
 * What continuing a run over several invocations costs (lambda/run/export-run.ts):
 *
 *   npx tsx tools/bench/continuation.ts [--fleet=1000000] [--latency=100] [--page-size=100]
 *     [--concurrency=4] [--work=60] [--keys=1000000]
 *
 *  one     the exporter in one invocation with the function's 15 minutes
 *  sliced  the exporter in invocations of `--work` seconds of work each (the time given is
 *          that plus RUN_DEADLINE_MARGIN_SECONDS and RUN_CHECKPOINT_MARGIN_SECONDS), each
 *          given the answer of the one before, in one warm process, as the state machine does
 *  keys    the checkpoint's de-duplication set of `--keys` keys, alone: encoded and stored,
 *          read back and decoded into a set, for refs close together (as the simulator's)
 *          and for random 15-digit refs (the largest encoding)
 *
 * Both runs export the same schedule (the same run id) under prefixes of their own, so
 * their rows are compared byte for byte, in order. The window is held at `--concurrency`
 * (start and ceiling): at 100 ms a page a million devices then take several minutes, as a
 * slow platform's would, which is what needs several invocations.
 *
 * The stand-ins run in this process, each run in a child process of its own (this file,
 * with BENCH_CONTINUATION set), so that neither competes with the other for a core.
 */
import { fork } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { DEFAULTS } from '../../lambda/common/env.ts';
import type { HandlerAnswer } from '../../lambda/handler.ts';
import { getKeySet, putKeySet, type KeySetEntry } from '../../lambda/storage/checkpoints.ts';
import type { IndexKey } from '../../lambda/storage/key-index.ts';
import { testS3 } from '../inspect/snapshot.ts';
import { DEMO, startStandIns } from '../stand-ins/standins.ts';
import { quietAwsSdk } from '../cli.ts';

const SCHEDULE = { scheduledTime: '2026-11-28T10:00:00Z' };
const MARGINS_S = DEFAULTS.RUN_DEADLINE_MARGIN_SECONDS + DEFAULTS.RUN_CHECKPOINT_MARGIN_SECONDS;

/** One invocation of a run, as the child saw it. */
interface Invocation {
  status: string;
  ms: number;
  /** sliced: from the invocation's start to the "Run resumed" line: the checkpoint and its key set read back. */
  resumeMs?: number;
  /** sliced: from the point it was told to stop to its answer: the page in hand, the open file completed, the checkpoint saved. */
  stopMs?: number;
  devices?: number;
}

interface RunResult {
  wallMs: number;
  cpuMs: number;
  maxRssMb: number;
  invocations: Invocation[];
  summary: { status: string; devices: number; pages: number; pageRequests: number; tokenRequests: number; bucket: string; dataKeys: string[] };
}

const arg = (name: string, fallback: number): number => {
  const given = process.argv.find((value) => value.startsWith(`--${name}=`));
  return given === undefined ? fallback : Number(given.slice(name.length + 3));
};

if (process.env.BENCH_CONTINUATION) await child(process.env.BENCH_CONTINUATION, Number(process.env.BENCH_WORK_MS));
else await parent();

async function parent(): Promise<void> {
  quietAwsSdk();
  // s3rver keeps objects as files under os.tmpdir(): a tmpfs keeps disk speed out of the figures.
  if (existsSync('/dev/shm')) process.env.TMPDIR = '/dev/shm';
  const fleet = arg('fleet', 1_000_000);
  const latencyMs = arg('latency', 100);
  const pageSize = arg('page-size', 100);
  const concurrency = arg('concurrency', 4);
  const workS = arg('work', 60);
  const keyCount = arg('keys', 1_000_000);
  console.log(`Continuation: ${fleet} devices, pages of ${pageSize}, ${latencyMs} ms a page, ${concurrency} in flight; invocations of ${workS} s of work`);

  const standIns = await startStandIns({ simulator: { fleet, latencyMs } });
  try {
    const env = {
      ...standIns.env,
      THINGPARK_PAGE_SIZE: String(pageSize),
      THINGPARK_CONCURRENCY: String(concurrency),
      THINGPARK_MAX_CONCURRENCY: String(concurrency),
    };
    const run = (mode: 'one' | 'sliced', prefix: string) => runChild(mode, { ...env, SNAPSHOT_PREFIX: prefix }, workS * 1000);
    console.log('one invocation ...');
    const one = await run('one', 'one/');
    console.log(`  ${(one.wallMs / 1000).toFixed(1)} s`);
    console.log(`invocations of ${workS} s of work ...`);
    const sliced = await run('sliced', 'sliced/');
    console.log(`  ${(sliced.wallMs / 1000).toFixed(1)} s in ${sliced.invocations.length} invocations`);

    const s3 = testS3(standIns.s3Url);
    console.log('comparing the outputs ...');
    const [a, b] = [await rowsDigest(s3, one.summary.dataKeys), await rowsDigest(s3, sliced.summary.dataKeys)];
    const identical = a.rows === fleet && a.rows === b.rows && a.sha256 === b.sha256;
    console.log('the de-duplication set alone ...');
    const keys = await keySetCosts(s3, keyCount);
    report({ fleet, workS, one, sliced, identical, rows: [a.rows, b.rows], keys, keyCount });
  } finally {
    await standIns.stop();
  }
}

function runChild(mode: 'one' | 'sliced', env: Record<string, string>, workMs: number): Promise<RunResult> {
  const child = fork(fileURLToPath(import.meta.url), process.argv.slice(2), {
    execArgv: ['--import', 'tsx', '--max-old-space-size=896'],
    env: { ...process.env, ...env, BENCH_CONTINUATION: mode, BENCH_WORK_MS: String(workMs), TMPDIR: '/tmp', NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let result: RunResult | { failed: string } | undefined;
    child.on('message', (message) => {
      result = message as RunResult | { failed: string };
    });
    child.on('exit', (code) => {
      if (result && 'failed' in result) reject(new Error(`${mode}: ${result.failed}`));
      else if (result) resolve(result);
      else reject(new Error(`${mode} exited with ${code}`));
    });
  });
}

/** The rows of a run's files, in order, without their run field: their count and one SHA-256 of them all. */
async function rowsDigest(s3: S3Client, keys: string[]): Promise<{ rows: number; sha256: string }> {
  const hash = createHash('sha256');
  let rows = 0;
  for (const key of keys) {
    const object = await s3.send(new GetObjectCommand({ Bucket: DEMO.bucket, Key: key }));
    for await (const line of createInterface({ input: (object.Body as Readable).pipe(createGunzip()), crlfDelay: Infinity })) {
      if (line === '') continue;
      hash.update(line).update('\n');
      rows += 1;
    }
  }
  return { rows, sha256: hash.digest('hex') };
}

/** Stores and reads back a set of `count` keys as a checkpoint does, both kinds of refs. */
async function keySetCosts(s3: S3Client, count: number) {
  const sequential = new Set<IndexKey>(Array.from({ length: count }, (_, i) => 2_000_000 + i));
  const random = new Set<IndexKey>();
  // randomInt spans at most 2^48: a 15-digit ref from two draws.
  while (random.size < count) random.add(randomInt(100_000, 1_000_000) * 1_000_000_000 + randomInt(0, 1_000_000_000));
  const measure = async (name: string, keys: Set<IndexKey>) => {
    const best = { saveMs: Number.POSITIVE_INFINITY, resumeMs: Number.POSITIVE_INFINITY, bytes: 0 };
    for (let i = 0; i < 3; i += 1) {
      let started = performance.now();
      const entry: KeySetEntry = await putKeySet(s3, DEMO.bucket, `bench/keys-${name}.gz`, keys);
      best.saveMs = Math.min(best.saveMs, performance.now() - started);
      started = performance.now();
      const back = new Set((await getKeySet(s3, DEMO.bucket, entry)).keys());
      best.resumeMs = Math.min(best.resumeMs, performance.now() - started);
      if (back.size !== keys.size) throw new Error(`${name}: ${back.size} keys read back, not ${keys.size}`);
      best.bytes = entry.bytes;
    }
    return { name, ...best };
  };
  return [await measure('refs close together', sequential), await measure('random 15-digit refs', random)];
}

function report(r: {
  fleet: number;
  workS: number;
  one: RunResult;
  sliced: RunResult;
  identical: boolean;
  rows: number[];
  keys: { name: string; saveMs: number; resumeMs: number; bytes: number }[];
  keyCount: number;
}): void {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const { one, sliced } = r;
  const ratio = sliced.wallMs / one.wallMs;
  const continued = sliced.invocations.slice(1);
  const stopped = sliced.invocations.filter((invocation) => invocation.stopMs !== undefined);
  const worst = (values: (number | undefined)[]) => Math.max(...values.filter((value): value is number => value !== undefined));
  const perSlice = worst(sliced.invocations.map((invocation, i) => (invocation.stopMs ?? 0) + (sliced.invocations[i + 1]?.resumeMs ?? 0)));
  console.log('');
  console.log('| run | invocations | wall s | CPU s | peak RSS MB | devices | pages | page requests | token grants |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, run] of [
    ['one invocation', one],
    [`invocations of ${r.workS} s`, sliced],
  ] as const) {
    const { summary } = run;
    console.log(
      `| ${name} | ${run.invocations.length} | ${s(run.wallMs)} | ${s(run.cpuMs)} | ${run.maxRssMb.toFixed(1)} | ${summary.devices} | ${summary.pages} | ${summary.pageRequests} | ${summary.tokenRequests} |`,
    );
  }
  console.log('');
  console.log('| invocation | status | wall s | resume s | stop and checkpoint s | devices so far |');
  console.log('|---:|---|---:|---:|---:|---:|');
  sliced.invocations.forEach((invocation, i) =>
    console.log(
      `| ${i + 1} | ${invocation.status} | ${s(invocation.ms)} | ${invocation.resumeMs === undefined ? '–' : s(invocation.resumeMs)} | ${invocation.stopMs === undefined ? '–' : s(invocation.stopMs)} | ${invocation.devices ?? '–'} |`,
    ),
  );
  console.log('');
  console.log(`| ${r.keyCount} keys | stored | encode + upload s | download + decode s |`);
  console.log('|---|---:|---:|---:|');
  for (const k of r.keys) console.log(`| ${k.name} | ${(k.bytes / 1024).toFixed(0)} KB | ${s(k.saveMs)} | ${s(k.resumeMs)} |`);
  console.log('');
  const targets = [
    ['complete', sliced.summary.status === 'committed' && sliced.summary.devices === r.fleet, `${sliced.summary.status}, ${sliced.summary.devices} devices`],
    [
      'output identical to the one-invocation run',
      r.identical,
      `${r.rows[0]} and ${r.rows[1]} rows, ${r.identical ? 'the same bytes in the same order' : 'different'}`,
    ],
    ['total time ≤ 1.15× the one-invocation run', ratio <= 1.15, `${ratio.toFixed(3)}× (${s(sliced.wallMs)} s against ${s(one.wallMs)} s)`],
    [
      'checkpoint save + resume ≤ 2 s per invocation',
      perSlice <= 2000 && Math.max(...r.keys.map((k) => k.saveMs + k.resumeMs)) <= 2000,
      `${s(perSlice)} s at most in the run (${stopped.length} stops, ${continued.length} resumes); ${r.keys.map((k) => `${s(k.saveMs + k.resumeMs)} s for ${r.keyCount} ${k.name}`).join(', ')}`,
    ],
  ] as const;
  console.log('| target | met | |');
  console.log('|---|---|---|');
  for (const [name, met, detail] of targets) console.log(`| ${name} | ${met ? 'yes' : '**no**'} | ${detail} |`);
}

/** A child: the real handler in this process, warm across its invocations. */
async function child(mode: string, workMs: number): Promise<void> {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  // INFO: the lines that say when an invocation resumed and stopped are read below.
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  // The export alone: curating is measured by its own benchmark.
  process.env.CURATE_INLINE_MIN_REMAINING_SECONDS = '900';
  const marks: { message: string; at: number }[] = [];
  // The function's log lines are read for their timing, not printed (a failure is reported below).
  const read = (chunk: string | Uint8Array) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    const message = /"message":"(Run resumed|Run paused[^"]*)"/.exec(text)?.[1];
    if (message) marks.push({ message, at: Date.now() });
    return true;
  };
  process.stdout.write = read;
  process.stderr.write = read;
  const { handler } = await import('../../lambda/handler.ts');
  // Any event, any answer: the run's first event, then each continuation.
  const invoke = handler as (event: unknown, context: Context) => Promise<HandlerAnswer>;
  const context = (remainingMs: number, n: number): Context => {
    const deadline = Date.now() + remainingMs;
    return {
      awsRequestId: `bench${n.toString(16).padStart(4, '0')}`,
      functionName: 'thingpark-exporter-bench',
      getRemainingTimeInMillis: () => deadline - Date.now(),
    } as Context;
  };
  const remainingMs = mode === 'one' ? 900_000 : workMs + MARGINS_S * 1000;
  const invocations: Invocation[] = [];
  const cpu = process.cpuUsage();
  const started = Date.now();
  let event: unknown = SCHEDULE;
  let answer: HandlerAnswer;
  for (let n = 1; ; n += 1) {
    const at = Date.now();
    marks.length = 0;
    try {
      answer = await invoke(event, context(remainingMs, n));
    } catch (error) {
      process.send?.({ failed: `invocation ${n}: ${error instanceof Error ? `${error.name}: ${error.message}` : inspect(error)}` }, () => process.exit(1));
      return;
    }
    const ended = Date.now();
    const resumed = marks.find(({ message }) => message === 'Run resumed');
    invocations.push({
      status: answer.status,
      ms: ended - at,
      ...(resumed ? { resumeMs: resumed.at - at } : {}),
      ...(answer.status === 'continue' ? { stopMs: ended - (at + workMs) } : {}),
      devices: 'devices' in answer ? answer.devices : 0,
    });
    if (answer.status !== 'continue') break;
    event = answer;
  }
  const wallMs = Date.now() - started;
  const { user, system } = process.cpuUsage(cpu);
  const result: RunResult = {
    wallMs,
    cpuMs: (user + system) / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    invocations,
    summary: answer as unknown as RunResult['summary'],
  };
  process.send?.(result, () => process.exit(0));
}
