import { inspect } from 'node:util';
import type { Context } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Continuation } from '../../lambda/common/request-types.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { describeError, exporter, freshPrefix, objects, reset, useHarness, type Harness } from '../faults/harness.ts';
import { captureOutput, lambdaContext } from '../support/lambda.ts';
import { getJson, listKeys, runRows, type Row } from '../../tools/inspect/snapshot.ts';
import { DEMO } from '../../tools/stand-ins/standins.ts';
import { encodeCursor } from '../../tools/stand-ins/device-list.ts';
import { SPEC_7_3 } from '../../tools/stand-ins/simulator.ts';
import { simulatedEui } from '../../tools/stand-ins/identifiers.ts';
import { execute, exporterDefinition, type Execution, type Invoke } from '../support/step-functions.ts';

/**
 * The stack's state machine, run locally (test/support/states-language.ts) against the real handler
 * in this process and the stand-ins, with invocations given a few seconds each, so that a
 * run takes several of them: 10,000 devices in pages of 100, one page in flight at 25 ms,
 * about a second of work per invocation (its time less RUN_DEADLINE_MARGIN_SECONDS and
 * RUN_CHECKPOINT_MARGIN_SECONDS, one second each).
 */
const h: Harness = useHarness();

const FLEET = 10_000;
const SLICE_MS = 3000;
const SLICED = {
  RUN_DEADLINE_MARGIN_SECONDS: '1',
  RUN_CHECKPOINT_MARGIN_SECONDS: '1',
  THINGPARK_CONCURRENCY: '1',
  THINGPARK_MAX_CONCURRENCY: '1',
  POWERTOOLS_LOG_LEVEL: 'INFO',
};
const SCHEDULE = { scheduledTime: '2024-05-01T10:00:00Z' };
const RUN_ID = '20240501T100000Z';

let definition: ReturnType<typeof exporterDefinition>;
beforeAll(() => {
  definition = exporterDefinition();
});

type Handler = Awaited<ReturnType<typeof exporter>>;

/** The handler as a task invokes it, its output kept in `log` (and in the harness's journal). */
function invoking(handler: Handler, log: string[]): Invoke {
  return async (event, context) => {
    const { result, error, output } = await captureOutput(() => handler(event as never, context));
    log.push(output);
    h.journal.push(output, describeError(error));
    if (error !== undefined) throw error instanceof Error ? error : new Error(inspect(error));
    return result;
  };
}

/** Export invocations get SLICE_MS; the curation and the cleanup the function's 15 minutes. */
const contexts = (state: string): Context => (state === 'Export' ? lambdaContext(SLICE_MS) : lambdaContext());

async function runMachine(handler: Handler, input: unknown, log: string[] = []): Promise<Execution> {
  return execute(definition, input, { invoke: invoking(handler, log), context: contexts });
}

const exports = (execution: Execution) => execution.invocations.filter(({ state }) => state === 'Export');
/** A failed execution's cause: the failed invocation's error, as Lambda reports it. */
const causeOf = (execution: Execution) => JSON.parse(execution.error?.message ?? '{}') as { errorType?: string; errorMessage?: string };

/** The run failed at its page ceiling (`ceiling`: what its message says of it), in its first invocation, not retried, leaving nothing. */
async function expectPageLimit(execution: Execution, prefix: string, ceiling: string): Promise<void> {
  expect(execution.error?.name).toBe('RunLimitError');
  expect(causeOf(execution).errorMessage).toContain(ceiling);
  expect(exports(execution).map(({ error }) => error)).toEqual(['RunLimitError']);
  expect(await objects(h, prefix)).toEqual({});
}
const withoutRunId = (rows: Row[]) => rows.map(({ exportRunId: _runId, ...row }) => row);

/** The snapshot one invocation makes of the same fleet, under a prefix of its own: its rows and its summary. */
async function oneInvocationRun() {
  await reset(h, { fleet: FLEET });
  const handler = await exporter(h, freshPrefix());
  const { result } = await captureOutput(() => handler(SCHEDULE, lambdaContext()));
  if (!result) throw new Error('the one-invocation run failed');
  return Object.assign(await runRows(h.proxy.direct, result), { summary: result });
}

describe('a run over several invocations, driven by the state machine', () => {
  it('commits the same snapshot as a run in one invocation, each device once, with one token grant', async () => {
    const expected = await oneInvocationRun();
    expect(expected).toHaveLength(FLEET);

    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET, latencyMs: 25 });
    const handler = await exporter(h, prefix, SLICED);
    const log: string[] = [];
    const execution = await runMachine(handler, SCHEDULE, log);
    if (execution.error) throw new Error(`The execution failed: ${execution.error.name} ${execution.error.message}`);

    const slices = exports(execution);
    expect(slices.length).toBeGreaterThanOrEqual(3);
    // Every invocation but the last answered a continuation, which the next one was given as it was.
    const answers = slices.map(({ answer }) => answer as Continuation);
    for (const [i, answer] of answers.slice(0, -1).entries()) {
      expect(answer).toMatchObject({ status: 'continue', runId: RUN_ID, bucket: DEMO.bucket, slice: i + 1 });
      expect(answer.checkpoint).toBe(`${prefix}checkpoints/${RUN_ID}/${answer.attempt}.json`);
      expect(slices[i + 1]?.event).toEqual(answer);
      // Small whatever the fleet: the state lives in S3, not in the payload.
      expect(JSON.stringify(answer).length).toBeLessThan(1024);
    }
    const output = execution.output as {
      status: string;
      bucket: string;
      devices: number;
      tokenRequests: number;
      dataKeys: string[];
      manifestKey: string;
      curation: { status: string };
    };
    expect(output).toMatchObject({ status: 'committed', runId: RUN_ID, devices: FLEET, duplicates: 0, pages: expected.summary.pages });
    // The last invocation had no time left to curate: the state machine's Curate step did.
    expect(output.curation.status).toBe('curated');

    const rows = await runRows(h.proxy.direct, output);
    expect(rows).toHaveLength(FLEET);
    expect(withoutRunId(rows)).toEqual(withoutRunId(expected));
    expect(new Set(rows.map((row) => row.exportRunId))).toEqual(new Set([RUN_ID]));

    // The warm token cache served every invocation.
    expect(h.platform.tokens.grants).toBe(1);
    expect(output.tokenRequests).toBe(1);

    // One file per invocation at least, each named by the invocation that wrote it.
    const manifest = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, output.manifestKey);
    const writers = new Set(manifest.files.map(({ key }) => /-([a-z0-9]+)\.ndjson\.gz$/.exec(key)?.[1]));
    expect(writers.size).toBe(slices.length);
    // Nothing of the continuation is left: no checkpoint, no marker.
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}checkpoints/`)).toEqual([]);
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}attempts/`)).toEqual([]);

    // Each invocation said how the run was doing when it stopped, and which invocation it was.
    const progress = log
      .join('\n')
      .split('\n')
      .filter((line) => line.includes('"Run progress"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(progress.map((line) => line.slice)).toEqual(expect.arrayContaining(slices.map((_, i) => i + 1)));
    const figures = { devices: expect.any(Number) as number, pages: expect.any(Number) as number, devicesPerSecond: expect.any(Number) as number };
    for (const line of progress) expect(line).toMatchObject({ level: 'INFO', runId: RUN_ID, window: 1, ...figures });
  });

  it('retries an invocation that failed, from its checkpoint, without writing a page twice or losing one', async () => {
    const expected = await oneInvocationRun();
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET, latencyMs: 25 });
    // The third invocation's data file is refused by S3 (every try): that invocation fails.
    let failing: string | undefined;
    h.proxy.rule = ({ method, key }) => {
      const file = /\/part-00002-([a-z0-9]+)\.ndjson\.gz$/.exec(key);
      if (method !== 'PUT' || !file) return undefined;
      failing ??= file[1];
      return file[1] === failing ? { status: 500, code: 'InternalError' } : undefined;
    };
    const handler = await exporter(h, prefix, SLICED);
    const execution = await runMachine(handler, SCHEDULE);
    if (execution.error) throw new Error(`The execution failed: ${execution.error.name} ${execution.error.message}`);

    const slices = exports(execution);
    const failed = slices.findIndex(({ error }) => error !== undefined);
    expect(failed).toBe(2);
    expect(slices[failed]?.error).toBe('InternalError');
    // Retried with the same continuation: from the same checkpoint.
    expect(slices[failed + 1]?.event).toEqual(slices[failed]?.event);
    expect(execution.events.filter((event) => event.type === 'StateRetried')).toHaveLength(1);

    const output = execution.output as { status: string; bucket: string; dataKeys: string[] };
    expect(output.status).toBe('committed');
    const rows = await runRows(h.proxy.direct, output);
    expect(withoutRunId(rows)).toEqual(withoutRunId(expected));
    // The failed invocation left nothing: the run's folder holds exactly the manifest's files.
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}devices/`)).toEqual([...output.dataKeys].sort());
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}attempts/`)).toEqual([]);
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}checkpoints/`)).toEqual([]);
  });

  it('removes the partial run when an invocation fails for good, and leaves the previous snapshot byte-identical', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET });
    const baseline = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '900' });
    const { result: previous } = await captureOutput(() => baseline({ scheduledTime: '2024-04-30T10:00:00Z' }, lambdaContext()));
    expect(previous?.status).toBe('committed');
    const before = await objects(h, prefix);

    // Half-way through, the platform refuses a page for good (400 is not retried).
    await reset(h, {
      fleet: FLEET,
      latencyMs: 25,
      fault: ({ pageIndex }) => (pageIndex >= 50 ? { status: 400, body: '{"code":400,"message":"bad"}' } : undefined),
    });
    const handler = await exporter(h, prefix, SLICED);
    const execution = await runMachine(handler, SCHEDULE);

    expect(execution.error?.name).toBe('PlatformError');
    expect(causeOf(execution)).toMatchObject({ errorType: 'PlatformError' });
    expect(causeOf(execution).errorMessage).toContain('page 50');
    const slices = exports(execution);
    expect(slices.length).toBeGreaterThanOrEqual(2);
    // The invocation that met the page was tried three times; then the cleanup ran.
    expect(slices.slice(-3).map(({ error }) => error)).toEqual(['PlatformError', 'PlatformError', 'PlatformError']);
    const cleanup = execution.invocations.filter(({ state }) => state === 'Abandon');
    expect(cleanup).toHaveLength(1);
    const last = slices.at(-1)?.event as Continuation;
    expect(cleanup[0]?.event).toEqual({
      abandon: { runId: RUN_ID, attempt: last.attempt, bucket: DEMO.bucket, checkpoint: last.checkpoint, sha256: last.sha256 },
    });
    expect(cleanup[0]?.answer).toMatchObject({ status: 'abandoned', runId: RUN_ID, refused: [] });
    expect((cleanup[0]?.answer as { removed: string[] }).removed.length).toBeGreaterThanOrEqual(1);

    // Everything the run wrote is gone, and what was there before is there as it was.
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('fails a run at its ceiling of invocations, says which, removes what it wrote, and the next schedule starts normally', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET, latencyMs: 25 });
    const handler = await exporter(h, prefix, { ...SLICED, RUN_MAX_SLICES: '2' });
    const before = await objects(h, prefix);
    const execution = await runMachine(handler, SCHEDULE);

    expect(execution.error?.name).toBe('RunLimitError');
    expect(causeOf(execution).errorMessage).toContain('RUN_MAX_SLICES (2)');
    // Two invocations ran; the third was refused once, not retried, and the cleanup ran.
    expect(exports(execution).map(({ error }) => error)).toEqual([undefined, undefined, 'RunLimitError']);
    const cleanup = execution.invocations.filter(({ state }) => state === 'Abandon');
    expect(cleanup.map(({ answer }) => (answer as { status: string }).status)).toEqual(['abandoned']);
    expect(await objects(h, prefix)).toEqual(before);

    await reset(h, { fleet: 300 });
    const next = await runMachine(handler, { scheduledTime: '2024-05-01T11:00:00Z' });
    expect(next.output).toMatchObject({ status: 'committed', runId: '20240501T110000Z', devices: 300 });
  });

  it('fails a run whose platform repeats its last page forever within its page ceiling, and the next schedule starts normally', async () => {
    const prefix = freshPrefix();
    // 300 devices in pages of 100: from the third page on, the platform sends it again and again, saying there is more.
    const repeated = JSON.stringify({ briefs: [{ ref: '2000299' }], more: true, count: 300, now: '2024-05-01T10:00:00Z' });
    const sim = await reset(h, { fleet: 300, fault: ({ pageIndex }) => (pageIndex >= 2 ? { status: 200, body: repeated } : undefined) });
    const handler = await exporter(h, prefix, { ...SLICED, THINGPARK_PAGING: 'offset' });
    const execution = await runMachine(handler, SCHEDULE);

    await expectPageLimit(execution, prefix, 'while the platform counts 300 devices (3 pages of 100, and a margin of 10)');
    expect(sim.stats.requests).toBeLessThan(30);

    await reset(h, { fleet: 300 });
    const next = await runMachine(handler, { scheduledTime: '2024-05-01T11:00:00Z' });
    expect(next.output).toMatchObject({ status: 'committed', runId: '20240501T110000Z', devices: 300 });
  });

  it('fails a cursor read whose platform repeats a page forever within its page ceiling, after the fallback sweep', async () => {
    const prefix = freshPrefix();
    // 300 devices in pages of 100: from a sweep's third page on, the platform sends the fleet's last device again and
    // again, with its cursor, saying there is more. The ranges see EUIs out of order and fall back to one sweep, which meets it too.
    const last = Array.from({ length: 300 }, (_, i) => simulatedEui(i, 'skewed'))
      .sort()
      .at(-1) as string;
    const repeated = JSON.stringify({ briefs: [{ EUI: last }], more: true, count: 300, now: '2024-05-01T10:00:00Z', cursors: { last: encodeCursor(last) } });
    const sim = await reset(h, {
      ...SPEC_7_3,
      fleet: 300,
      fault: ({ mode, pageIndex, pageAfter }) => (mode === 'cursor' && pageAfter !== undefined && pageIndex >= 2 ? { status: 200, body: repeated } : undefined),
    });
    // The spec's list, read as the exporter reads it by default.
    const handler = await exporter(h, prefix, { ...SLICED, THINGPARK_PAGING: undefined, THINGPARK_FIRST_PAGE_INDEX: undefined });
    const execution = await runMachine(handler, SCHEDULE);

    await expectPageLimit(execution, prefix, 'while it counts 300 devices there (3 pages of 100, and a margin of 10)');
    expect(sim.stats.requests).toBeLessThan(40);
  });

  it('verifies against the previous run across invocations: the second sweep and the lookups go on where they stopped', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET });
    const baseline = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '900' });
    const { result: previous } = await captureOutput(() => baseline({ scheduledTime: '2024-04-30T10:00:00Z' }, lambdaContext()));
    expect(previous?.status).toBe('committed');

    // 150 devices already read are deleted (the 150 behind them are skipped: more than the
    // sweep has pages, so the list is swept again), and 60 not yet read (looked up, one by
    // one, each answered slowly: the lookups take several invocations).
    const sim = await reset(h, {
      fleet: FLEET,
      latencyMs: 25,
      changes: [
        { afterPage: 20, remove: 150, at: 'served' },
        { afterPage: 30, remove: 60, at: 'unserved' },
      ],
      lookupFault: () => ({ delayMs: 60 }),
    });
    const handler = await exporter(h, prefix, SLICED);
    const execution = await runMachine(handler, SCHEDULE);
    if (execution.error) throw new Error(`The execution failed: ${execution.error.name} ${execution.error.message}`);

    const phases = exports(execution).map(({ answer }) => (answer as Continuation).phase);
    expect(phases.filter((phase) => phase === 'verification').length).toBeGreaterThanOrEqual(3);
    const output = execution.output as {
      status: string;
      bucket: string;
      dataKeys: string[];
      verification: string;
      comparedWith: string;
      recovered: number;
      removed: number;
      unresolved: number;
    };
    // Each skipped device found once, each deleted one confirmed gone once: no lookup lost or made twice.
    expect(output).toMatchObject({ status: 'committed', verification: 'compared', comparedWith: previous?.runId, recovered: 150, removed: 60, unresolved: 0 });
    expect(sim.stats.lookups).toBeGreaterThanOrEqual(60);
    const refs = (await runRows(h.proxy.direct, output)).map((row) => String(row.ref));
    const gone = new Set(sim.stats.removed.slice(150).map((brief) => String(brief.ref)));
    const all = Array.from({ length: FLEET }, (_, i) => String(2_000_000 + i)).filter((ref) => !gone.has(ref));
    expect(refs).toHaveLength(new Set(refs).size);
    expect([...refs].sort()).toEqual(all.sort());
  });

  it('refuses a forged continuation, retries nothing, and removes nothing', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET, latencyMs: 25 });
    const handler = await exporter(h, prefix, SLICED);
    const { result } = await captureOutput(() => handler(SCHEDULE, lambdaContext(SLICE_MS)));
    const continuation = result as unknown as Continuation;
    expect(continuation.status).toBe('continue');
    const before = await objects(h, prefix);

    const forged = { ...continuation, sha256: 'f'.repeat(64) };
    const execution = await runMachine(handler, forged);
    expect(execution.error?.name).toBe('EventError');
    expect(causeOf(execution).errorMessage).toContain('does not match the continuation');
    expect(exports(execution)).toHaveLength(1);
    // The cleanup refuses it too: that checkpoint is not the forged continuation's.
    expect(execution.invocations.filter(({ state }) => state === 'Abandon').map(({ error }) => error)).toEqual(['EventError']);
    expect(await objects(h, prefix)).toEqual(before);

    // The genuine continuation still resumes the run, to its end.
    const resumed = await runMachine(handler, continuation);
    expect(resumed.output).toMatchObject({ status: 'committed', runId: RUN_ID, devices: FLEET });
  });
});

describe('an export whose invocation dies curating inline, after its commit', () => {
  it('is retried, found committed, and curated by the Curate step, in an invocation of its own', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 1000 });
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0' });
    // Inline curation cannot write (the first try's only); and an invocation that tried to
    // curate is reported as Lambda reports one killed for its memory: the commit stands.
    h.proxy.rule = ({ method, key }) =>
      method !== 'GET' && method !== 'HEAD' && key.includes('/curated/') ? { status: 403, code: 'AccessDenied' } : undefined;
    const base = invoking(handler, []);
    const dying: Invoke = async (event, context) => {
      const answer = (await base(event, context)) as { curation?: { status: string } } | undefined;
      h.proxy.rule = undefined;
      if (answer?.curation && answer.curation.status !== 'skipped') {
        throw Object.assign(new Error('Error: Runtime exited with error: signal: killed'), { name: 'Runtime.ExitError' });
      }
      return answer;
    };
    const execution = await execute(definition, SCHEDULE, { invoke: dying, context: () => lambdaContext() });
    if (execution.error) throw new Error(`The execution failed: ${execution.error.name} ${execution.error.message}`);

    expect(execution.invocations.map(({ state, error }) => `${state}${error ? ` (${error})` : ''}`)).toEqual([
      'Export (Runtime.ExitError)',
      'Export',
      'Curate',
    ]);
    expect(execution.invocations[1]?.answer).toMatchObject({
      status: 'already-committed',
      runId: RUN_ID,
      curation: { status: 'skipped', event: { curate: RUN_ID } },
    });
    expect(execution.output).toMatchObject({ status: 'already-committed', curation: { status: 'curated', summary: { runId: RUN_ID, devices: 1000 } } });
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}curated/runs/`)).toEqual([`${prefix}curated/runs/${RUN_ID}.json`]);
  });
});

describe('a continuation invoked by hand', () => {
  it('goes on where the run stopped, and returns the committed run once it is', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET, latencyMs: 25 });
    const handler = await exporter(h, prefix, { ...SLICED, CURATE_INLINE_MIN_REMAINING_SECONDS: '900' });
    const answers: unknown[] = [];
    let event: unknown = { label: 'by-hand' };
    for (let i = 0; i < 20; i += 1) {
      const { result, error } = await captureOutput(() => handler(event as never, lambdaContext(SLICE_MS)));
      if (error !== undefined) throw error instanceof Error ? error : new Error(inspect(error));
      answers.push(result);
      if ((result as { status: string }).status !== 'continue') break;
      event = result;
    }
    const first = answers[0] as Continuation;
    const summary = answers.at(-1) as { status: string; runId: string; devices: number };
    expect(answers.length).toBeGreaterThanOrEqual(3);
    expect(summary).toMatchObject({ status: 'committed', runId: first.runId, devices: FLEET });
    expect(first.runId).toMatch(/^\d{8}T\d{6}Z-[a-z0-9]+$/);

    // The first continuation again, long after: the run is committed, and that is the answer.
    const { result: again } = await captureOutput(() => handler(first as never, lambdaContext(SLICE_MS)));
    expect(again).toMatchObject({ status: 'already-committed', runId: first.runId, devices: FLEET });
  });

  it('refuses a continuation of another bucket, another prefix or a checkpoint that is not there, before any request', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 300 });
    const handler = await exporter(h, prefix, SLICED);
    const genuine: Continuation = {
      status: 'continue',
      runId: RUN_ID,
      attempt: '0000abcd12345678',
      bucket: DEMO.bucket,
      checkpoint: `${prefix}checkpoints/${RUN_ID}/0000abcd12345678.json`,
      sha256: 'a'.repeat(64),
      slice: 1,
      phase: 'sweep',
      devices: 100,
      pages: 1,
      elapsedMs: 1000,
    };
    const refusal = async (event: unknown) => {
      const { error } = await captureOutput(() => handler(event as never, lambdaContext()));
      return error as Error & { code?: string };
    };
    const otherBucket = await refusal({ ...genuine, bucket: 'someone-elses-bucket' });
    expect(otherBucket).toMatchObject({ name: 'EventError', code: 'EVENT_INVALID' });
    expect(otherBucket.message).toContain('"someone-elses-bucket"');
    const otherPrefix = await refusal({ ...genuine, checkpoint: `elsewhere/checkpoints/${RUN_ID}/0000abcd12345678.json` });
    expect(otherPrefix.message).toContain(`this function's prefix "${prefix}"`);
    const missing = await refusal(genuine);
    expect(missing.message).toContain('does not exist');
    const malformed = await refusal({ ...genuine, extra: true });
    expect(malformed.message).toContain('unexpected: extra');
    // Nothing was asked of the platform, and nothing was written.
    expect(h.platform.stats.requests).toBe(0);
    expect(await objects(h, prefix)).toEqual({});
  });

  it('abandons a run whatever the curation settings: a bad CURATE_ variable fails only the requests that curate', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 300 });
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: 'soon' });
    const attempt = '0000abcd12345678';
    const abandon = { runId: RUN_ID, attempt, bucket: DEMO.bucket, checkpoint: `${prefix}checkpoints/${RUN_ID}/${attempt}.json`, sha256: 'a'.repeat(64) };

    const abandoned = await captureOutput(() => handler({ abandon }, lambdaContext()));
    expect(abandoned.error).toBeUndefined();
    expect(abandoned.result).toMatchObject({ status: 'no-checkpoint', runId: RUN_ID, removed: [], refused: [] });

    const exported = await captureOutput(() => handler(SCHEDULE, lambdaContext()));
    expect(exported.error).toMatchObject({ name: 'ConfigError' });
    expect((exported.error as Error).message).toContain('CURATE_INLINE_MIN_REMAINING_SECONDS');
    // Refused before the export began: nothing was asked of the platform.
    expect(h.platform.stats.requests).toBe(0);
  });
});
