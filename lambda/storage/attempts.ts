import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { deleteObjects, type Refusal } from './deletes.ts';
import { attemptOfDataKey, attemptOfIndexKey } from './layout.ts';
import type { Manifest } from './manifest.ts';
import { putJson, readJson } from './s3-json.ts';

/**
 * The marker of an attempt that is not known to be over, written before its first data
 * file and removed once its run is committed. It is how a later run finds what a failed or
 * killed attempt left: files deleted while their upload was still in flight can land
 * afterwards, and an invocation stopped at Lambda's hard timeout cleans up nothing.
 */
export interface Marker {
  runId: string;
  attempt: string;
  dataPrefix: string;
  manifestKey: string;
  /** Where the run's key indexes go; absent from markers written before key indexes. */
  indexPrefix?: string;
  startedAt: string;
  state: 'running' | 'failed';
}

/**
 * A running attempt older than this is gone: a Lambda invocation lasts at most 15 minutes,
 * and an attempt rewrites its marker when it fails.
 */
export const LIVE_MS = 20 * 60 * 1000;

/**
 * How long after its marker was last written an attempt's upload may still land. An upload
 * S3 received completes within minutes of its client giving up; an hour leaves a wide
 * margin, and the files it leaves meanwhile are listed by no manifest.
 */
export const SETTLED_MS = 60 * 60 * 1000;

export async function putMarker(s3: S3Client, bucket: string, key: string, marker: Marker): Promise<void> {
  await putJson(s3, bucket, key, marker);
}

export interface MarkerObject {
  key: string;
  ageMs: number;
  marker: Marker;
}

/** Every marker under `prefix`, with its age. A few per failed run, so one listing page. */
export async function readMarkers(s3: S3Client, bucket: string, prefix: string, now = Date.now()): Promise<MarkerObject[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  const markers: MarkerObject[] = [];
  for (const { Key, LastModified } of listed.Contents ?? []) {
    if (!Key) continue;
    const read = await readJson<Marker>(s3, bucket, Key);
    if (read) markers.push({ key: Key, ageMs: now - (LastModified?.getTime() ?? now), marker: read.value });
  }
  return markers;
}

/** Attempts that may still be writing: their files are never touched. */
export function liveAttempts(markers: readonly MarkerObject[]): Set<string> {
  return new Set(markers.filter(({ marker, ageMs }) => marker.state === 'running' && ageMs < LIVE_MS).map(({ marker }) => marker.attempt));
}

/**
 * Deletes the files in a run's data folder, and the key indexes in its index folder, that
 * the manifest S3 holds now does not list and whose attempt `deletable` names (the attempt
 * is undefined for a key of another layout). Reading the manifest again just before deleting, rather than trusting the one
 * this attempt wrote, keeps the files of whichever manifest a store that ignores
 * conditional writes kept. A run's folder holds a few files per attempt: one listing page.
 */
export async function removeStrayFiles(
  s3: S3Client,
  bucket: string,
  run: { dataPrefix: string; manifestKey: string; indexPrefix?: string },
  deletable: (attempt: string | undefined) => boolean,
): Promise<{ deleted: string[]; refused: Refusal[] }> {
  const held = (await readJson<Manifest>(s3, bucket, run.manifestKey))?.value;
  const keep = new Set([...(held?.files.map(({ key }) => key) ?? []), ...(held?.index ? [held.index.key] : [])]);
  const strayUnder = async (prefix: string, attemptOf: (key: string) => string | undefined): Promise<string[]> => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (listed.Contents ?? []).flatMap(({ Key }) => (Key && !keep.has(Key) && deletable(attemptOf(Key)) ? [Key] : []));
  };
  const stray = [
    ...(await strayUnder(run.dataPrefix, attemptOfDataKey)),
    ...(run.indexPrefix === undefined ? [] : await strayUnder(run.indexPrefix, attemptOfIndexKey)),
  ];
  return deleteObjects(s3, bucket, stray);
}

/**
 * Settles the attempts whose uploads can no longer land: removes their files that no
 * manifest lists, then their markers. Run after a commit, so every run tidies what failed
 * runs before it left.
 */
export async function settleAttempts(
  s3: S3Client,
  bucket: string,
  markers: readonly MarkerObject[],
): Promise<{ settled: number; deleted: string[]; refused: Refusal[] }> {
  const result = { settled: 0, deleted: [] as string[], refused: [] as Refusal[] };
  for (const { key, ageMs, marker } of markers) {
    if (ageMs < SETTLED_MS) continue;
    const files = await removeStrayFiles(s3, bucket, marker, (attempt) => attempt === marker.attempt);
    result.deleted.push(...files.deleted);
    result.refused.push(...files.refused);
    if (files.refused.length > 0) continue;
    const cleared = await deleteObjects(s3, bucket, [key]);
    result.settled += cleared.deleted.length;
    result.refused.push(...cleared.refused);
  }
  return result;
}
