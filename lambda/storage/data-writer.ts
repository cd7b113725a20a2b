import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
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
  /**
   * The smallest and largest EUI among its rows (upper case, as the platform sorts them):
   * a reader looking for one device needs only the files whose bounds hold its EUI.
   * Absent when no row has one.
   */
  minEui?: string;
  maxEui?: string;
}

/**
 * The files listed in EUI order, where they hold the fleet in that order: each one a
 * stretch of the EUI space, in order within, and no two overlapping. Undefined where the
 * bounds say otherwise (a file without them, or two that overlap). The caller vouches for
 * the order within each file: a cursor read's lanes (platform/cursor-sweep.ts).
 */
export function inEuiOrder(files: readonly DataFile[]): DataFile[] | undefined {
  if (files.some((file) => file.minEui === undefined || file.maxEui === undefined)) return undefined;
  const sorted = [...files].sort((a, b) => ((a.minEui as string) < (b.minEui as string) ? -1 : 1));
  const overlapping = sorted.some((file, i) => i > 0 && (sorted[i - 1]?.maxEui as string) >= (file.minEui as string));
  return overlapping ? undefined : sorted;
}

/** Where a line goes: its lane (see DataWriter), and its device's EUI, for the file's bounds. */
export interface LineInfo {
  lane?: string;
  eui?: string;
}

interface OpenFile {
  /** Its number among the writer's files, which orders them. */
  index: number;
  key: string;
  gzip: Gzip;
  body: Transform;
  upload: Upload;
  done: Promise<unknown>;
  counted: { bytes: number };
  devices: number;
  uncompressedBytes: number;
  minEui?: string;
  maxEui?: string;
  /** Compressed bytes S3 has taken: what lib-storage no longer holds. */
  uploaded: number;
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
 * NDJSON bytes that may wait in the open files' gzip queues together before a write waits
 * for the longest queue to drain. gzip's own high-water mark (16 KiB on Node 20, 64 KiB
 * from Node 22) is no larger than one batch: waiting on it after every batch made the main
 * thread idle through each compression's round trip to the thread pool, instead of building
 * the next batch while gzip compresses this one. About one page, not several: with 4 MiB
 * the lanes compress at once and a run at 100 ms waits less (2 MiB gains half as much), but
 * with either a million devices peak some 15 MB higher, past the 256 MB the function is
 * held to in some runs (docs/performance.md, "More room in gzip's queues").
 */
export const QUEUED_BYTES = 1024 * 1024;

/**
 * Level 1 compresses about 3x faster than zlib's default (6) for a larger file (about 1.5x
 * on the simulated fleet). A run's CPU is the Lambda's bottleneck once pages come in
 * concurrently, while the bytes only cost storage and Athena's scan at cents per TB.
 */
const GZIP_LEVEL = 1;

/**
 * What completing the open files would free, together (lib-storage buffers up to a part of
 * each before it sends it; see releasedBy), before the writer completes the one that would
 * free the most; and, apart, what the files being completed may hold before a write waits
 * for S3 to take them. Apart, so that a writer at its budget hands files to S3 and goes on,
 * rather than wait a round trip to S3 at every batch: counted together, a million devices
 * in 39 ranges waited at almost every batch, and took 5 s more CPU and 20 MB more heap, as
 * pages piled up behind the writer. The NDJSON in gzip's queues is not counted here but
 * against QUEUED_BYTES: completing a file does not free it sooner, and counted here, the
 * page just written (some 0.8 MB not yet compressed, 70 KB once it is) made its file the
 * one completed, again and again, for files of one or two pages. A lone open file is never
 * completed for it: one file's buffers are bounded by lib-storage's.
 */
const HELD_BYTES = 12 * 1024 * 1024;

/**
 * How long a discard waits for the files being completed to be answered before it aborts
 * them. Ranges end at any time, so a run that fails usually has a file on the wire; one
 * answered is one the discard can vouch for, and a failed run then leaves no trace.
 */
const ENDING_GRACE_MS = 1000;

/**
 * A smaller deflate state than zlib's default (256 KiB: a 32 KiB window, memLevel 8), since
 * a cursor read keeps a file open for every range it has begun. zlib's own formula: the
 * window's 2^(windowBits + 2) bytes and the hash's 2^(memLevel + 9).
 */
const WINDOW_BITS = 13;
const MEM_LEVEL = 7;
const DEFLATE_STATE_BYTES = 2 ** (WINDOW_BITS + 2) + 2 ** (MEM_LEVEL + 9);

/**
 * Streams NDJSON lines through gzip into multipart uploads, rolling to a new file once a
 * file holds `maxBytes` of NDJSON. Lines go to lanes, each with a file of its own: a lane
 * holds one EUI range's devices in order, so every file is one stretch of the EUI space
 * (a run that reads one lane writes one file at a time, in order). `end(lane)` completes a
 * lane's file without waiting for it. `write` waits while gzip's queues hold QUEUED_BYTES
 * or an upload is behind, and while the completing files hold more than HELD_BYTES; past
 * HELD_BYTES in the open files it completes one; so memory stays bounded by bytes whatever
 * the fleet size and however many lanes are open. Writes come one at a time (the reader
 * takes a page's devices in turn): two at once into a lane rolling over could both open its
 * next file.
 * A run that fails discards its writer, which deletes every file it wrote: a failed run
 * leaves no data behind.
 */
export class DataWriter {
  readonly #files: { index: number; file: DataFile }[] = [];
  readonly #started: string[] = [];
  readonly #adopted: string[] = [];
  readonly #open = new Map<string, OpenFile>();
  /** Files being completed: their last part and the upload's completion are on the wire. */
  readonly #ending = new Map<OpenFile, Promise<void>>();
  #closed = false;
  #failure: Error | undefined;
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

  /** The files completed so far, in the order they were opened. */
  get files(): readonly DataFile[] {
    return this.#inOrder();
  }

  /**
   * Makes an object written beside the data files (the run's key index) part of this
   * writer's output: a discard removes it with them. Adopted before it is written, since a
   * write that failed may still have landed.
   */
  adopt(key: string): void {
    this.#adopted.push(key);
  }

  async write(line: string, { lane = '', eui }: LineInfo = {}): Promise<void> {
    this.#check();
    let file = this.#open.get(lane);
    // The batch not yet flushed counts in characters: at most a few bytes short of its size.
    if (file && file.uncompressedBytes + file.batch.length >= this.maxBytes) {
      // A lane rolls over one file after the other: the next opens once this one is stored.
      file = undefined;
      await Promise.race([this.end(lane), this.#stopped]).catch(() => undefined);
      // Discarded while waiting: a new file would never be ended.
      this.#check();
    }
    if (file === undefined) {
      file = this.#openFile();
      this.#open.set(lane, file);
    }
    file.devices += 1;
    file.batch += `${line}\n`;
    if (eui !== undefined) {
      if (file.minEui === undefined || eui < file.minEui) file.minEui = eui;
      if (file.maxEui === undefined || eui > file.maxEui) file.maxEui = eui;
    }
    if (file.batch.length >= BATCH_CHARS) await this.#flush(file);
  }

  /**
   * Completes the lane's open file, if it has one: no more lines come to it. Nothing waits
   * for it but `close()`; the promise says when it is stored (or failed: the writer's next
   * write or close throws).
   */
  end(lane: string): Promise<void> {
    const file = this.#open.get(lane);
    if (file === undefined) return Promise.resolve();
    this.#open.delete(lane);
    const ending = this.#finishFile(file).then(
      () => undefined,
      (error: unknown) => {
        this.#failure ??= error instanceof Error ? error : new StorageError(ErrorCode.WRITER_CLOSED, 'A data file could not be completed');
      },
    );
    const stored = ending.finally(() => this.#ending.delete(file));
    this.#ending.set(file, stored);
    return stored;
  }

  /** Completes every open file and returns every file written, in the order they were opened. */
  async close(): Promise<DataFile[]> {
    for (const lane of [...this.#open.keys()]) void this.end(lane);
    await Promise.race([Promise.all(this.#ending.values()), this.#stopped]);
    this.#check();
    this.#closed = true;
    return this.#inOrder();
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new StorageError(ErrorCode.WRITER_CLOSED, this.#discarded ? 'The snapshot writer was discarded' : 'The snapshot writer is closed');
  }

  #inOrder(): DataFile[] {
    return [...this.#files].sort((a, b) => a.index - b.index).map(({ file }) => file);
  }

  /** Hands the batch to gzip, waiting while gzip or the upload is behind, or the files held are over their budget. */
  async #flush(file: OpenFile): Promise<void> {
    handBatch(file);
    await this.#compressing();
    await this.#withinBudget();
  }

  /** Waits while the open files' gzip queues hold QUEUED_BYTES or more together, for the longest to drain. */
  async #compressing(): Promise<void> {
    for (;;) {
      const open = [...this.#open.values()];
      if (total(open, (file) => file.gzip.writableLength) < QUEUED_BYTES) return;
      // A batch is at least gzip's high-water mark (16 KiB on Node 20, where the tests run; 64 KiB,
      // BATCH_CHARS, from Node 22, where the function runs), so a queue that holds one says when it drains.
      const longest = mostBy(
        open.filter((file) => file.gzip.writableNeedDrain),
        (file) => file.gzip.writableLength,
      );
      if (longest === undefined) return;
      await Promise.race([once(longest.gzip, 'drain'), longest.done, this.#stopped]);
      this.#check();
    }
  }

  /**
   * Keeps what completing the open files would free within HELD_BYTES, completing the file
   * that would free the most (its lane goes on in a new file), and waits while the files
   * being completed hold more than HELD_BYTES, until S3 has taken enough of them.
   */
  async #withinBudget(): Promise<void> {
    while (this.#open.size > 1 && total(this.#open.values(), releasedBy) > HELD_BYTES) {
      const [lane] = mostBy([...this.#open], ([, file]) => releasedBy(file)) as [string, OpenFile];
      void this.end(lane);
    }
    while (total(this.#ending.keys(), heldBy) > HELD_BYTES) await Promise.race([...this.#ending.values(), this.#stopped]);
    this.#check();
  }

  /**
   * Removes everything this writer wrote: stops further writes, aborts the uploads of the
   * files open or being completed (their bodies are destroyed rather than ended, so no
   * partial file is sent, and a multipart upload is never completed), then deletes every
   * file it started. A single PutObject already on the wire can still land after the
   * delete; the attempt's marker (see attempts.ts) is how a later run finds it. Safe to call after a failure, and after close() when the run fails
   * to publish.
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
    const ending = [...this.#ending.keys()];
    const files = [...this.#open.values(), ...ending];
    this.#open.clear();
    // A file being completed may be one PutObject on the wire: its answer, if it comes soon, says whether it landed.
    await Promise.race([Promise.all(ending.map((file) => file.done.catch(() => undefined))), sleep(ENDING_GRACE_MS)]);
    const inFlight = files.some((file) => file.ending && !file.answered);
    // Aborted first: lib-storage sends no part once aborted, whatever the body does next.
    await Promise.all(
      files.map(async (file) => {
        await file.upload.abort();
        file.gzip.destroy();
        file.body.destroy();
        await file.done.catch(() => undefined);
      }),
    );
    const { refused } = await deleteObjects(this.s3, this.bucket, [...this.#started, ...this.#adopted]);
    this.#leftNothing = refused.length === 0 && !inFlight;
    if (refused.length > 0) throw new StorageError(ErrorCode.DATA_NOT_DELETED, `S3 did not delete ${refused.length} data file(s): ${refused.join(', ')}`);
  }

  #openFile(): OpenFile {
    const index = this.#started.length;
    const key = this.keyFor(index);
    this.#started.push(key);
    const gzip = createGzip({ level: GZIP_LEVEL, windowBits: WINDOW_BITS, memLevel: MEM_LEVEL });
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
    const file: OpenFile = {
      index,
      key,
      gzip,
      body,
      upload,
      done: upload.done(),
      counted,
      devices: 0,
      uncompressedBytes: 0,
      uploaded: 0,
      batch: '',
      ending: false,
      answered: false,
    };
    upload.on('httpUploadProgress', ({ loaded }) => {
      if (loaded !== undefined) file.uploaded = Math.max(file.uploaded, loaded);
    });
    // Raced against drain in write(): a failed upload must not leave write() waiting.
    file.done.then(
      () => (file.answered = true),
      () => (file.answered = true),
    );
    return file;
  }

  async #finishFile(file: OpenFile): Promise<void> {
    if (file.batch !== '') handBatch(file);
    file.ending = true;
    file.gzip.end();
    await Promise.race([file.done, this.#stopped]);
    const { index, key, devices, counted, uncompressedBytes, minEui, maxEui } = file;
    this.#files.push({
      index,
      file: { key, devices, bytes: counted.bytes, uncompressedBytes, ...(minEui === undefined ? {} : { minEui, maxEui }) },
    });
  }
}

/** Hands the file's batch of lines to gzip, counting its bytes. */
function handBatch(file: OpenFile): void {
  const batch = Buffer.from(file.batch);
  file.batch = '';
  file.uncompressedBytes += batch.length;
  file.gzip.write(batch);
}

/** The item that measures the most, the first of equals; undefined for none. */
function mostBy<T>(items: readonly T[], measure: (item: T) => number): T | undefined {
  return items.reduce<T | undefined>((most, item) => (most === undefined || measure(item) > measure(most) ? item : most), undefined);
}

function total(files: Iterable<OpenFile>, measure: (file: OpenFile) => number): number {
  let sum = 0;
  for (const file of files) sum += measure(file);
  return sum;
}

/** What a completing file holds in memory: the NDJSON gzip has yet to compress (its batch went to gzip as it ended), and the compressed bytes S3 does not have yet. */
function heldBy(file: OpenFile): number {
  return file.gzip.writableLength + file.counted.bytes - file.uploaded;
}

/** What completing an open file frees: its deflate state, its batch (gzip's queue drains either way), and the compressed bytes S3 does not have yet. */
function releasedBy(file: OpenFile): number {
  return DEFLATE_STATE_BYTES + file.batch.length + file.counted.bytes - file.uploaded;
}

function countingStream(counted: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      counted.bytes += chunk.length;
      callback(null, chunk);
    },
  });
}
