import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { deleteObjects } from '../storage/deletes.ts';
import type { CuratedKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { readJson } from '../storage/s3-json.ts';
import type { CurationRecord } from './record.ts';

/** Which record stands for the commit of the run curation reads now, and whether it exists yet. */
export interface RecordLookup {
  recordKey: string;
  existing?: CurationRecord;
  /** The record of an earlier commit of the same run id, which this commit's curation supersedes. */
  supersedes?: string;
  /** That earlier record, whose files this commit's curation replaces. */
  earlier?: CurationRecord;
}

/**
 * The identity of one commit of a run: the sha256 of its manifest's JSON. A run id is the
 * schedule's time, so a schedule redone after its manifest expired commits anew under the
 * same id, with other files and figures; its record must not be the earlier commit's.
 */
export function manifestHash(manifest: Manifest): string {
  return createHash('sha256').update(JSON.stringify(manifest)).digest('hex');
}

/**
 * The run's record when it curated this commit; otherwise, records being created once and
 * never overwritten, the key of this commit's own record, next to the earlier one.
 */
export async function lookUpRecord(s3: S3Client, bucket: string, keys: CuratedKeys, manifest: Manifest): Promise<RecordLookup> {
  const hash = manifestHash(manifest);
  const first = await readJson<CurationRecord>(s3, bucket, keys.recordKey);
  if (!first) return { recordKey: keys.recordKey };
  if (curatesCommit(first.value, manifest, hash)) return { recordKey: keys.recordKey, existing: first.value };
  const recordKey = keys.recordKeyOfCommit(hash);
  const own = await readJson<CurationRecord>(s3, bucket, recordKey);
  return { recordKey, supersedes: keys.recordKey, earlier: first.value, ...(own ? { existing: own.value } : {}) };
}

/**
 * Whether a record is of this commit: by the manifest's hash it holds; a record written
 * before records held it is of this commit when written after it finished (a record is
 * written only after its manifest, and an earlier commit's record before this one began).
 */
function curatesCommit(record: CurationRecord, manifest: Manifest, hash: string): boolean {
  if (record.manifestHash !== undefined) return record.manifestHash === hash;
  return Date.parse(record.curatedAt) >= Date.parse(manifest.finishedAt);
}

/**
 * Removes the earlier commit's curated files that this commit's curation did not write
 * again (it wrote fewer parts): left in the run's partition, the tables would read them too.
 */
export async function removeReplacedFiles(s3: S3Client, bucket: string, keys: CuratedKeys, earlier: CurationRecord, now: CurationRecord): Promise<string[]> {
  const kept = new Set([...now.snapshotFiles, ...now.changeFiles].map(({ key }) => key));
  // Only this run's partitions: a record names keys, and none outside them is curation's to remove.
  const ofRun = (key: string) => key.startsWith(keys.snapshotPrefix) || key.startsWith(keys.changesPrefix);
  const replaced = [...earlier.snapshotFiles, ...earlier.changeFiles].map(({ key }) => key).filter((key) => ofRun(key) && !kept.has(key));
  return (await deleteObjects(s3, bucket, replaced)).refused;
}
