import { fileURLToPath } from 'node:url';
import {
  ArnFormat,
  CfnElement,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  Validations,
  type StackProps,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { ContextAttribute, Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { DEFAULTS, loadConfig } from '../lambda/config.ts';
import { Analytics } from './analytics.ts';
import { Monitoring } from './monitoring.ts';
import { MEMORY_MB, NODE_OPTIONS } from './function-runtime.ts';

export const SERVICE_NAME = 'thingpark-exporter';
export const METRICS_NAMESPACE = 'ThingParkExporter';
/** Lambda's maximum: the run watches its own deadline and stops cleanly before it. */
export const FUNCTION_TIMEOUT = Duration.minutes(15);

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

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

function functionEnvironmentOf(settings: ExporterSettings, bucketName: string): Record<string, string> {
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

export interface ExporterStackProps extends StackProps {
  settings: ExporterSettings;
}

/**
 * The whole exporter: snapshot bucket, function, schedule, dead-letter queue, alarms and
 * dashboard, and the Glue/Athena table over the snapshots.
 */
export class ExporterStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly function: NodejsFunction;
  readonly deadLetterQueue: sqs.Queue;
  readonly schedule: Schedule;
  readonly monitoring: Monitoring;
  readonly analytics: Analytics;

  constructor(scope: Construct, id: string, props: ExporterStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const prefix = settings.snapshotPrefix;
    const schedulePeriod = Duration.minutes(settings.schedulePeriodMinutes);

    this.bucket = new s3.Bucket(this, 'SnapshotBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(30),
          expiredObjectDeleteMarker: true,
        },
        ...(settings.snapshotExpirationDays === undefined
          ? []
          : (['devices/', 'manifests/'] as const).map((folder) => ({
              id: `expire-${folder.slice(0, -1)}`,
              prefix: `${prefix}${folder}`,
              expiration: Duration.days(settings.snapshotExpirationDays as number),
            }))),
      ],
    });

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const logGroup = new logs.LogGroup(this, 'FunctionLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // A role of our own rather than the basic execution managed policy: logs go only to
    // this function's log group.
    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'thingpark-exporter: SSM credentials, snapshot writes under its prefix, its own logs',
    });
    logGroup.grantWrite(role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: `${REPO_ROOT}lambda/handler.ts`,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}package-lock.json`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: MEMORY_MB,
      timeout: FUNCTION_TIMEOUT,
      reservedConcurrentExecutions: 1,
      role,
      logGroup,
      description: 'Exports the ThingPark device fleet to S3 as a snapshot',
      environment: {
        ...functionEnvironmentOf(settings, this.bucket.bucketName),
        NODE_OPTIONS,
      },
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new SqsDestination(this.deadLetterQueue),
      bundling: {
        format: OutputFormat.ESM,
        bundleAwsSDK: true,
        minify: true,
        // Error classes and functions keep their names: `errorType` in the logs and the
        // dead-letter queue, and stack traces, would otherwise show minified ones.
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
        mainFields: ['module', 'main'],
        banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
      },
    });

    this.grantSnapshotAccess(role, prefix);
    this.grantCredentials(role, settings);

    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': this.account },
      }),
      description: 'thingpark-exporter: EventBridge Scheduler invokes the function',
    });
    this.schedule = new Schedule(this, 'Schedule', {
      schedule: ScheduleExpression.expression(settings.scheduleExpression),
      description: 'Starts a thingpark-exporter run',
      target: new LambdaInvoke(this.function, {
        role: schedulerRole,
        input: ScheduleTargetInput.fromObject({ scheduledTime: ContextAttribute.scheduledTime }),
        // Scheduler retries only failed deliveries (the invocation is asynchronous); a late
        // delivery is harmless because a run's id is its scheduled time.
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
        deadLetterQueue: this.deadLetterQueue,
      }),
    });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      functionTimeout: FUNCTION_TIMEOUT,
      schedulePeriod,
      serviceName: SERVICE_NAME,
      metricsNamespace: METRICS_NAMESPACE,
      alarmEmail: settings.alarmEmail,
    });

    this.analytics = new Analytics(this, 'Analytics', {
      bucket: this.bucket,
      tablePrefix: `${prefix}devices/`,
      databaseName: settings.glueDatabaseName,
    });

    this.acknowledgeFindings(role, schedulerRole, prefix);
    this.addOutputs();
  }

  /**
   * Exactly what lambda/publish.ts and lambda/snapshot.ts call, on the keys they use:
   * data files (multipart uploads, deleted again when a run fails), manifests and the
   * pointer (conditional PutObject, GetObject), and a listing of one run's data folder.
   */
  private grantSnapshotAccess(role: iam.IRole, prefix: string): void {
    const objects = (pattern: string) => this.bucket.arnForObjects(`${prefix}${pattern}`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteSnapshots',
        actions: ['s3:PutObject'],
        resources: [objects('devices/*'), objects('manifests/*'), objects('latest.json')],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AbortDataUploads',
        actions: ['s3:AbortMultipartUpload'],
        resources: [objects('devices/*')],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadManifestsAndPointer',
        actions: ['s3:GetObject'],
        resources: [objects('manifests/*'), objects('latest.json')],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DeleteFailedRunData',
        actions: ['s3:DeleteObject'],
        resources: [objects('devices/*')],
      }),
    );
    // ListObjectsV2 finds a crashed attempt's leftovers, and without ListBucket S3 answers
    // 403 instead of 404 for the manifest and pointer a first run looks for. Not narrowed
    // by s3:prefix: S3 does not document that its 404-or-403 check honours that condition,
    // and a 403 there would fail every first run. The bucket holds nothing but snapshots.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListSnapshotBucket',
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
      }),
    );
  }

  private grantCredentials(role: iam.IRole, settings: ExporterSettings): void {
    const parameterArn = (name: string) =>
      this.formatArn({
        service: 'ssm',
        resource: 'parameter',
        resourceName: name.replace(/^\//, ''),
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      });
    const secretArn = parameterArn(settings.clientSecretParameterName);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadThingParkCredentials',
        actions: ['ssm:GetParameters'],
        resources: [parameterArn(settings.clientIdParameterName), secretArn],
      }),
    );
    // The AWS-managed aws/ssm key's own policy already lets every principal of the account
    // decrypt through SSM, so the default needs no statement. A customer-managed key does:
    // only through SSM, and only for the secret parameter (SSM's encryption context).
    if (settings.kmsKeyArn) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'DecryptThingParkSecret',
          actions: ['kms:Decrypt'],
          resources: [settings.kmsKeyArn],
          conditions: {
            StringEquals: {
              'kms:ViaService': `ssm.${this.region}.amazonaws.com`,
              'kms:EncryptionContext:PARAMETER_ARN': secretArn,
            },
          },
        }),
      );
    }
  }

  private acknowledgeFindings(role: iam.Role, schedulerRole: iam.Role, prefix: string): void {
    const id = (construct: Construct) => this.getLogicalId(construct.node.defaultChild as CfnElement);
    const bucket = id(this.bucket);
    const fn = id(this.function);
    Validations.of(role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}devices/*]`,
        reason:
          'Data files are named per run (dt=<date>/run=<id>/part-<n>) and written, aborted and deleted by key: the wildcard is limited to the table location of this bucket.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}manifests/*]`,
        reason: 'One manifest per run, named by its run id: written and read under this folder only.',
      },
    );
    Validations.of(schedulerRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${fn}.Arn>:*]`,
      reason:
        'LambdaInvoke grants the function and its qualified ARNs (versions and aliases) to the scheduler role; the role can invoke nothing but this function.',
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue (failed runs and undeliverable schedules); a DLQ of a DLQ adds nothing.',
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Written by the exporter function and read by analysts (Athena, the CLI), both through IAM in this account; per-request audit, where needed, comes from CloudTrail S3 data events, and an access-log bucket would need the same exception.',
    });
  }

  private addOutputs(): void {
    const fn = this.function.functionName;
    new CfnOutput(this, 'SnapshotBucketName', { value: this.bucket.bucketName, description: 'Snapshot bucket' });
    new CfnOutput(this, 'FunctionName', { value: fn, description: 'Exporter function' });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl, description: 'Failed runs and undeliverable schedules' });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn, description: 'Alarm notifications' });
    new CfnOutput(this, 'GlueDatabaseName', { value: this.analytics.database.databaseName });
    new CfnOutput(this, 'GlueTableName', { value: this.analytics.table.tableName });
    new CfnOutput(this, 'AthenaWorkGroupName', { value: this.analytics.workGroupName });
    new CfnOutput(this, 'InvokeCommand', {
      description: 'Runs an export now and prints its summary (waits for the run to finish)',
      value: `aws lambda invoke --region ${this.region} --function-name ${fn} --cli-binary-format raw-in-base64-out --cli-read-timeout 0 --payload '{}' summary.json && cat summary.json`,
    });
  }
}
