import type { S3Client } from '@aws-sdk/client-s3';
import { ErrorCode, StorageError } from '../common/errors.ts';
import type { Manifest } from './manifest.ts';
import { CONFLICT_ATTEMPTS, conflictBackoff, putJson, readJson, statusOf } from './s3-json.ts';

/** The `latest` pointer: small, so a reader can find the newest run with one GET. */
export interface Pointer {
  runId: string;
  runTime: string;
  manifestKey: string;
  devices: number;
  finishedAt: string;
}

export function pointerTo(manifest: Manifest, manifestKey: string): Pointer {
  return {
    runId: manifest.runId,
    runTime: manifest.runTime,
    manifestKey,
    devices: manifest.counts.devices,
    finishedAt: manifest.finishedAt,
  };
}

/**
 * Points `latest` at this run unless it already points at a newer one. The write is
 * conditional on the pointer read, so a slower, older run finishing late cannot replace a
 * newer run's pointer between our read and our write; on a conflict it reads again.
 */
export async function advancePointer(s3: S3Client, bucket: string, key: string, pointer: Pointer): Promise<boolean> {
  for (let attempt = 1; attempt <= CONFLICT_ATTEMPTS; attempt += 1) {
    const current = await readJson<Pointer>(s3, bucket, key);
    if (current && isNewer(current.value, pointer)) return false;
    try {
      await putJson(s3, bucket, key, pointer, current ? { IfMatch: current.etag } : { IfNoneMatch: '*' });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status !== 412 && status !== 409) throw error;
      if (status === 409) await conflictBackoff(attempt);
    }
  }
  throw new StorageError(ErrorCode.POINTER_CONTENDED, `The pointer ${key} kept changing under concurrent writers; it was left as it was`);
}

function isNewer(current: Pointer, candidate: Pointer): boolean {
  if (current.runTime !== candidate.runTime) return current.runTime > candidate.runTime;
  return current.runId > candidate.runId;
}
