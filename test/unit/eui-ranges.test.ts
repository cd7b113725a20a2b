import { describe, expect, it } from 'vitest';
import { childPrefixes, euiOf, rangePagesTarget, shortfall, worthSplitting } from '../../lambda/platform/eui-ranges.ts';

describe('childPrefixes', () => {
  it('splits the whole fleet at its first digit, between the first and the last EUI', () => {
    expect(childPrefixes('', '0004A30B001C0530', 'FFFFFFFF00000001')).toEqual([...'0123456789ABCDEF']);
    expect(childPrefixes('', '3A00000000000000', '5F00000000000000')).toEqual(['3', '4', '5']);
  });

  it('skips a shared vendor prefix in one step', () => {
    expect(childPrefixes('7', '70B3D50000000000', '70B3D5FFFFFFFFFF')).toEqual([...'0123456789ABCDEF'].map((digit) => `70B3D5${digit}`));
    expect(childPrefixes('', '70B3D5A000000000', '70B3D5C000000001')).toEqual(['70B3D5A', '70B3D5B', '70B3D5C']);
  });

  it('covers IMEIs among DevEUIs: decimal digits sort before hex letters', () => {
    expect(childPrefixes('', '352099001761481', 'A81758FFFE0312D0')).toEqual([...'3456789A']);
  });

  it('refuses what it cannot split without losing a device', () => {
    // One EUI is the start of the other: a device whose whole EUI is the prefix would be in no child.
    expect(childPrefixes('', '70B3', '70B3D5')).toBeUndefined();
    // The same EUI at both ends: nothing to split.
    expect(childPrefixes('', '70B3D50000000001', '70B3D50000000001')).toBeUndefined();
    // Not hex where they differ.
    expect(childPrefixes('', '70B3D5x', '70B3D5Z')).toBeUndefined();
    // Ends outside the range asked for (a platform that ignored the filter).
    expect(childPrefixes('8', '70B3D50000000000', '70B3D5FFFFFFFFFF')).toBeUndefined();
  });
});

describe('euiOf', () => {
  it('reads the EUI as the platform sorts it, upper case; none for a brief without one', () => {
    expect(euiOf({ EUI: '70b3d5e75e0013a2' })).toBe('70B3D5E75E0013A2');
    expect(euiOf({ EUI: '' })).toBeUndefined();
    expect(euiOf({ ref: 12 })).toBeUndefined();
    expect(euiOf({ EUI: 1234 })).toBeUndefined();
  });
});

describe('rangePagesTarget and worthSplitting', () => {
  it('shares the fleet pages among the sweeps the window can carry, two per range', () => {
    // 100,000 devices at 1000 a page, 32 sweeps: 16 ranges of 7 pages.
    expect(rangePagesTarget(100_000, 1000, 32)).toBe(7);
    expect(rangePagesTarget(1_000_000, 1000, 32)).toBe(63);
  });

  it('never asks for ranges under two pages', () => {
    expect(rangePagesTarget(1500, 1000, 32)).toBe(2);
    expect(rangePagesTarget(0, 1000, 1)).toBe(2);
  });

  it('splits only ranges longer than the target, and never one without a count', () => {
    expect(worthSplitting(7000, 1000, 7)).toBe(false);
    expect(worthSplitting(7001, 1000, 7)).toBe(true);
    expect(worthSplitting(undefined, 1000, 7)).toBe(false);
  });
});

describe('shortfall', () => {
  it('is nothing when the read reached the smaller of the counts', () => {
    // Deletions while reading: the count falls; every device that existed throughout was read.
    expect(shortfall(995, [1000, 995])).toBe(0);
    // Additions behind a cursor: the count rises; the read has every device of the start.
    expect(shortfall(1000, [1000, 1010])).toBe(0);
    expect(shortfall(5, [])).toBe(0);
  });

  it('is what is missing when even the smaller count is above the read', () => {
    expect(shortfall(5000, [12_000, 12_000])).toBe(7000);
    expect(shortfall(90, [100])).toBe(10);
  });
});
