/**
 * What `npm start` shows of a run's fleet signals: the figures its curation computed
 * (lambda/curate/fleet-signals.ts) and which of the stack's fleet alarms they would have
 * raised, judged from the stack's own defaults (infra/fleet-thresholds.ts).
 */
import { FLEET_THRESHOLD_DEFAULTS, fleetAlarmVerdicts, type FleetAlarmVerdict } from '../../infra/fleet-thresholds.ts';
import type { CurationOutcome } from '../../lambda/curate/invoke.ts';
import { HEALTH_STATES, type FleetSignals } from '../../lambda/curate/fleet-signals.ts';

const UNITS: Record<FleetAlarmVerdict['alarm'], { what: string; unit: string; sign: 1 | -1 }> = {
  'mass removal': { what: "of the previous run's devices removed", unit: ' %', sign: 1 },
  'health drop': { what: 'ACTIVE share since the run before', unit: ' points', sign: -1 },
  'silent share': { what: 'of the fleet silent', unit: ' %', sign: 1 },
};

/** Prints the run's signals and the alarms' verdicts; returns the verdicts (none when the run was not curated). */
export function printSignals(curation: CurationOutcome): FleetAlarmVerdict[] {
  const signals = 'signals' in curation ? curation.signals : undefined;
  if (!signals) return [];
  const line = (label: string, value: string) => console.log(`  ${label.padEnd(16)} ${value}`);
  console.log('Its fleet signals (the curation record\'s "signals", and the metrics the function emits):');
  line('health', HEALTH_STATES.map((state) => `${state} ${count(signals.devices_by_health[state], signals.health_share[state])}`).join(', '));
  line(
    'ACTIVE share',
    `${signals.active_share} %` +
      (signals.active_share_change === null ? ' (no run before to compare with)' : `, ${signed(signals.active_share_change)} points since the run before`),
  );
  line(`silent > ${signals.silent_after_hours} h`, count(signals.silent_devices, signals.silent_share));
  line('never seen', count(signals.never_seen_devices, signals.never_seen_share));
  if ('added' in curation) line('changes', changesOf(curation, signals));
  const verdicts = fleetAlarmVerdicts(signals, FLEET_THRESHOLD_DEFAULTS);
  console.log("The stack's fleet alarms, at their default thresholds, on this run:");
  for (const { alarm, value, threshold, fired } of verdicts) {
    const { what, unit, sign } = UNITS[alarm];
    const limit = `${sign < 0 ? 'below ' : 'above '}${sign * threshold}${unit}`;
    line(
      alarm,
      value === null
        ? `no data (a first run has no run before): quiet`
        : `${fired ? 'WOULD FIRE' : 'quiet'}: ${sign < 0 ? signed(value) : value}${unit} ${what}, alarm ${limit}`,
    );
  }
  return verdicts;
}

function changesOf(curation: { added: number; removed: number; changed: number }, signals: FleetSignals): string {
  if (signals.removed_share === null) return 'none: a first run has nothing to compare with';
  return `${count(curation.added, signals.added_share)} added, ${count(curation.removed, signals.removed_share)} removed, ${count(curation.changed, signals.changed_share)} changed`;
}

function count(n: number, share: number | null): string {
  return `${n} (${share ?? '-'} %)`;
}

function signed(value: number): string {
  return value > 0 ? `+${value}` : String(value);
}
