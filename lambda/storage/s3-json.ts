import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** Reads a small JSON object; undefined when there is none. */
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

export type WriteCondition = { IfNoneMatch: '*' } | { IfMatch: string };

/**
 * A small JSON object on one line, so that line-oriented readers (Athena's JSON SerDe,
 * `jq -c`) take each object as one record; written only if the condition on the current
 * object holds, where one is given.
 */
export async function putJson(s3: S3Client, bucket: string, key: string, value: unknown, condition?: WriteCondition): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: `${JSON.stringify(value)}\n`,
      ContentType: 'application/json',
      CacheControl: 'no-cache',
      ...condition,
    }),
  );
}

/**
 * Conditional writes that meet a write in progress are tried this many times in all: S3
 * answers 409 ConditionalRequestConflict while another conditional write to the key is in
 * flight, and which of the two wins is not known yet.
 */
export const CONFLICT_ATTEMPTS = 5;

/** Waits a little longer after each 409 conflict. */
export function conflictBackoff(attempt: number): Promise<void> {
  return sleep(100 * attempt);
}

export function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
