import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../lambda/common/config.ts';
import { EventError } from '../../lambda/common/errors.ts';
import type { Continuation } from '../../lambda/common/request-types.ts';
import type { RunServices } from '../../lambda/common/services.ts';
import { abandonRun } from '../../lambda/run/abandon.ts';
import { buildManifest } from '../../lambda/run/build-manifest.ts';
import type { Checkpoint } from '../../lambda/run/checkpoint.ts';
import { FleetReader } from '../../lambda/run/fleet-reader.ts';
import { lineageOf, readCheckpoint, SliceLifecycle, type Slice } from '../../lambda/run/lifecycle.ts';
import type { PausedSnapshot } from '../../lambda/run/stream-snapshot.ts';
import { putMarker, type Marker } from '../../lambda/storage/attempts.ts';
import { getCheckpoint, putCheckpoint, sha256 } from '../../lambda/storage/checkpoints.ts';
import type { DataFile } from '../../lambda/storage/data-writer.ts';
import { writeKeyIndex } from '../../lambda/storage/key-index.ts';
import { checkpointKeys, checkpointsPrefix, markerKey, runKeys } from '../../lambda/storage/layout.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { readJson } from '../../lambda/storage/s3-json.ts';
import { testS3 } from '../../tools/inspect/snapshot.ts';
import { startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';

/**
 * The lifecycle of an invocation in its run (lambda/run/lifecycle.ts), step by step against
 * s3rver: each test a run of its own under a prefix of its own, its invocations played by
 * lifecycles started one after the other, as export-run.ts starts them.
 */
let standIns: StandIns;
let s3: S3Client;
let config: Config;
let runs = 0;
const logger = new Logger({ serviceName: 'lifecycle-test', logLevel: 'SILENT' });

beforeAll(async () => {
  standIns = await startStandIns();
  s3 = testS3(standIns.s3Url);
  config = loadConfig(standIns.env);
});
afterAll(async () => {
  s3?.destroy();
  await standIns?.stop();
});

/** A run of its own: its id, and services whose prefix no other test writes under. */
function newRun() {
  runs += 1;
  const services: RunServices = {
    config: { ...config, prefix: `lifecycle-${runs}/` },
    s3,
    // The lifecycle asks for no token and publishes no metric.
    tokens: { get: () => Promise.reject(new Error('no token in these tests')), invalidate: () => undefined, grants: 0 },
    metrics: new Metrics({ serviceName: 'lifecycle-test', namespace: 'lifecycle-test' }),
  };
  const runId = `20261128T1${String(runs).padStart(5, '0')}Z`;
  return { services, runId, prefix: services.config.prefix };
}

const attemptOf = (n: number) => `0000000${n}aabbccdd`;

/** A run's first invocation, as exportRun hands it over. */
function firstSlice(services: RunServices, runId: string, attempt: string): Slice {
  return {
    runId,
    trigger: { kind: 'schedule', runTime: new Date('2026-11-28T10:00:00Z') },
    startedAt: new Date(),
    keys: runKeys(services.config.prefix, runId, attempt),
    previous: Promise.resolve({ verification: 'first-run', reason: 'no run is committed yet' }),
    earlier: { files: [], sweep: { pages: 0, wasted: 0, written: 0 }, tokenRequests: 0, slices: [] },
  };
}

/** The next invocation, from the checkpoint a continuation names, as resumeRun hands it over. */
async function nextSlice(services: RunServices, continuation: Continuation, attempt: string): Promise<Slice> {
  const { checkpoint, seen } = await readCheckpoint(services, continuation, new Date());
  const { duplicates, unkeyed, requests, retries, pages } = checkpoint.counts;
  return {
    ...firstSlice(services, continuation.runId, attempt),
    startedAt: new Date(checkpoint.startedAt),
    earlier: {
      files: checkpoint.files,
      sweep: checkpoint.sweep,
      tokenRequests: checkpoint.counts.tokenRequests,
      slices: checkpoint.slices,
      reader: { seen, counts: { duplicates, unkeyed, requests, retries, pages } },
    },
  };
}

/** Streams `devices` devices (keys from `from`) into the lifecycle's writer: one page's worth, as a reader would. */
async function writePage(services: RunServices, slice: Slice, lifecycle: SliceLifecycle, from: number, devices: number) {
  const reader = new FleetReader(services, { runId: slice.runId, writer: lifecycle.writer, logger }, slice.earlier.reader);
  for (let ref = from; ref < from + devices; ref += 1) {
    await lifecycle.writer.write(`{"ref":${ref}}\n`);
    reader.seen.add(ref);
  }
  reader.pages += 1;
  return reader;
}

/** Where a slice stopped after one page: its files closed, the sweep to go on from the next page. */
async function pausedAfterPage(lifecycle: SliceLifecycle, reader: FleetReader): Promise<PausedSnapshot> {
  const files = await lifecycle.writer.close();
  return { files, sweep: { pages: reader.pages, wasted: 0, written: reader.seen.size, next: reader.pages }, tokenRequests: 1 };
}

/** Runs one invocation that writes a page and stops: its continuation. */
async function sliceThatStops(services: RunServices, slice: Slice, attempt: string, from: number): Promise<Continuation> {
  const lifecycle = await SliceLifecycle.start(services, slice, { attempt, logger });
  const reader = await writePage(services, slice, lifecycle, from, 3);
  return lifecycle.checkpoint(await pausedAfterPage(lifecycle, reader), reader);
}

async function markerOf(services: RunServices, attempt: string): Promise<Marker | undefined> {
  return (await readJson<Marker>(s3, services.config.bucket, markerKey(services.config.prefix, attempt)))?.value;
}

async function keysUnder(services: RunServices, prefix: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: services.config.bucket, Prefix: prefix }));
  return (listed.Contents ?? []).flatMap(({ Key }) => (Key ? [Key] : []));
}

describe('start', () => {
  it("writes the invocation's marker, running, before any data", async () => {
    const { services, runId } = newRun();
    const slice = firstSlice(services, runId, attemptOf(1));
    const lifecycle = await SliceLifecycle.start(services, slice, { attempt: attemptOf(1), logger });

    expect(lifecycle.number).toBe(1);
    expect(await markerOf(services, attemptOf(1))).toMatchObject({ runId, attempt: attemptOf(1), state: 'running', manifestKey: slice.keys.manifestKey });
    expect(await keysUnder(services, slice.keys.dataPrefix)).toEqual([]);
  });

  it("refreshes the earlier invocations' markers of a continued run", async () => {
    const { services, runId } = newRun();
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    // As a later run's settling would find it, were it not refreshed: not running any more.
    const stale = await markerOf(services, attemptOf(1));
    await putMarker(s3, services.config.bucket, markerKey(services.config.prefix, attemptOf(1)), { ...stale!, state: 'failed' });

    const lifecycle = await SliceLifecycle.start(services, await nextSlice(services, first, attemptOf(2)), { attempt: attemptOf(2), logger });

    expect(lifecycle.number).toBe(2);
    expect((await markerOf(services, attemptOf(1)))?.state).toBe('running');
    expect((await markerOf(services, attemptOf(2)))?.state).toBe('running');
  });

  it('refuses to resume a run whose earlier files are gone, and leaves no marker of its own', async () => {
    const { services, runId } = newRun();
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const next = await nextSlice(services, first, attemptOf(2));
    const [gone] = next.earlier.files;
    await s3.send(new DeleteObjectCommand({ Bucket: services.config.bucket, Key: gone!.key }));

    const started = SliceLifecycle.start(services, next, { attempt: attemptOf(2), logger });

    await expect(started).rejects.toThrow(EventError);
    await expect(started).rejects.toThrow(`1 of its data files are gone (${gone!.key})`);
    expect(await markerOf(services, attemptOf(2))).toBeUndefined();
  });
});

describe('checkpoint', () => {
  it('saves where the run stands and answers with the continuation that resumes it', async () => {
    const { services, runId, prefix } = newRun();
    const continuation = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);

    expect(continuation).toEqual({
      status: 'continue',
      runId,
      attempt: attemptOf(1),
      bucket: services.config.bucket,
      checkpoint: checkpointKeys(prefix, runId, attemptOf(1)).checkpoint,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as string,
      slice: 1,
      phase: 'sweep',
      devices: 3,
      pages: 1,
      elapsedMs: expect.any(Number) as number,
    });
    const { checkpoint, seen } = await readCheckpoint(services, continuation, new Date());
    expect({ size: seen.size, held: [0, 1, 2].filter((key) => seen.has(key)) }).toEqual({ size: 3, held: [0, 1, 2] });
    expect(checkpoint).toMatchObject({
      runId,
      attempt: attemptOf(1),
      prefix,
      trigger: { kind: 'schedule', runTime: '2026-11-28T10:00:00.000Z' },
      sweep: { pages: 1, next: 1 },
      counts: { pages: 1, tokenRequests: 1 },
      previous: { verification: 'first-run' },
    });
    expect(checkpoint.slices.map(({ attempt }) => attempt)).toEqual([attemptOf(1)]);
    expect(checkpoint.files.map(({ devices }) => devices)).toEqual([3]);
    expect((await markerOf(services, attemptOf(1)))?.state).toBe('running');
  });

  it("carries the earlier invocations' files and keys on, and removes the checkpoint two back", async () => {
    const { services, runId, prefix } = newRun();
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const second = await sliceThatStops(services, await nextSlice(services, first, attemptOf(2)), attemptOf(2), 3);
    const third = await sliceThatStops(services, await nextSlice(services, second, attemptOf(3)), attemptOf(3), 6);

    expect(third).toMatchObject({ slice: 3, devices: 9, pages: 3 });
    const { checkpoint, seen } = await readCheckpoint(services, third, new Date());
    expect(seen.size).toBe(9);
    expect(checkpoint.slices.map(({ attempt }) => attempt)).toEqual([attemptOf(1), attemptOf(2), attemptOf(3)]);
    // Each invocation's file is named by its attempt, numbered on from the earlier ones'.
    expect(checkpoint.files.map(({ key }) => key.split('/').at(-1))).toEqual(
      [1, 2, 3].map((n) => `part-${String(n - 1).padStart(5, '0')}-${attemptOf(n)}.ndjson.gz`),
    );
    // A retry of the third invocation resumes from the second's checkpoint; nothing asks for the first's.
    expect((await keysUnder(services, checkpointsPrefix(prefix, runId))).filter((key) => key.endsWith('.json')).sort()).toEqual(
      [checkpointKeys(prefix, runId, attemptOf(2)).checkpoint, checkpointKeys(prefix, runId, attemptOf(3)).checkpoint].sort(),
    );
  });
});

describe('commit and release', () => {
  /** The last invocation of a run continued once: it writes a page and commits. */
  async function lastSlice(services: RunServices, runId: string) {
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const slice = await nextSlice(services, first, attemptOf(2));
    const lifecycle = await SliceLifecycle.start(services, slice, { attempt: attemptOf(2), logger });
    const reader = await writePage(services, slice, lifecycle, 3, 3);
    const files: DataFile[] = [...slice.earlier.files, ...(await lifecycle.writer.close())];
    lifecycle.writer.adopt(slice.keys.indexKey);
    const index = await writeKeyIndex(s3, services.config.bucket, slice.keys.indexKey, reader.seen);
    const manifest: Manifest = buildManifest({
      runId,
      trigger: slice.trigger,
      config: services.config,
      keys: slice.keys,
      snapshot: { source: { paging: 'cursor' }, files, index, verification: 'not-needed', counts: RUN_COUNTS },
      startedAt: slice.startedAt,
      finishedAt: new Date(),
    });
    return { lifecycle, slice, manifest };
  }

  it("commits the run with every invocation's files, removes their markers, then its checkpoints", async () => {
    const { services, runId, prefix } = newRun();
    const { lifecycle, slice, manifest } = await lastSlice(services, runId);

    const summary = await lifecycle.commit(manifest);

    expect(summary).toMatchObject({ runId, status: 'committed', devices: 6, pointerMoved: true });
    expect((await readJson<Manifest>(s3, services.config.bucket, slice.keys.manifestKey))?.value.files).toEqual(manifest.files);
    expect(await markerOf(services, attemptOf(1))).toBeUndefined();
    expect(await markerOf(services, attemptOf(2))).toBeUndefined();
    expect(await keysUnder(services, checkpointsPrefix(prefix, runId))).not.toEqual([]);

    await lifecycle.release(summary);

    expect(await keysUnder(services, checkpointsPrefix(prefix, runId))).toEqual([]);
    expect((await keysUnder(services, slice.keys.dataPrefix)).sort()).toEqual(manifest.files.map(({ key }) => key).sort());
  });

  it("refuses to commit when the earlier invocations' files went after it resumed, and removes its own", async () => {
    const { services, runId } = newRun();
    const { lifecycle, slice, manifest } = await lastSlice(services, runId);
    const [gone, own] = manifest.files;
    await s3.send(new DeleteObjectCommand({ Bucket: services.config.bucket, Key: gone!.key }));

    const committed = lifecycle.commit(manifest);

    await expect(committed).rejects.toMatchObject({ name: 'StorageError', code: 'RUN_FILES_GONE' });
    await expect(committed).rejects.toThrow(`1 of its data files are gone (${gone!.key})`);
    expect(await readJson<Manifest>(s3, services.config.bucket, slice.keys.manifestKey)).toBeUndefined();
    // Its own file and key index went with it.
    expect(own!.key).toContain(attemptOf(2));
    expect(await keysUnder(services, slice.keys.dataPrefix)).toEqual([]);
    expect(await keysUnder(services, slice.keys.indexKey)).toEqual([]);
  });

  it('removes what the earlier invocations wrote when another attempt committed the run', async () => {
    const { services, runId, prefix } = newRun();
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const slice = await nextSlice(services, first, attemptOf(2));
    const lifecycle = await SliceLifecycle.start(services, slice, { attempt: attemptOf(2), logger });

    await lifecycle.release({ status: 'already-committed' });

    // The manifest S3 holds (none here) lists none of them: the earlier invocation's files go, with its marker.
    expect(await keysUnder(services, slice.keys.dataPrefix)).toEqual([]);
    expect(await markerOf(services, attemptOf(1))).toBeUndefined();
    expect(await keysUnder(services, checkpointsPrefix(prefix, runId))).toEqual([]);
  });
});

describe('the lineage a request names, for an abandon', () => {
  it('is the checkpoint’s invocations when it is the one given, else says why not', async () => {
    const { services, runId } = newRun();
    const first = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const second = await sliceThatStops(services, await nextSlice(services, first, attemptOf(2)), attemptOf(2), 3);

    expect(await lineageOf(services, second)).toEqual({ checkpoint: 'found', lineage: [attemptOf(1), attemptOf(2)] });
    expect(await lineageOf(services, { ...second, sha256: first.sha256 })).toEqual({ checkpoint: 'different' });
    expect(await lineageOf(services, { ...second, checkpoint: `${second.checkpoint}.gone` })).toEqual({ checkpoint: 'missing' });
  });
});

describe('what an abandon trusts', () => {
  /** A run that stopped once, whose invocation then failed for good (its marker `failed`): what an abandon would remove. */
  async function stoppedRun() {
    const { services, runId, prefix } = newRun();
    const continuation = await sliceThatStops(services, firstSlice(services, runId, attemptOf(1)), attemptOf(1), 0);
    const stale = await markerOf(services, attemptOf(1));
    await putMarker(s3, services.config.bucket, markerKey(prefix, attemptOf(1)), { ...stale!, state: 'failed' });
    const dataPrefix = runKeys(prefix, runId, attemptOf(1)).dataPrefix;
    return { services, runId, prefix, continuation, dataPrefix, files: await keysUnder(services, dataPrefix) };
  }
  const abandonOf = (continuation: Continuation, attempt: string, prefix: string, sha: string) => ({
    runId: continuation.runId,
    attempt,
    bucket: continuation.bucket,
    checkpoint: checkpointKeys(prefix, continuation.runId, attempt).checkpoint,
    sha256: sha,
  });

  it('removes nothing for a checkpoint S3 has no such key for, whatever attempt and sha256 the event names', async () => {
    const { services, prefix, continuation, dataPrefix, files } = await stoppedRun();
    expect(files).toHaveLength(1);

    const summary = await abandonRun(services, abandonOf(continuation, attemptOf(9), prefix, '0'.repeat(64)), logger);

    expect(summary).toMatchObject({ status: 'no-checkpoint', removed: [] });
    expect(await keysUnder(services, dataPrefix)).toEqual(files);
  });

  it('refuses a checkpoint of junk bytes, even with their own sha256, and removes nothing', async () => {
    const { services, runId, prefix, continuation, dataPrefix, files } = await stoppedRun();
    const junk = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    await s3.send(new PutObjectCommand({ Bucket: services.config.bucket, Key: checkpointKeys(prefix, runId, attemptOf(9)).checkpoint, Body: junk }));

    const abandoned = abandonRun(services, abandonOf(continuation, attemptOf(9), prefix, sha256(junk)), logger);

    await expect(abandoned).rejects.toThrow(EventError);
    await expect(abandoned).rejects.toThrow('nothing was removed');
    expect(await keysUnder(services, dataPrefix)).toEqual(files);
  });

  it("refuses a checkpoint whose contents name objects not its run's, though its sha256 was recomputed", async () => {
    const { services, runId, prefix, continuation, dataPrefix, files } = await stoppedRun();
    const { value } = (await getCheckpoint<Checkpoint>(s3, services.config.bucket, continuation.checkpoint))!;
    const forge = async (changed: Checkpoint) => ({
      ...continuation,
      sha256: await putCheckpoint(s3, services.config.bucket, continuation.checkpoint, changed),
    });
    const elsewhere = `other/devices/dt=2026-11-28/run=${runId}/part-00000-${attemptOf(1)}.ndjson.gz`;
    const cases: [Checkpoint, string][] = [
      [{ ...value, files: [{ ...value.files[0]!, key: elsewhere }] }, '"files[0].key" must be data file 0'],
      [{ ...value, slices: [{ ...value.slices[0]!, attempt: '../x' }, ...value.slices] }, '"slices[0].attempt"'],
      [{ ...value, seen: { ...value.seen, key: `${prefix}latest.json` } }, '"seen.key" must be'],
      [{ ...value, lookups: { ...value.seen } }, '"lookups.key" must be'],
      [
        { ...value, previous: { verification: 'compared', runId: '20261127T100000Z', indexKey: `${prefix}manifests/20261127T100000Z.json` } },
        '"previous.indexKey"',
      ],
    ];
    for (const [changed, problem] of cases) {
      const forged = await forge(changed);
      await expect(readCheckpoint(services, forged, new Date())).rejects.toThrow(problem);
      await expect(abandonRun(services, forged, logger)).rejects.toThrow(problem);
    }
    expect(await keysUnder(services, dataPrefix)).toEqual(files);
  });

  it('abandons the run its genuine checkpoint names', async () => {
    const { services, continuation, dataPrefix } = await stoppedRun();

    const summary = await abandonRun(services, continuation, logger);

    expect(summary).toMatchObject({ status: 'abandoned', refused: [] });
    expect(await keysUnder(services, dataPrefix)).toEqual([]);
  });
});

const RUN_COUNTS = {
  devices: 6,
  pages: 2,
  pageRequests: 2,
  wastedRequests: 0,
  duplicates: 0,
  unkeyed: 0,
  throttled: 0,
  retries: 0,
  tokenRequests: 2,
  ranges: 1,
  recovered: 0,
  removed: 0,
  unresolved: 0,
  verificationRequests: 0,
};
