import { gzipSync } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventError, RunLimitError } from '../../lambda/common/errors.ts';
import type { Continuation } from '../../lambda/common/request-types.ts';
import { parseRequest } from '../../lambda/requests.ts';
import { checkCeilings, checkedCheckpoint, checkForeign, RESUME_WITHIN_MS, type Checkpoint } from '../../lambda/run/checkpoint.ts';
import { pauseFor, SliceEnd } from '../../lambda/common/deadline.ts';
import { SETTLED_MS } from '../../lambda/storage/attempts.ts';
import { CHECKPOINT_MAX_BYTES, CheckpointMismatchError, getCheckpoint, getKeySet, putCheckpoint, putKeySet, sha256 } from '../../lambda/storage/checkpoints.ts';
import type { IndexKey } from '../../lambda/storage/key-index.ts';

const RUN_ID = '20261128T100000Z';
const ATTEMPT = '0000000ab1c2d3e4';
const CONFIG = { bucket: 'thingpark-snapshots', prefix: 'thingpark/' };
const CHECKPOINT_KEY = `thingpark/checkpoints/${RUN_ID}/${ATTEMPT}.json`;

const continuation = (overrides: Partial<Record<keyof Continuation, unknown>> = {}): Continuation =>
  ({
    status: 'continue',
    runId: RUN_ID,
    attempt: ATTEMPT,
    bucket: CONFIG.bucket,
    checkpoint: CHECKPOINT_KEY,
    sha256: 'ab'.repeat(32),
    slice: 2,
    phase: 'sweep',
    devices: 420_000,
    pages: 4200,
    elapsedMs: 1_700_000,
    ...overrides,
  }) as Continuation;

const savedAt = new Date('2026-11-28T11:00:00Z');
const checkpoint = (overrides: Partial<Checkpoint> = {}): Checkpoint => ({
  schemaVersion: 1,
  runId: RUN_ID,
  attempt: ATTEMPT,
  bucket: CONFIG.bucket,
  prefix: CONFIG.prefix,
  trigger: { kind: 'schedule', runTime: '2026-11-28T10:00:00.000Z' },
  startedAt: '2026-11-28T10:00:01.000Z',
  savedAt: savedAt.toISOString(),
  slices: [{ attempt: ATTEMPT, startedAt: '2026-11-28T10:00:01.000Z', durationMs: 850_000 }],
  files: [{ key: `thingpark/devices/dt=2026-11-28/run=${RUN_ID}/part-00000-${ATTEMPT}.ndjson.gz`, devices: 420_000, bytes: 1, uncompressedBytes: 2 }],
  sweep: { pages: 4200, wasted: 3, written: 420_000, next: 4200 },
  counts: { duplicates: 0, unkeyed: 0, requests: { requests: 4203, throttled: 0, tokenRefusals: 0 }, retries: 0, pages: 4200, tokenRequests: 1 },
  previous: { verification: 'first-run' },
  seen: { key: `thingpark/checkpoints/${RUN_ID}/${ATTEMPT}.seen.gz`, bytes: 1, count: 1, sha256: 'c'.repeat(64) },
  ...overrides,
});

const messageOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EventError);
    return (error as Error).message;
  }
  throw new Error('expected an EventError');
};

describe('a continuation as an event', () => {
  it('is the answer itself, exactly, and no other event is taken for one', () => {
    const now = new Date();
    expect(parseRequest(continuation(), now)).toEqual({ kind: 'continuation', continuation: continuation() });
    expect(parseRequest({}, now)).toEqual({ kind: 'on-demand', runTime: now });
    expect(parseRequest({ scheduledTime: '2026-11-28T10:00:00Z' }, now)).toEqual({ kind: 'schedule', runTime: new Date('2026-11-28T10:00:00Z') });
    expect(parseRequest(null, now)).toEqual({ kind: 'on-demand', runTime: now });
    // Not an on-demand event either: the trigger's parse names the fields it does not know.
    expect(() => parseRequest({ status: 'committed', runId: RUN_ID }, now)).toThrow('Unknown fields "status", "runId" in an on-demand event');
    expect(() => parseRequest({ status: 'committed' }, now)).toThrow('Unknown field "status"');
  });

  it('names the fields missing from it and those it should not have', () => {
    const { sha256: _dropped, ...partial } = continuation();
    expect(messageOf(() => parseRequest(partial, new Date()))).toContain('missing: sha256');
    expect(messageOf(() => parseRequest({ ...continuation(), bucketName: 'x' }, new Date()))).toContain('unexpected: bucketName');
  });

  it.each([
    ['runId', { runId: '2026-11-28' }, '"runId" must be a run id'],
    ['runId whose time does not exist', { runId: '20261340T250000Z' }, '"runId" must be a run id such as 20261128T100000Z, got "20261340T250000Z"'],
    ['attempt', { attempt: '../../etc' }, '"attempt" must be 1 to 32 lower-case letters and digits'],
    ['bucket', { bucket: 'Not_A_Bucket' }, '"bucket" must be an S3 bucket name'],
    [
      'checkpoint of another run',
      { checkpoint: `thingpark/checkpoints/20261128T110000Z/${ATTEMPT}.json` },
      '"checkpoint" must be the key of the run\'s checkpoint',
    ],
    ['sha256', { sha256: 'XYZ' }, '"sha256" must be 64 lower-case hex digits'],
    ['slice', { slice: 0 }, '"slice" must be a whole number from 1'],
    ['phase', { phase: 'commit' }, '"phase" must be "sweep" or "verification"'],
    ['devices', { devices: -1 }, '"devices" must be a whole number from 0'],
  ] as const)('refuses a malformed %s', (_what, overrides, expected) => {
    const message = messageOf(() => parseRequest(continuation(overrides), new Date()));
    expect(message).toContain(expected);
    expect(message.length).toBeLessThan(600);
  });

  it('refuses one of another bucket, or whose checkpoint is not under this prefix, before anything is read', () => {
    expect(() => checkForeign(continuation(), CONFIG)).not.toThrow();
    expect(messageOf(() => checkForeign(continuation({ bucket: 'other-bucket' }), CONFIG))).toContain('this function exports to "thingpark-snapshots"');
    const otherPrefix = continuation({ checkpoint: `elsewhere/checkpoints/${RUN_ID}/${ATTEMPT}.json` });
    expect(messageOf(() => checkForeign(otherPrefix, CONFIG))).toContain(`would be "${CHECKPOINT_KEY}" under this function's prefix "thingpark/"`);
  });
});

describe('the checkpoint a continuation names', () => {
  const stored = (value: Checkpoint, digest = 'ab'.repeat(32)) => ({ value, sha256: digest });
  const check = (value: ReturnType<typeof stored> | undefined, now = new Date(savedAt.getTime() + 60_000)) =>
    checkedCheckpoint(continuation(), value, CONFIG, now);

  it('is resumed when it is there, unaltered, this run’s and recent', () => {
    expect(check(stored(checkpoint()))).toEqual(checkpoint());
  });

  it('is refused when missing, altered, another run’s, another deployment’s, or of an unknown schema', () => {
    expect(messageOf(() => check(undefined))).toContain('does not exist');
    expect(messageOf(() => check(stored(checkpoint(), 'cd'.repeat(32))))).toContain('does not match the continuation');
    for (const other of [{ runId: '20261128T110000Z' }, { attempt: 'zzzz' }, { bucket: 'other' }, { prefix: 'other/' }, { schemaVersion: 2 as unknown as 1 }]) {
      expect(messageOf(() => check(stored(checkpoint(other))))).toContain('is not of run');
    }
  });

  it('is refused once too old to resume: after RESUME_WITHIN_MS, before later runs may settle its files', () => {
    expect(RESUME_WITHIN_MS).toBeLessThan(SETTLED_MS);
    expect(check(stored(checkpoint()), new Date(savedAt.getTime() + RESUME_WITHIN_MS))).toEqual(checkpoint());
    const message = messageOf(() => check(stored(checkpoint()), new Date(savedAt.getTime() + RESUME_WITHIN_MS + 1000)));
    expect(message).toContain('50 minutes ago');
    expect(message).toContain('start the run again from its first event');
    // An hour later and more: refused the same way.
    expect(messageOf(() => check(stored(checkpoint()), new Date(savedAt.getTime() + 3 * SETTLED_MS)))).toContain('180 minutes ago');
  });
});

describe("a run's ceilings", () => {
  const limits = { maxSlices: 3, maxRunMinutes: 60 };
  const started = Date.parse('2026-11-28T10:00:01.000Z');
  const slices = (n: number) => Array.from({ length: n }, () => checkpoint().slices[0]!);
  const ceilingOf = (fn: () => void) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(RunLimitError);
      return error as RunLimitError;
    }
    throw new Error('expected a RunLimitError');
  };

  it('lets a run go on below them', () => {
    expect(() => checkCeilings(checkpoint({ slices: slices(2) }), limits, new Date(started + 59 * 60_000))).not.toThrow();
  });

  it('fails a run that has had RUN_MAX_SLICES invocations, saying which ceiling', () => {
    const error = ceilingOf(() => checkCeilings(checkpoint({ slices: slices(3) }), limits, new Date(started + 60_000)));
    expect(error.code).toBe('RUN_SLICE_LIMIT');
    expect(error.message).toContain('3 invocations, as many as RUN_MAX_SLICES (3) allows');
  });

  it('fails a run RUN_MAX_MINUTES after its first invocation started, however few its invocations', () => {
    const error = ceilingOf(() => checkCeilings(checkpoint(), limits, new Date(started + 60 * 60_000)));
    expect(error.code).toBe('RUN_TIME_LIMIT');
    expect(error.message).toContain('started 60 minutes ago, RUN_MAX_MINUTES (60)');
  });
});

describe('the abandon event', () => {
  const request = { runId: RUN_ID, attempt: ATTEMPT, bucket: CONFIG.bucket, checkpoint: CHECKPOINT_KEY, sha256: 'ab'.repeat(32) };

  it('names the run and its last checkpoint, exactly as its continuation did', () => {
    const now = new Date();
    expect(parseRequest({ abandon: request }, now)).toEqual({ kind: 'abandon', abandon: request });
    expect(parseRequest({ curate: RUN_ID }, now)).toEqual({ kind: 'curate', runId: RUN_ID });
    expect(messageOf(() => parseRequest({ abandon: request, force: true }, now))).toContain('unexpected: force');
    expect(messageOf(() => parseRequest({ abandon: { runId: RUN_ID } }, now))).toContain(
      '"abandon" must be an object with exactly runId, attempt, bucket, checkpoint, sha256',
    );
    expect(messageOf(() => parseRequest({ abandon: { ...request, sha256: 'no' } }, now))).toContain('"sha256" must be 64 lower-case hex digits');
    expect(messageOf(() => parseRequest({ abandon: { ...request, runId: '20261340T250000Z' } }, now))).toContain(
      'The abandon event is malformed: "runId" must be a run id such as 20261128T100000Z, got "20261340T250000Z"',
    );
  });
});

describe('stored key sets', () => {
  /** A client whose bucket is a map: what is put is what is got. */
  function s3Holding() {
    const s3 = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const mock = mockClient(s3);
    const objects = new Map<string, Buffer>();
    mock.on(PutObjectCommand).callsFake(({ Key, Body }: { Key: string; Body: Buffer | string }) => {
      objects.set(Key, Buffer.from(Body));
      return {};
    });
    mock.on(GetObjectCommand).callsFake(({ Key }: { Key: string }) => {
      const body = objects.get(Key);
      if (!body) throw Object.assign(new Error('NoSuchKey'), { $metadata: { httpStatusCode: 404 } });
      // Only what the code under test reads of a body.
      return { ContentLength: body.length, Body: { transformToByteArray: () => Promise.resolve(new Uint8Array(body)), destroy: () => undefined } } as never;
    });
    return { s3, objects };
  }

  it('give back the set saved, in the key index encoding, with its size and hash', async () => {
    const { s3, objects } = s3Holding();
    const keys = new Set<IndexKey>([2_000_001, 'e70B3D5FFFF000001', 2_000_000, 'ref-a', 123_456_789_012_345]);
    const entry = await putKeySet(s3, 'b', 'c/seen.gz', keys);
    expect(entry).toEqual({ key: 'c/seen.gz', count: 5, bytes: objects.get('c/seen.gz')?.length, sha256: sha256(objects.get('c/seen.gz') as Buffer) });
    expect([...(await getKeySet(s3, 'b', entry)).keys()]).toEqual([2_000_000, 2_000_001, 123_456_789_012_345, 'e70B3D5FFFF000001', 'ref-a']);
    // An empty set, and a list (the lookups still to make) keep their order too.
    expect([...(await getKeySet(s3, 'b', await putKeySet(s3, 'b', 'c/none.gz', new Set()))).keys()]).toEqual([]);
    expect([...(await getKeySet(s3, 'b', await putKeySet(s3, 'b', 'c/list.gz', [3, 7, 'x']))).keys()]).toEqual([3, 7, 'x']);
  });

  it('refuse a set that is gone, changed, or not the size the checkpoint says', async () => {
    const { s3, objects } = s3Holding();
    const entry = await putKeySet(s3, 'b', 'c/seen.gz', new Set<IndexKey>([1, 2, 3]));
    const changed = Buffer.from(objects.get('c/seen.gz') as Buffer);
    changed.writeUInt8(changed.readUInt8(changed.length - 1) ^ 1, changed.length - 1);
    objects.set('c/seen.gz', changed);
    await expect(getKeySet(s3, 'b', entry)).rejects.toThrow(CheckpointMismatchError);
    await expect(getKeySet(s3, 'b', { ...entry, key: 'c/other.gz' })).rejects.toThrow('c/other.gz is gone');
    const other = await putKeySet(s3, 'b', 'c/seen.gz', new Set<IndexKey>([1, 2]));
    await expect(getKeySet(s3, 'b', { ...other, count: 3 })).rejects.toThrow('holds 2 keys, not the 3 listed for it');
  });

  it('refuse a set that decodes to more keys than its count, or past what its count may take', async () => {
    const { s3, objects } = s3Holding();
    const entry = await putKeySet(s3, 'b', 'c/seen.gz', new Set<IndexKey>([1, 2, 3]));
    await expect(getKeySet(s3, 'b', { ...entry, count: 2 })).rejects.toMatchObject({ name: 'CheckpointMismatchError', code: 'MALFORMED' });
    const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    objects.set('c/bomb.gz', bomb);
    const forged = { key: 'c/bomb.gz', bytes: bomb.length, count: 3, sha256: sha256(bomb) };
    await expect(getKeySet(s3, 'b', forged)).rejects.toMatchObject({
      code: 'TOO_LARGE',
      message: expect.stringContaining('decodes to more than 256 bytes') as string,
    });
  });

  it('read a checkpoint only up to CHECKPOINT_MAX_BYTES, and refuse a larger one before its body', async () => {
    const { s3, objects } = s3Holding();
    const body = Buffer.from(`{"pad":"${'x'.repeat(CHECKPOINT_MAX_BYTES)}"}`);
    objects.set(CHECKPOINT_KEY, body);
    await expect(getCheckpoint(s3, 'b', CHECKPOINT_KEY)).rejects.toMatchObject({ name: 'CheckpointMismatchError', code: 'TOO_LARGE' });
    objects.set(CHECKPOINT_KEY, Buffer.from('junk'));
    await expect(getCheckpoint(s3, 'b', CHECKPOINT_KEY)).rejects.toMatchObject({ code: 'MALFORMED', message: `${CHECKPOINT_KEY} is not JSON` });
    await expect(getCheckpoint(s3, 'b', 'c/none.json')).resolves.toBeUndefined();
  });

  it('hash a checkpoint as the exact bytes stored', async () => {
    const { s3, objects } = s3Holding();
    const digest = await putCheckpoint(s3, 'b', CHECKPOINT_KEY, checkpoint());
    expect(digest).toBe(sha256(objects.get(CHECKPOINT_KEY) as Buffer));
    expect(objects.get(CHECKPOINT_KEY)?.toString()).toBe(`${JSON.stringify(checkpoint())}\n`);
  });
});

describe('when an invocation stops to let its run go on', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('stops RUN_CHECKPOINT_MARGIN_SECONDS before its deadline, with a SliceEnd', () => {
    vi.useFakeTimers();
    const pause = pauseFor(900_000, { deadlineMarginSeconds: 20, checkpointMarginSeconds: 30 });
    vi.advanceTimersByTime(849_999);
    expect(pause?.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(pause?.signal.aborted).toBe(true);
    expect(pause?.signal.reason).toBeInstanceOf(SliceEnd);
  });

  it('does not stop at all when the invocation has no more than the two margins: it runs to its deadline, as before', () => {
    expect(pauseFor(50_000, { deadlineMarginSeconds: 20, checkpointMarginSeconds: 30 })).toBeUndefined();
    expect(pauseFor(2000, { deadlineMarginSeconds: 1, checkpointMarginSeconds: 30 })).toBeUndefined();
  });
});
