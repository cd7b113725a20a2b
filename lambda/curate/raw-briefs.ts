import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CurationError, ErrorCode } from '../common/errors.ts';
import type { DataFile } from '../storage/data-writer.ts';
import type { Manifest } from '../storage/manifest.ts';
import { statusOf } from '../storage/s3-json.ts';

/** A device brief as a raw data file holds it: the platform's object plus `exportRunId`. */
export type RawBrief = Record<string, unknown>;

/**
 * Where reading a run's raw files stands: the file (its index in the manifest's list) and
 * the rows of it already read. A file's end is the next file's row 0.
 */
export interface RawPosition {
  file: number;
  line: number;
}

/**
 * Every brief of a committed run, read from the files its manifest lists (never a listing:
 * a file a failed attempt left is in no manifest), in their order, one line at a time:
 * memory holds one decompressed chunk, whatever the fleet. Anything but what the manifest
 * promises fails with RAW_DAMAGED naming the file, and the line where it can: a missing
 * file, bytes that are not complete gzip, a line that is not a JSON object, a row of
 * another run, or another number of rows than the manifest counted.
 *
 * With `position`, reading starts there (the rows before it in its file are decompressed and
 * counted, not parsed) and `position` follows along: once a brief is handed over, it points
 * past it, so that a reader that stops after any brief knows where to go on.
 */
export async function* rawBriefs(
  s3: S3Client,
  manifest: Pick<Manifest, 'bucket' | 'runId' | 'files'>,
  options: { signal?: AbortSignal; position?: RawPosition } = {},
): AsyncGenerator<RawBrief> {
  const position = options.position ?? { file: 0, line: 0 };
  for (; position.file < manifest.files.length; position.file += 1, position.line = 0) {
    const file = manifest.files[position.file] as DataFile;
    const skip = position.line;
    let rows = 0;
    for await (const line of rawLines(s3, manifest.bucket, file.key, options.signal)) {
      rows += 1;
      if (rows <= skip) continue;
      const brief = parsedBrief(line, rows, file.key, manifest.runId);
      position.line = rows;
      yield brief;
    }
    if (rows !== file.devices) throw damaged(file.key, `it holds ${rows} rows where the manifest counted ${file.devices}`);
  }
}

function parsedBrief(line: string, row: number, key: string, runId: string): RawBrief {
  let brief: unknown;
  try {
    brief = JSON.parse(line);
  } catch {
    throw damaged(key, `line ${row} is not JSON: ${JSON.stringify(line.slice(0, 64))}`);
  }
  if (brief === null || typeof brief !== 'object' || Array.isArray(brief)) throw damaged(key, `line ${row} is not a JSON object`);
  const { exportRunId } = brief as RawBrief;
  if (exportRunId !== runId) throw damaged(key, `line ${row} belongs to run ${JSON.stringify(exportRunId)}, not ${runId}`);
  return brief as RawBrief;
}

/** The non-empty lines of one gzip NDJSON object. */
async function* rawLines(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): AsyncGenerator<string> {
  let body;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    body = object.Body as NodeJS.ReadableStream | undefined;
  } catch (error) {
    if (statusOf(error) === 404) throw damaged(key, 'it is missing', error);
    throw error;
  }
  if (!body) throw damaged(key, 'S3 answered without a body');
  const gunzip = createGunzip();
  const decoder = new StringDecoder('utf8');
  body.on('error', (error: Error) => gunzip.destroy(error));
  body.pipe(gunzip);
  let rest = '';
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const text = rest + decoder.write(chunk);
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line !== '') yield line;
    }
  } catch (error) {
    if (error instanceof CurationError) throw error;
    const code = (error as { code?: string }).code ?? '';
    if (code.startsWith('Z_')) throw damaged(key, `it is not complete gzip (${code})`, error);
    throw error;
  } finally {
    gunzip.destroy();
    (body as { destroy?: () => void }).destroy?.();
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}

function damaged(key: string, problem: string, cause?: unknown): CurationError {
  return new CurationError(
    ErrorCode.RAW_DAMAGED,
    `The raw data file ${key} cannot be curated: ${problem}. Raw files are the record and are never rewritten; restore the object's previous version (the bucket is versioned), then curate the run again`,
    { cause },
  );
}
