import { describe, expect, it } from 'vitest';
import { FleetSignalCounter, share } from '../../lambda/curate/fleet-signals.ts';

const RUN_TIME = new Date('2026-12-01T12:00:00Z');
const HOUR = 3_600_000;
const at = (hoursBefore: number) => RUN_TIME.getTime() - hoursBefore * HOUR;

/**
 * 20 devices: 10 ACTIVE, 3 INACTIVE, 2 BATTERY_LOW, 1 NEVER_SEEN, 1 ERROR and 3 counted as
 * OTHER (a state the list does not know, none, a number); 2 without an uplink, 2 silent
 * (one by a millisecond, one given as text), one exactly at the limit (not silent) and one
 * whose time is not a time.
 */
function knownFleet(): Record<string, unknown>[] {
  const states = [
    ...Array<string>(10).fill('ACTIVE'),
    ...Array<string>(3).fill('INACTIVE'),
    'BATTERY_LOW',
    'BATTERY_LOW',
    'NEVER_SEEN',
    'ERROR',
    'SUSPENDED',
    undefined,
    7,
  ];
  const uplinks: unknown[] = [undefined, null, at(24), at(24) - 1, new Date(at(72)).toISOString(), 'yesterday', ...Array<number>(14).fill(at(1))];
  return states.map((healthState, i) => ({ ref: String(i), ...(healthState === undefined ? {} : { healthState }), lastUpTimestamp: uplinks[i] }));
}

function counted(): FleetSignalCounter {
  const counter = new FleetSignalCounter(RUN_TIME, 24);
  for (const brief of knownFleet()) counter.add(brief);
  return counter;
}

describe('fleet signals of a known fleet', () => {
  it('counts devices by health state, folding the states it does not know into OTHER, and their shares', () => {
    const signals = counted().signals(undefined);
    expect(signals.devices_by_health).toEqual({ ACTIVE: 10, INACTIVE: 3, BATTERY_LOW: 2, NEVER_SEEN: 1, ERROR: 1, OTHER: 3 });
    expect(signals.health_share).toEqual({ ACTIVE: 50, INACTIVE: 15, BATTERY_LOW: 10, NEVER_SEEN: 5, ERROR: 5, OTHER: 15 });
    expect(signals.active_share).toBe(50);
  });

  it("counts silent devices from the run's time, older than the age and not at it, and never-seen devices apart", () => {
    const signals = counted().signals(undefined);
    expect(signals).toMatchObject({ silent_after_hours: 24, silent_devices: 2, silent_share: 10, never_seen_devices: 2, never_seen_share: 10 });
  });

  it('has no change and no shares of changes for a first run', () => {
    expect(counted().signals(undefined)).toMatchObject({ active_share_change: null, added_share: null, removed_share: null, changed_share: null });
  });

  it("gives the changes' shares (added of this run, removed and changed of the previous) and the ACTIVE share's change in points", () => {
    const signals = counted().signals({ added: 2, removed: 5, changed: 3, previousDevices: 25, previousActiveShare: 62.5 });
    expect(signals).toMatchObject({ added_share: 10, removed_share: 20, changed_share: 12, active_share_change: -12.5 });
  });

  it("has no ACTIVE change when the previous run's record holds no share", () => {
    expect(counted().signals({ added: 0, removed: 0, changed: 0, previousDevices: 20 }).active_share_change).toBeNull();
  });

  it('says 0 of an empty fleet, and rounds shares to four decimals', () => {
    expect(new FleetSignalCounter(RUN_TIME, 24).signals({ added: 0, removed: 3, changed: 0, previousDevices: 3 })).toMatchObject({
      active_share: 0,
      silent_share: 0,
      removed_share: 100,
    });
    expect(share(1, 3)).toBe(33.3333);
    expect(share(2, 3)).toBe(66.6667);
  });
});
