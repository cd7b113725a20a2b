import { DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';

/** An object S3 would not delete, and its reason, as "key (code)". */
export type Refusal = string;

/**
 * Deletes `keys` (at most 1000, one request) and returns the ones S3 refused. DeleteObjects
 * succeeds as a call when single objects fail: each failure is only an entry in its
 * answer, so a caller that ignores the answer never hears of it.
 */
export async function deleteObjects(s3: S3Client, bucket: string, keys: readonly string[]): Promise<{ deleted: string[]; refused: Refusal[] }> {
  if (keys.length === 0) return { deleted: [], refused: [] };
  const { Errors = [] } = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
  const failed = new Set(Errors.map(({ Key }) => Key));
  return { deleted: keys.filter((key) => !failed.has(key)), refused: Errors.map(({ Key, Code }) => `${Key} (${Code})`) };
}
