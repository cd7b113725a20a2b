import { noProblems, readFieldList, readInteger, readText, type Env } from '../common/env.ts';
import { ConfigError } from '../common/errors.ts';

/** What curation is told by its environment, validated once per cold start. */
export interface CurationSettings {
  /** Top-level brief fields whose change makes a device `changed`, in this order. */
  changeFields: readonly string[];
  /** Curate right after an export only when at least this many seconds are left. */
  inlineMinRemainingSeconds: number;
  /** A device with no uplink for longer than this, at the run's time, counts as silent. */
  silentAfterHours: number;
}

/**
 * Fields that change with every uplink or downlink: a device whose only change is one of
 * these has not changed in any sense an operator acts on, so they cannot be compared.
 */
export const TELEMETRY_FIELDS: readonly string[] = [
  'lastUpTimestamp',
  'lastDwTimestamp',
  'lastRSSI',
  'lastSNR',
  'avgRSSI',
  'avgSNR',
  'lastSF',
  'lastBatLevel',
  'alarmCount',
  'exportRunId',
];

/** Curation's settings, from the CURATE_ variables of common/env.ts; every problem is reported at once. */
export function loadCurationSettings(env: Env = process.env): CurationSettings {
  const problems = noProblems();
  const changeFields = readFieldList(env, 'CURATE_CHANGE_FIELDS', problems);
  const telemetry = changeFields.filter((field) => TELEMETRY_FIELDS.includes(field));
  if (telemetry.length > 0) {
    problems.list.push(`CURATE_CHANGE_FIELDS must not name telemetry, which changes with every uplink: remove ${telemetry.join(', ')}`);
  }
  if (new Set(changeFields).size !== changeFields.length) {
    problems.list.push(`CURATE_CHANGE_FIELDS names a field twice: "${readText(env, 'CURATE_CHANGE_FIELDS', problems)}"`);
  }
  const inlineMinRemainingSeconds = readInteger(env, 'CURATE_INLINE_MIN_REMAINING_SECONDS', problems);
  const silentAfterHours = readInteger(env, 'CURATE_SILENT_AFTER_HOURS', problems);
  if (problems.list.length > 0) throw new ConfigError(problems.list);
  return { changeFields, inlineMinRemainingSeconds, silentAfterHours };
}

let loaded: CurationSettings | undefined;

/** The settings of this cold start: read from the environment the first time, then kept. */
export function curationSettings(): CurationSettings {
  loaded ??= loadCurationSettings();
  return loaded;
}
