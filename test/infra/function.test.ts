import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { describe, expect, it } from 'vitest';
import { arnOf, DEPLOYED_CONTEXT, objectArn, onlyResource, policyStatements, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context (bundled, as `cdk synth` builds it)', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT, true);

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
        SNAPSHOT_BUCKET: { Ref: s.bucketId },
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
      const banner = "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";
      expect(bundle.slice(0, banner.length)).toBe(banner);
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
        FunctionName: { Ref: s.functionId },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: { OnFailure: { Destination: arnOf(s.queueId) } },
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
      const underPrefix = (...keys: string[]) => keys.map((key) => objectArn(s.bucketId, `thingpark/${key}`));
      expect(statements).toEqual([
        { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: arnOf(s.id(s.stack.function.logGroup)) },
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(s.queueId) },
        {
          Sid: 'WriteSnapshots',
          Action: 's3:PutObject',
          Effect: 'Allow',
          Resource: underPrefix('attempts/*', 'checkpoints/*', 'devices/*', 'indexes/*', 'latest.json', 'manifests/*'),
        },
        { Sid: 'AbortDataUploads', Action: 's3:AbortMultipartUpload', Effect: 'Allow', Resource: objectArn(s.bucketId, 'thingpark/devices/*') },
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
        { Sid: 'ListSnapshotBucket', Action: 's3:ListBucket', Effect: 'Allow', Resource: arnOf(s.bucketId) },
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
          Resource: [objectArn(s.bucketId, 'thingpark/curated/*'), objectArn(s.bucketId, 'thingpark/devices/*')],
        },
        { Sid: 'WriteCurated', Action: 's3:PutObject', Effect: 'Allow', Resource: objectArn(s.bucketId, 'thingpark/curated/*') },
        // Deletes only what a failed curation removes of its own: never a record nor the symlink.
        {
          Sid: 'RemoveFailedCuration',
          Action: ['s3:AbortMultipartUpload', 's3:DeleteObject'],
          Effect: 'Allow',
          Resource: underPrefix(
            'curated/device_changes/dt=*/run=*/part-*.parquet',
            'curated/device_snapshots/dt=*/run=*/part-*.parquet',
            'curated/state/*.progress.json',
            'curated/state/*.state.gz',
          ),
        },
      ]);
    });

    it('may only send to the dead-letter queue its failed runs go to, nothing else of SQS', () => {
      const statements = policyStatements(s.template, s.id(s.stack.function.role!));
      const sqsStatements = statements.filter((statement) => [statement.Action].flat().some((action: string) => action.startsWith('sqs:')));
      expect(sqsStatements).toEqual([{ Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(s.queueId) }]);
      s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: s.functionId },
        DestinationConfig: { OnFailure: { Destination: arnOf(s.queueId) } },
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

  describe('dead-letter queue', () => {
    it('is encrypted, TLS-only and keeps messages 14 days', () => {
      s.template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: s.queueId }],
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
        },
      });
    });
  });
});
