import { StringDecoder } from 'node:string_decoder';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { deviceKey, type DeviceKey } from '../common/device-key.ts';
import { DeviceKeyOrdinals } from '../common/device-key-set.ts';
import { statusOf } from '../storage/s3-json.ts';
import { drained } from '../storage/upload-body.ts';
import type { RawBrief } from './raw-briefs.ts';

/**
 * What a run's devices are compared by, one entry per keyed device: its key (the export's
 * de-duplication key: `ref`, else `e` and the EUI), `ref` and EUI as given, and the values
 * of the compared fields (null when absent), objects with their keys sorted so that a
 * platform reordering members is no change.
 */
export interface StateEntry {
  key: DeviceKey;
  ref: string | null;
  eui: string | null;
  values: unknown[];
}

/** The first line of a state file, so that a reader knows what its values are. */
interface StateHeader {
  format: typeof FORMAT;
  runId: string;
  fields: string[];
}

const FORMAT = 'thingpark-exporter/curate-state/1';

export function stateEntry(brief: RawBrief, fields: readonly string[]): StateEntry | undefined {
  const key = deviceKey(brief);
  if (key === undefined) return undefined;
  const text = (value: unknown) => (typeof value === 'string' || typeof value === 'number' ? String(value) : null);
  return { key, ref: text(brief.ref), eui: text(brief.EUI), values: fields.map((field) => canonical(brief[field] ?? null)) };
}

function canonical(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(canonical);
  const sorted: Record<string, unknown> = {};
  for (const name of Object.keys(value).sort()) sorted[name] = canonical((value as Record<string, unknown>)[name]);
  return sorted;
}

/**
 * 53 bits of cyrb53 over the values' JSON: the one thing kept per device of the previous
 * run while this run is read. Two different values collide with a chance of about 2^-53,
 * which would leave one change in a run unreported.
 */
export function valuesHash(values: readonly unknown[]): number {
  const text = JSON.stringify(values);
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** How a device of this run compares with the previous run. */
export type Comparison = 'added' | 'unchanged' | 'changed';

const UNSEEN = 0;
const SAME = 1;
const CHANGED = 2;

/**
 * The previous run's devices, as little as comparing needs: each key's ordinal
 * (DeviceKeyOrdinals: EUI keys packed in typed arrays, which the collector does not trace),
 * and per ordinal the hash of its values and whether this run has seen it (and changed).
 * About 25 to 35 MB per million devices with EUI keys; the values themselves are read again
 * from the state, in a second pass, for the few that changed.
 */
export class BaseState {
  readonly #ordinals = new DeviceKeyOrdinals();
  #hashes = new Float64Array(1024);
  #marks = new Uint8Array(1024);
  #changed = 0;

  get size(): number {
    return this.#ordinals.size;
  }

  get changed(): number {
    return this.#changed;
  }

  /** Devices of the previous run this run has not seen: removed, once this run has been read. */
  get unseen(): number {
    let count = 0;
    for (let slot = 0; slot < this.#ordinals.size; slot += 1) if (this.#marks[slot] === UNSEEN) count += 1;
    return count;
  }

  add(entry: StateEntry): void {
    const slot = this.#ordinals.size;
    if (this.#ordinals.add(entry.key) !== slot) return;
    if (slot === this.#hashes.length) {
      const hashes = new Float64Array(slot * 2);
      hashes.set(this.#hashes);
      this.#hashes = hashes;
      const marks = new Uint8Array(slot * 2);
      marks.set(this.#marks);
      this.#marks = marks;
    }
    this.#hashes[slot] = valuesHash(entry.values);
  }

  /** Compares a device of this run with the previous run's, and remembers that it was seen. */
  compare(entry: StateEntry): Comparison {
    const slot = this.#ordinals.ordinalOf(entry.key);
    if (slot < 0) return 'added';
    if (this.#marks[slot] !== UNSEEN) return 'unchanged';
    const same = this.#hashes[slot] === valuesHash(entry.values);
    this.#marks[slot] = same ? SAME : CHANGED;
    if (!same) this.#changed += 1;
    return same ? 'unchanged' : 'changed';
  }

  /** What became of a previous run's device: 'removed' if this run did not see it. */
  fate(key: DeviceKey): 'removed' | Comparison | undefined {
    const slot = this.#ordinals.ordinalOf(key);
    if (slot < 0) return undefined;
    const mark = this.#marks[slot];
    return mark === UNSEEN ? 'removed' : mark === CHANGED ? 'changed' : 'unchanged';
  }

  has(key: DeviceKey): boolean {
    return this.#ordinals.ordinalOf(key) >= 0;
  }
}

/** Lines are handed to gzip in batches of about this many characters (see storage/data-writer.ts). */
const BATCH_CHARS = 64 * 1024;

/**
 * A run's state as gzip NDJSON: a header line (format, run, compared fields), then one
 * JSON array per device, `[key, ref, eui, ...values]`. Written while the run is curated,
 * read by the next run's curation; streamed, so memory holds one batch and two upload parts.
 */
export class StateWriter {
  readonly #gzip: Gzip;
  readonly #upload: Upload;
  readonly #done: Promise<unknown>;
  #batch = '';
  entries = 0;

  constructor(
    s3: S3Client,
    bucket: string,
    readonly key: string,
    header: { runId: string; fields: readonly string[] },
  ) {
    this.#gzip = createGzip({ level: 6 });
    this.#upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: this.#gzip, ContentType: 'application/gzip' },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    this.#done = this.#upload.done();
    this.#done.catch(() => undefined);
    const first: StateHeader = { format: FORMAT, runId: header.runId, fields: [...header.fields] };
    this.#batch = `${JSON.stringify(first)}\n`;
  }

  async write(entry: StateEntry): Promise<void> {
    this.entries += 1;
    this.#batch += `${JSON.stringify([entry.key, entry.ref, entry.eui, ...entry.values])}\n`;
    if (this.#batch.length >= BATCH_CHARS) await this.#flush();
  }

  async #flush(): Promise<void> {
    const batch = this.#batch;
    this.#batch = '';
    if (!this.#gzip.write(batch)) await drained(this.#gzip, this.#done);
  }

  async close(): Promise<void> {
    if (this.#batch !== '') await this.#flush();
    this.#gzip.end();
    await this.#done;
  }

  async abort(): Promise<void> {
    await this.#upload.abort().catch(() => undefined);
    this.#gzip.destroy();
  }
}

/**
 * The entries of a state file, or undefined when there is none or it compares other fields
 * (the caller then derives them from the run's raw files).
 */
export async function readState(s3: S3Client, bucket: string, key: string, fields: readonly string[]): Promise<AsyncGenerator<StateEntry> | undefined> {
  const lines = await stateLines(s3, bucket, key);
  if (!lines) return undefined;
  const first = await lines.next();
  const header = first.done ? undefined : (JSON.parse(first.value) as Partial<StateHeader>);
  if (header?.format !== FORMAT || JSON.stringify(header.fields) !== JSON.stringify(fields)) {
    await lines.return(undefined);
    return undefined;
  }
  return entriesOfLines(lines);
}

/** Whether a state file for these fields is there, read no further than its header. */
export async function hasState(s3: S3Client, bucket: string, key: string, fields: readonly string[]): Promise<boolean> {
  const lines = await stateLines(s3, bucket, key);
  if (!lines) return false;
  try {
    const first = await lines.next();
    const header = first.done ? undefined : (JSON.parse(first.value) as Partial<StateHeader>);
    return header?.format === FORMAT && JSON.stringify(header.fields) === JSON.stringify(fields);
  } finally {
    await lines.return(undefined);
  }
}

async function* entriesOfLines(lines: AsyncGenerator<string>): AsyncGenerator<StateEntry> {
  try {
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const [entryKey, ref, eui, ...values] = JSON.parse(next.value) as [DeviceKey, string | null, string | null, ...unknown[]];
      yield { key: entryKey, ref, eui, values };
    }
  } finally {
    await lines.return(undefined);
  }
}

async function stateLines(s3: S3Client, bucket: string, key: string): Promise<AsyncGenerator<string> | undefined> {
  let body: NodeJS.ReadableStream | undefined;
  try {
    body = (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body as NodeJS.ReadableStream | undefined;
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
  if (!body) return undefined;
  const gunzip = body.pipe(createGunzip());
  return (async function* () {
    const decoder = new StringDecoder('utf8');
    let rest = '';
    try {
      for await (const chunk of gunzip as AsyncIterable<Buffer>) {
        const lines = (rest + decoder.write(chunk)).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line !== '') yield line;
      }
      rest += decoder.end();
      if (rest !== '') yield rest;
    } finally {
      gunzip.destroy();
      (body as { destroy?: () => void }).destroy?.();
    }
  })();
}
