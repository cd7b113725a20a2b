import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/** A client for the tests' own reads of the stand-in S3 (the exporter builds its own); `config` overlays it. */
export function testS3(endpoint: string, config: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'eu-west-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    ...config,
  });
}

/**
 * The checksum settings the stand-ins' environment gives the exporter, for a test that
 * writes through the exporter's own code: s3rver refuses aws-chunked bodies with a checksum
 * trailer.
 */
export const PLAIN_BODIES: S3ClientConfig = { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' };

export async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await object.Body?.transformToString()) ?? '';
}

export async function getJson<T = Record<string, unknown>>(s3: S3Client, bucket: string, key: string): Promise<T> {
  return JSON.parse(await getText(s3, bucket, key)) as T;
}

export type Row = Record<string, unknown>;

/**
 * A run's data files as its summary lists them (`dataKeys`) or as its manifest does
 * (`files`); either names its bucket. `{ ...manifest, files: [file] }` is one file's.
 */
export type RunFiles = { bucket: string; dataKeys: readonly string[] } | { bucket: string; files: readonly { key: string }[] };

/** Every row of a run's data files (gzip NDJSON), file after file, in the order listed. */
export async function runRows(s3: S3Client, run: RunFiles): Promise<Row[]> {
  const keys = 'dataKeys' in run ? run.dataKeys : run.files.map(({ key }) => key);
  const rows: Row[] = [];
  for (const key of keys) rows.push(...(await readRows(s3, run.bucket, key)));
  return rows;
}

/** Every row of one gzip NDJSON data file; runRows reads a whole run. */
async function readRows(s3: S3Client, bucket: string, key: string): Promise<Row[]> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await object.Body?.transformToByteArray();
  const text = gunzipSync(Buffer.from(bytes ?? new Uint8Array())).toString();
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Row);
}

export async function listKeys(s3: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (listed.Contents ?? []).map(({ Key }) => Key ?? '').sort();
}

/** Downloads a manifest's data files into `directory`, keeping their keys as paths. */
export async function downloadFiles(s3: S3Client, bucket: string, keys: string[], directory: string): Promise<string[]> {
  const paths: string[] = [];
  for (const key of keys) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const path = join(directory, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, (await object.Body?.transformToByteArray()) ?? new Uint8Array());
    paths.push(path);
  }
  return paths;
}
