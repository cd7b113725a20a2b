import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { RunSummary } from '../../lambda/run/summary.ts';
import { captureOutput, coldStart, lambdaContext } from '../support/lambda.ts';
import { OFFSET_ENV, OFFSET_PLATFORM } from '../support/paging.ts';
import type { SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { DEMO, startStandIns, type StandInOptions, type StandIns } from '../../tools/stand-ins/standins.ts';
import { startS3Proxy, type S3Proxy } from './s3-proxy.ts';

type Handler = Awaited<ReturnType<typeof coldStart>>;

/**
 * The stand-ins of tools/stand-ins plus the S3 proxy (conditional writes, S3 faults), and a
 * journal of everything every invocation printed, threw or returned, so that each test can
 * be checked for secrets and tokens in any of it.
 */
export interface Harness extends StandIns {
  proxy: S3Proxy;
  /** Everything written to stdout/stderr, every error (message, stack, JSON, causes), every summary. */
  journal: string[];
  /** Secrets this file put in play (client secrets, right or wrong), to be found nowhere. */
  secrets: Set<string>;
}

async function startHarness(options: StandInOptions = {}): Promise<Harness> {
  const standIns = await startStandIns(options);
  const proxy = await startS3Proxy(standIns.s3Url);
  const stop = standIns.stop.bind(standIns);
  return Object.assign(standIns, {
    proxy,
    journal: [],
    secrets: new Set<string>([DEMO.clientSecret]),
    env: { ...standIns.env, AWS_ENDPOINT_URL_S3: proxy.url },
    async stop() {
      await proxy.close();
      await stop();
    },
  });
}

/**
 * The harness for the tests of the current file (or describe block): started before them,
 * stopped after them. The object is filled in by the beforeAll hook this registers, so use
 * it only inside tests and later hooks.
 *
 * After each test, and once more before the stop, what was printed, thrown, returned and
 * written since the last check is searched for secrets and tokens (see `leaks`),
 * so that every test is checked whether it runs alone, in a filtered run or in any order.
 * Writes that land between two tests (an upload answered late) are checked with the next.
 */
export function useHarness(options: StandInOptions = {}): Harness {
  const h = {} as Harness;
  let checked: Position = { journal: 0, events: 0 };
  const check = async () => {
    if (!h.journal) return;
    const from = checked;
    checked = position(h);
    expect(await leaks(h, from, checked)).toEqual([]);
  };
  beforeAll(async () => {
    Object.assign(h, await startHarness(options));
  });
  afterEach(check);
  afterAll(async () => {
    try {
      await check();
    } finally {
      await h.stop?.();
    }
  });
  return h;
}

let prefixes = 0;
/** A snapshot prefix of its own, so each test sees only its own runs, manifests and pointer. */
export function freshPrefix(): string {
  prefixes += 1;
  return `faults-${process.pid}-${prefixes}/`;
}

/**
 * The simulator, token server, SSM and S3 proxy back to normal, counters cleared. Waits
 * first a moment for requests a previous run sent just before it ended (pages fetched
 * ahead, then cancelled) to reach the simulator, so they do not count against the next
 * test; requests already there were counted on arrival.
 */
export async function reset(h: Harness, options: Partial<SimulatorOptions> = {}) {
  const { platform, ssm, proxy } = h;
  await sleep(50);
  platform.reset({ ...OFFSET_PLATFORM, fleet: 250, ...options });
  ssm.put(DEMO.clientIdParam, DEMO.clientId);
  ssm.put(DEMO.clientSecretParam, DEMO.clientSecret, 'SecureString');
  ssm.failNext(0);
  proxy.rule = undefined;
  proxy.honourConditions = true;
  proxy.log.length = 0;
  return platform;
}

/**
 * A cold start against the harness, every tunable at its default unless given, page size
 * 100, debug logging (captured by `invoke`, so nothing reaches the test output), and the
 * given snapshot prefix. No curation after the commit unless asked for: these tests are
 * about the export, and curation's own (test/integration/curate.test.ts) turn it on.
 */
export async function exporter(h: Harness, prefix: string, env: Record<string, string | undefined> = {}): Promise<Handler> {
  return coldStart({
    ...h.env,
    ...OFFSET_ENV,
    CURATE_INLINE_MIN_REMAINING_SECONDS: '900',
    POWERTOOLS_LOG_LEVEL: 'DEBUG',
    THINGPARK_PAGE_SIZE: '100',
    SNAPSHOT_PREFIX: prefix,
    ...env,
  });
}

export interface Outcome {
  summary?: RunSummary;
  error?: Error;
  output: string;
  ms: number;
}

/** One invocation with all of its output captured into the journal (and kept off the console). */
export async function invoke(h: Harness, handler: Handler, event: unknown, context: Context = lambdaContext()): Promise<Outcome> {
  const started = Date.now();
  const { result, error, output } = await captureOutput(() => handler(event, context));
  const ms = Date.now() - started;
  h.journal.push(output, describeError(error), JSON.stringify(result ?? null));
  return { ...(result ? { summary: result } : {}), ...(error ? { error: error as Error } : {}), output, ms };
}

/** An invocation that must fail: its error. */
export async function invokeFailing(h: Harness, handler: Handler, event: unknown, context?: Context): Promise<Error & { code?: string; status?: number }> {
  const outcome = await invoke(h, handler, event, context);
  if (!outcome.error) throw new Error(`Expected the run to fail; it returned ${JSON.stringify(outcome.summary)}`);
  return outcome.error;
}

/** An invocation that must succeed: its summary (the captured output on failure, to debug). */
export async function invokeOk(h: Harness, handler: Handler, event: unknown, context?: Context): Promise<RunSummary> {
  const outcome = await invoke(h, handler, event, context);
  if (!outcome.summary) {
    throw new Error(`Expected the run to succeed; it failed with ${describeError(outcome.error).slice(0, 2000)}`);
  }
  return outcome.summary;
}

/** Message, stack, own enumerable fields and the whole cause chain, as anything might print them. */
export function describeError(error: unknown): string {
  if (error === undefined) return '';
  const parts: string[] = [inspect(error, { depth: 10, showHidden: true })];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 10; depth += 1) {
    parts.push(current.name, current.message, current.stack ?? '');
    try {
      parts.push(JSON.stringify(current));
    } catch {
      // circular: inspect above already has it
    }
    current = current.cause;
  }
  return parts.join('\n');
}

/** Every object under a prefix with its exact bytes (base64), to compare before and after. */
export async function objects(h: Harness, prefix: string): Promise<Record<string, string>> {
  const s3 = h.proxy.direct;
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: DEMO.bucket, Prefix: prefix }));
  expect(listed.IsTruncated ?? false).toBe(false);
  const result: Record<string, string> = {};
  for (const { Key } of listed.Contents ?? []) {
    if (!Key) continue;
    const object = await s3.send(new GetObjectCommand({ Bucket: DEMO.bucket, Key }));
    result[Key] = Buffer.from((await object.Body?.transformToByteArray()) ?? new Uint8Array()).toString('base64');
  }
  return result;
}

/** Every object in the bucket as text (gzip data files inflated), for the secrets check. */
export async function bucketText(h: Harness): Promise<string> {
  const all = await objects(h, '');
  return Object.entries(all)
    .map(([key, base64]) => `${key}\n${textOf(key, Buffer.from(base64, 'base64'))}`)
    .join('\n');
}

/** An object's bytes as the secrets check reads them: gzip inflated where it is gzip. */
function textOf(key: string, bytes: Uint8Array): string {
  if (!key.endsWith('.gz')) return Buffer.from(bytes).toString();
  try {
    return gunzipSync(bytes).toString();
  } catch {
    // A damaged file a test wrote on purpose: its bytes as they are.
    return Buffer.from(bytes).toString();
  }
}

/** Occurrences of each needle in the haystack, summed. */
export function occurrences(haystack: string, needles: Iterable<string>): number {
  let count = 0;
  for (const needle of needles) {
    if (needle === '') continue;
    count += haystack.split(needle).length - 1;
  }
  return count;
}

/** How far the journal and the bucket's write events went at one moment. */
export interface Position {
  journal: number;
  events: number;
}

export function position(h: Harness): Position {
  return { journal: h.journal.length, events: h.s3Events.length };
}

/** A secret or token found: where (an object's key, or the invocations' output) and which kind. */
export interface Leak {
  where: string;
  what: 'client secret' | 'platform token';
}

/**
 * Every client secret the harness put in play and every token the platform saw, found in
 * what invocations printed, threw or returned between two positions, or in an object
 * written between them (as it is now: one deleted since is not there to read).
 */
export async function leaks(h: Harness, from: Position, to: Position): Promise<Leak[]> {
  const written = new Set(
    h.s3Events
      .slice(from.events, to.events)
      .filter(({ event }) => event.startsWith('ObjectCreated'))
      .map(({ key }) => key),
  );
  const texts: [string, string][] = [['printed, thrown or returned', h.journal.slice(from.journal, to.journal).join('\n')]];
  for (const key of written) {
    const bytes = await objectBytes(h, key);
    if (bytes) texts.push([key, textOf(key, bytes)]);
  }
  const tokens = [...h.platform.stats.tokens];
  const found: Leak[] = [];
  for (const [where, text] of texts) {
    if (occurrences(text, h.secrets) > 0) found.push({ where, what: 'client secret' });
    if (occurrences(text, tokens) > 0) found.push({ where, what: 'platform token' });
  }
  return found;
}

async function objectBytes(h: Harness, key: string): Promise<Uint8Array | undefined> {
  try {
    const object = await h.proxy.direct.send(new GetObjectCommand({ Bucket: DEMO.bucket, Key: key }));
    return (await object.Body?.transformToByteArray()) ?? new Uint8Array();
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw error;
  }
}

/** Page arrival times per page index and attempt, recorded by a fault rule. */
export function arrivals() {
  const times = new Map<string, number>();
  return {
    mark(pageIndex: number, attempt: number) {
      times.set(`${pageIndex}/${attempt}`, Date.now());
    },
    gap(pageIndex: number, from: number, to: number): number {
      const a = times.get(`${pageIndex}/${from}`);
      const b = times.get(`${pageIndex}/${to}`);
      if (a === undefined || b === undefined) throw new Error(`page ${pageIndex} attempts ${from}/${to} not both seen`);
      return b - a;
    },
  };
}

export { DEMO, lambdaContext };
