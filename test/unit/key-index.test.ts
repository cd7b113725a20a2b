import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { deviceKey } from '../../lambda/common/device-key.ts';
import { decodeKeyIndex, encodeKeyIndex, MalformedKeyIndexError, type IndexKey } from '../../lambda/storage/key-index.ts';
import { simulatedBrief } from '../../tools/stand-ins/fleet.ts';
import { repeated } from '../support/collections.ts';

/** Every key of a set, through the stored form and back. */
async function roundTrip(keys: ReadonlySet<IndexKey>): Promise<IndexKey[]> {
  const index = await decodeKeyIndex(await encodeKeyIndex(keys));
  const decoded = [...index.keys()];
  expect(index.count).toBe(decoded.length);
  return decoded;
}

describe('the key index', () => {
  it('gives back numbers and strings, each once: numbers ascending, then strings sorted', async () => {
    const keys = new Set<IndexKey>([2_000_017, 'e70B3D5FFFF000001', 0, 'ref-b', 2_000_003, Number.MAX_SAFE_INTEGER, 'ref-a', 123_456_789_012_345, 'über-ref']);
    expect(await roundTrip(keys)).toEqual([
      0,
      2_000_003,
      2_000_017,
      123_456_789_012_345,
      Number.MAX_SAFE_INTEGER,
      'e70B3D5FFFF000001',
      'ref-a',
      'ref-b',
      'über-ref',
    ]);
  });

  it('holds exactly the keys a run de-duplicates by, whatever their kind', async () => {
    const briefs = [
      { ref: '123' },
      { ref: 124 },
      { ref: '0123' },
      { ref: '123456789012345678901' },
      { ref: '-5' },
      { EUI: '70b3d5ffff000009' },
      simulatedBrief(7),
    ];
    const keys = new Set(briefs.map((brief) => deviceKey(brief) as IndexKey));
    expect(new Set(await roundTrip(keys))).toEqual(keys);
    expect(repeated(briefs.map((brief) => deviceKey(brief)))).toEqual([]);
  });

  it('stores an empty set as an index of no keys', async () => {
    const stored = await encodeKeyIndex(new Set());
    const index = await decodeKeyIndex(stored);
    expect(index.count).toBe(0);
    expect([...index.keys()]).toEqual([]);
    expect(stored.length).toBeLessThan(40);
  });

  it('is the same bytes for the same set, whatever order the keys were met in', async () => {
    const keys = [5, 'b', 3, 'a', 1_000_000, 'e1234'];
    expect(await encodeKeyIndex(new Set(keys))).toEqual(await encodeKeyIndex(new Set([...keys].reverse())));
  });

  it('costs about a byte a key for refs close together, a few MB at most for a million devices', async () => {
    const refs = new Set<IndexKey>(Array.from({ length: 1_000_000 }, (_, i) => 2_000_000 + 3 * i + (i % 2)));
    const stored = await encodeKeyIndex(refs);
    expect(gunzipSync(stored).length).toBeLessThan(1_000_000 * 1.05);
    expect(stored.length).toBeLessThan(2_000_000);
    expect((await decodeKeyIndex(stored)).count).toBe(1_000_000);
  });

  it('refuses what is not an index it can read, with MalformedKeyIndexError', async () => {
    const good = gunzipSync(await encodeKeyIndex(new Set<IndexKey>([1, 2, 'x'])));
    const damaged = [
      Buffer.from('not gzip at all'),
      gzipSync(Buffer.from('PK\x03\x04 another format')),
      gzipSync(good.subarray(0, good.length - 1)),
      gzipSync(Buffer.concat([good, Buffer.from([0])])),
      // Two numeric keys the same: a zero step after the first.
      gzipSync(Buffer.from([...Buffer.from('TPK1'), 2, 7, 0, 0])),
    ];
    for (const stored of damaged) await expect(decodeKeyIndex(stored)).rejects.toBeInstanceOf(MalformedKeyIndexError);
  });

  it('is refused when it is not the index its manifest lists: another stored size, or another count', async () => {
    const stored = await encodeKeyIndex(new Set<IndexKey>([1, 2, 3]));
    await expect(decodeKeyIndex(stored, { bytes: stored.length, count: 3 })).resolves.toMatchObject({ count: 3 });
    await expect(decodeKeyIndex(stored, { bytes: stored.length + 1, count: 3 })).rejects.toMatchObject({
      name: 'MalformedKeyIndexError',
      code: 'SIZE_MISMATCH',
      message: `it is ${stored.length} bytes, not the ${stored.length + 1} listed for it`,
    });
    await expect(decodeKeyIndex(stored, { bytes: stored.length, count: 2 })).rejects.toMatchObject({
      code: 'COUNT_MISMATCH',
      message: 'it holds 3 keys, not the 2 listed for it',
    });
  });

  it('stops decoding at what its count may take: a gzip bomb is refused at that size, not inflated', async () => {
    // 64 MiB of zeros gzip to about 64 KB; ten keys may decode to 704 bytes.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const before = process.memoryUsage().arrayBuffers;
    await expect(decodeKeyIndex(bomb, { count: 10 })).rejects.toMatchObject({
      name: 'MalformedKeyIndexError',
      code: 'TOO_LARGE',
      message: 'it decodes to more than 704 bytes, the most 10 keys may take',
    });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });
});
