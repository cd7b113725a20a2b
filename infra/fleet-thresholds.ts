// The fleet alarms' thresholds apart from CDK: the stack's context reads them
// (infra/settings.ts), its alarms draw them (infra/monitoring/fleet-alarms.ts), and
// `npm start` says which alarm a run would have raised, all from these defaults.
import type { FleetSignals } from '../lambda/curate/fleet-signals.ts';

/** Each alarm's threshold; an absent one is turned off. */
export interface FleetThresholds {
  /** Mass removal: removed devices above this share (%) of the previous run's fleet. */
  massRemovalPercent?: number;
  /** Health drop: the ACTIVE share falling by more than this many points since the run before. */
  healthDropPoints?: number;
  /** Silent devices above this share (%) of the run's fleet. */
  silentPercent?: number;
  /** Anomaly detection on the silent count, this many standard deviations wide; off unless given. */
  silentAnomalyBand?: number;
}

/** The context keys (`cdk deploy -c <key>=<number>|off`), each with its default. */
export const FLEET_THRESHOLD_KEYS = {
  massRemovalPercent: 'fleetMassRemovalPercent',
  healthDropPoints: 'fleetHealthDropPoints',
  silentPercent: 'fleetSilentPercent',
  silentAnomalyBand: 'fleetSilentAnomalyBand',
} as const satisfies Record<keyof FleetThresholds, string>;

/**
 * The defaults, each chosen for a reason:
 * - 10 % removed: a day's churn in a managed fleet is well under 1 %; a tenth of it gone
 *   from one run to the next is a subscription or domain change, or a bulk delete.
 * - 10 points of ACTIVE: one gateway of a dense deployment serves a few percent of it; ten
 *   points is an outage of several, or of the network server's side.
 * - 20 % silent: devices that report hourly to daily sit well under it, while a site or an
 *   area losing coverage for a day crosses it.
 * - anomaly detection off: it learns a rhythm over two weeks and only fleets with one
 *   (steady reporting, stable size) gain from it.
 */
export const FLEET_THRESHOLD_DEFAULTS: FleetThresholds = { massRemovalPercent: 10, healthDropPoints: 10, silentPercent: 20 };

/** A threshold alarm's verdict on one run's signals (anomaly detection needs history, so it is not judged here). */
export interface FleetAlarmVerdict {
  alarm: 'mass removal' | 'health drop' | 'silent share';
  /** The signal, as the function emits it; null when the run has none (a first run has no removed share). */
  value: number | null;
  threshold: number;
  fired: boolean;
}

/** Which threshold alarms the run's signals would raise, in the terms of their CloudWatch alarms. */
export function fleetAlarmVerdicts(signals: FleetSignals, thresholds: FleetThresholds): FleetAlarmVerdict[] {
  const verdicts: FleetAlarmVerdict[] = [];
  const judge = (
    alarm: FleetAlarmVerdict['alarm'],
    value: number | null,
    threshold: number | undefined,
    fires: (value: number, threshold: number) => boolean,
  ) => {
    if (threshold !== undefined) verdicts.push({ alarm, value, threshold, fired: value !== null && fires(value, threshold) });
  };
  judge('mass removal', signals.removed_share, thresholds.massRemovalPercent, (value, threshold) => value > threshold);
  judge('health drop', signals.active_share_change, thresholds.healthDropPoints, (value, threshold) => value < -threshold);
  judge('silent share', signals.silent_share, thresholds.silentPercent, (value, threshold) => value > threshold);
  return verdicts;
}
