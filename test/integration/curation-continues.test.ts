import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CurationPause, CurationSummary } from '../../lambda/curate/curate-run.ts';
import type { CurationProgress } from '../../lambda/curate/curation-progress.ts';
import type { CurationRecord } from '../../lambda/curate/record.ts';
import type { CuratedRunSummary } from '../../lambda/handler.ts';
import { progressKeyOf } from '../../lambda/storage/layout.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { DEMO, exporter, freshPrefix, invoke, invokeFailing, invokeOk, lambdaContext, reset, useHarness } from '../faults/harness.ts';
import { queryObjects } from '../support/curated.ts';
import { execute, exporterDefinition } from '../support/step-functions.ts';
import { simulatedBrief, type Brief } from '../../tools/stand-ins/fleet.ts';
import { getJson, listKeys, testS3 } from '../../tools/inspect/snapshot.ts';

/**
 * A run curated over several invocations: each given SLICE_MS, less one second of deadline
 * margin and one of checkpoint margin, so about 400 ms, of which the first 100 to 200 go to
 * loading the previous run and what earlier invocations saved. The run's raw files are small
 * (SNAPSHOT_FILE_MAX_BYTES), and S3 holds each one's answer for RAW_HOLD_MS while a sliced
 * curation reads them, so that an invocation reads a file or two, however fast the machine:
 * a curation takes several invocations, and never the ceiling's 48. What it writes is held against the same run curated
 * in one invocation (in another prefix: the same fleets, exported and curated the same way).
 */
const h = useHarness();
const s3 = () => testS3(h.s3Url);

const FLEET = 4000;
const SLICE_MS = 3000;
const RAW_HOLD_MS = 200;
const MARGINS = {
  RUN_DEADLINE_MARGIN_SECONDS: '1',
  RUN_CHECKPOINT_MARGIN_SECONDS: '1',
  CURATE_CHANGE_FIELDS: undefined,
  SNAPSHOT_FILE_MAX_BYTES: String(256 * 1024),
};
type Handler = Awaited<ReturnType<typeof exporter>>;

/** The first run, and the second: 300 devices gone, 300 new, one in 50 changed, one in 997 unkeyed. */
const first = () => range(0, FLEET).map((i) => simulatedBrief(i));
const second = () =>
  range(300, FLEET + 300).map((i): Brief => {
    const brief = simulatedBrief(i);
    if (i % 997 === 5) return { name: `unkeyed-${i}`, healthState: 'ACTIVE' };
    return i % 50 === 0 ? { ...brief, healthState: 'INACTIVE' } : brief;
  });
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Exports the first run and curates it inline, then exports the second without curating it; returns the second's id. */
async function twoRuns(prefix: string): Promise<{ handler: Handler; runId: string }> {
  const inline = await exporter(h, prefix, { ...MARGINS, CURATE_INLINE_MIN_REMAINING_SECONDS: '0' });
  await reset(h, { fleet: first() });
  await invokeOk(h, inline, { label: 'first' });
  const handler = await exporter(h, prefix, { ...MARGINS, CURATE_INLINE_MIN_REMAINING_SECONDS: '900' });
  await reset(h, { fleet: second() });
  const { runId } = (await invokeOk(h, handler, { label: 'second' })) as CuratedRunSummary;
  return { handler, runId };
}

/** S3 holds the answer to each read of the run's raw files for `ms`. */
const holdRaw = (runId: string, ms: number) => {
  h.proxy.rule = ({ method, key }) => (method === 'GET' && key.includes(`/run=${runId}/`) && key.endsWith('.ndjson.gz') ? { holdResponseMs: ms } : undefined);
};
const curateSlice = async (handler: Handler, runId: string) => {
  holdRaw(runId, RAW_HOLD_MS);
  try {
    return (await invoke(h, handler, { curate: runId }, lambdaContext(SLICE_MS))).summary as unknown as CurationPause | CurationSummary;
  } finally {
    h.proxy.rule = undefined;
  }
};
const progressOf = (prefix: string, runId: string) => getJson<CurationProgress>(s3(), DEMO.bucket, progressKeyOf(prefix, runId));
/** Stores `progress` as the run's saved progress, in place of the one its curation saved. */
const putProgress = (prefix: string, runId: string, progress: unknown) =>
  s3().send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: progressKeyOf(prefix, runId), Body: JSON.stringify(progress) }));
const recordOf = (prefix: string, runId: string) => getJson<CurationRecord>(s3(), DEMO.bucket, `${prefix}curated/runs/${runId}.json`);
const runKeys = async (prefix: string, runId: string) => (await listKeys(s3(), DEMO.bucket, `${prefix}curated/`)).filter((key) => key.includes(runId));

/** What a curated run holds that does not depend on its id or how many invocations it took. */
async function tables(prefix: string, runId: string) {
  const record = await recordOf(prefix, runId);
  const snapshotKeys = record.snapshotFiles.map(({ key }) => key);
  const rows = await queryObjects(s3(), DEMO.bucket, snapshotKeys, 'SELECT * EXCLUDE (run_id, run_time) FROM read_parquet({files}) ORDER BY eui, name');
  const changes = await queryObjects(
    s3(),
    DEMO.bucket,
    record.changeFiles.map(({ key }) => key),
    'SELECT * EXCLUDE (run_id, run_time, previous_run_id, previous_run_time) FROM read_parquet({files}) ORDER BY device_key',
  );
  const state = await s3().send(new GetObjectCommand({ Bucket: DEMO.bucket, Key: record.stateKey }));
  const lines = gunzipSync(Buffer.from(await (state.Body?.transformToByteArray() ?? new Uint8Array())))
    .toString('utf8')
    .split('\n');
  const { devices, unkeyed, added, removed, changed, removalsConfirmed, signals, comparison, comparedFrom } = record;
  return { figures: { devices, unkeyed, added, removed, changed, removalsConfirmed, signals, comparison, comparedFrom }, rows, changes, state: lines.slice(1) };
}

let baseline: Awaited<ReturnType<typeof tables>>;
beforeAll(async () => {
  const prefix = freshPrefix();
  const { handler, runId } = await twoRuns(prefix);
  const summary = (await invokeOk(h, handler, { curate: runId })) as unknown as CurationSummary;
  expect(summary).toMatchObject({ status: 'curated', devices: FLEET });
  baseline = await tables(prefix, runId);
  // 300 devices new; 300 gone, and those that lost their EUI (unkeyed now, so no longer the same device).
  const unkeyed = range(300, FLEET + 300).filter((i) => i % 997 === 5).length;
  expect(unkeyed).toBeGreaterThan(0);
  expect(baseline.figures).toMatchObject({ added: 300, removed: 300 + unkeyed, unkeyed, comparison: 'compared', comparedFrom: 'state' });
}, 120_000);

describe('curation over several invocations', () => {
  it("goes on in the state machine's Curate step until the run is curated, to the same tables as in one invocation", async () => {
    const prefix = freshPrefix();
    const { handler, runId } = await twoRuns(prefix);
    const manifest = await getJson<Manifest>(s3(), DEMO.bucket, `${prefix}manifests/${runId}.json`);
    expect(manifest.files.length).toBeGreaterThanOrEqual(3);
    holdRaw(runId, RAW_HOLD_MS);
    // From the choice an export's answer reaches, with an answer whose inline curation was skipped.
    const definition = { ...(exporterDefinition() as Record<string, unknown>), StartAt: 'Curated?' };
    const execution = await execute(
      definition,
      { runId, curation: { status: 'skipped' } },
      { invoke: (event, context) => handler(event as never, context), context: () => lambdaContext(SLICE_MS), name: 'curate-only' },
    );
    h.proxy.rule = undefined;
    expect(execution.error).toBeUndefined();
    const curations = execution.invocations.filter(({ state }) => state === 'Curate');
    expect(curations.length).toBeGreaterThanOrEqual(2);
    const answers = curations.map(({ answer }) => answer as CurationPause | CurationSummary);
    const pauses = answers.slice(0, -1) as CurationPause[];
    expect(pauses.every(({ status, event }) => status === 'curating' && event.curate === runId)).toBe(true);
    // Every invocation read devices, and each one more than the one before had.
    const read = pauses.map((pause) => pause.read);
    expect(read).toEqual([...read].sort((a, b) => a - b));
    expect(new Set(read).size).toBe(read.length);
    expect(pauses.map(({ invocations }) => invocations)).toEqual(range(1, pauses.length + 1));
    expect(answers.at(-1)).toMatchObject({ status: 'curated', current: 'switched', devices: FLEET });

    expect(await tables(prefix, runId)).toEqual(baseline);
    const record = await recordOf(prefix, runId);
    // Each invocation that read devices wrote files of its own, numbered on from the last.
    expect(record.snapshotFiles.length).toBeGreaterThanOrEqual(pauses.length);
    expect(record.snapshotFiles.map(({ key }) => /part-(\d{5})\.parquet$/.exec(key)?.[1])).toEqual(
      record.snapshotFiles.map((_, part) => String(part).padStart(5, '0')),
    );
    expect(record.snapshotFiles.reduce((sum, file) => sum + file.rows, 0)).toBe(manifest.counts.devices);
    // No progress left, and no file that the record does not list.
    const listed = [...record.snapshotFiles, ...record.changeFiles].map(({ key }) => key);
    expect((await runKeys(prefix, runId)).sort()).toEqual([...listed, record.stateKey, `${prefix}curated/runs/${runId}.json`].sort());
  }, 120_000);

  it('goes on from the progress saved before an invocation that failed, which removes only what it wrote', async () => {
    const prefix = freshPrefix();
    const { handler, runId } = await twoRuns(prefix);
    expect(await curateSlice(handler, runId)).toMatchObject({ status: 'curating', invocations: 1 });
    const saved = await progressOf(prefix, runId);
    const before = await runKeys(prefix, runId);
    // The next invocation's reads of the raw files hang until its deadline.
    holdRaw(runId, 60_000);
    const error = await invokeFailing(h, handler, { curate: runId }, lambdaContext(SLICE_MS));
    h.proxy.rule = undefined;
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    expect(error.message).toContain(`with ${saved.devices} of its ${FLEET} devices read`);
    expect(await progressOf(prefix, runId)).toEqual(saved);
    expect(await runKeys(prefix, runId)).toEqual(before);

    const done = (await invokeOk(h, handler, { curate: runId })) as unknown as CurationSummary;
    expect(done).toMatchObject({ status: 'curated', devices: FLEET });
    expect(await tables(prefix, runId)).toEqual(baseline);
  }, 120_000);

  it('starts over from a progress that is not one it saves for this commit, and says so', async () => {
    const prefix = freshPrefix();
    const { handler, runId } = await twoRuns(prefix);
    expect(await curateSlice(handler, runId)).toMatchObject({ status: 'curating' });
    const saved = await progressOf(prefix, runId);
    // A position that does not hold the devices it counts: reading on from it would lose or repeat some.
    await putProgress(prefix, runId, { ...saved, next: { ...saved.next, line: saved.next.line + 1 } });
    const outcome = await invoke(h, handler, { curate: runId }, lambdaContext());
    expect(outcome.summary).toMatchObject({ status: 'curated', devices: FLEET });
    expect(outcome.output).toContain('not one this code saves for this commit of the run: starting over');
    expect(outcome.output).toContain('\\"next\\" has');
    expect(await tables(prefix, runId)).toEqual(baseline);
  }, 120_000);

  it('compares the next run with the raw files of a run whose curation is still going on, not with its state so far', async () => {
    const prefix = freshPrefix();
    const { handler, runId } = await twoRuns(prefix);
    expect(await curateSlice(handler, runId)).toMatchObject({ status: 'curating' });
    const third = (await invokeOk(h, handler, { label: 'third' })) as CuratedRunSummary;
    const curated = (await invokeOk(h, handler, { curate: third.runId })) as unknown as CurationSummary;
    // The same fleet as the second run: nothing changed, whatever the second run's curation had read.
    expect(curated).toMatchObject({ status: 'curated', previousRunId: runId, comparedFrom: 'raw', added: 0, removed: 0, changed: 0 });
  }, 120_000);

  it('removes everything it wrote when a later invocation finds a raw file damaged, or reaches its last allowed invocation', async () => {
    const prefix = freshPrefix();
    const { handler, runId } = await twoRuns(prefix);
    expect(await curateSlice(handler, runId)).toMatchObject({ status: 'curating' });
    const manifest = await getJson<Manifest>(s3(), DEMO.bucket, `${prefix}manifests/${runId}.json`);
    const last = manifest.files.at(-1)?.key as string;
    const original = await s3().send(new GetObjectCommand({ Bucket: DEMO.bucket, Key: last }));
    const bytes = await original.Body?.transformToByteArray();
    await s3().send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: last, Body: 'not gzip' }));
    const damaged = await invokeFailing(h, handler, { curate: runId });
    expect(damaged).toMatchObject({ name: 'CurationError', code: 'RAW_DAMAGED' });
    expect(await runKeys(prefix, runId)).toEqual([]);

    await s3().send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: last, Body: bytes }));
    expect(await curateSlice(handler, runId)).toMatchObject({ status: 'curating', invocations: 1 });
    const saved = await progressOf(prefix, runId);
    await putProgress(prefix, runId, { ...saved, invocations: 47 });
    // Its raw reads answer only after its time to read is over (2 s: 8 s less the margins of 1
    // and 5 s), and well before its deadline: it reads one device, and stops.
    const patient = await exporter(h, prefix, { ...MARGINS, CURATE_INLINE_MIN_REMAINING_SECONDS: '900', RUN_CHECKPOINT_MARGIN_SECONDS: '5' });
    holdRaw(runId, 2500);
    const limit = await invokeFailing(h, patient, { curate: runId }, lambdaContext(8000));
    h.proxy.rule = undefined;
    expect(limit).toMatchObject({ name: 'RunLimitError', code: 'CURATION_INVOCATION_LIMIT' });
    expect(limit.message).toContain(`Stopped curating run ${runId} after 48 invocations`);
    expect(await runKeys(prefix, runId)).toEqual([]);
  }, 120_000);
});
