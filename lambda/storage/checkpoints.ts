import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { deleteObjects, type Refusal } from './deletes.ts';
import { decodeKeyIndex, discardBody, encodeKeyIndex, MalformedKeyIndexError, keyCount, type KeyIndex, type KeySet, type PackedKeys } from './key-index.ts';
import { checkpointsPrefix, type CheckpointKeys } from './layout.ts';
import { statusOf } from './s3-json.ts';

/** A stored set of device keys, as a checkpoint names it: where, how big, and its content hash. */
export interface KeySetEntry {
  key: string;
  /** Stored (gzip) size. */
  bytes: number;
  count: number;
  /** SHA-256 of the stored bytes, hex: the set read back must be the set saved. */
  sha256: string;
}

/**
 * A stored object that is not what its checkpoint or continuation says: missing (`GONE`),
 * changed (`CHANGED`), not JSON or not a key set (`MALFORMED`), or over its size limit
 * (`TOO_LARGE`, refused before its body is read).
 */
export class CheckpointMismatchError extends Error {
  override readonly name = 'CheckpointMismatchError';
  constructor(
    readonly code: 'GONE' | 'CHANGED' | 'MALFORMED' | 'TOO_LARGE',
    message: string,
  ) {
    super(message);
  }
}

/**
 * The largest checkpoint read: one holds a run's counts, one entry per slice and per data
 * file, tens of KB for the longest run the state machine allows; anything near this limit
 * is not one this code wrote.
 */
export const CHECKPOINT_MAX_BYTES = 4 * 1024 * 1024;

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Stores a set of device keys in the key index's compact format (key-index.ts): the same
 * encoding a committed run's index uses, about a byte a key for refs close together.
 */
export async function putKeySet(s3: S3Client, bucket: string, key: string, keys: KeySet | PackedKeys): Promise<KeySetEntry> {
  const body = await encodeKeyIndex(keys);
  await createOnce(s3, { Bucket: bucket, Key: key, Body: body, ContentType: 'application/gzip' });
  return { key, bytes: body.length, count: keyCount(keys), sha256: sha256(body) };
}

/**
 * A stored key set, checked against its entry: CheckpointMismatchError when it is gone, not
 * the one saved (another size, refused before its body is read, or hash), or decodes to
 * more than its count allows or to another count.
 */
export async function getKeySet(s3: S3Client, bucket: string, entry: KeySetEntry): Promise<KeyIndex> {
  const stored = await getBytes(s3, bucket, entry.key, entry.bytes);
  if (!stored) throw new CheckpointMismatchError('GONE', `${entry.key} is gone`);
  if (stored.length !== entry.bytes || sha256(stored) !== entry.sha256)
    throw new CheckpointMismatchError('CHANGED', `${entry.key} is not the key set the checkpoint saved`);
  try {
    return await decodeKeyIndex(stored, { count: entry.count });
  } catch (error) {
    if (!(error instanceof MalformedKeyIndexError)) throw error;
    throw new CheckpointMismatchError(error.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'MALFORMED', `${entry.key}: ${error.message}`);
  }
}

/** Writes a checkpoint, one line of JSON; returns the SHA-256 of exactly the bytes stored. */
export async function putCheckpoint(s3: S3Client, bucket: string, key: string, checkpoint: unknown): Promise<string> {
  const body = `${JSON.stringify(checkpoint)}\n`;
  await createOnce(s3, { Bucket: bucket, Key: key, Body: body, ContentType: 'application/json', CacheControl: 'no-cache' });
  return sha256(body);
}

/**
 * Writes an object under checkpoints/, created once (If-None-Match; the bucket policy
 * refuses any other write there). A write can land although its answer is lost, and the
 * SDK's retry is then refused (412) by the very object it wrote: on a refusal, what S3
 * holds is read back, and the write stands when it holds exactly these bytes.
 */
async function createOnce(
  s3: S3Client,
  put: { Bucket: string; Key: string; Body: Uint8Array | string; ContentType: string; CacheControl?: string },
): Promise<void> {
  try {
    await s3.send(new PutObjectCommand({ ...put, IfNoneMatch: '*' }));
  } catch (error) {
    if (statusOf(error) !== 412) throw error;
    const bytes = typeof put.Body === 'string' ? Buffer.from(put.Body) : put.Body;
    const stored = await getBytes(s3, put.Bucket, put.Key, bytes.length).catch(() => undefined);
    if (stored === undefined || sha256(stored) !== sha256(bytes)) throw error;
  }
}

/**
 * A stored checkpoint, parsed, with the SHA-256 of its bytes and when S3 stored it;
 * undefined only when S3 answers that there is no such key. CheckpointMismatchError when it
 * is over CHECKPOINT_MAX_BYTES (refused before its body is read) or not JSON.
 */
export async function getCheckpoint<T>(s3: S3Client, bucket: string, key: string): Promise<{ value: T; sha256: string; storedAt?: Date } | undefined> {
  let object;
  try {
    object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    if (isNoSuchKey(error)) return undefined;
    throw error;
  }
  const tooLarge = () => new CheckpointMismatchError('TOO_LARGE', `${key} is over ${CHECKPOINT_MAX_BYTES} bytes, more than any checkpoint this code writes`);
  if ((object.ContentLength ?? 0) > CHECKPOINT_MAX_BYTES) {
    discardBody(object.Body);
    throw tooLarge();
  }
  const bytes = (await object.Body?.transformToByteArray()) ?? new Uint8Array();
  if (bytes.length > CHECKPOINT_MAX_BYTES) throw tooLarge();
  let value: T;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch {
    throw new CheckpointMismatchError('MALFORMED', `${key} is not JSON`);
  }
  return { value, sha256: sha256(bytes), ...(object.LastModified ? { storedAt: object.LastModified } : {}) };
}

/**
 * The keys of `expected`, all under `prefix`, that S3 does not hold at the size given: gone,
 * or not the object written. Read from a listing (which the function may make) rather than
 * object by object.
 */
export async function missingObjects(s3: S3Client, bucket: string, prefix: string, expected: readonly { key: string; bytes: number }[]): Promise<string[]> {
  const sizes = new Map<string, number>();
  let token: string | undefined;
  do {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const { Key, Size } of listed.Contents ?? []) if (Key) sizes.set(Key, Size ?? -1);
    token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
  } while (token);
  return expected.filter(({ key, bytes }) => sizes.get(key) !== bytes).map(({ key }) => key);
}

/** Deletes the given checkpoints' objects (each with its key sets); S3 deletes a missing key without complaint. */
export async function deleteCheckpoints(s3: S3Client, bucket: string, keys: readonly CheckpointKeys[]): Promise<{ deleted: string[]; refused: Refusal[] }> {
  const all = keys.flatMap(({ checkpoint, seen, lookups }) => [checkpoint, seen, lookups]);
  const result = { deleted: [] as string[], refused: [] as Refusal[] };
  for (let i = 0; i < all.length; i += 1000) {
    const batch = await deleteObjects(s3, bucket, all.slice(i, i + 1000));
    result.deleted.push(...batch.deleted);
    result.refused.push(...batch.refused);
  }
  return result;
}

/** Deletes every checkpoint of a run: once it is committed, none of them can be resumed. */
export async function deleteRunCheckpoints(s3: S3Client, bucket: string, prefix: string, runId: string): Promise<{ deleted: string[]; refused: Refusal[] }> {
  const result = { deleted: [] as string[], refused: [] as Refusal[] };
  let token: string | undefined;
  do {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: checkpointsPrefix(prefix, runId), ContinuationToken: token }));
    const batch = await deleteObjects(
      s3,
      bucket,
      (listed.Contents ?? []).flatMap(({ Key }) => (Key ? [Key] : [])),
    );
    result.deleted.push(...batch.deleted);
    result.refused.push(...batch.refused);
    token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
  } while (token);
  return result;
}

/** S3's answer that the key is not there: anything else (a missing bucket, a refusal) is no answer about the object. */
function isNoSuchKey(error: unknown): boolean {
  const { name } = error as { name?: string };
  return name === 'NoSuchKey' || (statusOf(error) === 404 && name !== 'NoSuchBucket');
}

/** An object's bytes; undefined only when S3 answers there is no such key; one of another size than `bytes` is not read. */
async function getBytes(s3: S3Client, bucket: string, key: string, bytes: number): Promise<Uint8Array | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (object.ContentLength !== undefined && object.ContentLength !== bytes) {
      discardBody(object.Body);
      throw new CheckpointMismatchError('CHANGED', `${key} is ${object.ContentLength} bytes, not the ${bytes} the checkpoint saved`);
    }
    return (await object.Body?.transformToByteArray()) ?? new Uint8Array();
  } catch (error) {
    if (isNoSuchKey(error)) return undefined;
    throw error;
  }
}
