import { ConfigError } from '../common/errors.ts';

type Env = Record<string, string | undefined>;

/** What curation is told by its environment, validated once per cold start. */
export interface CurationSettings {
  /** Top-level brief fields whose change makes a device `changed`, in this order. */
  changeFields: readonly string[];
  /** Curate right after an export only when at least this many seconds are left. */
  inlineMinRemainingSeconds: number;
}

/**
 * Defaults, each chosen for a reason:
 * - compared fields: the configuration and state of a device that the platform's public
 *   code names (health, name, model, subscription, routing profile, alarm level). Telemetry
 *   changes on nearly every uplink and would make nearly every device `changed`.
 * - 300 s left to curate inline: curating a million simulated devices took 45 s (52 s of
 *   CPU on two cores) in the benchmark (docs/performance.md#curation); the function's
 *   1024 MB give about 0.6 of a core, so about 90 s, and 300 s leaves room for fleets of
 *   about three million devices and a slow S3. A run that does not fit is skipped (and
 *   alarmed) rather than stopped at the deadline, and curated by `{"curate": "<runId>"}`.
 */
export const CURATE_DEFAULTS = {
  CURATE_CHANGE_FIELDS: 'healthState,name,model,networkSubscription,appServersRoutingProfile,alarmLevel',
  CURATE_INLINE_MIN_REMAINING_SECONDS: 300,
} as const;

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

const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function loadCurationSettings(env: Env = process.env): CurationSettings {
  const problems: string[] = [];
  const rawFields = env.CURATE_CHANGE_FIELDS?.trim() || CURATE_DEFAULTS.CURATE_CHANGE_FIELDS;
  const changeFields = rawFields.split(',').map((field) => field.trim());
  const bad = changeFields.filter((field) => !FIELD.test(field));
  if (bad.length > 0) {
    problems.push(`CURATE_CHANGE_FIELDS must be a comma-separated list of top-level brief field names (letters, digits, "_"), got "${rawFields}"`);
  }
  const telemetry = changeFields.filter((field) => TELEMETRY_FIELDS.includes(field));
  if (telemetry.length > 0) {
    problems.push(`CURATE_CHANGE_FIELDS must not name telemetry, which changes with every uplink: remove ${telemetry.join(', ')}`);
  }
  if (new Set(changeFields).size !== changeFields.length) problems.push(`CURATE_CHANGE_FIELDS names a field twice: "${rawFields}"`);
  const rawMargin = env.CURATE_INLINE_MIN_REMAINING_SECONDS?.trim();
  let inlineMinRemainingSeconds: number = CURATE_DEFAULTS.CURATE_INLINE_MIN_REMAINING_SECONDS;
  if (rawMargin) {
    inlineMinRemainingSeconds = Number(rawMargin);
    if (!Number.isInteger(inlineMinRemainingSeconds) || inlineMinRemainingSeconds < 0 || inlineMinRemainingSeconds > 900) {
      problems.push(`CURATE_INLINE_MIN_REMAINING_SECONDS must be an integer from 0 to 900 (900 never curates inline), got "${rawMargin}"`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { changeFields, inlineMinRemainingSeconds };
}

let loaded: CurationSettings | undefined;

/** The settings of this cold start: read from the environment the first time, then kept. */
export function curationSettings(): CurationSettings {
  loaded ??= loadCurationSettings();
  return loaded;
}
