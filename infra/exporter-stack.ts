import { fileURLToPath } from 'node:url';
import { ArnFormat, CfnElement, CfnOutput, Duration, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { ContextAttribute, Schedule, ScheduleExpression, ScheduleGroup, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { Analytics } from './analytics.ts';
import { Curation } from './curation.ts';
import { FleetWatch } from './monitoring/fleet-alarms.ts';
import { Monitoring } from './monitoring/monitoring.ts';
import { Orchestration } from './orchestration.ts';
import { nodeOptionsFor } from './function-runtime.ts';
import { SendOnlyQueueDestination } from './send-only-queue-destination.ts';
import { DEFAULTS } from '../lambda/common/env.ts';
import { FOLDERS, POINTER } from '../lambda/storage/layout.ts';
import { functionEnvironmentOf, METRICS_NAMESPACE, SERVICE_NAME, type ExporterSettings } from './settings.ts';

/** Lambda's maximum: the run watches its own deadline and stops cleanly before it. */
export const FUNCTION_TIMEOUT = Duration.minutes(15);

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

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
  readonly scheduleGroup: ScheduleGroup;
  readonly schedule: Schedule;
  readonly orchestration: Orchestration;
  readonly monitoring: Monitoring;
  readonly analytics: Analytics;
  readonly curation: Curation;
  readonly fleetWatch: FleetWatch;

  constructor(scope: Construct, id: string, props: ExporterStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const prefix = settings.snapshotPrefix;

    this.bucket = this.snapshotBucket(settings);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const { fn, role } = this.exporterFunction(settings, this.bucket, this.deadLetterQueue);
    this.function = fn;
    this.grantSnapshotAccess(role, prefix);
    this.grantCredentials(role, settings);
    this.enforceConditionalWrites(prefix);
    ({ scheduleGroup: this.scheduleGroup, orchestration: this.orchestration, schedule: this.schedule } = this.scheduleRuns(settings, fn, this.deadLetterQueue));

    this.monitoring = new Monitoring(this, 'Monitoring', {
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      functionTimeout: FUNCTION_TIMEOUT,
      deadlineMargin: Duration.seconds(Number(settings.functionEnvironment.RUN_DEADLINE_MARGIN_SECONDS ?? DEFAULTS.RUN_DEADLINE_MARGIN_SECONDS)),
      stateMachine: this.orchestration.stateMachine,
      skippedSchedules: this.orchestration.skippedSchedules,
      schedulePeriod: Duration.minutes(settings.schedulePeriodMinutes),
      serviceName: SERVICE_NAME,
      metricsNamespace: METRICS_NAMESPACE,
      alarmEmail: settings.alarmEmail,
    });

    this.analytics = new Analytics(this, 'Analytics', {
      bucket: this.bucket,
      tablePrefix: `${prefix}${FOLDERS.table}`,
      databaseName: settings.glueDatabaseName,
    });

    this.curation = new Curation(this, 'Curation', {
      bucket: this.bucket,
      prefix,
      database: this.analytics.database,
      databaseName: settings.glueDatabaseName,
      workGroup: this.analytics.workGroup,
      role,
      monitoring: this.monitoring,
      ...(settings.snapshotExpirationDays === undefined ? {} : { expirationDays: settings.snapshotExpirationDays }),
    });

    this.fleetWatch = new FleetWatch(this, 'FleetWatch', {
      monitoring: this.monitoring,
      thresholds: settings.fleetThresholds,
      schedulePeriod: Duration.minutes(settings.schedulePeriodMinutes),
      silentAfterHours: Number(settings.functionEnvironment.CURATE_SILENT_AFTER_HOURS ?? DEFAULTS.CURATE_SILENT_AFTER_HOURS),
      workGroup: this.analytics.workGroup,
      databaseName: settings.glueDatabaseName,
    });

    this.acknowledgeFindings(role, prefix);
    this.addOutputs();
  }

  /** The snapshots: private, encrypted, versioned and kept; checkpoints, and snapshots when asked, expire. */
  private snapshotBucket(settings: ExporterSettings): s3.Bucket {
    const prefix = settings.snapshotPrefix;
    return new s3.Bucket(this, 'SnapshotBucket', {
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
        // A checkpoint is resumed within the hour or never (lambda/run/checkpoint.ts): the
        // ones a failed or stopped run leaves go after a day.
        { id: 'expire-checkpoints', prefix: `${prefix}${FOLDERS.checkpoints}`, expiration: Duration.days(1) },
        ...(settings.snapshotExpirationDays === undefined
          ? []
          : [FOLDERS.table, FOLDERS.manifests, FOLDERS.indexes].map((folder) => ({
              id: `expire-${folder.slice(0, -1)}`,
              prefix: `${prefix}${folder}`,
              expiration: Duration.days(settings.snapshotExpirationDays as number),
            }))),
      ],
    });
  }

  /** The function, with a role and a log group of its own. */
  private exporterFunction(settings: ExporterSettings, bucket: s3.IBucket, deadLetterQueue: sqs.IQueue): { fn: NodejsFunction; role: iam.Role } {
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

    const fn = new NodejsFunction(this, 'Function', {
      entry: `${REPO_ROOT}lambda/handler.ts`,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}package-lock.json`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: settings.functionMemoryMb,
      timeout: FUNCTION_TIMEOUT,
      reservedConcurrentExecutions: 1,
      role,
      logGroup,
      description: 'Exports the ThingPark device fleet to S3 as a snapshot',
      environment: {
        ...functionEnvironmentOf(settings, bucket.bucketName),
        NODE_OPTIONS: nodeOptionsFor(settings.functionMemoryMb),
      },
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      onFailure: new SendOnlyQueueDestination(deadLetterQueue),
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
        // esbuild's warnings and errors, not its size summary on stderr at every synth and test.
        logLevel: LogLevel.WARNING,
      },
    });
    return { fn, role };
  }

  /** The schedule, and the state machine it starts: a run over as many invocations as it takes. */
  private scheduleRuns(
    settings: ExporterSettings,
    fn: lambda.IFunction,
    deadLetterQueue: sqs.IQueue,
  ): Pick<ExporterStack, 'scheduleGroup' | 'orchestration' | 'schedule'> {
    // A group of its own, so that the role below serves this schedule and not every
    // schedule of the account's default group. Its generated name is the same on every
    // deploy: a retained group would block creating the stack again.
    const scheduleGroup = new ScheduleGroup(this, 'ScheduleGroup', { removalPolicy: RemovalPolicy.DESTROY });
    // Scheduler states the schedule group as the source; AWS documents that the condition
    // cannot name a single schedule.
    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': this.account, 'aws:SourceArn': scheduleGroup.scheduleGroupArn },
      }),
      description: 'thingpark-exporter: EventBridge Scheduler starts the export state machine',
    });
    // A run takes as many invocations as it needs (lambda/run/export-run.ts); the state
    // machine invokes the function until the run is committed. The function can still be
    // invoked directly, for fleets that fit one invocation.
    const orchestration = new Orchestration(this, 'Orchestration', { function: fn, functionTimeout: FUNCTION_TIMEOUT, metricsNamespace: METRICS_NAMESPACE });
    const schedule = new Schedule(this, 'Schedule', {
      scheduleGroup,
      schedule: ScheduleExpression.expression(settings.scheduleExpression),
      description: 'Starts a thingpark-exporter run',
      target: new StepFunctionsStartExecution(orchestration.stateMachine, {
        role: schedulerRole,
        input: ScheduleTargetInput.fromObject({ scheduledTime: ContextAttribute.scheduledTime }),
        // Scheduler retries only failed deliveries; a late or repeated delivery is harmless
        // because a run's id is its scheduled time.
        retryAttempts: 3,
        maxEventAge: Duration.hours(1),
        deadLetterQueue,
      }),
    });
    // The schedule names its group by the group's literal name, not a reference: without
    // this, CloudFormation may create the schedule before its group.
    schedule.node.addDependency(scheduleGroup);
    return { scheduleGroup, orchestration, schedule };
  }

  /**
   * Exactly what lambda/storage/ calls, on the keys it uses: data files (multipart
   * uploads, deleted again when a run fails), manifests and the pointer (conditional
   * PutObject, GetObject), attempt markers (written, read and removed), key indexes
   * (written at commit, read by the next run, removed with a failed run's data), the
   * checkpoints of runs that go on in another invocation (written, read by the next
   * invocation, removed once the run commits or is abandoned), and listings of a run's data,
   * index and checkpoint folders and of the markers.
   */
  private grantSnapshotAccess(role: iam.IRole, prefix: string): void {
    const objects = (pattern: string) => this.bucket.arnForObjects(`${prefix}${pattern}`);
    const data = objects(`${FOLDERS.table}*`);
    const published = [objects(`${FOLDERS.manifests}*`), objects(POINTER)];
    // What an attempt writes beside its data, and a later run reads back or settles.
    const attemptFiles = [objects(`${FOLDERS.markers}*`), objects(`${FOLDERS.indexes}*`), objects(`${FOLDERS.checkpoints}*`)];
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'WriteSnapshots', actions: ['s3:PutObject'], resources: [data, ...published, ...attemptFiles] }));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AbortDataUploads',
        actions: ['s3:AbortMultipartUpload'],
        resources: [data],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'ReadManifestsAndPointer', actions: ['s3:GetObject'], resources: [...published, ...attemptFiles] }),
    );
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'DeleteFailedRunData', actions: ['s3:DeleteObject'], resources: [data, ...attemptFiles] }));
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

  /**
   * The exporter's commit protocol rests on conditional writes: a run's manifest is
   * created once (If-None-Match), and the pointer is replaced only over the version just
   * read (If-Match) or created once. Denied to every principal, so no other writer, nor a
   * regression in the function, can overwrite either unconditionally. The trade-off: every
   * other write to these keys is refused too (restoring an older version by CopyObject or
   * the console, a hand edit with `aws s3 cp`); an operator writes them with a conditional
   * PutObject (`aws s3api put-object --if-match` or `--if-none-match`).
   * s3:ObjectCreationOperation keeps the deny off CreateMultipartUpload and UploadPart,
   * which cannot carry the headers; CompleteMultipartUpload still has to.
   */
  private enforceConditionalWrites(prefix: string): void {
    const denyUnconditionalPut = (sid: string, key: string, missingHeaders: Record<string, 'true'>) =>
      this.bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['s3:PutObject'],
          resources: [this.bucket.arnForObjects(`${prefix}${key}`)],
          conditions: { Null: missingHeaders, Bool: { 's3:ObjectCreationOperation': 'true' } },
        }),
      );
    denyUnconditionalPut('ManifestsAreCreatedOnce', `${FOLDERS.manifests}*`, { 's3:if-none-match': 'true' });
    // A checkpoint and its key sets are named by the attempt that saves them, once: none
    // can be replaced by another object of the same name (a resume checks its hash too).
    denyUnconditionalPut('CheckpointsAreCreatedOnce', `${FOLDERS.checkpoints}*`, { 's3:if-none-match': 'true' });
    // Keys under one Null operator must all match: denied when both headers are absent.
    denyUnconditionalPut('PointerIsWrittenConditionally', POINTER, { 's3:if-none-match': 'true', 's3:if-match': 'true' });
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

  private acknowledgeFindings(role: iam.Role, prefix: string): void {
    const id = (construct: Construct) => this.getLogicalId(construct.node.defaultChild as CfnElement);
    const bucket = id(this.bucket);
    Validations.of(role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}${FOLDERS.table}*]`,
        reason:
          'Data files are named per run (dt=<date>/run=<id>/part-<n>) and written, aborted and deleted by key: the wildcard is limited to the table location of this bucket.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}${FOLDERS.markers}*]`,
        reason: 'One marker per invocation, named by its attempt id: written when a run starts, read and removed by later runs, under this folder only.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}${FOLDERS.indexes}*]`,
        reason:
          "One key index per attempt that reaches its commit, named by run and attempt: written before the manifest, read by the next run, removed with a failed run's data, under this folder only.",
      },
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}${FOLDERS.manifests}*]`,
        reason: 'One manifest per run, named by its run id: written and read under this folder only.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::<${bucket}.Arn>/${prefix}${FOLDERS.checkpoints}*]`,
        reason:
          'One checkpoint (and its key sets) per invocation of a run that goes on in another, named by run and attempt: written when an invocation stops, read by the next, removed once the run commits or is abandoned, under this folder only.',
      },
    );
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue (failed runs and undeliverable schedules); a DLQ of a DLQ adds nothing.',
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'No server access logs. The bucket is written by the exporter function and read by analysts (Athena, the CLI), both through IAM in this account. This stack records no per-request audit of it: it creates no CloudTrail trail, so S3 data events are recorded only if an account or organization trail already selects them. Accepted trade-off: without such a trail, who read or wrote which object is not traceable (bucket configuration changes still are, in CloudTrail management events); data events are billed per request, and an access-log bucket would need this same exception.',
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
    const stateMachine = this.orchestration.stateMachine.stateMachineArn;
    new CfnOutput(this, 'StateMachineArn', {
      value: stateMachine,
      description: 'Runs an export over as many invocations as it takes (what the schedule starts)',
    });
    new CfnOutput(this, 'StartExecutionCommand', {
      description: 'Starts an export now through the state machine, as the schedule does; watch it with describe-execution',
      value: `aws stepfunctions start-execution --region ${this.region} --state-machine-arn ${stateMachine} --input '{}'`,
    });
    new CfnOutput(this, 'InvokeCommand', {
      description: 'Runs an export now and prints its summary (waits for the run to finish)',
      value: `aws lambda invoke --region ${this.region} --function-name ${fn} --cli-binary-format raw-in-base64-out --cli-read-timeout 0 --payload '{}' summary.json && cat summary.json`,
    });
  }
}
