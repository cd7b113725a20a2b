import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { removeStrayFiles } from '../../lambda/storage/attempts.ts';
import { DataWriter } from '../../lambda/storage/data-writer.ts';

/**
 * DeleteObjects succeeds as a call when single objects cannot be deleted: each refusal is
 * an entry in its answer. No local S3 server plays that, hence a client mock here.
 */
function s3RefusingDeletes() {
  const s3 = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const mock = mockClient(s3);
  mock.on(PutObjectCommand).resolves({ ETag: '"etag"' });
  // No manifest for the run yet: every file is a stray.
  mock.on(GetObjectCommand).rejects(Object.assign(new Error('NoSuchKey'), { $metadata: { httpStatusCode: 404 } }));
  mock.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'run/old-1.gz' }, { Key: 'run/old-2.gz' }] });
  mock.on(DeleteObjectsCommand).resolves({ Errors: [{ Key: 'run/old-2.gz', Code: 'AccessDenied' }] });
  return { s3, mock };
}

describe('deleting what a run leaves', () => {
  it('a discarded writer fails, naming each data file S3 did not delete', async () => {
    const { s3, mock } = s3RefusingDeletes();
    mock.on(DeleteObjectsCommand).resolves({ Errors: [{ Key: 'run/0.gz', Code: 'AccessDenied' }] });
    const writer = new DataWriter(s3, 'bucket', (index) => `run/${index}.gz`, 1024, {});
    await writer.write('x'.repeat(1100));
    await writer.write('y'); // completes file 0 and opens file 1
    await expect(writer.discard()).rejects.toThrow('S3 did not delete 1 data file(s): run/0.gz (AccessDenied)');
    const deleted = mock.commandCalls(DeleteObjectsCommand)[0]?.args[0].input.Delete?.Objects?.map(({ Key }) => Key);
    expect(deleted).toEqual(['run/0.gz', 'run/1.gz']);
  });

  it('stray files S3 did not delete are reported, not counted as removed', async () => {
    const { s3 } = s3RefusingDeletes();
    const result = await removeStrayFiles(s3, 'bucket', { dataPrefix: 'run/', manifestKey: 'manifests/run.json' }, () => true);
    expect(result).toEqual({ deleted: ['run/old-1.gz'], refused: ['run/old-2.gz (AccessDenied)'] });
  });
});
