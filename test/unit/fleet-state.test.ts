import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaseState, hasState, readState, StateWriter, stateEntry, valuesHash, type StateEntry } from '../../lambda/curate/fleet-state.ts';
import { PLAIN_BODIES, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';
import { repeated } from '../support/collections.ts';
import { refuseParts } from '../support/refused-parts.ts';

const FIELDS = ['healthState', 'name', 'model'] as const;

const entry = (key: StateEntry['key'], ...values: unknown[]): StateEntry => ({ key, ref: typeof key === 'number' ? String(key) : null, eui: null, values });

describe('fleet state: a device as runs compare it', () => {
  it('is keyed as the export de-duplicates, with ref and EUI as given and the compared values in field order', () => {
    const brief = { ref: '2000017', EUI: '70B3D5FFFF000011', name: 'pump', healthState: 'ACTIVE', lastRSSI: -70 };
    expect(stateEntry(brief, FIELDS)).toEqual({ key: 2_000_017, ref: '2000017', eui: '70B3D5FFFF000011', values: ['ACTIVE', 'pump', null] });
    expect(stateEntry({ EUI: 'a0b1c2d3e4f50001', name: 'eui-only' }, ['name'])).toEqual({
      key: 'eA0B1C2D3E4F50001',
      ref: null,
      eui: 'a0b1c2d3e4f50001',
      values: ['eui-only'],
    });
    expect(stateEntry({ ref: 7, EUI: 12 }, [])).toEqual({ key: 7, ref: '7', eui: '12', values: [] });
  });

  it('has no entry for a device without ref or EUI, which no run can tell apart from another', () => {
    expect(stateEntry({ name: 'unkeyed', healthState: 'NEVER_SEEN' }, FIELDS)).toBeUndefined();
    expect(stateEntry({ ref: '', EUI: '' }, FIELDS)).toBeUndefined();
  });

  it('keeps a ref or EUI that is neither text nor a number out of ref and eui', () => {
    expect(stateEntry({ ref: 'r-1', EUI: { hex: 'ab' } }, [])).toMatchObject({ ref: 'r-1', eui: null });
  });

  it('sorts the members of object values at every depth, so that a platform reordering them is no change', () => {
    const one = stateEntry({ ref: 'r', model: { ID: 'm1', commercialName: 'X', spec: { b: 2, a: [{ y: 1, x: 0 }] } } }, ['model']);
    const other = stateEntry({ ref: 'r', model: { spec: { a: [{ x: 0, y: 1 }], b: 2 }, commercialName: 'X', ID: 'm1' } }, ['model']);
    expect(JSON.stringify(one?.values)).toBe('[{"ID":"m1","commercialName":"X","spec":{"a":[{"x":0,"y":1}],"b":2}}]');
    expect(JSON.stringify(other?.values)).toBe(JSON.stringify(one?.values));
  });

  it('keeps the order of array members, which is part of the value', () => {
    const one = stateEntry({ ref: 'r', tags: ['a', 'b'] }, ['tags']);
    const other = stateEntry({ ref: 'r', tags: ['b', 'a'] }, ['tags']);
    expect(valuesHash(one?.values ?? [])).not.toBe(valuesHash(other?.values ?? []));
  });
});

describe('fleet state: the hash of compared values', () => {
  it('is a non-negative integer of at most 53 bits, the same for the same values', () => {
    const samples = [[], [null], ['ACTIVE', 'pump'], [{ a: 1 }], ['é ✓']].map((values) => valuesHash(values));
    expect(samples.filter((hash) => !Number.isSafeInteger(hash) || hash < 0)).toEqual([]);
    expect(valuesHash(['ACTIVE', 'pump'])).toBe(valuesHash(['ACTIVE', 'pump']));
  });

  it('tells apart values that differ in one character, in type, or in position', () => {
    const values: unknown[][] = [['ACTIVE'], ['ACTIVf'], [1], ['1'], [null], [], ['a', 'b'], ['b', 'a'], ['ab'], [['a', 'b']]];
    const hashes = values.map((list) => valuesHash(list));
    expect(repeated(hashes).map((hash) => values.filter((_, i) => hashes[i] === hash))).toEqual([]);
  });
});

describe("fleet state: the previous run's devices, compared with this run's", () => {
  /** The previous run's entries loaded, then this run's compared: what each comparison said. */
  function compare(previous: StateEntry[], current: StateEntry[]) {
    const base = new BaseState();
    for (const one of previous) base.add(one);
    return { base, comparisons: current.map((one) => [one.key, base.compare(one)]) };
  }

  it('says added, unchanged or changed per device, and removed for a previous device this run did not have', () => {
    const { base, comparisons } = compare(
      [entry(1, 'ACTIVE'), entry(2, 'ACTIVE'), entry('eAB', 'ACTIVE')],
      [entry(1, 'ACTIVE'), entry(2, 'ERROR'), entry(3, 'ACTIVE')],
    );
    expect(comparisons).toEqual([
      [1, 'unchanged'],
      [2, 'changed'],
      [3, 'added'],
    ]);
    expect([1, 2, 3, 'eAB'].map((key) => base.fate(key))).toEqual(['unchanged', 'changed', undefined, 'removed']);
    expect({ size: base.size, changed: base.changed, unseen: base.unseen }).toEqual({ size: 3, changed: 1, unseen: 1 });
  });

  it('tells a number key from the same digits as text: a ref that is no canonical integer stays a string', () => {
    const { base, comparisons } = compare([entry(12, 'x')], [entry('12', 'x')]);
    expect(comparisons).toEqual([['12', 'added']]);
    expect(base.fate(12)).toBe('removed');
  });

  it('counts a key met twice in the previous run once, by its first entry', () => {
    const { base, comparisons } = compare([entry(1, 'first'), entry(1, 'second')], [entry(1, 'first')]);
    expect(comparisons).toEqual([[1, 'unchanged']]);
    expect({ size: base.size, changed: base.changed, unseen: base.unseen }).toEqual({ size: 1, changed: 0, unseen: 0 });
  });

  it('compares a key met twice in this run once: the first comparison stands and counts once', () => {
    const { base, comparisons } = compare([entry(1, 'before')], [entry(1, 'after'), entry(1, 'after')]);
    expect(comparisons).toEqual([
      [1, 'changed'],
      [1, 'unchanged'],
    ]);
    expect(base.changed).toBe(1);
    expect(base.fate(1)).toBe('changed');
  });

  it('keeps every device as it grows past its first allocation', () => {
    const previous = Array.from({ length: 5000 }, (_, i) => entry(i, `v${i}`));
    const current = previous.map((one, i) => (i % 1000 === 999 ? entry(one.key, 'new') : one)).slice(1);
    const { base, comparisons } = compare(previous, current);
    expect(comparisons.filter(([, comparison]) => comparison !== 'unchanged')).toEqual([
      [999, 'changed'],
      [1999, 'changed'],
      [2999, 'changed'],
      [3999, 'changed'],
      [4999, 'changed'],
    ]);
    expect({ size: base.size, changed: base.changed, unseen: base.unseen }).toEqual({ size: 5000, changed: 5, unseen: 1 });
    expect(base.fate(0)).toBe('removed');
  });

  it("compares EUI keys, packed, as it compares any other key: one vendor's block, a scatter, the EUI 0, and strings that only look like EUIs", () => {
    const eui = (n: bigint) => `e${n.toString(16).toUpperCase().padStart(16, '0')}`;
    const keys = [
      ...Array.from({ length: 3000 }, (_, i) => eui(0x70b3d50000000000n + BigInt(i))),
      ...Array.from({ length: 300 }, (_, i) => eui((BigInt(i + 1) * 0x9e3779b97f4a7c15n) % 2n ** 64n)),
      eui(0n),
      'e70b3d50000000001',
      'E70B3D50000000001',
      'e70B3D5000000001',
    ];
    const previous = keys.map((key, i) => entry(key, `v${i}`));
    // Every 100th changed, the vendor's first device gone, one new device in the block.
    const current = [...previous.slice(1).map((one, i) => (i % 100 === 0 ? entry(one.key, 'new') : one)), entry(eui(0x70b3d50000000000n + 3000n), 'v')];
    const { base, comparisons } = compare(previous, current);
    const counted = (what: string) => comparisons.filter(([, comparison]) => comparison === what).length;
    expect({ added: counted('added'), changed: counted('changed') }).toEqual({ added: 1, changed: Math.ceil((keys.length - 1) / 100) });
    expect({ size: base.size, changed: base.changed, unseen: base.unseen }).toEqual({ size: keys.length, changed: counted('changed'), unseen: 1 });
    expect(base.fate(keys[0] as string)).toBe('removed');
    expect(keys.slice(1).filter((key) => base.fate(key) === undefined)).toEqual([]);
    expect(base.has(eui(0x70b3d50000000000n + 3000n))).toBe(false);
  });
});

describe('fleet state: the state file, written and read back through S3', () => {
  let standIns: StandIns;
  let s3: S3Client;
  let files = 0;
  const freshKey = () => `fleet-state-${process.pid}/${(files += 1)}.state.gz`;
  /** Keys whose parts S3 refuses, from the second on. */
  const refused = new Set<string>();

  beforeAll(async () => {
    standIns = await startStandIns();
    s3 = testS3(standIns.s3Url, PLAIN_BODIES);
    refuseParts(s3, refused);
  });
  afterAll(async () => {
    s3?.destroy();
    await standIns?.stop();
  });

  async function written(entries: StateEntry[], fields: readonly string[] = FIELDS): Promise<string> {
    const key = freshKey();
    const writer = new StateWriter(s3, DEMO.bucket, key, { runId: '20261128T100000Z', fields });
    for (const one of entries) await writer.write(one);
    await writer.close();
    expect(writer.entries).toBe(entries.length);
    return key;
  }

  async function readBack(key: string, fields: readonly string[] = FIELDS): Promise<StateEntry[] | undefined> {
    const entries = await readState(s3, DEMO.bucket, key, fields);
    if (!entries) return undefined;
    const all: StateEntry[] = [];
    for await (const one of entries) all.push(one);
    return all;
  }

  async function put(lines: string[], compress: (text: string) => Buffer = (text) => gzipSync(text)): Promise<string> {
    const key = freshKey();
    await s3.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: key, Body: compress(lines.map((line) => `${line}\n`).join('')) }));
    return key;
  }

  const header = (fields: readonly string[] = FIELDS) => JSON.stringify({ format: 'thingpark-exporter/curate-state/1', runId: '20261128T100000Z', fields });

  it('gives back every entry as written: number and string keys, nulls, nested values, text outside ASCII', async () => {
    const entries: StateEntry[] = [
      { key: 2_000_017, ref: '2000017', eui: '70B3D5FFFF000011', values: ['ACTIVE', 'pump', { ID: 'm1', commercialName: 'X' }] },
      { key: 'ABC-1', ref: 'ABC-1', eui: null, values: [null, 'é ✓ "quoted"\n', null] },
      { key: 'eA0B1C2D3E4F50001', ref: null, eui: 'a0b1c2d3e4f50001', values: ['ERROR', null, [1, 2, { deep: true }]] },
    ];
    expect(await readBack(await written(entries))).toEqual(entries);
  });

  it('gives back lines split across gzip chunks and write batches whole, multi-byte characters included', async () => {
    // Over 64 KiB of text per batch and many inflated chunks: lines and two- to four-byte
    // characters fall across every boundary the reader joins.
    const entries = Array.from({ length: 3000 }, (_, i): StateEntry => ({ key: i, ref: String(i), eui: null, values: [`ü€𝄞-${'x'.repeat(i % 97)}`, i, null] }));
    const back = await readBack(await written(entries));
    expect(back).toHaveLength(entries.length);
    expect(back?.filter((one, i) => JSON.stringify(one) !== JSON.stringify(entries[i]))).toEqual([]);
  });

  it('is there for the fields it compares, read no further than its header', async () => {
    const key = await written([entry(1, 'ACTIVE', 'pump', null)]);
    expect(await hasState(s3, DEMO.bucket, key, FIELDS)).toBe(true);
    expect(await hasState(s3, DEMO.bucket, key, ['healthState', 'name'])).toBe(false);
    expect(await hasState(s3, DEMO.bucket, key, ['name', 'healthState', 'model'])).toBe(false);
    expect(await hasState(s3, DEMO.bucket, freshKey(), FIELDS)).toBe(false);
  });

  it('is not read for other fields, in another order or fewer: the caller then derives entries from raw files', async () => {
    const key = await written([entry(1, 'ACTIVE', 'pump', null)]);
    expect(await readBack(key, ['name', 'healthState', 'model'])).toBeUndefined();
    expect(await readBack(key, ['healthState'])).toBeUndefined();
  });

  it('is not read when missing, empty, or of another format', async () => {
    expect(await readBack(freshKey())).toBeUndefined();
    expect(await readBack(await put([]))).toBeUndefined();
    const otherFormat = await put([
      JSON.stringify({ format: 'thingpark-exporter/curate-state/2', runId: 'r', fields: FIELDS }),
      '[1,"1",null,"ACTIVE","pump",null]',
    ]);
    expect(await readBack(otherFormat)).toBeUndefined();
    expect(await hasState(s3, DEMO.bucket, otherFormat, FIELDS)).toBe(false);
  });

  it('fails, rather than giving partial entries, when its bytes are not complete gzip', async () => {
    const key = await put([header(), '[1,"1",null,"ACTIVE","pump",null]', '[2,"2",null,"ACTIVE","pump",null]'], (text) => {
      const whole = gzipSync(text);
      return whole.subarray(0, whole.length - 12);
    });
    await expect(readBack(key)).rejects.toThrow(/unexpected end of file/);
  });

  it('fails when it is not gzip at all', async () => {
    const key = await put([header()], (text) => Buffer.from(text));
    await expect(readBack(key)).rejects.toThrow(/incorrect header check/);
  });

  it('fails on a line that is not JSON, or a header that is not: the caller then derives entries from raw files', async () => {
    await expect(readBack(await put([header(), '[1,"1",null,"ACTIVE","pump",null]', '[2,"2",nu']))).rejects.toThrow(SyntaxError);
    await expect(readBack(await put(['{"format":']))).rejects.toThrow(SyntaxError);
  });

  it("fails with S3's error, not gzip's, when S3 refuses a part while the state is written", async () => {
    const key = freshKey();
    refused.add(key);
    const writer = new StateWriter(s3, DEMO.bucket, key, { runId: '20261128T100000Z', fields: FIELDS });
    // 4,000 entries of 4 KB that gzip cannot shrink much: three parts of 5 MiB.
    const writing = (async () => {
      for (let i = 0; i < 4_000; i += 1) await writer.write(entry(i, randomBytes(3_000).toString('base64'), null, null));
      await writer.close();
    })();
    await expect(writing).rejects.toThrow('S3 refused the part');
    await writer.abort();
  }, 60_000);

  it('fails on a line that is JSON but no array of an entry', async () => {
    await expect(readBack(await put([header(), '{"key":1,"values":["ACTIVE","pump",null]}']))).rejects.toThrow(TypeError);
  });
});
