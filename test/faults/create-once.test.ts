import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { putCheckpoint, putKeySet, sha256 } from '../../lambda/storage/checkpoints.ts';
import { PLAIN_BODIES, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO } from '../../tools/stand-ins/standins.ts';
import { freshPrefix, useHarness } from './harness.ts';

/**
 * Objects under checkpoints/ are created once (If-None-Match: *), through the proxy that
 * honours the condition as S3 does. S3 can store a write and lose its answer; the SDK then
 * sends it again, and the retry meets the object it wrote.
 */
const h = useHarness();

/** The first PutObject of `key` is stored, and answered 500 as if its answer were lost. */
function loseFirstAnswer(key: string): void {
  let lost = false;
  h.proxy.rule = ({ method, key: requested }) => {
    if (method !== 'PUT' || requested !== key || lost) return undefined;
    lost = true;
    return { status: 500, code: 'InternalError', applied: true };
  };
}

const puts = (key: string) => h.proxy.log.filter((request) => request.method === 'PUT' && request.key === key).map(({ status }) => status);

describe('an object created once, whose answer was lost', () => {
  it('a checkpoint stands when the retry is refused by exactly the bytes it wrote', async () => {
    const key = `${freshPrefix()}checkpoints/run/1.json`;
    const checkpoint = { runId: 'run', slices: 1 };
    loseFirstAnswer(key);
    const hash = await putCheckpoint(testS3(h.proxy.url, PLAIN_BODIES), DEMO.bucket, key, checkpoint);
    expect(hash).toBe(sha256(`${JSON.stringify(checkpoint)}\n`));
    expect(puts(key)).toEqual([500, 412]);
  });

  it('a key set likewise', async () => {
    const key = `${freshPrefix()}checkpoints/run/seen.gz`;
    loseFirstAnswer(key);
    const entry = await putKeySet(testS3(h.proxy.url, PLAIN_BODIES), DEMO.bucket, key, new Set(['1', '2', 'e70B3D5000001CA26']));
    expect(entry).toMatchObject({ key, count: 3 });
    expect(puts(key)).toEqual([500, 412]);
  });

  it('is refused when what S3 holds is another object', async () => {
    const key = `${freshPrefix()}checkpoints/run/2.json`;
    h.proxy.rule = undefined;
    await h.proxy.direct.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: key, Body: '{"runId":"other"}\n' }));
    await expect(putCheckpoint(testS3(h.proxy.url, PLAIN_BODIES), DEMO.bucket, key, { runId: 'run' })).rejects.toMatchObject({
      $metadata: { httpStatusCode: 412 },
    });
  });
});
