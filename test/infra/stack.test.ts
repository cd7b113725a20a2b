import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, CfnElement, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';

const ENV = { account: '123456789012', region: 'eu-west-1' };
const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

interface Synthesized {
  app: App;
  stack: ExporterStack;
  template: Template;
  pack: AwsSolutionsChecks;
  id: (construct: IConstruct) => string;
}

/** Builds the app as infra/app.ts does (cdk.json's flags, cdk-nag registered) and synthesizes it. */
function synthesize(context: Record<string, unknown>, bundle: boolean): Synthesized {
  const app = new App({
    context: { ...cdkJson.context, ...context, ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const stack = new ExporterStack(app, 'ThingParkExporter', { env: ENV, settings: settingsFromContext(app) });
  const pack = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(pack);
  // Synthesis runs the validation plugins and throws on any unacknowledged finding.
  const template = Template.fromStack(stack);
  const id = (construct: IConstruct) => stack.getLogicalId(construct.node.defaultChild as CfnElement);
  return { app, stack, template, pack, id };
}

// Template JSON is untyped by nature; `any` keeps the assertions readable.
type Resource = { Properties: Record<string, any> } & Record<string, any>;

function resourcesOf(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

function onlyResource(template: Template, type: string) {
  const found = Object.values(resourcesOf(template, type));
  expect(found).toHaveLength(1);
  return found[0]!;
}

/** The Glue table of that name (the stack has several). */
function glueTable(template: Template, name: string) {
  const found = Object.values(resourcesOf(template, 'AWS::Glue::Table')).filter((table) => table.Properties.TableInput.Name === name);
  expect(found).toHaveLength(1);
  return found[0]!;
}

function policyStatements(template: Template, roleLogicalId: string): any[] {
  const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((policy) =>
    policy.Properties.Roles.some((role: any) => role.Ref === roleLogicalId),
  );
  expect(policies).toHaveLength(1);
  return policies[0]!.Properties.PolicyDocument.Statement;
}

interface Acknowledgement {
  /** The construct acknowledged on. */
  path: string;
  /** The rule id, without the `Validations::` prefix. */
  id: string;
  reason: string;
}

/** Every acknowledged cdk-nag finding of the app, one per construct and rule. */
function acknowledgements(app: App): Acknowledgement[] {
  const acknowledged: Acknowledgement[] = [];
  for (const construct of app.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [key, reason] of Object.entries(entry.data as Record<string, string>)) {
        acknowledged.push({ path: construct.node.path, id: key.replace(/^[A-Za-z]+::/, ''), reason });
      }
    }
  }
  return acknowledged;
}

/**
 * The dashboard as CloudWatch will read it. CDK renders the body as an Fn::Join of JSON
 * text and references; each reference becomes a `<Ref:id>` or `<GetAtt:id.attribute>`
 * placeholder, which never contains a character JSON would have to escape.
 */
function dashboardBody(template: Template): any {
  const body = onlyResource(template, 'AWS::CloudWatch::Dashboard').Properties.DashboardBody;
  if (typeof body === 'string') return JSON.parse(body);
  const [separator, parts] = body['Fn::Join'] as [string, unknown[]];
  const text = parts
    .map((part: any) => {
      if (typeof part === 'string') return part;
      if (typeof part.Ref === 'string') return `<Ref:${part.Ref}>`;
      if (Array.isArray(part['Fn::GetAtt'])) return `<GetAtt:${part['Fn::GetAtt'].join('.')}>`;
      throw new Error(`Unexpected reference in the dashboard body: ${JSON.stringify(part)}`);
    })
    .join(separator);
  return JSON.parse(text);
}

function bucketPolicyStatements(template: Template, bucketLogicalId: string): any[] {
  const policies = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy')).filter((policy) => policy.Properties.Bucket.Ref === bucketLogicalId);
  expect(policies).toHaveLength(1);
  return policies[0]!.Properties.PolicyDocument.Statement;
}

const objectArn = (bucketId: string, key: string) => ({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [bucketId, 'Arn'] }, `/${key}`]] });
const arnOf = (logicalId: string) => ({ 'Fn::GetAtt': [logicalId, 'Arn'] });

describe('ExporterStack with the default context (bundled, as `cdk synth` builds it)', () => {
  let s: Synthesized;
  let bucketId: string;
  let queueId: string;
  let functionId: string;
  beforeAll(() => {
    s = synthesize({ alarmEmail: 'ops@example.com', snapshotExpirationDays: '90' }, true);
    bucketId = s.id(s.stack.bucket);
    queueId = s.id(s.stack.deadLetterQueue);
    functionId = s.id(s.stack.function);
  });

  describe('function', () => {
    it('runs Node.js 24 on arm64 with 1024 MB, the 15-minute maximum and one run at a time', () => {
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: 1024,
        Timeout: 900,
        ReservedConcurrentExecutions: 1,
        Role: arnOf(s.id(s.stack.function.role!)),
        LoggingConfig: { LogGroup: { Ref: s.id(s.stack.function.logGroup) } },
      });
    });

    it('sets only the variables the stack decides, from the context defaults', () => {
      const fn = onlyResource(s.template, 'AWS::Lambda::Function');
      expect(fn.Properties.Environment.Variables).toEqual({
        THINGPARK_BASE_URL: 'https://community.thingpark.io',
        THINGPARK_CLIENT_ID_PARAM: '/thingpark-exporter/client-id',
        THINGPARK_CLIENT_SECRET_PARAM: '/thingpark-exporter/client-secret',
        SNAPSHOT_BUCKET: { Ref: bucketId },
        SNAPSHOT_PREFIX: 'thingpark/',
        POWERTOOLS_SERVICE_NAME: 'thingpark-exporter',
        POWERTOOLS_METRICS_NAMESPACE: 'ThingParkExporter',
        NODE_OPTIONS: '--enable-source-maps --max-old-space-size=896',
      });
    });

    it('keeps its logs in a log group of its own for one month', () => {
      // The function's, and the state machine's (below).
      s.template.resourceCountIs('AWS::Logs::LogGroup', 2);
      expect(s.template.findResources('AWS::Logs::LogGroup')[s.id(s.stack.function.logGroup)]?.Properties).toEqual({ RetentionInDays: 30 });
    });

    it('is bundled as ESM with the AWS SDK inside and the createRequire banner', () => {
      const code = s.stack.function.node.findChild('Code') as Asset;
      const assetDir = join(s.app.outdir, code.assetPath);
      expect(readdirSync(assetDir).sort()).toEqual(['index.mjs', 'index.mjs.map']);
      const bundle = readFileSync(join(assetDir, 'index.mjs'), 'utf8');
      expect(bundle.startsWith("import { createRequire } from 'module'; const require = createRequire(import.meta.url);")).toBe(true);
      // bundleAwsSDK: no import of @aws-sdk/* is left for the runtime to resolve.
      expect(bundle).not.toMatch(/from\s*["']@aws-sdk\//);
      expect(bundle).toMatch(/export\s*\{[^}]*\bhandler\b/);
    });

    it('keeps the names of classes through minification', () => {
      const code = s.stack.function.node.findChild('Code') as Asset;
      const bundle = readFileSync(join(s.app.outdir, code.assetPath, 'index.mjs'), 'utf8');
      // The function's abstract error class is named nowhere as a string: only esbuild's
      // keepNames, which records every class's name, can put it in the bundle.
      expect(bundle).toContain('"ExporterError"');
    });

    it('retries a failed async run twice within an hour, then sends it to the DLQ', () => {
      s.template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 1);
      s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: functionId },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: { OnFailure: { Destination: arnOf(queueId) } },
      });
    });
  });

  describe('function role', () => {
    it('has no managed policy and trusts only Lambda', () => {
      const role = s.template.findResources('AWS::IAM::Role')[s.id(s.stack.function.role!)]!;
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
    });

    it('may do exactly what the function does, on exactly its keys and parameters', () => {
      const statements = policyStatements(s.template, s.id(s.stack.function.role!));
      const underPrefix = (...keys: string[]) => keys.map((key) => objectArn(bucketId, `thingpark/${key}`));
      expect(statements).toEqual([
        { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: arnOf(s.id(s.stack.function.logGroup)) },
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(queueId) },
        {
          Sid: 'WriteSnapshots',
          Action: 's3:PutObject',
          Effect: 'Allow',
          Resource: underPrefix('attempts/*', 'checkpoints/*', 'devices/*', 'indexes/*', 'latest.json', 'manifests/*'),
        },
        { Sid: 'AbortDataUploads', Action: 's3:AbortMultipartUpload', Effect: 'Allow', Resource: objectArn(bucketId, 'thingpark/devices/*') },
        {
          Sid: 'ReadManifestsAndPointer',
          Action: 's3:GetObject',
          Effect: 'Allow',
          Resource: underPrefix('attempts/*', 'checkpoints/*', 'indexes/*', 'latest.json', 'manifests/*'),
        },
        {
          Sid: 'DeleteFailedRunData',
          Action: 's3:DeleteObject',
          Effect: 'Allow',
          Resource: underPrefix('attempts/*', 'checkpoints/*', 'devices/*', 'indexes/*'),
        },
        { Sid: 'ListSnapshotBucket', Action: 's3:ListBucket', Effect: 'Allow', Resource: arnOf(bucketId) },
        {
          Sid: 'ReadThingParkCredentials',
          Action: 'ssm:GetParameters',
          Effect: 'Allow',
          Resource: [
            'arn:aws:ssm:eu-west-1:123456789012:parameter/thingpark-exporter/client-id',
            'arn:aws:ssm:eu-west-1:123456789012:parameter/thingpark-exporter/client-secret',
          ],
        },
        // Curation (infra/curation.ts): raw files in, curated files out.
        {
          Sid: 'ReadRawAndCurated',
          Action: 's3:GetObject',
          Effect: 'Allow',
          Resource: [objectArn(bucketId, 'thingpark/curated/*'), objectArn(bucketId, 'thingpark/devices/*')],
        },
        {
          Sid: 'WriteCurated',
          Action: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:PutObject'],
          Effect: 'Allow',
          Resource: objectArn(bucketId, 'thingpark/curated/*'),
        },
      ]);
    });

    it('may only send to the dead-letter queue its failed runs go to, nothing else of SQS', () => {
      const statements = policyStatements(s.template, s.id(s.stack.function.role!));
      const sqsStatements = statements.filter((statement) => [statement.Action].flat().some((action: string) => action.startsWith('sqs:')));
      expect(sqsStatements).toEqual([{ Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(queueId) }]);
      s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: functionId },
        DestinationConfig: { OnFailure: { Destination: arnOf(queueId) } },
      });
    });

    it('needs no KMS statement for the AWS-managed aws/ssm key, and never a wildcard action', () => {
      const statements = policyStatements(s.template, s.id(s.stack.function.role!));
      const actions = statements.flatMap((statement) => [statement.Action].flat() as string[]);
      expect(actions.filter((action) => action.startsWith('kms:'))).toEqual([]);
      expect(actions.filter((action) => action.includes('*'))).toEqual([]);
    });

    it('references the parameters by name only: no parameter and no secret in the template', () => {
      s.template.resourceCountIs('AWS::SSM::Parameter', 0);
      expect(JSON.stringify(s.template.toJSON())).not.toMatch(/SecureString|client_secret|clientSecret"/);
    });
  });

  describe('snapshot bucket', () => {
    it('blocks public access, enforces TLS, is encrypted and versioned, and is retained', () => {
      s.template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: Match.objectLike({
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      });
      s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: bucketId },
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
        },
      });
    });

    it('refuses, to every principal, a manifest write without If-None-Match and a pointer write without a condition', () => {
      const denies = bucketPolicyStatements(s.template, bucketId).filter((statement) => statement.Action === 's3:PutObject');
      const created = { 's3:if-none-match': 'true' };
      const conditional = { 's3:if-none-match': 'true', 's3:if-match': 'true' };
      const deny = (Sid: string, key: string, missing: Record<string, string>) => ({
        Sid,
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: 's3:PutObject',
        Resource: objectArn(bucketId, `thingpark/${key}`),
        Condition: { Null: missing, Bool: { 's3:ObjectCreationOperation': 'true' } },
      });
      expect(denies).toEqual([
        deny('ManifestsAreCreatedOnce', 'manifests/*', created),
        deny('PointerIsWrittenConditionally', 'latest.json', conditional),
        deny('CurationRecordsAreCreatedOnce', 'curated/runs/*', created),
        deny('CurrentTableIsSwitchedConditionally', 'curated/devices_current/symlink.txt', conditional),
      ]);
    });

    it('aborts stale uploads, expires old versions, and expires snapshots after snapshotExpirationDays', () => {
      const bucket = s.template.findResources('AWS::S3::Bucket')[bucketId]!;
      expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual([
        { Id: 'abort-incomplete-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        {
          Id: 'expire-noncurrent-versions',
          NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          ExpiredObjectDeleteMarker: true,
          Status: 'Enabled',
        },
        { Id: 'expire-checkpoints', Prefix: 'thingpark/checkpoints/', ExpirationInDays: 1, Status: 'Enabled' },
        { Id: 'expire-devices', Prefix: 'thingpark/devices/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-manifests', Prefix: 'thingpark/manifests/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-indexes', Prefix: 'thingpark/indexes/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-curated-state', Prefix: 'thingpark/curated/state/', ExpirationInDays: 7, Status: 'Enabled' },
      ]);
    });
  });

  describe('dead-letter queue', () => {
    it('is encrypted, TLS-only and keeps messages 14 days', () => {
      s.template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: queueId }],
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
        },
      });
    });
  });

  describe('schedule', () => {
    it('starts the state machine with the scheduled time, retries delivery three times within an hour, dead-letters the rest', () => {
      const schedule = onlyResource(s.template, 'AWS::Scheduler::Schedule').Properties;
      expect(schedule.ScheduleExpression).toBe('rate(1 hour)');
      expect(schedule.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
      expect(JSON.parse(schedule.Target.Input)).toEqual({ scheduledTime: '<aws.scheduler.scheduled-time>' });
      expect(schedule.Target).toMatchObject({
        Arn: { Ref: s.id(s.stack.orchestration.stateMachine) },
        RoleArn: arnOf(s.id(s.stack.node.findChild('SchedulerRole'))),
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: arnOf(queueId) },
      });
    });

    it('is in a schedule group of its own, created before it and deleted with the stack', () => {
      const groupId = s.id(s.stack.scheduleGroup);
      const group = onlyResource(s.template, 'AWS::Scheduler::ScheduleGroup');
      expect(group.DeletionPolicy).toBe('Delete');
      const schedule = onlyResource(s.template, 'AWS::Scheduler::Schedule');
      expect(schedule.Properties.GroupName).toBe(group.Properties.Name);
      expect(schedule.DependsOn).toContain(groupId);
    });

    it('uses a role of its own that only its own schedule group in this account can hand to Scheduler, for this state machine only', () => {
      const roleId = s.id(s.stack.node.findChild('SchedulerRole'));
      const role = s.template.findResources('AWS::IAM::Role')[roleId]!;
      // Scheduler names the schedule group as the source; AWS documents that the condition
      // cannot be narrowed to one schedule.
      const [groupId] = Object.keys(resourcesOf(s.template, 'AWS::Scheduler::ScheduleGroup'));
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: {
            StringEquals: { 'aws:SourceAccount': '123456789012', 'aws:SourceArn': arnOf(groupId as string) },
          },
        },
      ]);
      expect(policyStatements(s.template, roleId)).toEqual([
        { Action: 'states:StartExecution', Effect: 'Allow', Resource: { Ref: s.id(s.stack.orchestration.stateMachine) } },
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(queueId) },
      ]);
    });
  });

  describe('state machine (runs over several invocations)', () => {
    /** The definition as Step Functions reads it: references as `<Ref:id>` and `<GetAtt:id.attribute>`. */
    const definition = (): any => {
      const machine = onlyResource(s.template, 'AWS::StepFunctions::StateMachine').Properties;
      const [separator, parts] = machine.DefinitionString['Fn::Join'] as [string, unknown[]];
      const text = parts
        .map((part: any) => {
          if (typeof part === 'string') return part;
          if (typeof part.Ref === 'string') return `<Ref:${part.Ref}>`;
          if (Array.isArray(part['Fn::GetAtt'])) return `<GetAtt:${part['Fn::GetAtt'].join('.')}>`;
          throw new Error(`Unexpected reference in the definition: ${JSON.stringify(part)}`);
        })
        .join(separator);
      return JSON.parse(text);
    };
    const transient = {
      ErrorEquals: ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'],
      IntervalSeconds: 2,
      BackoffRate: 2,
      MaxDelaySeconds: 60,
      MaxAttempts: 25,
    };
    const invoking = (payload: Record<string, unknown>) => ({
      Type: 'Task',
      Resource: 'arn:<Ref:AWS::Partition>:states:::lambda:invoke',
      Parameters: { FunctionName: `<GetAtt:${functionId}.Arn>`, ...payload },
      TimeoutSeconds: 960,
    });

    it('is a STANDARD state machine with a day to finish, logging every step with its data to a log group of its own', () => {
      const machine = onlyResource(s.template, 'AWS::StepFunctions::StateMachine').Properties;
      const logsId = s.id(s.stack.orchestration.logGroup);
      expect(machine.StateMachineType).toBe('STANDARD');
      expect(machine.TracingConfiguration).toBeUndefined();
      expect(machine.LoggingConfiguration).toEqual({
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: arnOf(logsId) } }],
        IncludeExecutionData: true,
        Level: 'ALL',
      });
      expect(s.template.findResources('AWS::Logs::LogGroup')[logsId]).toMatchObject({ DeletionPolicy: 'Delete', Properties: { RetentionInDays: 30 } });
      expect(definition().TimeoutSeconds).toBe(86_400);
    });

    it('invokes the function, again with each "continue" answer, then curates when the export could not', () => {
      const { StartAt, States } = definition();
      expect(StartAt).toBe('Export');
      expect(Object.keys(States).sort()).toEqual(
        ['Abandon', 'Checkpointed?', 'Continue?', 'Curate', 'Curated?', 'Done', 'Export', 'CurationFailed', 'ExportFailed'].sort(),
      );
      expect(States.Export).toMatchObject({ ...invoking({ 'Payload.$': '$' }), OutputPath: '$.Payload', Next: 'Continue?' });
      const continuing = [
        { Variable: '$.status', IsPresent: true },
        { Variable: '$.status', StringEquals: 'continue' },
      ];
      expect(States['Continue?']).toMatchObject({ Type: 'Choice', Choices: [{ And: continuing, Next: 'Export' }], Default: 'Curated?' });
      expect(States['Curated?']).toMatchObject({
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.curation.status', IsPresent: true },
              {
                Or: [
                  { Variable: '$.curation.status', StringEquals: 'skipped' },
                  { Variable: '$.curation.status', StringEquals: 'failed' },
                ],
              },
            ],
            Next: 'Curate',
          },
        ],
        Default: 'Done',
      });
      expect(States.Curate).toMatchObject({ ...invoking({ Payload: { 'curate.$': '$.runId' } }), ResultPath: '$.curation', Next: 'Done' });
      expect(States.Curate.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.curationFailure', Next: 'CurationFailed' }]);
      expect(States.Done).toEqual({ Type: 'Succeed' });
    });

    it("retries Lambda's transient errors with backoff, and a failed invocation twice, except errors that would recur", () => {
      const { States } = definition();
      expect(States.Export.Retry).toEqual([
        transient,
        { ErrorEquals: ['EventError', 'ConfigError', 'ClientRejectedError'], MaxAttempts: 0 },
        { ErrorEquals: ['States.ALL'], IntervalSeconds: 60, BackoffRate: 2, MaxAttempts: 2 },
      ]);
      expect(States.Curate.Retry).toEqual([transient, { ErrorEquals: ['States.ALL'], IntervalSeconds: 60, BackoffRate: 2, MaxAttempts: 2 }]);
      expect(States.Abandon.Retry).toEqual([transient]);
    });

    it('on failure, removes the partial run once a checkpoint exists, then fails with the invocation’s error', () => {
      const { States } = definition();
      expect(States.Export.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'Checkpointed?' }]);
      const continuing = [
        { Variable: '$.status', IsPresent: true },
        { Variable: '$.status', StringEquals: 'continue' },
      ];
      expect(States['Checkpointed?']).toMatchObject({ Type: 'Choice', Choices: [{ And: continuing, Next: 'Abandon' }], Default: 'ExportFailed' });
      const fields = ['runId', 'attempt', 'bucket', 'checkpoint', 'sha256'];
      expect(States.Abandon).toMatchObject({
        ...invoking({ Payload: { abandon: Object.fromEntries(fields.map((field) => [`${field}.$`, `$.${field}`])) } }),
        ResultPath: '$.abandoned',
        Next: 'ExportFailed',
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.abandonFailure', Next: 'ExportFailed' }],
      });
      expect(States.ExportFailed).toMatchObject({ Type: 'Fail', ErrorPath: '$.failure.Error', CausePath: '$.failure.Cause' });
    });

    it('has a role that may invoke this function and nothing else, besides delivering its logs', () => {
      const roleId = s.id(s.stack.orchestration.stateMachine.role);
      const role = s.template.findResources('AWS::IAM::Role')[roleId]!;
      // Step Functions may take it on only for a state machine of this account and region.
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'states.amazonaws.com' },
          Condition: {
            ArnLike: { 'aws:SourceArn': 'arn:aws:states:eu-west-1:123456789012:stateMachine:*' },
            StringEquals: { 'aws:SourceAccount': '123456789012' },
          },
        },
      ]);
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(policyStatements(s.template, roleId)).toEqual([
        { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: [arnOf(functionId), { 'Fn::Join': ['', [arnOf(functionId), ':*']] }] },
        {
          // CloudWatch Logs' log-delivery actions take no resource-level permission.
          Action: [
            'logs:CreateLogDelivery',
            'logs:DeleteLogDelivery',
            'logs:DescribeLogGroups',
            'logs:DescribeResourcePolicies',
            'logs:GetLogDelivery',
            'logs:ListLogDeliveries',
            'logs:PutResourcePolicy',
            'logs:UpdateLogDelivery',
          ],
          Effect: 'Allow',
          Resource: '*',
        },
      ]);
      // No other principal may invoke the function.
      s.template.resourceCountIs('AWS::Lambda::Permission', 0);
    });

    it.each([
      ['an execution fails', 'ExecutionsFailed', 'Sum', 0],
      ['an execution times out', 'ExecutionsTimedOut', 'Sum', 0],
      ['a run takes more than 80% of the schedule period', 'ExecutionTime', 'Maximum', 2_880_000],
    ] as const)('alarms when %s', (_when, metric, statistic, threshold) => {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/States',
        MetricName: metric,
        Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: s.id(s.stack.orchestration.stateMachine) } }],
        Statistic: statistic,
        Period: 300,
        Threshold: threshold,
        ComparisonOperator: 'GreaterThanThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
      });
    });

    it('is named in the outputs, with the command that starts a run through it', () => {
      const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
      const machine = { Ref: s.id(s.stack.orchestration.stateMachine) };
      expect(outputs.StateMachineArn!.Value).toEqual(machine);
      expect(outputs.StartExecutionCommand!.Value).toEqual({
        'Fn::Join': ['', ['aws stepfunctions start-execution --region eu-west-1 --state-machine-arn ', machine, " --input '{}'"]],
      });
    });
  });

  describe('alarms and notifications', () => {
    it('encrypts the topic with a rotated customer-managed key that CloudWatch may use for this account’s alarms only', () => {
      const keyId = s.id(s.stack.monitoring.key);
      s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: arnOf(keyId) });
      s.template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Delete' });
      s.template.hasResourceProperties('AWS::KMS::Key', {
        EnableKeyRotation: true,
        PendingWindowInDays: 7,
        KeyPolicy: {
          Statement: Match.arrayWith([
            {
              Sid: 'AllowCloudWatchAlarmsToUseTheKey',
              Effect: 'Allow',
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
              Resource: '*',
              Condition: {
                ArnLike: { 'aws:SourceArn': 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*' },
                StringEquals: { 'aws:SourceAccount': '123456789012' },
              },
            },
          ]),
        },
      });
    });

    it('lets only this account’s alarms publish to the TLS-only topic, and mails the operator', () => {
      const topicId = s.id(s.stack.monitoring.topic);
      s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        Topics: [{ Ref: topicId }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            {
              Sid: 'AllowCloudWatchAlarmsToPublish',
              Effect: 'Allow',
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: 'sns:Publish',
              Resource: { Ref: topicId },
              Condition: {
                ArnLike: { 'aws:SourceArn': 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*' },
                StringEquals: { 'aws:SourceAccount': '123456789012' },
              },
            },
          ]),
        },
      });
      s.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: { Ref: topicId } });
    });

    it("has the exporter's seven alarms (four on the function, three on its runs' executions) and curation's, each notifying the topic on alarm and on recovery", () => {
      const topic = { Ref: s.id(s.stack.monitoring.topic) };
      const alarms = Object.values(resourcesOf(s.template, 'AWS::CloudWatch::Alarm')).map((alarm) => alarm.Properties);
      expect(alarms).toHaveLength(8);
      for (const alarm of alarms) {
        expect(alarm.AlarmActions).toEqual([topic]);
        expect(alarm.OKActions).toEqual([topic]);
      }
    });

    it.each([
      [
        'on any function error',
        // Read once the stack is synthesized: the logical ids are known only then.
        () => ({
          Namespace: 'AWS/Lambda',
          MetricName: 'Errors',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId } }],
          Statistic: 'Sum',
          Period: 300,
          Threshold: 0,
          ComparisonOperator: 'GreaterThanThreshold',
          EvaluationPeriods: 1,
          TreatMissingData: 'notBreaching',
        }),
      ],
      [
        'on any message in the DLQ',
        () => ({
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
          Statistic: 'Maximum',
          Threshold: 0,
          ComparisonOperator: 'GreaterThanThreshold',
          TreatMissingData: 'notBreaching',
        }),
      ],
      [
        // An invocation of a long run stops 50 s before the timeout; past the deadline it did not stop cleanly.
        'when an invocation runs into its deadline, RUN_DEADLINE_MARGIN_SECONDS before the timeout',
        () => ({
          Namespace: 'AWS/Lambda',
          MetricName: 'Duration',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId } }],
          Statistic: 'Maximum',
          Threshold: 880_000,
          ComparisonOperator: 'GreaterThanThreshold',
        }),
      ],
    ] as const)('alarms %s', (_when, alarm) => {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', alarm());
    });

    it('alarms when no export succeeded within two schedule periods, missing data included', () => {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'ThingParkExporter',
        MetricName: 'exportSucceeded',
        Dimensions: [{ Name: 'service', Value: 'thingpark-exporter' }],
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
      });
    });

    it('has a dashboard of the exporter’s figures, the function’s metrics and the alarms, over a week', () => {
      const dashboard = dashboardBody(s.template);
      expect(dashboard.start).toBe('-P7D');
      const widgets: any[] = dashboard.widgets;
      expect(widgets.map((widget) => [widget.type, widget.properties.title])).toEqual([
        ['metric', 'Devices exported'],
        ['metric', 'Pages and requests'],
        ['metric', 'Run duration (ms)'],
        ['metric', 'Token grants'],
        ['metric', 'Runs: succeeded, errors, throttles'],
        ['alarm', 'Alarms'],
        ['metric', 'Verified against the previous run'],
        ['metric', 'Run executions: time (ms)'],
        ['metric', 'Run executions: succeeded, failed, timed out'],
        ['metric', 'Fleet changes per run (curated)'],
      ]);
      const hourly = (stat: string, right = false) => ({ period: 3600, stat, ...(right ? { yAxis: 'right' } : {}) });
      const exporter = (name: string, stat: string, right = false) => ['ThingParkExporter', name, 'service', 'thingpark-exporter', hourly(stat, right)];
      const fn = (name: string, stat: string) => ['AWS/Lambda', name, 'FunctionName', `<Ref:${functionId}>`, hourly(stat)];
      const runs = (name: string, stat: string) => ['AWS/States', name, 'StateMachineArn', `<Ref:${s.id(s.stack.orchestration.stateMachine)}>`, hourly(stat)];
      const graphs = widgets.filter((widget) => widget.type === 'metric').map((widget) => widget.properties);
      for (const graph of graphs) expect(graph).toMatchObject({ view: 'timeSeries', region: '<Ref:AWS::Region>' });
      expect(graphs.map((graph) => graph.metrics)).toEqual([
        [exporter('devices', 'Maximum'), exporter('duplicates', 'Sum', true)],
        [exporter('pages', 'Sum'), exporter('pageRequests', 'Sum'), exporter('throttled', 'Sum', true)],
        [exporter('durationMs', 'Maximum'), fn('Duration', 'Maximum')],
        [exporter('tokenRequests', 'Sum')],
        [exporter('exportSucceeded', 'Sum'), fn('Errors', 'Sum'), fn('Throttles', 'Sum')],
        [exporter('recovered', 'Sum'), exporter('removed', 'Sum'), exporter('unresolved', 'Sum'), exporter('verificationRequests', 'Sum', true)],
        [runs('ExecutionTime', 'Maximum')],
        [runs('ExecutionsSucceeded', 'Sum'), runs('ExecutionsFailed', 'Sum'), runs('ExecutionsTimedOut', 'Sum')],
        [
          exporter('devicesAdded', 'Sum'),
          exporter('devicesRemoved', 'Sum'),
          exporter('devicesChanged', 'Sum'),
          exporter('curationFailed', 'Sum', true),
          exporter('curationSkipped', 'Sum', true),
        ],
      ]);
      // The verification's figures span the dashboard's width, in a row of their own below the alarms.
      expect(widgets[6]).toMatchObject({ x: 0, width: 24 });
      expect(widgets[6].y).toBeGreaterThan(widgets[5].y);
      expect(graphs[2].annotations).toEqual({ horizontal: [{ value: 880_000, label: 'deadline', yAxis: 'left' }] });
      // How long runs take against the schedule (80% of the hour), and how their executions end, side by side below.
      expect(graphs[6].annotations).toEqual({ horizontal: [{ value: 2_880_000, label: '80% of schedule period', yAxis: 'left' }] });
      expect(widgets[7]).toMatchObject({ x: 0, width: 12 });
      expect(widgets[8]).toMatchObject({ x: 12, width: 12, y: widgets[7].y });
      const { errors, deadLetters, duration, noSuccess, executionsFailed, executionsTimedOut, executionTime } = s.stack.monitoring.alarms;
      expect(widgets[5].properties.alarms).toEqual(
        [errors, deadLetters, duration, noSuccess, executionsFailed, executionsTimedOut, executionTime].map((alarm) => `<GetAtt:${s.id(alarm)}.Arn>`),
      );
    });
  });

  describe('analytics', () => {
    it('has a Glue table over <prefix>devices/ with date projection on dt', () => {
      const table = glueTable(s.template, 'devices').Properties.TableInput;
      expect(table.Name).toBe('devices');
      expect(table.Parameters).toEqual({
        classification: 'json',
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.range': '2024-01-01,NOW',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.interval': '1',
        'projection.dt.interval.unit': 'DAYS',
        has_encrypted_data: false,
      });
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string', Comment: 'UTC date of the run (yyyy-MM-dd)' }]);
      expect(table.StorageDescriptor).toMatchObject({
        Location: { 'Fn::Join': ['', ['s3://', { Ref: bucketId }, '/thingpark/devices/']] },
        SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
        InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      });
      s.template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'thingpark' } });
    });

    it('declares the device brief columns with their types', () => {
      const columns = glueTable(s.template, 'devices').Properties.TableInput.StorageDescriptor.Columns;
      expect(columns.map((column: { Name: string; Type: string }) => `${column.Name} ${column.Type}`)).toEqual([
        'exportrunid string',
        'ref string',
        'eui string',
        'name string',
        'nwaddress string',
        'healthstate string',
        'lastuptimestamp bigint',
        'lastdwtimestamp bigint',
        'lastrssi double',
        'lastsnr double',
        'avgrssi double',
        'avgsnr double',
        'lastsf int',
        'lastbatlevel int',
        'alarmcount int',
        'alarmlevel int',
        'lat double',
        'lon double',
        'href string',
        'model struct<commercialName:string>',
        'networksubscription struct<commercialName:string>',
        'appserversroutingprofile struct<name:string>',
      ]);
    });

    it('has an Athena workgroup that enforces encrypted results in a TLS-only bucket of their own', () => {
      const resultsId = s.id(s.stack.analytics.resultsBucket);
      s.template.hasResourceProperties('AWS::Athena::WorkGroup', {
        Name: 'thingpark',
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          PublishCloudWatchMetricsEnabled: true,
          ResultConfiguration: {
            OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: resultsId }, '/athena-results/']] },
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
            ExpectedBucketOwner: '123456789012',
          },
        },
      });
      const results = s.template.findResources('AWS::S3::Bucket')[resultsId]!;
      expect(results.Properties).toMatchObject({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      });
      s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: resultsId },
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    });
  });

  describe('cdk-nag AwsSolutions', () => {
    it('finds nothing unacknowledged, and the validation report is empty', () => {
      expect(s.pack.validateScope(s.app).violations).toEqual([]);
      const reportFile = join(s.app.outdir, 'validation-report.json');
      expect(existsSync(reportFile)).toBe(true);
      const report = JSON.parse(readFileSync(reportFile, 'utf8'));
      expect(report.pluginReports.flatMap((plugin: { violations?: unknown[] }) => plugin.violations ?? [])).toEqual([]);
      const annotations = Annotations.fromStack(s.stack);
      expect(annotations.findError('*', Match.anyValue())).toEqual([]);
      expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
    });

    it('acknowledges exactly the expected findings, each with a reason', () => {
      const acknowledged = acknowledgements(s.app);
      expect([...new Set(acknowledged.map((entry) => entry.id))].sort()).toEqual(
        [
          'AwsSolutions-S1',
          'AwsSolutions-SQS3',
          'AwsSolutions-SF2',
          'AwsSolutions-IAM5[Resource::*]',
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/attempts/*]`,
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/checkpoints/*]`,
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/curated/*]`,
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/devices/*]`,
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/indexes/*]`,
          `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/thingpark/manifests/*]`,
          `AwsSolutions-IAM5[Resource::<${functionId}.Arn>:*]`,
        ].sort(),
      );
      for (const { reason } of acknowledged) expect(reason.length).toBeGreaterThan(40);
    });

    it('acknowledges S1 on what is true: no per-request audit of the bucket, and the trade-off accepted', () => {
      // The stack has no trail: the reason may not rest on one.
      s.template.resourceCountIs('AWS::CloudTrail::Trail', 0);
      const onBucket = acknowledgements(s.app).filter((entry) => entry.path === s.stack.bucket.node.path && entry.id === 'AwsSolutions-S1');
      expect(onBucket).toHaveLength(1);
      const { reason } = onBucket[0]!;
      expect(reason).toMatch(/records no per-request audit/);
      expect(reason).toMatch(/creates no CloudTrail trail/);
      expect(reason).toMatch(/Accepted trade-off: without such a trail, who read or wrote which object is not traceable/);
    });
  });

  describe('outputs', () => {
    it('names everything an operator needs, and the exact on-demand command', () => {
      const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
      expect(Object.keys(outputs).sort()).toEqual(
        [
          'AlarmTopicArn',
          'AthenaWorkGroupName',
          'DeadLetterQueueUrl',
          'FunctionName',
          'GlueDatabaseName',
          'GlueTableName',
          'InvokeCommand',
          'SnapshotBucketName',
          'StartExecutionCommand',
          'StateMachineArn',
        ].sort(),
      );
      expect(outputs.SnapshotBucketName!.Value).toEqual({ Ref: bucketId });
      expect(outputs.FunctionName!.Value).toEqual({ Ref: functionId });
      expect(outputs.DeadLetterQueueUrl!.Value).toEqual({ Ref: queueId });
      expect(outputs.AlarmTopicArn!.Value).toEqual({ Ref: s.id(s.stack.monitoring.topic) });
      expect(outputs.InvokeCommand!.Value).toEqual({
        'Fn::Join': [
          '',
          [
            'aws lambda invoke --region eu-west-1 --function-name ',
            { Ref: functionId },
            " --cli-binary-format raw-in-base64-out --cli-read-timeout 0 --payload '{}' summary.json && cat summary.json",
          ],
        ],
      });
    });
  });
});

describe('ExporterStack with every context value given (not bundled)', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthesize(
      {
        thingparkBaseUrl: 'https://eu.thingpark.example/',
        clientIdParameterName: 'tp/id',
        clientSecretParameterName: '/tp/secret',
        snapshotPrefix: 'exports/fleet/',
        scheduleExpression: 'cron(0 6 * * ? *)',
        schedulePeriodMinutes: '1440',
        kmsKeyArn: KEY_ARN,
        glueDatabaseName: 'fleet',
        functionEnvironment: '{"THINGPARK_PAGE_SIZE": 500, "POWERTOOLS_LOG_LEVEL": "DEBUG"}',
      },
      false,
    );
  });

  it('passes the context to the function, overrides included', () => {
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          THINGPARK_BASE_URL: 'https://eu.thingpark.example/',
          THINGPARK_CLIENT_ID_PARAM: 'tp/id',
          THINGPARK_CLIENT_SECRET_PARAM: '/tp/secret',
          SNAPSHOT_PREFIX: 'exports/fleet/',
          THINGPARK_PAGE_SIZE: '500',
          POWERTOOLS_LOG_LEVEL: 'DEBUG',
        }),
      },
    });
  });

  it('decrypts the secret with the given key only through SSM and only for the secret parameter', () => {
    const statements = policyStatements(s.template, s.id(s.stack.function.role!));
    const secretArn = 'arn:aws:ssm:eu-west-1:123456789012:parameter/tp/secret';
    expect(statements).toContainEqual({
      Sid: 'ReadThingParkCredentials',
      Action: 'ssm:GetParameters',
      Effect: 'Allow',
      Resource: ['arn:aws:ssm:eu-west-1:123456789012:parameter/tp/id', secretArn],
    });
    expect(statements).toContainEqual({
      Sid: 'DecryptThingParkSecret',
      Action: 'kms:Decrypt',
      Effect: 'Allow',
      Resource: KEY_ARN,
      Condition: { StringEquals: { 'kms:ViaService': 'ssm.eu-west-1.amazonaws.com', 'kms:EncryptionContext:PARAMETER_ARN': secretArn } },
    });
  });

  it('scopes S3 access and the table to the given prefix', () => {
    const bucketId = s.id(s.stack.bucket);
    const statements = policyStatements(s.template, s.id(s.stack.function.role!));
    const resources = statements
      .filter((statement) => String(statement.Action).startsWith('s3:') && statement.Action !== 's3:ListBucket')
      .flatMap((statement) => [statement.Resource].flat());
    for (const resource of resources)
      expect(resource['Fn::Join'][1][1]).toMatch(
        /^\/exports\/fleet\/(devices\/\*|manifests\/\*|attempts\/\*|indexes\/\*|checkpoints\/\*|curated\/\*|latest\.json)$/,
      );
    const conditionalWrites = bucketPolicyStatements(s.template, bucketId).filter((statement) => statement.Action === 's3:PutObject');
    expect(conditionalWrites.map((statement) => statement.Resource['Fn::Join'][1][1])).toEqual([
      '/exports/fleet/manifests/*',
      '/exports/fleet/latest.json',
      '/exports/fleet/curated/runs/*',
      '/exports/fleet/curated/devices_current/symlink.txt',
    ]);
    s.template.hasResourceProperties('AWS::Glue::Table', {
      DatabaseName: { Ref: s.id(s.stack.analytics.database) },
      TableInput: { StorageDescriptor: { Location: { 'Fn::Join': ['', ['s3://', { Ref: bucketId }, '/exports/fleet/devices/']] } } },
    });
    s.template.hasResourceProperties('AWS::Athena::WorkGroup', { Name: 'fleet' });
  });

  it('uses the cron schedule and the given period for the no-success alarm; no expiry and no subscription', () => {
    s.template.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'cron(0 6 * * ? *)' });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'exportSucceeded', Period: 86_400, EvaluationPeriods: 2 });
    s.template.resourceCountIs('AWS::SNS::Subscription', 0);
    const rules = s.template.findResources('AWS::S3::Bucket')[s.id(s.stack.bucket)]!.Properties.LifecycleConfiguration.Rules;
    // Checkpoints expire whatever the context: none is resumable after a day.
    expect(rules.map((rule: { Id: string }) => rule.Id)).toEqual([
      'abort-incomplete-uploads',
      'expire-noncurrent-versions',
      'expire-checkpoints',
      'expire-curated-state',
    ]);
  });

  it('still has no unacknowledged cdk-nag finding', () => {
    expect(s.pack.validateScope(s.app).violations).toEqual([]);
  });
});

describe('settingsFromContext', () => {
  const settings = (context: Record<string, unknown>) => settingsFromContext(new App({ context }));

  it('derives the alarm period from a rate expression', () => {
    expect(settings({}).schedulePeriodMinutes).toBe(60);
    expect(settings({ scheduleExpression: 'rate(15 minutes)' }).schedulePeriodMinutes).toBe(15);
    expect(settings({ scheduleExpression: 'rate(1 day)' }).schedulePeriodMinutes).toBe(1440);
  });

  it.each([
    [{ scheduleExpression: 'cron(0 * * * ? *)' }, /schedulePeriodMinutes is required/],
    [{ scheduleExpression: 'every hour' }, /scheduleExpression must be rate/],
    [{ scheduleExpression: 'rate(1 hours)' }, /not a rate of minutes, hours or days/],
    [{ schedulePeriodMinutes: '6000' }, /schedulePeriodMinutes must be an integer from 1 to 5040/],
    [{ thingparkBaseUrl: 'http://thingpark.example' }, /thingparkBaseUrl must use https/],
    [{ snapshotPrefix: 'no-slash' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ clientSecretParameterName: 'bad name' }, /clientSecretParameterName must be an SSM parameter name/],
    [{ kmsKeyArn: 'alias/aws/ssm' }, /kmsKeyArn must be a key ARN/],
    [{ alarmEmail: 'ops' }, /alarmEmail must be an e-mail address/],
    [{ snapshotExpirationDays: '0' }, /snapshotExpirationDays must be an integer/],
    [{ functionEnvironment: '{"SNAPSHOT_BUCKET": "other"}' }, /functionEnvironment may set only/],
    [{ functionEnvironment: '{"THINGPARK_PAGE_SIZE": "0"}' }, /THINGPARK_PAGE_SIZE must be an integer/],
  ])('rejects %j at synth time', (context, message) => {
    expect(() => settings(context)).toThrow(message);
  });

  /** The message of the error a context is refused with. */
  const refusal = (context: Record<string, unknown>): string => {
    try {
      settings(context);
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error(`${JSON.stringify(context)} was accepted`);
  };

  it.each([
    ['rate(1 hours)', 'rate(1 hour)'],
    ['rate(5 minute)', 'rate(5 minutes)'],
    ['rate(2 hrs)', 'rate(2 hours)'],
    ['rate(1 Days)', 'rate(1 day)'],
  ])('names the rate Scheduler accepts for %s: %s', (given, fix) => {
    expect(refusal({ scheduleExpression: given })).toContain(`scheduleExpression "${given}" is not a rate of minutes, hours or days`);
    expect(refusal({ scheduleExpression: given })).toContain(`use ${fix}`);
    expect(settings({ scheduleExpression: fix }).scheduleExpression).toBe(fix);
  });

  it('refuses a cron expression without the six fields Scheduler reads, with the fix for a Unix cron', () => {
    const four = refusal({ scheduleExpression: 'cron(0 * * *)', schedulePeriodMinutes: '60' });
    expect(four).toContain('scheduleExpression "cron(0 * * *)" has 4 fields; EventBridge Scheduler\'s cron has 6');
    const five = refusal({ scheduleExpression: 'cron(0 6 * * *)', schedulePeriodMinutes: '1440' });
    expect(five).toContain('has 5 fields');
    expect(five).toContain('use cron(0 6 * * ? *)');
    expect(refusal({ scheduleExpression: 'cron(0 6 * * * *)', schedulePeriodMinutes: '1440' })).toMatch(
      /exactly one of day-of-month .* and day-of-week .* must be "\?"/,
    );
    expect(settings({ scheduleExpression: 'cron(0 6 ? * MON-FRI *)', schedulePeriodMinutes: '4320' }).schedulePeriodMinutes).toBe(4320);
  });

  it('reports a bad thingparkBaseUrl once, by its context key and value, and nothing of the token URL derived from it', () => {
    for (const [value, problem] of [
      ['http://thingpark.example', 'must use https://'],
      ['not a url', 'must be an absolute URL'],
      ['https://thingpark.example/?tenant=1', 'must not have a query string'],
    ] as const) {
      const message = refusal({ thingparkBaseUrl: value });
      expect(message.split('\n').filter((line) => line.startsWith('- '))).toEqual([expect.stringContaining(`thingparkBaseUrl ${problem}`)]);
      expect(message).toContain(`"${value}"`);
      expect(message).not.toMatch(/THINGPARK_|token URL/);
    }
  });

  it('names the variable meant by a misspelt functionEnvironment override, and says which overrides break a limit', () => {
    expect(refusal({ functionEnvironment: '{"THINGPARK_CONCURENCY": "8"}' })).toContain('got THINGPARK_CONCURENCY: did you mean THINGPARK_CONCURRENCY?');
    expect(refusal({ functionEnvironment: '{"THINGPARK_PAGE_SIZE": "100000"}' })).toContain(
      '- functionEnvironment: THINGPARK_CONCURRENCY x THINGPARK_PAGE_SIZE must be at most 32000',
    );
  });

  it('says why a rate too slow for the no-success alarm is refused, in terms of the rate', () => {
    expect(refusal({ scheduleExpression: 'rate(30 days)' })).toContain('scheduleExpression "rate(30 days)" runs every 43200 minutes');
  });
});

describe('ExporterStack: the curated tables (infra/curation.ts)', () => {
  let s: Synthesized;
  let bucketId: string;
  beforeAll(() => {
    s = synthesize({}, false);
    bucketId = s.id(s.stack.bucket);
  });
  const location = (folder: string) => ({ 'Fn::Join': ['', ['s3://', { Ref: bucketId }, `/thingpark/${folder}`]] });
  const columnsOf = (name: string) =>
    glueTable(s.template, name).Properties.TableInput.StorageDescriptor.Columns.map(
      (column: { Name: string; Type: string }) => `${column.Name} ${column.Type}`,
    );

  it('declares device_snapshots and device_changes as Parquet over their own folders, partitioned by a projected dt', () => {
    for (const [name, folder] of [
      ['device_snapshots', 'curated/device_snapshots/'],
      ['device_changes', 'curated/device_changes/'],
    ] as const) {
      const table = glueTable(s.template, name).Properties.TableInput;
      expect(table.StorageDescriptor).toMatchObject({
        Location: location(folder),
        SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
        InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
      });
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string', Comment: 'UTC date of the run (yyyy-MM-dd)' }]);
      expect(table.Parameters).toMatchObject({
        classification: 'parquet',
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.range': '2024-01-01,NOW',
      });
    }
  });

  it('types the Parquet columns as the files do: timestamps, doubles, bigints, a list, a boolean', () => {
    expect(columnsOf('device_snapshots')).toEqual([
      'run_id string',
      'run_time timestamp',
      'ref string',
      'eui string',
      'name string',
      'nw_address string',
      'health_state string',
      'model_commercial_name string',
      'subscription_commercial_name string',
      'routing_profile_name string',
      'last_up_timestamp timestamp',
      'last_dw_timestamp timestamp',
      'last_rssi double',
      'last_snr double',
      'avg_rssi double',
      'avg_snr double',
      'last_sf bigint',
      'last_bat_level bigint',
      'alarm_count bigint',
      'alarm_level bigint',
      'lat double',
      'lon double',
      'href string',
      'other_fields string',
    ]);
    expect(columnsOf('devices_current')).toEqual(columnsOf('device_snapshots'));
    expect(columnsOf('device_changes')).toEqual([
      'run_id string',
      'run_time timestamp',
      'previous_run_id string',
      'previous_run_time timestamp',
      'change string',
      'device_key string',
      'ref string',
      'eui string',
      'name string',
      'health_state_before string',
      'health_state_after string',
      'changed_fields array<string>',
      'before string',
      'after string',
      'confirmed boolean',
    ]);
  });

  it('makes devices_current a symlink table over the folder holding only symlink.txt, unpartitioned', () => {
    const table = glueTable(s.template, 'devices_current').Properties.TableInput;
    expect(table.StorageDescriptor).toMatchObject({
      Location: location('curated/devices_current/'),
      InputFormat: 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
      SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
    });
    expect(table.PartitionKeys).toBeUndefined();
  });

  it('reads the manifests as the runs table and the curation records as curated_runs, with the JSON SerDe', () => {
    for (const [name, folder] of [
      ['runs', 'manifests/'],
      ['curated_runs', 'curated/runs/'],
    ] as const) {
      expect(glueTable(s.template, name).Properties.TableInput.StorageDescriptor).toMatchObject({
        Location: location(folder),
        SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
      });
    }
    expect(columnsOf('runs')).toContain(
      'counts struct<devices:bigint,pages:bigint,pageRequests:bigint,wastedRequests:bigint,duplicates:bigint,unkeyed:bigint,throttled:bigint,retries:bigint,tokenRequests:bigint,recovered:bigint,removed:bigint,unresolved:bigint,verificationRequests:bigint>',
    );
    expect(columnsOf('curated_runs')).toEqual(
      expect.arrayContaining(['added bigint', 'removed bigint', 'changed bigint', 'removalsconfirmed boolean', 'changefields array<string>']),
    );
  });

  it('saves the four day-one queries in the workgroup, each naming the tables it reads', () => {
    const queries = Object.values(resourcesOf(s.template, 'AWS::Athena::NamedQuery')).map((query) => query.Properties);
    expect(queries.map((query) => query.Name)).toEqual([
      'Fleet by health now',
      'Devices silent for more than 24 hours',
      'Health changes over the last 7 days',
      'Runs of the last day',
    ]);
    for (const query of queries) expect(query).toMatchObject({ Database: 'thingpark', WorkGroup: 'thingpark' });
    expect(queries[0]!.QueryString).toContain('FROM thingpark.devices_current');
    expect(queries[1]!.QueryString).toContain("last_up_timestamp < current_timestamp - INTERVAL '24' HOUR");
    expect(queries[2]!.QueryString).toContain("contains(changed_fields, 'healthState')");
    expect(queries[3]!.QueryString).toContain('LEFT JOIN thingpark.curated_runs c ON c.runid = r.runid');
  });

  it('alarms when a curation fails (not when one is skipped for the state machine to run), and expires the comparison state after a week', () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'curationFailed',
      Namespace: 'ThingParkExporter',
      Statistic: 'Sum',
      Period: 300,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ Ref: s.id(s.stack.monitoring.topic) }],
    });
    expect(Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter((alarm) => JSON.stringify(alarm).includes('curationSkipped'))).toEqual([]);
    const rules = s.template.findResources('AWS::S3::Bucket')[bucketId]!.Properties.LifecycleConfiguration.Rules;
    expect(rules).toContainEqual({ Id: 'expire-curated-state', Prefix: 'thingpark/curated/state/', ExpirationInDays: 7, Status: 'Enabled' });
  });
});
