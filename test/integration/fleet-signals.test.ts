import { describe, expect, it } from 'vitest';
import type { CuratedRunSummary } from '../../lambda/handler.ts';
import type { CurationRecord } from '../../lambda/curate/record.ts';
import { FLEET_THRESHOLD_DEFAULTS, fleetAlarmVerdicts } from '../../infra/fleet-thresholds.ts';
import { DEMO, exporter, freshPrefix, invoke, reset, useHarness } from '../faults/harness.ts';
import { emfDatapoints, type Datapoint } from '../support/emf.ts';
import { simulatedBrief, type Brief } from '../../tools/stand-ins/fleet.ts';
import { getJson, testS3 } from '../../tools/inspect/snapshot.ts';

const h = useHarness();
const HOUR = 3_600_000;

/**
 * Device i of the known fleets: 0-11 ACTIVE, 12-15 INACTIVE, 16-17 BATTERY_LOW, 18
 * NEVER_SEEN with no uplink at all, 19 in a state the exporter does not know; 20 and 21,
 * added by the second run, ACTIVE. Uplinks an hour before the run, but 12-14 (and, in the
 * second run, 15) two days before it.
 */
function device(i: number, now: number, second: boolean): Brief {
  const healthState = i < 12 || i >= 20 ? 'ACTIVE' : i < 16 ? 'INACTIVE' : i < 18 ? 'BATTERY_LOW' : i === 18 ? 'NEVER_SEEN' : 'MAINTENANCE';
  const silent = (i >= 12 && i <= 14) || (second && i === 15);
  const { lastUpTimestamp: _up, ...brief } = simulatedBrief(i);
  return { ...brief, healthState, ...(i === 18 ? {} : { lastUpTimestamp: now - (silent ? 48 : 1) * HOUR }) };
}

/** The datapoints of the service's metrics, by name (and health state), one run's worth. */
function byName(points: Datapoint[]): Record<string, number> {
  const named: Record<string, number> = {};
  for (const { namespace, metricName, dimensions, value } of points) {
    expect(namespace).toBe('ThingParkExporter');
    expect(dimensions.service).toBe('thingpark-exporter');
    // Only the health state may be a dimension of its own: never a device.
    expect(Object.keys(dimensions).filter((name) => name !== 'service')).toEqual(dimensions.healthState === undefined ? [] : ['healthState']);
    named[dimensions.healthState ? `${metricName}.${dimensions.healthState}` : metricName] = value;
  }
  return named;
}

describe('fleet signals through the handler: two known fleets, exported and curated', () => {
  it('emits and records the health, silence and changes of each run, exactly', async () => {
    const prefix = freshPrefix();
    const now = Date.now();
    const runOf = async (indexes: number[], second: boolean, label: string) => {
      await reset(h, {
        fleet: indexes.map((i) => (second && i >= 4 && i <= 9 ? { ...device(i, now, second), healthState: 'INACTIVE' } : device(i, now, second))),
      });
      const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', POWERTOOLS_METRICS_DISABLED: 'false' });
      const outcome = await invoke(h, handler, { label });
      const summary = outcome.summary as CuratedRunSummary;
      expect(summary.curation.status, outcome.output.slice(-2000)).toBe('curated');
      const record = await getJson<CurationRecord>(testS3(h.s3Url), DEMO.bucket, `${prefix}curated/runs/${summary.runId}.json`);
      return { summary, record, metrics: byName(emfDatapoints(outcome.output)) };
    };

    const first = await runOf([...Array(20).keys()], false, 'first');
    expect(first.record.signals).toEqual({
      silent_after_hours: 24,
      devices_by_health: { ACTIVE: 12, INACTIVE: 4, BATTERY_LOW: 2, NEVER_SEEN: 1, ERROR: 0, OTHER: 1 },
      health_share: { ACTIVE: 60, INACTIVE: 20, BATTERY_LOW: 10, NEVER_SEEN: 5, ERROR: 0, OTHER: 5 },
      active_share: 60,
      active_share_change: null,
      silent_devices: 3,
      silent_share: 15,
      never_seen_devices: 1,
      never_seen_share: 5,
      added_share: null,
      removed_share: null,
      changed_share: null,
    });
    expect(first.summary.curation).toMatchObject({ signals: first.record.signals });
    expect(first.metrics).toMatchObject({
      'devicesByHealth.ACTIVE': 12,
      'devicesByHealth.OTHER': 1,
      'healthShare.INACTIVE': 20,
      activeShare: 60,
      silentDevices: 3,
      silentShare: 15,
      neverSeenDevices: 1,
      neverSeenShare: 5,
    });
    // A first run has nothing to compare with: no change is emitted, and no alarm can fire on one.
    for (const name of ['activeShareChange', 'addedShare', 'removedShare', 'changedShare']) expect(first.metrics).not.toHaveProperty(name);

    // 0-3 removed, 20 and 21 added, 4-9 leave ACTIVE, 15 falls silent.
    const second = await runOf([...Array(22).keys()].slice(4), true, 'second');
    expect(second.record).toMatchObject({ added: 2, removed: 4, changed: 6 });
    expect(second.record.signals).toEqual({
      silent_after_hours: 24,
      devices_by_health: { ACTIVE: 4, INACTIVE: 10, BATTERY_LOW: 2, NEVER_SEEN: 1, ERROR: 0, OTHER: 1 },
      health_share: { ACTIVE: 22.2222, INACTIVE: 55.5556, BATTERY_LOW: 11.1111, NEVER_SEEN: 5.5556, ERROR: 0, OTHER: 5.5556 },
      active_share: 22.2222,
      active_share_change: -37.7778,
      silent_devices: 4,
      silent_share: 22.2222,
      never_seen_devices: 1,
      never_seen_share: 5.5556,
      added_share: 11.1111,
      removed_share: 20,
      changed_share: 30,
    });
    expect(second.metrics).toMatchObject({
      'devicesByHealth.ACTIVE': 4,
      'devicesByHealth.INACTIVE': 10,
      'devicesByHealth.ERROR': 0,
      'healthShare.ACTIVE': 22.2222,
      activeShare: 22.2222,
      activeShareChange: -37.7778,
      silentDevices: 4,
      silentShare: 22.2222,
      addedShare: 11.1111,
      removedShare: 20,
      changedShare: 30,
      devicesAdded: 2,
      devicesRemoved: 4,
      devicesChanged: 6,
    });
    const fired = (signals: CurationRecord['signals']) =>
      fleetAlarmVerdicts(signals!, FLEET_THRESHOLD_DEFAULTS)
        .filter((v) => v.fired)
        .map((v) => v.alarm);
    expect(fired(first.record.signals)).toEqual([]);
    expect(fired(second.record.signals)).toEqual(['mass removal', 'health drop', 'silent share']);
    // Two cold starts, each exporting and curating: seconds alone, more on a busy machine.
  }, 120_000);
});
