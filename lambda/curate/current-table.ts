import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CurationError, ErrorCode } from '../common/errors.ts';
import { CONFLICT_ATTEMPTS, conflictBackoff, statusOf, type WriteCondition } from '../storage/s3-json.ts';

/** Which run `devices_current` shows, from the symlink object's metadata. */
export interface CurrentRun {
  runId: string;
  runTime: string;
}

/**
 * Makes `devices_current` show this run, unless it shows a newer one. `devices_current` is a Hive symlink table: its location holds one object, symlink.txt,
 * listing the full s3:// paths of the newest curated run's device_snapshots files, which
 * are never rewritten once a run is curated. Switching the table is one PutObject of that
 * object, which S3 replaces whole: a reader gets the old list or the new one, and the
 * files either names are complete and stay as they are while it reads them. Its metadata
 * names the run, so that the switch, like the `latest` pointer, never moves backwards: the
 * write is conditional on the object just read (or on there being none), and an older run
 * curated late leaves a newer run's table alone.
 */
export type Switch = 'switched' | 'already-current' | 'newer-run-current';

export async function switchCurrent(s3: S3Client, bucket: string, key: string, run: CurrentRun, files: readonly string[]): Promise<Switch> {
  const body = files.map((file) => `s3://${bucket}/${file}\n`).join('');
  for (let attempt = 1; attempt <= CONFLICT_ATTEMPTS; attempt += 1) {
    const current = await readCurrent(s3, bucket, key);
    if (current?.run.runId === run.runId) return 'already-current';
    if (current && isNewer(current.run, run)) return 'newer-run-current';
    const condition: WriteCondition = current ? { IfMatch: current.etag } : { IfNoneMatch: '*' };
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: 'text/plain',
          CacheControl: 'no-cache',
          Metadata: { 'run-id': run.runId, 'run-time': run.runTime },
          ...condition,
        }),
      );
      return 'switched';
    } catch (error) {
      const status = statusOf(error);
      if (status !== 412 && status !== 409) throw error;
      if (status === 409) await conflictBackoff(attempt);
    }
  }
  throw new CurationError(
    ErrorCode.CURRENT_CONTENDED,
    `The current table ${key} kept changing under concurrent curations; it was left as it was. Curate run ${run.runId} again to finish the switch`,
  );
}

/** The run `devices_current` shows now, and the ETag to replace it over; undefined before the first curation. */
export async function readCurrent(s3: S3Client, bucket: string, key: string): Promise<{ run: CurrentRun; etag: string; files: string[] } | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await object.Body?.transformToString()) ?? '';
    const metadata = object.Metadata ?? {};
    return {
      run: { runId: metadata['run-id'] ?? '', runTime: metadata['run-time'] ?? '' },
      etag: object.ETag ?? '',
      files: text.split('\n').filter((line) => line !== ''),
    };
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

function isNewer(current: CurrentRun, candidate: CurrentRun): boolean {
  if (current.runTime !== candidate.runTime) return current.runTime > candidate.runTime;
  return current.runId > candidate.runId;
}
