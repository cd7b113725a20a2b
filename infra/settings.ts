// The stack's inputs, apart from the stack: infra/app.ts reads and rejects a bad context
// before any construct exists, and tests check the rules without synthesizing.
import type { Construct } from 'constructs';
import { DEFAULTS, loadConfig } from '../lambda/config.ts';

export const SERVICE_NAME = 'thingpark-exporter';
export const METRICS_NAMESPACE = 'ThingParkExporter';

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
  /** Overrides of the function's tuning variables (names from lambda/config.ts). */
  functionEnvironment: Record<string, string>;
}

export const CONTEXT_DEFAULTS = {
  thingparkBaseUrl: 'https://community.thingpark.io',
  clientIdParameterName: '/thingpark-exporter/client-id',
  clientSecretParameterName: '/thingpark-exporter/client-secret',
  snapshotPrefix: DEFAULTS.SNAPSHOT_PREFIX,
  scheduleExpression: 'rate(1 hour)',
  glueDatabaseName: 'thingpark',
} as const;

/** Variables an operator may override through `functionEnvironment`; the stack owns the rest. */
export const TUNABLE_VARIABLES: readonly string[] = [
  'THINGPARK_TOKEN_URL',
  'POWERTOOLS_LOG_LEVEL',
  ...Object.keys(DEFAULTS).filter((name) => name !== 'SNAPSHOT_PREFIX'),
];

// Two alarm periods must fit in CloudWatch's 7-day evaluation limit.
const MAX_PERIOD_MINUTES = 7 * 24 * 60 / 2;

/** Reads and validates the context; every problem is reported at once, at synth time. */
export function settingsFromContext(scope: Construct): ExporterSettings {
  const problems: string[] = [];
  const get = (name: string): unknown => scope.node.tryGetContext(name);
  const text = (name: keyof typeof CONTEXT_DEFAULTS): string => {
    const value = get(name);
    if (value === undefined || value === null || value === '') return CONTEXT_DEFAULTS[name];
    if (typeof value !== 'string') problems.push(`${name} must be a string, got ${JSON.stringify(value)}`);
    return String(value).trim();
  };
  const optionalText = (name: string): string | undefined => {
    const value = get(name);
    return value === undefined || value === null || value === '' ? undefined : String(value).trim();
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

  const parameterName = (name: 'clientIdParameterName' | 'clientSecretParameterName'): string => {
    const value = text(name);
    if (!/^\/?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(value)) {
      problems.push(`${name} must be an SSM parameter name such as /thingpark-exporter/client-id, got "${value}"`);
    }
    return value;
  };

  const scheduleExpression = text('scheduleExpression');
  const derived = periodOfRate(scheduleExpression);
  if (!/^(rate|cron)\(.+\)$/.test(scheduleExpression)) {
    problems.push(`scheduleExpression must be rate(...) or cron(...), got "${scheduleExpression}"`);
  } else if (scheduleExpression.startsWith('rate(') && derived === undefined) {
    problems.push(`scheduleExpression "${scheduleExpression}" is not a rate of minutes, hours or days`);
  }
  const given = positiveInteger('schedulePeriodMinutes', MAX_PERIOD_MINUTES);
  const schedulePeriodMinutes = given ?? derived ?? 0;
  if (schedulePeriodMinutes === 0 && scheduleExpression.startsWith('cron(')) {
    problems.push('schedulePeriodMinutes is required with a cron() schedule (the longest gap between two runs)');
  } else if (schedulePeriodMinutes > MAX_PERIOD_MINUTES) {
    problems.push(`the schedule period must be at most ${MAX_PERIOD_MINUTES} minutes for its alarm, got ${schedulePeriodMinutes}`);
  }

  const snapshotPrefix = String(get('snapshotPrefix') ?? CONTEXT_DEFAULTS.snapshotPrefix);
  if (snapshotPrefix !== '' && (!/^[A-Za-z0-9!_.*'()/-]+$/.test(snapshotPrefix) || !snapshotPrefix.endsWith('/') || snapshotPrefix.startsWith('/'))) {
    problems.push(`snapshotPrefix must be empty or a safe key prefix ending in "/" (not starting with it), got "${snapshotPrefix}"`);
  }

  const alarmEmail = optionalText('alarmEmail');
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    problems.push(`alarmEmail must be an e-mail address, got "${alarmEmail}"`);
  }

  const kmsKeyArn = optionalText('kmsKeyArn');
  if (kmsKeyArn !== undefined && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/.test(kmsKeyArn)) {
    problems.push(`kmsKeyArn must be a key ARN (arn:aws:kms:<region>:<account>:key/<id>; an alias cannot authorise kms:Decrypt), got "${kmsKeyArn}"`);
  }

  const glueDatabaseName = text('glueDatabaseName');
  if (!/^[a-z0-9_]{1,255}$/.test(glueDatabaseName)) {
    problems.push(`glueDatabaseName must be lower-case letters, digits and underscores, got "${glueDatabaseName}"`);
  }

  const functionEnvironment = environmentOverrides(get('functionEnvironment'), problems);

  const settings: ExporterSettings = {
    thingparkBaseUrl: text('thingparkBaseUrl'),
    clientIdParameterName: parameterName('clientIdParameterName'),
    clientSecretParameterName: parameterName('clientSecretParameterName'),
    snapshotPrefix,
    scheduleExpression,
    schedulePeriodMinutes,
    alarmEmail,
    snapshotExpirationDays: positiveInteger('snapshotExpirationDays', 36_500),
    kmsKeyArn,
    glueDatabaseName,
    functionEnvironment,
  };

  // The function validates its environment on every cold start; running the same check
  // here turns a bad context value into a failed synth instead of a failed first run.
  try {
    loadConfig({ ...functionEnvironmentOf(settings, 'bucket-known-at-deploy-time') });
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  if (problems.length > 0) throw new Error(`Invalid context for the exporter stack:\n- ${problems.join('\n- ')}`);
  return settings;
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
  let value = raw;
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
      problems.push(`functionEnvironment may set only ${TUNABLE_VARIABLES.join(', ')}; got ${name}`);
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
