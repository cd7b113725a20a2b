import { once } from 'node:events';
import { Transform } from 'node:stream';
import { createGzip, type Gzip } from 'node:zlib';
import { DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

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
  upload: Upload;
  done: Promise<unknown>;
  counted: { bytes: number };
  devices: number;
  uncompressedBytes: number;
}

/**
 * lib-storage buffers at most queueSize parts of partSize each: 2 x 8 MiB per open file.
 * 8 MiB parts keep a 256 MiB file to 32 parts, far under S3's 10,000.
 */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

/**
 * Streams NDJSON lines through gzip into multipart uploads, one data file at a time,
 * rolling to the next file once a file holds `maxBytes` of NDJSON. `write` waits while
 * gzip or the upload is behind, so memory stays bounded whatever the fleet size.
 * A writer that fails aborts its upload and deletes the files it completed: a failed run
 * leaves no data behind.
 */
export class DataWriter {
  readonly #files: DataFile[] = [];
  #open: OpenFile | undefined;
  #closed = false;

  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly keyFor: (fileIndex: number) => string,
    private readonly maxBytes: number,
    private readonly metadata: Record<string, string>,
  ) {}

  get files(): readonly DataFile[] {
    return this.#files;
  }

  async write(line: string): Promise<void> {
    if (this.#open && this.#open.uncompressedBytes >= this.maxBytes) await this.#finishFile();
    const file = (this.#open ??= this.#openFile());
    file.devices += 1;
    file.uncompressedBytes += Buffer.byteLength(line) + 1;
    if (!file.gzip.write(`${line}\n`)) await Promise.race([once(file.gzip, 'drain'), file.done]);
  }

  /** Completes the last file and returns every file written, in order. */
  async close(): Promise<DataFile[]> {
    if (this.#open) await this.#finishFile();
    this.#closed = true;
    return [...this.#files];
  }

  /** Aborts the upload in progress and deletes completed files; safe to call after a failure. */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const open = this.#open;
    this.#open = undefined;
    if (open) {
      open.gzip.destroy();
      await open.upload.abort().catch(() => undefined);
      await open.done.catch(() => undefined);
    }
    if (this.#files.length > 0) {
      await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: this.#files.map(({ key }) => ({ Key: key })), Quiet: true },
        }),
      );
    }
  }

  #openFile(): OpenFile {
    const key = this.keyFor(this.#files.length);
    const gzip = createGzip();
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
    // Raced against drain in write(): a failed upload must not leave write() waiting.
    done.catch(() => undefined);
    return { key, gzip, upload, done, counted, devices: 0, uncompressedBytes: 0 };
  }

  async #finishFile(): Promise<void> {
    const file = this.#open as OpenFile;
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
