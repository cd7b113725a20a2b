import { once } from 'node:events';
import { Transform } from 'node:stream';
import { createGzip, type Gzip } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ErrorCode, StorageError } from '../common/errors.ts';
import { deleteObjects } from './deletes.ts';

/** One data file of a snapshot, as the manifest lists it. */
export interface DataFile {
  key: string;
  devices: number;
  /** Size of the stored (gzip) object. */
  bytes: number;
  uncompressedBytes: number;
}

interface OpenFile {
  key: string;
  gzip: Gzip;
  body: Transform;
  upload: Upload;
  done: Promise<unknown>;
  counted: { bytes: number };
  devices: number;
  uncompressedBytes: number;
  /** Lines not yet handed to gzip. */
  batch: string;
  /** Its body has ended: lib-storage may have sent it as one PutObject, which an abort cannot recall. */
  ending: boolean;
  /** S3 answered its upload, one way or the other: nothing of it is still on the wire. */
  answered: boolean;
}

/**
 * lib-storage buffers at most queueSize parts of partSize each: 2 x 5 MiB (S3's smallest
 * part) per open file. A 256 MiB file of NDJSON is at most 52 parts once compressed, far
 * under S3's 10,000.
 */
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 2;

/**
 * Lines are handed to gzip in batches of about this many characters. Every gzip write is
 * a separate job on libuv's thread pool: one write per ~1 KB line cost 5x more CPU than
 * the compression itself, and made the writer, not the platform, the run's bottleneck.
 */
const BATCH_CHARS = 64 * 1024;

/**
 * NDJSON bytes that may wait in gzip's queue before a write waits for it to drain. gzip's
 * own high-water mark (16 KiB) is smaller than one batch: waiting on it after every batch
 * made the main thread idle through each compression's round trip to the thread pool,
 * instead of building the next batch while gzip compresses this one.
 */
const QUEUED_BYTES = 1024 * 1024;

/**
 * Level 1 compresses about 3x faster than zlib's default (6) for a larger file (about 1.5x
 * on the simulated fleet). A run's CPU is the Lambda's bottleneck once pages come in
 * concurrently, while the bytes only cost storage and Athena's scan at cents per TB.
 */
const GZIP_LEVEL = 1;

/**
 * Streams NDJSON lines through gzip into multipart uploads, one data file at a time,
 * rolling to the next file once a file holds `maxBytes` of NDJSON. `write` waits while
 * gzip or the upload is behind, so memory stays bounded whatever the fleet size.
 * A run that fails discards its writer, which deletes every file it wrote: a failed run
 * leaves no data behind.
 */
export class DataWriter {
  readonly #files: DataFile[] = [];
  readonly #adopted: string[] = [];
  #open: OpenFile | undefined;
  #closed = false;
  #discarded: Promise<void> | undefined;
  #leftNothing = false;
  #stop: (reason: Error) => void = () => undefined;
  /** Rejects once the writer is discarded, so no write() waits on a stalled upload. */
  readonly #stopped = new Promise<never>((_, reject) => {
    this.#stop = reject;
  });

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly keyFor: (fileIndex: number) => string,
    private readonly maxBytes: number,
    private readonly metadata: Record<string, string>,
  ) {
    this.#stopped.catch(() => undefined);
  }

  get files(): readonly DataFile[] {
    return this.#files;
  }

  /**
   * Makes an object written beside the data files (the run's key index) part of this
   * writer's output: a discard removes it with them. Adopted before it is written, since a
   * write that failed may still have landed.
   */
  adopt(key: string): void {
    this.#adopted.push(key);
  }

  async write(line: string): Promise<void> {
    if (this.#closed) throw new StorageError(ErrorCode.WRITER_CLOSED, 'The snapshot writer is closed');
    // The batch not yet flushed counts in characters: at most a few bytes short of its size.
    if (this.#open && this.#open.uncompressedBytes + this.#open.batch.length >= this.maxBytes) {
      await Promise.race([this.#finishFile(), this.#stopped]);
      // Discarded while the finished file completed: a new file would never be ended.
      if (this.#closed) throw new StorageError(ErrorCode.WRITER_CLOSED, 'The snapshot writer was discarded');
    }
    const file = (this.#open ??= this.#openFile());
    file.devices += 1;
    file.batch += `${line}\n`;
    if (file.batch.length >= BATCH_CHARS) await this.#flush(file);
  }

  /** Hands the batch to gzip, waiting while gzip or the upload is behind. */
  async #flush(file: OpenFile): Promise<void> {
    const batch = Buffer.from(file.batch);
    file.batch = '';
    file.uncompressedBytes += batch.length;
    file.gzip.write(batch);
    if (file.gzip.writableLength >= QUEUED_BYTES) await Promise.race([once(file.gzip, 'drain'), file.done, this.#stopped]);
  }

  /** Completes the last file and returns every file written, in order. */
  async close(): Promise<DataFile[]> {
    if (this.#open) await this.#finishFile();
    this.#closed = true;
    return [...this.#files];
  }

  /**
   * Removes everything this writer wrote: stops further writes, aborts the open file's
   * upload (its body is destroyed rather than ended, so no partial file is sent, and a
   * multipart upload is never completed), then deletes every file it started. A single
   * PutObject already on the wire can still land after the delete; the attempt's marker
   * (see attempts.ts) is how a later run finds it. Safe to call after a failure, and after
   * close() when the run fails to publish.
   */
  discard(): Promise<void> {
    this.#discarded ??= this.#discard();
    return this.#discarded;
  }

  /**
   * True once a discard removed every file this writer started and none can land later:
   * nothing of the attempt is left for a later run to find.
   */
  get leftNothing(): boolean {
    return this.#leftNothing;
  }

  async #discard(): Promise<void> {
    const stopped = new StorageError(ErrorCode.WRITER_CLOSED, 'The snapshot writer was discarded');
    this.#closed = true;
    this.#stop(stopped);
    const keys = [...this.#files.map(({ key }) => key), ...this.#adopted];
    const open = this.#open;
    this.#open = undefined;
    const inFlight = open !== undefined && open.ending && !open.answered;
    if (open) {
      // Aborted first: lib-storage sends no part once aborted, whatever the body does next.
      await open.upload.abort();
      open.gzip.destroy();
      open.body.destroy();
      await open.done.catch(() => undefined);
      keys.push(open.key);
    }
    const { refused } = await deleteObjects(this.s3, this.bucket, keys);
    this.#leftNothing = refused.length === 0 && !inFlight;
    if (refused.length > 0) throw new StorageError(ErrorCode.DATA_NOT_DELETED, `S3 did not delete ${refused.length} data file(s): ${refused.join(', ')}`);
  }

  #openFile(): OpenFile {
    const key = this.keyFor(this.#files.length);
    const gzip = createGzip({ level: GZIP_LEVEL });
    const counted = { bytes: 0 };
    const body = gzip.pipe(countingStream(counted));
    const upload = new Upload({
      client: this.s3,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        // No Content-Encoding: readers would then inflate the object themselves and hand
        // engines that expect a .gz file plain text.
        ContentType: 'application/gzip',
        Metadata: this.metadata,
      },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
    });
    const done = upload.done();
    const file: OpenFile = { key, gzip, body, upload, done, counted, devices: 0, uncompressedBytes: 0, batch: '', ending: false, answered: false };
    // Raced against drain in write(): a failed upload must not leave write() waiting.
    done.then(
      () => (file.answered = true),
      () => (file.answered = true),
    );
    return file;
  }

  async #finishFile(): Promise<void> {
    const file = this.#open as OpenFile;
    if (file.batch !== '') await this.#flush(file);
    file.ending = true;
    file.gzip.end();
    await file.done;
    this.#open = undefined;
    this.#files.push({
      key: file.key,
      devices: file.devices,
      bytes: file.counted.bytes,
      uncompressedBytes: file.uncompressedBytes,
    });
  }
}

function countingStream(counted: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      counted.bytes += chunk.length;
      callback(null, chunk);
    },
  });
}
