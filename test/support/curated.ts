import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { duckdbQuery } from '../../tools/inspect/duckdb.ts';
import { getText } from '../../tools/inspect/snapshot.ts';

/**
 * Downloads S3 objects into a temporary folder and runs one DuckDB query over them:
 * `{files}` in the SQL is replaced by the list of local paths (as read_parquet takes it).
 * DuckDB's httpfs extension is not bundled here, so S3 is read through a copy, one file per
 * object under a name of its own: the keys' `dt=`/`run=` folders would otherwise be read as
 * Hive partition columns, which the files do not have.
 */
export async function queryObjects(s3: S3Client, bucket: string, keys: readonly string[], sql: string): Promise<Record<string, unknown>[]> {
  const directory = await mkdtemp(join(tmpdir(), 'curated-'));
  try {
    const paths: string[] = [];
    for (const [index, key] of keys.entries()) {
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const path = join(directory, `${index}.parquet`);
      await writeFile(path, (await object.Body?.transformToByteArray()) ?? new Uint8Array());
      paths.push(path);
    }
    return await duckdbQuery(sql.replaceAll('{files}', `[${paths.map((path) => `'${path}'`).join(', ')}]`));
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** The keys `devices_current` lists now (its symlink.txt), or none before the first curation. */
export async function currentKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  let text: string;
  try {
    text = await getText(s3, bucket, `${prefix}curated/devices_current/symlink.txt`);
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return [];
    throw error;
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.replace(`s3://${bucket}/`, ''));
}
