import { describe, expect, it } from 'vitest';
import type { DeviceKey } from '../../lambda/common/device-key.ts';
import { DeviceKeyOrdinals, DeviceKeySet } from '../../lambda/common/device-key-set.ts';
import { decodeKeyIndex, encodeKeyIndex } from '../../lambda/storage/key-index.ts';

/** The keys a set stores, read back from the key index it encodes to. */
async function storedKeys(set: DeviceKeySet): Promise<DeviceKey[]> {
  return [...(await decodeKeyIndex(await encodeKeyIndex(set))).keys()];
}

const eui = (n: bigint): string => `e${n.toString(16).toUpperCase().padStart(16, '0')}`;

// EUI keys, and strings that are not (a lower-case EUI, one digit short, an upper-case E,
// one past F) among them and around them in the index's order.
const MIXED: DeviceKey[] = [
  2_000_001,
  0,
  'ref-a',
  'e70B3D5FFFF000001',
  'e0000000000000000',
  'eFFFFFFFFFFFFFFFF',
  'e70b3d5ffff000001',
  'e70B3D5FFFF00001',
  'E70B3D5FFFF000001',
  'e70B3D5FFFF00000G',
  'e5',
  'e70B3D5FFFF000000',
];

describe('a device key set', () => {
  it('holds refs, EUI keys and any other string, each once', () => {
    const set = new DeviceKeySet();
    for (const key of [...MIXED, ...MIXED]) set.add(key);
    expect(set.size).toBe(MIXED.length);
    expect(MIXED.filter((key) => !set.has(key))).toEqual([]);
  });

  it('tells an EUI key from the ref or the other EUI that shares a half with it', () => {
    const set = DeviceKeySet.from(['e70B3D5FFFF000001', 'e0000000000000000']);
    for (const absent of ['e70B3D5FFFF000002', 'e70B3D5FEFF000001', 'e0000000100000000', 'e0000000000000001', '70B3D5FFFF000001', 1]) {
      expect(set.has(absent)).toBe(false);
    }
  });

  it('is stored as the key index stores a Set of the same keys, byte for byte', async () => {
    const stored = await encodeKeyIndex(DeviceKeySet.from(MIXED));
    expect(stored).toEqual(await encodeKeyIndex(new Set(MIXED)));
    expect(await storedKeys(DeviceKeySet.from(MIXED))).toEqual([0, 2_000_001, ...MIXED.filter((key) => typeof key === 'string').sort()]);
  });

  it('agrees with a Set over many EUIs of one vendor and a scatter of others, as it grows', async () => {
    const set = new DeviceKeySet();
    const expected = new Set<DeviceKey>();
    for (let i = 0n; i < 100_000n; i += 1n) {
      // One OUI's devices in sequence, and every 97th from anywhere in the 64 bits.
      const key = i % 97n === 0n ? eui((i * 0x9e3779b97f4a7c15n) % 2n ** 64n) : eui(0x70b3d50000000000n + i);
      set.add(key);
      expected.add(key);
    }
    expect(set.size).toBe(expected.size);
    expect([...expected].filter((key) => !set.has(key))).toEqual([]);
    expect(set.has(eui(0x70b3d50000000000n + 100_000n))).toBe(false);
    expect(await encodeKeyIndex(set)).toEqual(await encodeKeyIndex(expected));
  });
});

describe("device key ordinals: each key's place in the order keys were first added", () => {
  it('numbers refs, EUI keys (the EUI 0 among them) and other strings from 0, and keeps the first number of a key added again', () => {
    const ordinals = new DeviceKeyOrdinals();
    expect(MIXED.map((key) => ordinals.add(key))).toEqual(MIXED.map((_, i) => i));
    expect([...MIXED].reverse().map((key) => ordinals.add(key))).toEqual(MIXED.map((_, i) => MIXED.length - 1 - i));
    expect(ordinals.size).toBe(MIXED.length);
    expect(MIXED.map((key) => ordinals.ordinalOf(key))).toEqual(MIXED.map((_, i) => i));
    expect(['e70B3D5FFFF000002', 'e0000000000000001', 1, 'ref-b'].map((key) => ordinals.ordinalOf(key))).toEqual([-1, -1, -1, -1]);
  });

  it('agrees with a Map over many EUIs of one vendor and a scatter of others, as its table grows', () => {
    const ordinals = new DeviceKeyOrdinals();
    const expected = new Map<DeviceKey, number>();
    for (let i = 0n; i < 100_000n; i += 1n) {
      const key = i % 97n === 0n ? eui((i * 0x9e3779b97f4a7c15n) % 2n ** 64n) : eui(0x70b3d50000000000n + i);
      if (!expected.has(key)) expected.set(key, expected.size);
      expect(ordinals.add(key)).toBe(expected.get(key));
    }
    expect(ordinals.size).toBe(expected.size);
    expect([...expected].filter(([key, ordinal]) => ordinals.ordinalOf(key) !== ordinal)).toEqual([]);
  });
});
