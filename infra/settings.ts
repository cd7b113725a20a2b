// The stack's inputs, apart from the stack: infra/app.ts reads and rejects a bad context
// before any construct exists, and tests check the rules without synthesizing.
import type { Construct } from 'constructs';
import { loadConfig } from '../lambda/common/config.ts';
import { closestVariable, DEFAULTS, isSafeKeyPrefix, VARIABLE_NAMES, VARIABLES } from '../lambda/common/env.ts';
import { loadCurationSettings } from '../lambda/curate/settings.ts';
import { ConfigError } from '../lambda/common/errors.ts';
import { FLEET_THRESHOLD_DEFAULTS, FLEET_THRESHOLD_KEYS, type FleetThresholds } from './fleet-thresholds.ts';
import { MAX_MEMORY_MB, MEMORY_MB } from './function-runtime.ts';

export const SERVICE_NAME = DEFAULTS.POWERTOOLS_SERVICE_NAME;
export const METRICS_NAMESPACE = DEFAULTS.POWERTOOLS_METRICS_NAMESPACE;

/** What an operator may choose at deploy time (`cdk deploy -c name=value`). */
export interface ExporterSettings {
  thingparkBaseUrl: string;
  clientIdParameterName: string;
  clientSecretParameterName: string;
  /** Key prefix of everything the function writes; also bounds its S3 permissions. */
  snapshotPrefix: string;
  scheduleExpression: string;
  /** The schedule's period, for the "no successful export within two periods" alarm. */
  schedulePeriodMinutes: number;
  alarmEmail?: string;
  /** Current versions under devices/ and manifests/ expire after this many days; never if absent. */
  snapshotExpirationDays?: number;
  /** Customer-managed key of the SecureString; absent for the AWS-managed `aws/ssm` key. */
  kmsKeyArn?: string;
  glueDatabaseName: string;
  /** Overrides of the function's tuning variables (names from lambda/common/env.ts). */
  functionEnvironment: Record<string, string>;
  /** The fleet alarms' thresholds (infra/fleet-thresholds.ts); an absent one is off. */
  fleetThresholds: FleetThresholds;
  /** The function's memory in MB, and so its CPU: the export, curation and every other request share it. */
  functionMemoryMb: number;
}

export const CONTEXT_DEFAULTS = {
  thingparkBaseUrl: 'https://community.thingpark.io',
  clientIdParameterName: '/thingpark-exporter/client-id',
  clientSecretParameterName: '/thingpark-exporter/client-secret',
  snapshotPrefix: DEFAULTS.SNAPSHOT_PREFIX,
  scheduleExpression: 'rate(1 hour)',
  glueDatabaseName: 'thingpark',
} as const;

/**
 * Every context key the stack reads: one per setting, so that a setting added without its
 * key fails to compile, but for the fleet alarms' thresholds, a key each (FLEET_THRESHOLD_KEYS).
 */
const CONTEXT_KEYS: Record<Exclude<keyof ExporterSettings, 'fleetThresholds'>, true> = {
  thingparkBaseUrl: true,
  clientIdParameterName: true,
  clientSecretParameterName: true,
  snapshotPrefix: true,
  scheduleExpression: true,
  schedulePeriodMinutes: true,
  alarmEmail: true,
  snapshotExpirationDays: true,
  kmsKeyArn: true,
  glueDatabaseName: true,
  functionEnvironment: true,
  functionMemoryMb: true,
};
export const CONTEXT_KEY_NAMES: readonly string[] = [...Object.keys(CONTEXT_KEYS), ...Object.values(FLEET_THRESHOLD_KEYS)];

/** Variables an operator may override through `functionEnvironment`; the stack sets the rest (functionEnvironmentOf). */
export const TUNABLE_VARIABLES: readonly string[] = VARIABLE_NAMES.filter((name) => !('setByStack' in VARIABLES[name]));

// Two alarm periods must fit in CloudWatch's 7-day evaluation limit.
const MAX_PERIOD_MINUTES = (7 * 24 * 60) / 2;

/** Reads and validates the context; every problem is reported at once, at synth time. */
export function settingsFromContext(scope: Construct): ExporterSettings {
  const problems: string[] = unknownContextKeys(Object.keys(scope.node.getAllContext() as Record<string, unknown>));
  const context = contextReader(scope, problems);
  const { scheduleExpression, schedulePeriodMinutes } = scheduleOf(context, problems);

  const snapshotPrefix = context.asText(context.get('snapshotPrefix') ?? CONTEXT_DEFAULTS.snapshotPrefix);
  // Written into IAM resources and the bucket policy, where "*" and "?" are wildcards.
  if (!isSafeKeyPrefix(snapshotPrefix)) {
    problems.push(
      `snapshotPrefix must be empty or a safe key prefix: folders of letters, digits, "_", "." and "-", each ending in "/" (no "*", "?", "$", "." or ".." folder), got "${snapshotPrefix}"`,
    );
  }

  const alarmEmail = context.optionalText('alarmEmail');
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    problems.push(`alarmEmail must be an e-mail address, got "${alarmEmail}"`);
  }

  const kmsKeyArn = context.optionalText('kmsKeyArn');
  if (kmsKeyArn !== undefined && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(kmsKeyArn)) {
    problems.push(`kmsKeyArn must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>; an alias cannot authorise kms:Decrypt), got "${kmsKeyArn}"`);
  }

  const glueDatabaseName = context.text('glueDatabaseName');
  if (!/^[a-z0-9_]{1,255}$/.test(glueDatabaseName)) {
    problems.push(`glueDatabaseName must be lower-case letters, digits and underscores, got "${glueDatabaseName}"`);
  }

  const functionEnvironment = environmentOverrides(context.get('functionEnvironment'), problems);

  const settings: ExporterSettings = {
    thingparkBaseUrl: context.text('thingparkBaseUrl'),
    clientIdParameterName: parameterName(context, 'clientIdParameterName'),
    clientSecretParameterName: parameterName(context, 'clientSecretParameterName'),
    snapshotPrefix,
    scheduleExpression,
    schedulePeriodMinutes,
    alarmEmail,
    snapshotExpirationDays: context.positiveInteger('snapshotExpirationDays', 36_500),
    kmsKeyArn,
    glueDatabaseName,
    functionEnvironment,
    fleetThresholds: fleetThresholdsOf(context),
    functionMemoryMb: functionMemoryOf(context),
  };
  problems.push(...functionProblems(settings, problems));
  if (problems.length > 0) throw new Error(`Invalid context for the exporter stack:\n- ${problems.join('\n- ')}`);
  return settings;
}

/**
 * Keys of the CDK's own, which the toolkit and construct libraries read: feature flags
 * (`@aws-cdk/aws-s3:...`, any library's `@scope/...`), the toolkit's settings
 * (`aws:cdk:bundling-stacks`, `aws-cdk:enableDiffNoFail`), lookups cached in
 * cdk.context.json (`availability-zones:account=...`), all with a colon or an "@", and the
 * few without one (`cdk-...`, the notices acknowledged with `cdk acknowledge`).
 */
function isCdkContextKey(key: string): boolean {
  return key.includes(':') || key.startsWith('@') || key.startsWith('cdk-') || key === 'acknowledged-issue-numbers';
}

/**
 * A key the stack does not read, refused with the one meant: a misspelt `-c` would
 * otherwise be ignored without a word and its default deployed (an hourly schedule, say).
 */
export function unknownContextKeys(keys: readonly string[]): string[] {
  const problems: string[] = [];
  for (const key of [...keys].sort()) {
    if (CONTEXT_KEY_NAMES.includes(key) || isCdkContextKey(key)) continue;
    // A word left off the end ("schedule") is nearer to its continuations than any edit distance says.
    const continued = CONTEXT_KEY_NAMES.filter((known) => known.toLowerCase().startsWith(key.toLowerCase()));
    const closest = closestVariable(key, CONTEXT_KEY_NAMES);
    const meant = closest !== undefined ? [closest] : key.length >= 3 ? continued : [];
    problems.push(
      `context key ${key} is not one the stack reads (${CONTEXT_KEY_NAMES.join(', ')}, and the CDK's own)` +
        (meant.length > 0 ? `: did you mean ${meant.join(' or ')}?` : ''),
    );
  }
  return problems;
}

type ContextReader = ReturnType<typeof contextReader>;

/** The context's values: an absent one is its default, a value of the wrong kind a problem. */
function contextReader(scope: Construct, problems: string[]) {
  const get = (name: string): unknown => scope.node.tryGetContext(name);
  // cdk.json may hold any JSON value: an object shows as JSON in a problem, not as "[object Object]".
  const asText = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));
  const text = (name: keyof typeof CONTEXT_DEFAULTS): string => {
    const value = get(name);
    if (value === undefined || value === null || value === '') return CONTEXT_DEFAULTS[name];
    if (typeof value !== 'string') problems.push(`${name} must be a string, got ${JSON.stringify(value)}`);
    return asText(value).trim();
  };
  const optionalText = (name: string): string | undefined => {
    const value = get(name);
    return value === undefined || value === null || value === '' ? undefined : asText(value).trim();
  };
  const positiveInteger = (name: string, max: number): number | undefined => {
    const raw = optionalText(name);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1 || value > max) {
      problems.push(`${name} must be an integer from 1 to ${max}, got "${raw}"`);
      return undefined;
    }
    return value;
  };
  return { get, asText, text, optionalText, positiveInteger, problems };
}

/**
 * The function's memory: at least the default, whose byte budgets (pages in flight and
 * waiting, upload parts, curation's row groups) were measured to fit it with room to spare
 * (docs/performance.md); more for the CPU that comes with it.
 */
function functionMemoryOf(context: ContextReader): number {
  const raw = context.optionalText('functionMemoryMb');
  if (raw === undefined) return MEMORY_MB;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= MEMORY_MB && value <= MAX_MEMORY_MB) return value;
  context.problems.push(`functionMemoryMb must be an integer from ${MEMORY_MB} to ${MAX_MEMORY_MB} (MB), got "${raw}"`);
  return MEMORY_MB;
}

/** The largest value each threshold may take: shares and points of a percentage, a band in standard deviations. */
const FLEET_THRESHOLD_MAX: Record<keyof FleetThresholds, number> = {
  massRemovalPercent: 100,
  healthDropPoints: 100,
  silentPercent: 100,
  silentAnomalyBand: 10,
};

/** Each fleet alarm's threshold: a number above 0, "off" (or false) to turn the alarm off, or its default. */
function fleetThresholdsOf(context: ContextReader): FleetThresholds {
  const thresholds: FleetThresholds = {};
  for (const [field, key] of Object.entries(FLEET_THRESHOLD_KEYS) as [keyof FleetThresholds, string][]) {
    const raw = context.optionalText(key);
    const max = FLEET_THRESHOLD_MAX[field];
    if (raw === undefined) {
      if (FLEET_THRESHOLD_DEFAULTS[field] !== undefined) thresholds[field] = FLEET_THRESHOLD_DEFAULTS[field];
    } else if (raw !== 'off' && raw !== 'false') {
      const value = Number(raw);
      if (Number.isFinite(value) && value > 0 && value <= max) thresholds[field] = value;
      else context.problems.push(`${key} must be a number above 0 and at most ${max}, or "off", got "${raw}"`);
    }
  }
  return thresholds;
}

function parameterName(context: ContextReader, name: 'clientIdParameterName' | 'clientSecretParameterName'): string {
  const value = context.text(name);
  if (!/^\/?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(value)) {
    context.problems.push(`${name} must be an SSM parameter name such as /thingpark-exporter/client-id, got "${value}"`);
  }
  return value;
}

/** The schedule, and the period the no-success alarm waits two of: given, or derived from a rate. */
function scheduleOf(context: ContextReader, problems: string[]): Pick<ExporterSettings, 'scheduleExpression' | 'schedulePeriodMinutes'> {
  const scheduleExpression = context.text('scheduleExpression');
  const derived = periodOfRate(scheduleExpression);
  if (!/^(rate|cron)\(.+\)$/.test(scheduleExpression)) {
    problems.push(`scheduleExpression must be rate(...) or cron(...), got "${scheduleExpression}"`);
  } else if (scheduleExpression.startsWith('rate(') && derived === undefined) {
    const fix = rateFix(scheduleExpression);
    problems.push(
      `scheduleExpression "${scheduleExpression}" is not a rate of minutes, hours or days as EventBridge Scheduler ` +
        `writes it (a whole number from 1, the singular unit for 1 and the plural for more)${fix ? `: use ${fix}` : ''}`,
    );
  } else if (scheduleExpression.startsWith('cron(')) {
    const problem = cronProblem(scheduleExpression);
    if (problem) problems.push(problem);
  }
  const given = context.positiveInteger('schedulePeriodMinutes', MAX_PERIOD_MINUTES);
  const schedulePeriodMinutes = given ?? derived ?? 0;
  if (schedulePeriodMinutes === 0 && scheduleExpression.startsWith('cron(')) {
    problems.push('schedulePeriodMinutes is required with a cron() schedule (the longest gap between two runs)');
  } else if (schedulePeriodMinutes > MAX_PERIOD_MINUTES) {
    // Only a rate gets here: a schedulePeriodMinutes over the limit is refused above.
    problems.push(
      `scheduleExpression "${scheduleExpression}" runs every ${schedulePeriodMinutes} minutes; the no-success alarm needs two ` +
        `periods within CloudWatch's 7 days, so at most ${MAX_PERIOD_MINUTES} minutes: use a shorter rate`,
    );
  }
  return { scheduleExpression, schedulePeriodMinutes };
}

/**
 * The function's own problems with the environment the stack gives it. The function
 * validates its environment on every cold start; running the same check here turns a bad
 * context value into a failed synth instead of a failed first run.
 */
function functionProblems(settings: ExporterSettings, reported: readonly string[]): string[] {
  try {
    loadConfig({ ...functionEnvironmentOf(settings, 'bucket-known-at-deploy-time') });
    loadCurationSettings(settings.functionEnvironment);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return inContextTerms(error.problems, settings, reported);
  }
  return [];
}

/** The context key each variable the stack derives from it; the others come from functionEnvironment. */
const CONTEXT_KEY_OF: Record<string, keyof typeof CONTEXT_DEFAULTS> = {
  THINGPARK_BASE_URL: 'thingparkBaseUrl',
  THINGPARK_CLIENT_ID_PARAM: 'clientIdParameterName',
  THINGPARK_CLIENT_SECRET_PARAM: 'clientSecretParameterName',
  SNAPSHOT_PREFIX: 'snapshotPrefix',
};

/**
 * The function's own configuration problems, said in the terms the operator used: the
 * context key and the value given with `-c`, or the variable of functionEnvironment. A
 * problem of a value the operator never set (the token URL the function derives from
 * thingparkBaseUrl) is left out when the key it comes from is reported already, and so is
 * a second word on a key this file has already refused.
 */
function inContextTerms(configProblems: readonly string[], settings: ExporterSettings, reported: readonly string[]): string[] {
  const said = [...reported];
  for (const problem of configProblems) {
    const named = problem.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? [];
    const [first = ''] = named;
    if (named.some((name) => Object.hasOwn(settings.functionEnvironment, name))) {
      said.push(`functionEnvironment: ${problem}`);
      continue;
    }
    const key = first === 'THINGPARK_TOKEN_URL' ? 'thingparkBaseUrl' : CONTEXT_KEY_OF[first];
    if (key === undefined) {
      said.push(problem);
      continue;
    }
    if (said.some((earlier) => earlier.startsWith(key))) continue;
    const value = String(settings[key]);
    // The same rule as the function's: a value with "@" may hold a user:password, never echoed.
    const shown = value.includes('@') || problem.includes(' got "') ? '' : `, got "${value}"`;
    said.push(
      first === 'THINGPARK_TOKEN_URL'
        ? `thingparkBaseUrl "${value}" gives a token URL that ${problem.slice(first.length).trim()}`
        : `${key}${problem.slice(first.length)}${shown}`,
    );
  }
  return said.slice(reported.length);
}

/** The rate EventBridge Scheduler accepts for a near miss ("rate(1 hours)", "rate(5 mins)"), if there is one. */
function rateFix(expression: string): string | undefined {
  const match = /^rate\(\s*(\d+)\s*([A-Za-z]+)\s*\)$/.exec(expression);
  if (!match) return undefined;
  const count = Number(match[1]);
  const unit = { m: 'minute', h: 'hour', d: 'day' }[(match[2] as string).charAt(0).toLowerCase()];
  if (count < 1 || unit === undefined) return undefined;
  return `rate(${count} ${unit}${count === 1 ? '' : 's'})`;
}

/**
 * What is wrong with a cron() expression for EventBridge Scheduler, if anything it can tell
 * offline: six fields (minutes hours day-of-month month day-of-week year), one of the two
 * day fields "?". A Unix cron of five fields passes nothing else, so it is caught here
 * rather than by CloudFormation halfway through a deploy.
 */
function cronProblem(expression: string): string | undefined {
  const fields = expression.slice('cron('.length, -1).trim().split(/\s+/);
  const layout = 'minutes hours day-of-month month day-of-week year';
  if (fields.length !== 6) {
    let fix = '';
    if (fields.length === 5) {
      const [minutes, hours, dayOfMonth, month, dayOfWeek] = fields as [string, string, string, string, string];
      if (dayOfWeek === '*') fix = `cron(${minutes} ${hours} ${dayOfMonth} ${month} ? *)`;
      else if (dayOfMonth === '*') fix = `cron(${minutes} ${hours} ? ${month} ${dayOfWeek} *)`;
    }
    return (
      `scheduleExpression "${expression}" has ${fields.length} field${fields.length === 1 ? '' : 's'}; EventBridge Scheduler's ` +
      `cron has 6 (${layout})${fix ? `: use ${fix}` : ', e.g. cron(0 6 * * ? *) for 06:00 UTC every day'}`
    );
  }
  const [, , dayOfMonth, , dayOfWeek] = fields;
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    return (
      `scheduleExpression "${expression}": exactly one of day-of-month (the 3rd field) and day-of-week (the 5th) ` +
      'must be "?", e.g. cron(0 6 * * ? *) or cron(0 6 ? * MON *)'
    );
  }
  return undefined;
}

function periodOfRate(expression: string): number | undefined {
  const match = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (!match) return undefined;
  const count = Number(match[1]);
  const unit = match[2] as string;
  // Scheduler accepts the singular unit for 1 and the plural for anything else.
  if (count < 1 || (count === 1) !== !unit.endsWith('s')) return undefined;
  return count * (unit.startsWith('minute') ? 1 : unit.startsWith('hour') ? 60 : 1440);
}

function environmentOverrides(raw: unknown, problems: string[]): Record<string, string> {
  if (raw === undefined || raw === null || raw === '') return {};
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      problems.push(`functionEnvironment must be a JSON object, got "${raw}"`);
      return {};
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push('functionEnvironment must be an object of variable names to values');
    return {};
  }
  const overrides: Record<string, string> = {};
  for (const [name, setting] of Object.entries(value)) {
    if (!TUNABLE_VARIABLES.includes(name)) {
      const suggestion = closestVariable(name, TUNABLE_VARIABLES);
      problems.push(`functionEnvironment may set only ${TUNABLE_VARIABLES.join(', ')}; got ${name}` + (suggestion ? `: did you mean ${suggestion}?` : ''));
    } else {
      overrides[name] = String(setting);
    }
  }
  return overrides;
}

export function functionEnvironmentOf(settings: ExporterSettings, bucketName: string): Record<string, string> {
  return {
    ...settings.functionEnvironment,
    THINGPARK_BASE_URL: settings.thingparkBaseUrl,
    THINGPARK_CLIENT_ID_PARAM: settings.clientIdParameterName,
    THINGPARK_CLIENT_SECRET_PARAM: settings.clientSecretParameterName,
    SNAPSHOT_BUCKET: bucketName,
    SNAPSHOT_PREFIX: settings.snapshotPrefix,
    POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
    POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
  };
}
