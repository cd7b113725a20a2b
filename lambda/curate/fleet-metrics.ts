import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { HEALTH_STATES, type FleetSignals } from './fleet-signals.ts';

/**
 * The metric names of a run's fleet signals (lambda/curate/fleet-signals.ts), which the
 * stack's fleet alarms and dashboard (infra/monitoring/fleet-alarms.ts) name too. Each is
 * the signal's own name in camelCase; only the health state is a dimension, and it has as
 * many values as HEALTH_STATES, never one per device.
 */
export const FLEET_METRICS = {
  devicesByHealth: 'devicesByHealth',
  healthShare: 'healthShare',
  activeShare: 'activeShare',
  activeShareChange: 'activeShareChange',
  silentDevices: 'silentDevices',
  silentShare: 'silentShare',
  neverSeenDevices: 'neverSeenDevices',
  neverSeenShare: 'neverSeenShare',
  addedShare: 'addedShare',
  removedShare: 'removedShare',
  changedShare: 'changedShare',
} as const;

/** The dimension that tells devicesByHealth and healthShare apart per state. */
export const HEALTH_DIMENSION = 'healthState';

/**
 * Adds a run's fleet signals to `metrics` (stored, for the caller to publish with the
 * run's other figures), and emits the per-state ones at once, each with its own
 * dimension. A share that has no value (the first run has no previous one) is not emitted:
 * a missing datapoint is what the alarms treat as nothing to say.
 */
export function addFleetMetrics(metrics: Metrics, signals: FleetSignals): void {
  for (const state of HEALTH_STATES) {
    const single = metrics.singleMetric();
    single.addDimension(HEALTH_DIMENSION, state);
    single.addMetric(FLEET_METRICS.devicesByHealth, MetricUnit.Count, signals.devices_by_health[state]);
    const shareOf = metrics.singleMetric();
    shareOf.addDimension(HEALTH_DIMENSION, state);
    shareOf.addMetric(FLEET_METRICS.healthShare, MetricUnit.Percent, signals.health_share[state]);
  }
  metrics.addMetric(FLEET_METRICS.activeShare, MetricUnit.Percent, signals.active_share);
  metrics.addMetric(FLEET_METRICS.silentDevices, MetricUnit.Count, signals.silent_devices);
  metrics.addMetric(FLEET_METRICS.silentShare, MetricUnit.Percent, signals.silent_share);
  metrics.addMetric(FLEET_METRICS.neverSeenDevices, MetricUnit.Count, signals.never_seen_devices);
  metrics.addMetric(FLEET_METRICS.neverSeenShare, MetricUnit.Percent, signals.never_seen_share);
  const optional: [string, number | null][] = [
    [FLEET_METRICS.activeShareChange, signals.active_share_change],
    [FLEET_METRICS.addedShare, signals.added_share],
    [FLEET_METRICS.removedShare, signals.removed_share],
    [FLEET_METRICS.changedShare, signals.changed_share],
  ];
  // Points, not a percentage of anything: CloudWatch has no unit for them.
  for (const [name, value] of optional)
    if (value !== null) metrics.addMetric(name, name === FLEET_METRICS.activeShareChange ? MetricUnit.NoUnit : MetricUnit.Percent, value);
}
