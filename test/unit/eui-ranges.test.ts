import { describe, expect, it } from 'vitest';
import {
  euiOf,
  inRange,
  MIN_RANGE_PAGES,
  plannedCount,
  position,
  rangePagesTarget,
  shortfall,
  splitRange,
  worthSplitting,
} from '../../lambda/platform/eui-ranges.ts';

describe('splitRange', () => {
  const flat = (groups: string[][] | undefined) => groups?.flat();

  it('splits the whole fleet at the first digit where there are enough prefixes for even groups', () => {
    // 3 ranges wanted, 16 single digits between the ends: 3 groups of consecutive digits, five or six each.
    expect(splitRange('0004A30B001C0530', 'FFFFFFFF00000001', 3000, 1000)).toEqual([[...'01234'], [...'56789'], [...'ABCDEF']]);
    // Only the prefixes between the two ends can hold devices: 3 digits would make 2 groups of one and two, so two digits, 3A..5F.
    const groups = splitRange('3A00000000000000', '5F00000000000000', 2000, 1000);
    expect(groups?.map((group) => group.length)).toEqual([19, 19]);
    expect([groups?.[0]?.[0], groups?.at(-1)?.at(-1)]).toEqual(['3A', '5F']);
  });

  it('goes a digit deeper while the groups would be uneven, so that none is twice another and split again', () => {
    // 13 ranges wanted over the whole space: at one digit, 16 prefixes make three groups of two among ten of one.
    const groups = splitRange('0200000000000000', 'FD00000000000000', 100_000, 7700) ?? [];
    expect(groups).toHaveLength(13);
    expect(new Set(groups.flat().map((prefix) => prefix.length))).toEqual(new Set([2]));
    const sizes = groups.map((group) => group.length);
    expect(Math.max(...sizes) / Math.min(...sizes)).toBeLessThanOrEqual(20 / 19);
  });

  it('stops going deeper where a group would carry more than 32 devEUI filters', () => {
    // 20 ranges between 3A.. and 5F..: 38 two-digit prefixes are too few for even groups, and 593 three-digit ones are 30 a group.
    const deeper = splitRange('3A00000000000000', '5F00000000000000', 20_000, 1000) ?? [];
    expect(deeper).toHaveLength(20);
    expect(deeper.flat()).toHaveLength(0x5f0 - 0x3a0 + 1);
    expect(Math.max(...deeper.map((group) => group.length))).toBeLessThanOrEqual(32);
    // 28 ranges: 75 two-digit prefixes (under 4 a group), but 1,188 three-digit ones would be 43 a group: two digits it is.
    const capped = splitRange('70B3D50000000000', '70B3D50000004A37', 19_000, 700) ?? [];
    expect(new Set(capped.flat().map((prefix) => prefix.length))).toEqual(new Set([14]));
  });

  it('skips a shared vendor prefix in one step', () => {
    // 19,000 devices under 70B3D5, EUIs 70B3D50000000000 to 70B3D5000000_4A37: 28 ranges of 700.
    const groups = splitRange('70B3D50000000000', '70B3D50000004A37', 19_000, 700);
    expect(groups).toHaveLength(28);
    const prefixes = flat(groups) ?? [];
    expect(prefixes[0]).toBe('70B3D500000000');
    expect(prefixes.at(-1)).toBe('70B3D50000004A');
    expect(new Set(prefixes.map((prefix) => prefix.length))).toEqual(new Set([14]));
  });

  it('covers IMEIs among DevEUIs: decimal digits sort before hex letters', () => {
    const prefixes = flat(splitRange('352099001761481', 'A81758FFFE0312D0', 8000, 1000)) ?? [];
    expect([prefixes[0], prefixes.at(-1), prefixes.length]).toEqual(['35', 'A8', 0xa8 - 0x35 + 1]);
  });

  it('gives consecutive, disjoint groups that together hold every prefix between the ends', () => {
    const groups = splitRange('1000000000000000', '1FFFFFFFFFFFFFFF', 100_000, 3000) ?? [];
    const prefixes = groups.flat();
    expect(prefixes).toEqual([...prefixes].sort());
    expect(new Set(prefixes).size).toBe(prefixes.length);
    expect(prefixes.filter((prefix) => prefixes.some((other) => other !== prefix && other.startsWith(prefix)))).toEqual([]);
    expect(groups.filter((group) => group.length === 0)).toEqual([]);
  });

  it('keeps the groups of a range of several prefixes inside it', () => {
    // The range 6C..73 (two-digit prefixes): splitting at one digit would take in 60..6B and 74..7F.
    const groups = splitRange('6C00000000000000', '73FFFFFFFFFFFFFF', 4000, 1000, ['6C', '6D', '6E', '6F', '70', '71', '72', '73']) ?? [];
    const prefixes = groups.flat();
    expect(prefixes.every((prefix) => ['6C', '6D', '6E', '6F', '70', '71', '72', '73'].includes(prefix.slice(0, 2)))).toBe(true);
    expect([prefixes[0], prefixes.at(-1), prefixes.length]).toEqual(['6C0', '73F', 128]);
  });

  it('refuses what it cannot split without losing a device', () => {
    // One EUI is the start of the other: a device whose whole EUI is the shared part would be in no group.
    expect(splitRange('70B3', '70B3D5', 5000, 1000)).toBeUndefined();
    // The same EUI at both ends: nothing to split.
    expect(splitRange('70B3D50000000001', '70B3D50000000001', 5000, 1000)).toBeUndefined();
    // Not hex where they differ.
    expect(splitRange('70B3D5x', '70B3D5Z', 5000, 1000)).toBeUndefined();
  });
});

describe('inRange', () => {
  it("is a prefix match on any of the range's prefixes; no prefix is the whole fleet", () => {
    expect(inRange('70B3D5E75E0013A2', ['70B3D5E', '70B3D5F'])).toBe(true);
    expect(inRange('70B3D5D75E0013A2', ['70B3D5E', '70B3D5F'])).toBe(false);
    expect(inRange('352099001761481', [])).toBe(true);
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
  it('shares the fleet pages among the sweeps the window can carry', () => {
    // 1,000,000 devices at 1000 a page, 32 sweeps: ranges of 32 pages.
    expect(rangePagesTarget(1_000_000, 1000, 32)).toBe(32);
    expect(rangePagesTarget(1_000_000, 100, 32)).toBe(313);
  });

  it('never asks for ranges under MIN_RANGE_PAGES', () => {
    expect(rangePagesTarget(100_000, 1000, 32)).toBe(MIN_RANGE_PAGES);
    expect(rangePagesTarget(0, 1000, 1)).toBe(MIN_RANGE_PAGES);
  });

  it('splits only ranges longer than half again the target, and never one without a count', () => {
    expect(worthSplitting(12_000, 1000, 8)).toBe(false);
    expect(worthSplitting(12_001, 1000, 8)).toBe(true);
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

describe('plannedCount', () => {
  const hex16 = (value: number) => Math.floor(value).toString(16).toUpperCase().padStart(13, '0').padEnd(16, '0');
  /** `n` EUIs from `from` on, `step` apart, as fractions of the EUI space. */
  const run = (from: number, step: number, n: number) => Array.from({ length: n }, (_, i) => hex16((from + i * step) * 16 ** 13));
  const perRange = 8000;

  it('plans for the whole middle where the probes show the density the middle has', () => {
    // 1000 devices in each probe, every 1/100,000 of the space: the middle, 0.01 to 0.99, holds about 98,000.
    const asc = run(0, 0.00001, 1000);
    const desc = run(0.99999, -0.00001, 1000);
    expect(plannedCount(98_000, asc, desc, perRange)).toBe(98_000);
  });

  it('plans a few groups for what the probes predict where the middle holds far more (one OUI among sparse others)', () => {
    // The probes are sparse (1000 devices over a tenth of the space each) and the middle, 0.1 to 0.9, counts 95,000.
    const asc = run(0, 0.0001, 1000);
    const desc = run(0.9999, -0.0001, 1000);
    expect(plannedCount(95_000, asc, desc, perRange)).toBe(4 * perRange);
    // With groups of 1000, more than four groups' worth: what the density predicts, 10,000 a unit over 0.8 of the space.
    expect(plannedCount(2_000_000, asc, desc, 1000)).toBeCloseTo(8000, -2);
  });

  it('plans for the whole middle once a probe reaches into the concentration', () => {
    // The end probe's inner half lies in a dense block: the middle is that block, spread as densely.
    const asc = run(0.3, 0.0001, 1000);
    const desc = [...run(0.44, -0.0001, 500), ...run(0.43, -0.0000001, 500)];
    expect(plannedCount(90_000, asc, desc, perRange)).toBe(90_000);
  });

  it('plans for the whole middle where a probe is too short to tell', () => {
    expect(plannedCount(95_000, run(0, 0.1, 3), run(0.9, -0.01, 3), perRange)).toBe(95_000);
  });
});

describe('position', () => {
  it('orders EUIs as the platform sorts them, IMEIs among DevEUIs', () => {
    const euis = ['0004A30B001C0530', '352099001761481', '70B3D50000000001', '70B3D50000000002', 'A81758FFFE0312D0', 'FFFFFFFFFFFFFFFF'];
    const positions = euis.map(position);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(new Set(positions.slice(2, 4)).size).toBe(1);
    expect(position('8000000000000000')).toBe(0.5);
  });
});
