import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, StorageError } from '../errors.ts';
import { deleteObjects } from './deletes.ts';
import type { DataFile } from './data-writer.ts';

/** What a run counted on its way through the fleet. */
export interface RunCounts {
  devices: number;
  pages: number;
  pageRequests: number;
  wastedRequests: number;
  duplicates: number;
  unkeyed: number;
  throttled: number;
  retries: number;
  tokenRequests: number;
}

/** What a committed run wrote; its presence is what makes the run's data official. */
export interface Manifest {
  schemaVersion: 1;
  runId: string;
  trigger: 'schedule' | 'on-demand';
  label?: string;
  /** The schedule's time, or the invocation's for an on-demand run; orders runs. */
  runTime: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  source: { baseUrl: string; pageSize: number; firstPageIndex: number };
  counts: RunCounts;
  bucket: string;
  tableLocation: string;
  dataPrefix: string;
  files: DataFile[];
  bytes: number;
}

/** The `latest` pointer: small, so a reader can find the newest run with one GET. */
export interface Pointer {
  runId: string;
  runTime: string;
  manifestKey: string;
  devices: number;
  finishedAt: string;
}

export async function readJson<T>(s3: S3Client, bucket: string, key: string): Promise<{ value: T; etag: string } | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await object.Body?.transformToString()) ?? '';
    return { value: JSON.parse(text) as T, etag: object.ETag ?? '' };
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

/**
 * Writes the manifest only if none exists for this run (a conditional write), so two
 * deliveries of one schedule can never both commit. Returns false when one already did.
 * S3 answers 409 ConditionalRequestConflict while another conditional write to the key is
 * in progress; which of the two wins is not known yet, so ask again (412 once it won).
 */
export async function commitManifest(s3: S3Client, bucket: string, key: string, manifest: Manifest): Promise<boolean> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await putJson(s3, bucket, key, manifest, { IfNoneMatch: '*' });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 412) return false;
      if (status !== 409 || attempt >= CONFLICT_ATTEMPTS) throw error;
      await sleep(CONFLICT_BACKOFF_MS * attempt);
    }
  }
}

/** Whose manifest S3 holds for a run, as far as S3 can be read. */
export type ManifestOwner = { owner: 'this attempt' } | { owner: 'another attempt'; manifest: Manifest } | { owner: 'nobody' };

/**
 * Whose manifest is at `key` after a write that failed or was refused. A write can land
 * although its answer is lost, and the SDK's retry is then refused (412) by the very
 * manifest it wrote: only what S3 holds now can tell, byte for byte. Undefined when S3
 * cannot be read: then nobody knows whether the run committed, and its data must stay.
 */
export async function manifestOwner(s3: S3Client, bucket: string, key: string, written: Manifest): Promise<ManifestOwner | undefined> {
  let landed;
  try {
    landed = await readJson<Manifest>(s3, bucket, key);
  } catch {
    return undefined;
  }
  if (!landed) return { owner: 'nobody' };
  return JSON.stringify(landed.value) === JSON.stringify(written)
    ? { owner: 'this attempt' }
    : { owner: 'another attempt', manifest: landed.value };
}

/** Conditional writes that meet a write in progress (409) are tried this many times in all. */
const CONFLICT_ATTEMPTS = 5;
const CONFLICT_BACKOFF_MS = 100;

/**
 * Points `latest` at this run unless it already points at a newer one. The write is
 * conditional on the pointer read, so a slower, older run finishing late cannot replace a
 * newer run's pointer between our read and our write; on a conflict it reads again.
 */
export async function advancePointer(s3: S3Client, bucket: string, key: string, pointer: Pointer): Promise<boolean> {
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS; attempt += 1) {
    const current = await readJson<Pointer>(s3, bucket, key);
    if (current && isNewer(current.value, pointer)) return false;
    try {
      await putJson(s3, bucket, key, pointer, current ? { IfMatch: current.etag } : { IfNoneMatch: '*' });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status !== 412 && status !== 409) throw error;
      if (status === 409) await sleep(CONFLICT_BACKOFF_MS * (attempt + 1));
    }
  }
  throw new StorageError(ErrorCode.POINTER_CONTENDED, `The pointer ${key} kept changing under concurrent writers; it was left as it was`);
}

function isNewer(current: Pointer, candidate: Pointer): boolean {
  if (current.runTime !== candidate.runTime) return current.runTime > candidate.runTime;
  return current.runId > candidate.runId;
}

/**
 * Deletes the files in a committed run's data folder that its manifest does not list:
 * what an earlier attempt of the same run left when it died without cleaning up.
 * A run's folder holds a few files per attempt, far under one listing page. Returns the
 * files removed, and those S3 refused to delete (reported per object, the call succeeds).
 */
export async function removeStrayFiles(
  s3: S3Client,
  bucket: string,
  dataPrefix: string,
  keep: ReadonlySet<string>,
): Promise<{ removed: number; refused: string[] }> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: dataPrefix }));
  const stray = (listed.Contents ?? []).flatMap(({ Key }) => (Key && !keep.has(Key) ? [Key] : []));
  const refused = await deleteObjects(s3, bucket, stray);
  return { removed: stray.length - refused.length, refused };
}

/** A small JSON object, written only if the condition on the current object holds. */
async function putJson(
  s3: S3Client,
  bucket: string,
  key: string,
  value: unknown,
  condition: { IfNoneMatch: '*' } | { IfMatch: string },
): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(value, null, 2),
      ContentType: 'application/json',
      CacheControl: 'no-cache',
      ...condition,
    }),
  );
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
