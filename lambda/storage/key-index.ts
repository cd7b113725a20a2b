import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { statusOf } from './s3-json.ts';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * A device's key as a run de-duplicates by it: a number for a canonical integer ref, a
 * string otherwise (see common/device-key.ts; the same union, kept here so that storage needs
 * nothing from the run).
 */
export type IndexKey = string | number;

/** Where a run's key index is and what it holds, as its manifest lists it. */
export interface KeyIndexEntry {
  key: string;
  /** Stored (gzip) size. */
  bytes: number;
  count: number;
}

/**
 * The format, before gzip: a 4-byte tag, then the numeric keys (their count, the smallest,
 * then each one's distance from the one before, all as unsigned LEB128 varints), then the
 * string keys (their count, then each as a varint byte length and its UTF-8 bytes), both
 * sorted. A platform's refs are mostly close together, so most distances take a byte or
 * two: about 1 MB per million devices before gzip, against 20 MB in the run's set.
 */
const TAG = Buffer.from('TPK1');

/** Keys to index, read twice (numbers, then strings): a set or an array, not a one-pass iterator. */
export type KeySet = ReadonlySet<IndexKey> | readonly IndexKey[];

/**
 * Keys as a run's set holds them (common/device-key-set.ts): the EUI keys (`e` and sixteen
 * upper-case hex digits) as their 64 bits, given smallest first as two 32-bit halves, which
 * is their order as strings too; every other key as it is. Their text is written straight
 * into the index, with no string made per key.
 */
export interface PackedKeys {
  readonly size: number;
  readonly others: ReadonlySet<IndexKey>;
  forEachEui(each: (hi: number, lo: number) => void): void;
}

/** Keys to index as a run holds them: a set, or packed. */
export type RunKeys = ReadonlySet<IndexKey> | PackedKeys;

const isPacked = (keys: KeySet | PackedKeys): keys is PackedKeys => 'forEachEui' in keys;

/** How many keys a set holds. */
export const keyCount = (keys: KeySet | PackedKeys): number => (Array.isArray(keys) ? keys.length : (keys as RunKeys).size);

/** The set's keys in the index format, gzip-compressed. Deterministic: the same set, the same bytes. */
export async function encodeKeyIndex(keys: KeySet | PackedKeys): Promise<Buffer> {
  return gzipAsync(encodeKeys(keys));
}

/**
 * What an index may decode to: 64 bytes a key on average (a numeric key takes at most 8, an
 * `e` + EUI key 18), so that a gzip bomb or an index of another size is refused at that
 * size instead of filling the function's memory. An index whose count is not known (a
 * continued run's reference to its previous run) may decode to 256 MiB at most: about 14
 * million EUI keys.
 */
const DECODED_BYTES_PER_KEY = 64;
const DECODED_BYTES_UNKNOWN_COUNT = 256 * 1024 * 1024;

/** What a stored index is expected to be: its count, and its stored size where its manifest says. */
export interface IndexExpectation {
  count?: number;
  bytes?: number;
}

/** How many bytes an index of `count` keys may decode to at most. */
export function decodedLimit(count: number | undefined): number {
  return count === undefined ? DECODED_BYTES_UNKNOWN_COUNT : 64 + count * DECODED_BYTES_PER_KEY;
}

/**
 * An index read back; throws MalformedKeyIndexError on anything that is not one, or not the
 * one expected (another stored size or count), and before decoding past its limit.
 */
export async function decodeKeyIndex(stored: Uint8Array, expected: IndexExpectation = {}): Promise<KeyIndex> {
  if (expected.bytes !== undefined && stored.length !== expected.bytes) {
    throw new MalformedKeyIndexError('SIZE_MISMATCH', `it is ${stored.length} bytes, not the ${expected.bytes} listed for it`);
  }
  const limit = decodedLimit(expected.count);
  let index: KeyIndex;
  try {
    index = new KeyIndex(await gunzipAsync(stored, { maxOutputLength: limit }));
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new MalformedKeyIndexError(
        'TOO_LARGE',
        `it decodes to more than ${limit} bytes, the most ${expected.count ?? 'an unknown number of'} keys may take`,
      );
    }
    throw new MalformedKeyIndexError('MALFORMED', error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (expected.count !== undefined && index.count !== expected.count) {
    throw new MalformedKeyIndexError('COUNT_MISMATCH', `it holds ${index.count} keys, not the ${expected.count} listed for it`);
  }
  return index;
}

/**
 * A stored object that is not a key index this code can read (damaged, of another format,
 * too large), or not the one its manifest or checkpoint lists (another size or count).
 */
export class MalformedKeyIndexError extends Error {
  override readonly name = 'MalformedKeyIndexError';
  constructor(
    readonly code: 'MALFORMED' | 'TOO_LARGE' | 'SIZE_MISMATCH' | 'COUNT_MISMATCH',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function encodeKeys(all: KeySet | PackedKeys): Buffer {
  const packed = isPacked(all) ? all : undefined;
  const keys: KeySet = isPacked(all) ? all.others : all;
  const euis = packed ? packed.size - packed.others.size : 0;
  let numbers = 0;
  let textBytes = 0;
  const strings: string[] = [];
  // forEach rather than for-of: no iterator result per key, a million of them at commit.
  keys.forEach((key) => {
    if (typeof key === 'number') numbers += 1;
    else {
      strings.push(key);
      textBytes += Buffer.byteLength(key, 'utf8') + 2;
    }
  });
  // A typed array sorts numerically in place, at 8 bytes a key: the cheapest sorted copy.
  const sorted = new Float64Array(numbers);
  let at = 0;
  keys.forEach((key) => {
    if (typeof key === 'number') sorted[at++] = key;
  });
  sorted.sort();
  strings.sort();
  // Sized for refs a few apart and the strings exactly, so that it rarely grows by copying.
  const out = new ByteWriter(2 * numbers + textBytes + EUI_KEY_BYTES * euis + 64);
  out.bytes(TAG);
  out.varint(numbers);
  let previous = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    const key = sorted[i] as number;
    out.varint(key - previous);
    previous = key;
  }
  out.varint(strings.length + euis);
  let next = 0;
  // The EUI keys merged into the other strings' order; the others are few, if any, so an
  // EUI key's text is made only to be compared with one of them.
  packed?.forEachEui((hi, lo) => {
    while (next < strings.length && (strings[next] as string) < euiKeyText(hi, lo)) out.text(strings[next++] as string);
    out.euiKey(hi, lo);
  });
  for (; next < strings.length; next += 1) out.text(strings[next] as string);
  return out.done();
}

/** An EUI key as the index stores it: its length (one varint byte), `e`, sixteen hex digits. */
const EUI_KEY_BYTES = 18;
const HEX_DIGITS = Buffer.from('0123456789ABCDEF', 'latin1');

/** A 32-bit half as eight upper-case hex digits, into `out` from `at` on. */
function writeHex(out: Buffer, at: number, half: number): void {
  for (let digit = 0; digit < 8; digit += 1) out[at + 7 - digit] = HEX_DIGITS[(half >>> (4 * digit)) & 15] as number;
}

function euiKeyText(hi: number, lo: number): string {
  const text = Buffer.from('e0000000000000000', 'latin1');
  writeHex(text, 1, hi);
  writeHex(text, 9, lo);
  return text.toString('latin1');
}

/**
 * A decoded index: its size at once, its keys (numbers ascending, then strings) on demand,
 * without holding them all as values.
 */
export class KeyIndex {
  readonly count: number;

  constructor(private readonly raw: Buffer) {
    // One pass to check the whole index before anyone relies on it, making no strings.
    let count = 0;
    for (const _ of this.#walk(false)) count += 1;
    this.count = count;
  }

  keys(): Generator<IndexKey> {
    return this.#walk(true);
  }

  /** Every key; with `strings` false, each string key as '' (checked, not decoded). */
  *#walk(strings: boolean): Generator<IndexKey> {
    const read = new ByteReader(this.raw);
    if (!read.bytes(TAG.length).equals(TAG)) throw new Error('Not a key index: unknown format tag');
    const numbers = read.varint();
    let value = 0;
    for (let i = 0; i < numbers; i += 1) {
      const step = read.varint();
      if (i > 0 && step === 0) throw new Error('Malformed key index: a numeric key repeats');
      value += step;
      if (!Number.isSafeInteger(value)) throw new Error('Malformed key index: a numeric key is out of range');
      yield value;
    }
    const count = read.varint();
    for (let i = 0; i < count; i += 1) {
      const bytes = read.bytes(read.varint());
      yield strings ? bytes.toString('utf8') : '';
    }
    if (!read.atEnd) throw new Error('Malformed key index: bytes after the last key');
  }
}

/**
 * Stores a run's key index. Written before the manifest that lists it (the manifest is the
 * commit); outside the table location, so engines that read the table never see it.
 */
export async function writeKeyIndex(s3: S3Client, bucket: string, key: string, keys: RunKeys): Promise<KeyIndexEntry> {
  const body = await encodeKeyIndex(keys);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/gzip' }));
  return { key, bytes: body.length, count: keys.size };
}

/**
 * A stored key index; undefined when there is none; MalformedKeyIndexError when it is not
 * one, or not the one expected (an object of another size is refused before its body is read).
 */
export async function readKeyIndex(s3: S3Client, bucket: string, key: string, expected: IndexExpectation = {}): Promise<KeyIndex | undefined> {
  let stored: Uint8Array | undefined;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (expected.bytes !== undefined && object.ContentLength !== undefined && object.ContentLength !== expected.bytes) {
      discardBody(object.Body);
      throw new MalformedKeyIndexError('SIZE_MISMATCH', `it is ${object.ContentLength} bytes, not the ${expected.bytes} listed for it`);
    }
    stored = await object.Body?.transformToByteArray();
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
  return decodeKeyIndex(stored ?? new Uint8Array(), expected);
}

/** A body not to be read: its connection is released rather than drained. */
export function discardBody(body: unknown): void {
  (body as { destroy?: () => void } | undefined)?.destroy?.();
}

/** Unsigned LEB128 by arithmetic: keys reach 2^53, past what JavaScript's 32-bit bit operators hold. */
class ByteWriter {
  #buffer: Buffer;
  #length = 0;

  constructor(capacity: number) {
    this.#buffer = Buffer.allocUnsafe(capacity);
  }

  varint(value: number): void {
    this.#room(8);
    let rest = value;
    while (rest >= 0x80) {
      this.#buffer[this.#length++] = (rest % 0x80) + 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#buffer[this.#length++] = rest;
  }

  bytes(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** An EUI key from its halves, as `text` would write its string. */
  euiKey(hi: number, lo: number): void {
    this.#room(EUI_KEY_BYTES);
    const at = this.#length;
    this.#buffer[at] = EUI_KEY_BYTES - 1;
    this.#buffer[at + 1] = 0x65;
    writeHex(this.#buffer, at + 2, hi);
    writeHex(this.#buffer, at + 10, lo);
    this.#length += EUI_KEY_BYTES;
  }

  /** A string as its UTF-8 length and bytes, encoded in place: no buffer per key. */
  text(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.#room(length);
    this.#length += this.#buffer.write(value, this.#length, 'utf8');
  }

  done(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }

  #room(more: number): void {
    if (this.#length + more <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#buffer.length, this.#length + more));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
  }
}

class ByteReader {
  #at = 0;

  constructor(private readonly buffer: Buffer) {}

  get atEnd(): boolean {
    return this.#at === this.buffer.length;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.#at >= this.buffer.length) throw new Error('Malformed key index: it ends inside a number');
      const byte = this.buffer[this.#at++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
      if (scale > 2 ** 56) throw new Error('Malformed key index: a number is too long');
    }
  }

  bytes(length: number): Buffer {
    if (this.#at + length > this.buffer.length) throw new Error('Malformed key index: it ends inside a key');
    const bytes = this.buffer.subarray(this.#at, this.#at + length);
    this.#at += length;
    return bytes;
  }
}
