import { DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';

/**
 * Deletes `keys` (at most 1000, one request) and returns the ones S3 refused, as
 * "key (code)". DeleteObjects succeeds as a call when single objects fail: each failure is
 * only an entry in its answer, so a caller that ignores the answer never hears of it.
 */
export async function deleteObjects(s3: S3Client, bucket: string, keys: readonly string[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const { Errors = [] } = await s3.send(
    new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
  );
  return Errors.map(({ Key, Code }) => `${Key} (${Code})`);
}
