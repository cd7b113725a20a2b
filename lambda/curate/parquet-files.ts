import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ByteWriter, ParquetWriter, type ColumnSource } from 'hyparquet-writer';
import { ErrorCode, StorageError } from '../common/errors.ts';
import { deleteObjects } from '../storage/deletes.ts';
import { drained } from '../storage/upload-body.ts';
import { parquetSchema, writerColumns, type ColumnSpec, type WriterColumn } from './columns.ts';

/** One Parquet file of a curated table, as the run's record lists it. */
export interface ParquetFile {
  key: string;
  rows: number;
  bytes: number;
}

/**
 * Rows per row group at most: enough that dictionaries and column statistics pay off and a
 * reader skips whole groups by them, few enough that a group of ordinary briefs (a few
 * hundred bytes of values each, but several KB of heap as parsed rows, their columns and
 * the garbage V8 lets build up to about twice the live data) stays well inside the
 * function's memory. At 100,000 devices (`npm run bench:curate`), 25,000 rows peaked at
 * 320.5 MB, 12,500 at 233.5 MB for a Parquet file 22 % larger (9.7 % of the NDJSON's bytes).
 */
export const ROW_GROUP_ROWS = 12_500;

/**
 * A row group's values at most, as `rowBytes` estimates them: the writer holds one group at
 * a time, its rows, their columns and its encoded pages, about three times this at its peak
 * (`npm run bench:curate`), so a group of briefs of 20 KB closes after some 1,600 rows instead
 * of 12,500 (250 MB of values, more than the function's memory once encoded). Briefs of a
 * few hundred bytes still make groups of ROW_GROUP_ROWS.
 */
export const ROW_GROUP_MAX_BYTES = 32 * 1024 * 1024;

/**
 * Rows per file: a million devices of the simulated fleet make a file of about 15 MB
 * (real briefs, less regular, several times that), so a file holds a fleet of up to a few
 * million devices in one object of at most a few hundred MB, which S3 replaces or adds
 * whole: a run of that size appears in its table at once, never in part.
 */
export const FILE_MAX_ROWS = 5_000_000;

/**
 * Bytes per file, checked between row groups: rows alone do not bound a file, a million
 * briefs of 20 KB making many GB of Parquet. A few hundred MB is a file S3 completes in
 * moments and a reader takes in one piece; a larger run is several files, listed by its
 * record, and appears in its table when the record is written.
 */
export const FILE_MAX_BYTES = 512 * 1024 * 1024;

/**
 * A text column whose values in a row group average more characters than this is written
 * plain, without the writer's test for a dictionary: values that long pay for a dictionary
 * only where whole values repeat, which briefs of one device each hardly do, and the test
 * hashes a thousand of them a group (5 % of the 20 KB curation's main thread in a
 * profile; docs/performance.md, "Curating large briefs"). Briefs of a few hundred bytes keep it.
 */
export const DICTIONARY_MAX_MEAN_CHARS = 2048;

/** lib-storage holds at most queueSize parts of partSize each per open file. */
export const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

/**
 * Writes one table's Parquet files for a run, streaming: rows are pulled from an async
 * iterable one row group at a time, encoded (Snappy), and each group's bytes go to a
 * multipart upload that S3 completes when the file ends; writing waits while the upload is
 * behind, so memory is one row group (ROW_GROUP_ROWS rows or ROW_GROUP_MAX_BYTES of values,
 * whichever comes first) and two parts, whatever the fleet and its briefs. A file rolls over
 * every `maxRows` rows, or at the first row group that takes it past `maxBytes`. `discard`
 * removes what was written, for a curation that fails.
 */
export class ParquetFiles {
  readonly #written: string[] = [];
  #open: { upload: Upload; body: PassThrough; key: string; writer: { bytes: number } } | undefined;
  #discarded = false;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly keyFor: (part: number) => string,
    private readonly columns: readonly ColumnSpec[],
    private readonly options: { metadata: Record<string, string>; maxRows?: number; maxBytes?: number; groupBytes?: number },
  ) {}

  /** Writes every row, in order, into as many files as `maxRows` and `maxBytes` make; a run of no rows gets one empty file. */
  async write(rows: AsyncIterable<Record<string, unknown>>): Promise<ParquetFile[]> {
    const maxRows = this.options.maxRows ?? FILE_MAX_ROWS;
    const maxBytes = this.options.maxBytes ?? FILE_MAX_BYTES;
    // The open file's bytes grow only as a row group is written, so a file ends between groups.
    const written = () => this.#open?.writer.bytes ?? 0;
    const source = rows[Symbol.asyncIterator]();
    let next = await source.next();
    const files: ParquetFile[] = [];
    for (let part = 0; part === 0 || !next.done; part += 1) {
      let count = 0;
      // Reads one row ahead, so that a file is opened only when a row is there for it.
      const slice = async function* () {
        while (!next.done && count < maxRows && written() < maxBytes) {
          const row = next.value;
          count += 1;
          next = await source.next();
          yield row;
        }
      };
      const { key, bytes } = await this.#writeFile(part, slice());
      files.push({ key, rows: count, bytes });
    }
    return files;
  }

  async #writeFile(part: number, rows: AsyncIterable<Record<string, unknown>>): Promise<{ key: string; bytes: number }> {
    if (this.#discarded) throw new StorageError(ErrorCode.WRITER_CLOSED, 'The curated files were discarded');
    const key = this.keyFor(part);
    const body = new PassThrough({ objectMode: true, highWaterMark: 1 });
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/vnd.apache.parquet', Metadata: this.options.metadata },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
    });
    this.#written.push(key);
    const done = upload.done();
    done.catch(() => undefined);
    const writer = uploadWriter(body, done);
    this.#open = { upload, body, key, writer };
    const parquet = new ParquetWriter({
      writer,
      schema: parquetSchema(this.columns),
      codec: 'SNAPPY',
      compressors: { GZIP: (bytes: Uint8Array) => gzipSync(bytes, { level: 1 }) },
      createdBy: 'thingpark-exporter curate (hyparquet-writer)',
    });
    const columns = writerColumns(this.columns);
    let groups = 0;
    for await (const group of rowGroups(rows, this.options.groupBytes ?? ROW_GROUP_MAX_BYTES)) {
      await parquet.write({ columnData: groupColumns(columns, group), rowGroupSize: group.length });
      groups += 1;
    }
    // A file of no rows still declares its columns, in one empty row group.
    if (groups === 0) await parquet.write({ columnData: columns.map((column) => ({ ...column, data: [] })) });
    await parquet.finish();
    await done;
    this.#open = undefined;
    return { key, bytes: writer.bytes };
  }

  /**
   * Removes every file this writer started: the open one's upload is aborted (its body
   * destroyed, so no part is sent after and it is never completed), the completed ones
   * deleted. Returns what S3 refused to delete.
   */
  async discard(): Promise<string[]> {
    this.#discarded = true;
    const open = this.#open;
    this.#open = undefined;
    if (open) {
      await open.upload.abort().catch(() => undefined);
      open.body.destroy();
    }
    const { refused } = await deleteObjects(this.s3, this.bucket, this.#written);
    return refused;
  }
}

/** A row group's columns as the writer takes them: each column's values, and plain encoding for long texts (DICTIONARY_MAX_MEAN_CHARS). */
function groupColumns(columns: readonly WriterColumn[], group: readonly Record<string, unknown>[]): ColumnSource[] {
  return columns.map((column) => {
    const data = group.map((row) => row[column.name]);
    return column.encoding === undefined && meanLength(data) > DICTIONARY_MAX_MEAN_CHARS ? { ...column, data, encoding: 'PLAIN' } : { ...column, data };
  });
}

/** The mean length of the strings among these values; 0 when there are none. */
function meanLength(values: readonly unknown[]): number {
  let chars = 0;
  let strings = 0;
  for (const value of values) {
    if (typeof value !== 'string') continue;
    chars += value.length;
    strings += 1;
  }
  return strings === 0 ? 0 : chars / strings;
}

/**
 * Rows in groups of at most ROW_GROUP_ROWS rows and about `maxBytes` of values: a group
 * closes with the row that reaches either, so one row larger than `maxBytes` is a group
 * of its own.
 */
export async function* rowGroups(rows: AsyncIterable<Record<string, unknown>>, maxBytes: number): AsyncGenerator<Record<string, unknown>[]> {
  let group: Record<string, unknown>[] = [];
  let bytes = 0;
  for await (const row of rows) {
    group.push(row);
    bytes += rowBytes(row);
    if (group.length >= ROW_GROUP_ROWS || bytes >= maxBytes) {
      yield group;
      group = [];
      bytes = 0;
    }
  }
  if (group.length > 0) yield group;
}

/** A row's values as the writer holds them, roughly: a string's length (a byte a character for the ASCII of JSON, a list's strings summed), 8 bytes for anything else. */
export function rowBytes(row: Record<string, unknown>): number {
  let bytes = 0;
  for (const key in row) {
    const value = row[key];
    if (typeof value === 'string') bytes += value.length;
    else if (Array.isArray(value)) for (const item of value as unknown[]) bytes += typeof item === 'string' ? item.length : 8;
    else bytes += 8;
  }
  return bytes;
}

type Writer = ConstructorParameters<typeof ParquetWriter>[0]['writer'];

/** Bytes the writer's buffer holds before they go to the upload's body, as hyparquet-writer's own file writer does. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * hyparquet-writer's byte buffer, emptied into the upload's body every CHUNK_BYTES, so that
 * it stays that size (plus a page that does not fit) instead of growing to a row group's
 * encoded bytes, each group copied out once more whole. The body is in object mode: each
 * chunk stays a chunk of its own, which lib-storage gathers into parts, where a byte stream
 * would hand it the group's chunks joined into one buffer. The next group waits until
 * lib-storage has taken every chunk from the body.
 */
function uploadWriter(body: PassThrough, done: Promise<unknown>): Writer & { bytes: number } {
  const buffer = new ByteWriter(CHUNK_BYTES);
  const grow = buffer.ensure.bind(buffer);
  const emit = (): void => {
    if (buffer.index === 0) return;
    const chunk = Buffer.from(buffer.getBytes());
    buffer.index = 0;
    writer.bytes += chunk.length;
    body.write(chunk);
  };
  const flush = async (): Promise<void> => {
    emit();
    if (body.writableNeedDrain) await drained(body, done);
  };
  const writer: Writer & { bytes: number } = Object.assign(buffer, {
    bytes: 0,
    ensure: (size: number) => {
      if (buffer.index + size > CHUNK_BYTES) emit();
      grow(size);
    },
    flush,
    finish: async () => {
      await flush();
      body.end();
    },
  });
  return writer;
}
