import { App } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { describe, expect, it } from 'vitest';
import { functionEnvironmentOf, settingsFromContext, TUNABLE_VARIABLES } from '../../infra/settings.ts';
import { VARIABLE_NAMES, VARIABLES } from '../../lambda/common/env.ts';
import { bucketPolicyStatements, KEY_ARN, policyStatements, synthesizeOnce } from './synth.ts';

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
    // An IAM wildcard or policy variable would grant far more than the prefix's folder.
    [{ snapshotPrefix: '*' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: 'thing*/' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: 'thing?/' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: '${aws:username}/' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: 'a/../' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: "it's(odd)/" }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ snapshotPrefix: 'a//' }, /snapshotPrefix must be empty or a safe key prefix/],
    [{ clientSecretParameterName: 'bad name' }, /clientSecretParameterName must be an SSM parameter name/],
    [{ kmsKeyArn: 'alias/aws/ssm' }, /kmsKeyArn must be a key ARN/],
    [{ alarmEmail: 'ops' }, /alarmEmail must be an e-mail address/],
    [{ snapshotExpirationDays: '0' }, /snapshotExpirationDays must be an integer/],
    // Below the default, the byte budgets measured against 1,024 MB no longer fit.
    [{ functionMemoryMb: '512' }, /functionMemoryMb must be an integer from 1024 to 10240 \(MB\), got "512"/],
    [{ functionMemoryMb: '10241' }, /functionMemoryMb must be an integer from 1024 to 10240/],
    [{ functionMemoryMb: '2GB' }, /functionMemoryMb must be an integer from 1024 to 10240/],
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
      expect(
        message.split('\n').filter((line) => line.startsWith('- ')),
        value,
      ).toEqual([expect.stringContaining(`thingparkBaseUrl ${problem}`)]);
      expect(message).toContain(`"${value}"`);
      expect(message, value).not.toMatch(/THINGPARK_|token URL/);
    }
  });

  it('names the variable meant by a misspelt functionEnvironment override, and says which overrides break a limit', () => {
    expect(refusal({ functionEnvironment: '{"THINGPARK_CONCURENCY": "8"}' })).toContain('got THINGPARK_CONCURENCY: did you mean THINGPARK_CONCURRENCY?');
    expect(refusal({ functionEnvironment: '{"THINGPARK_PAGE_SIZE": "100000"}' })).toContain(
      '- functionEnvironment: THINGPARK_CONCURRENCY x THINGPARK_PAGE_SIZE must be at most 32000',
    );
  });

  it("refuses a context key it does not read, with the key meant, and leaves the CDK's own keys alone", () => {
    const misspelt = refusal({ scheduleExpresion: 'rate(2 hours)' });
    expect(misspelt).toContain('- context key scheduleExpresion is not one the stack reads (thingparkBaseUrl, ');
    expect(misspelt).toContain(': did you mean scheduleExpression?');
    expect(refusal({ schedule: 'cron(0 * * *)' })).toContain('context key schedule is not one the stack reads');
    expect(refusal({ schedule: 'cron(0 * * *)' })).toContain('did you mean scheduleExpression or schedulePeriodMinutes?');
    expect(refusal({ alarmMail: 'ops@example.com', kmsKeyArm: KEY_ARN })).toMatch(
      /- context key alarmMail .*: did you mean alarmEmail\?\n- context key kmsKeyArm .*: did you mean kmsKeyArn\?$/,
    );
    expect(refusal({ colour: 'blue' })).toMatch(/context key colour is not one the stack reads \([^)]*\)$/);
    // What the toolkit passes on every synth, feature flags of any library, cached lookups, acknowledged notices.
    const cdkOwn = {
      ...cdkJson.context,
      'aws:cdk:enable-path-metadata': true,
      'aws:cdk:bundling-stacks': ['**'],
      'aws-cdk:enableDiffNoFail': 'true',
      '@aws-cdk-containers/ecs-service-extensions:enableDefaultLogDriver': true,
      'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a'],
      'acknowledged-issue-numbers': [32775],
      'cdk-migrate': true,
    };
    expect(settings({ ...cdkOwn, scheduleExpression: 'rate(2 hours)' }).scheduleExpression).toBe('rate(2 hours)');
  });

  it('says why a rate too slow for the no-success alarm is refused, in terms of the rate', () => {
    expect(refusal({ scheduleExpression: 'rate(30 days)' })).toContain('scheduleExpression "rate(30 days)" runs every 43200 minutes');
  });
});

describe('functionEnvironmentOf', () => {
  it('sets the variables the registry says the stack sets; functionEnvironment may set the others, and only those', () => {
    const settings = settingsFromContext(new App({ context: { functionEnvironment: '{"THINGPARK_PAGE_SIZE": "500"}' } }));
    const environment = functionEnvironmentOf(settings, 'bucket');
    const setByStack = Object.keys(environment).filter((name) => !Object.hasOwn(settings.functionEnvironment, name));
    expect(setByStack.sort()).toEqual(VARIABLE_NAMES.filter((name) => 'setByStack' in VARIABLES[name]).sort());
    expect(environment.THINGPARK_PAGE_SIZE).toBe('500');
    expect([...TUNABLE_VARIABLES, ...setByStack].sort()).toEqual([...VARIABLE_NAMES].sort());
  });

  it("names curation's variables among those functionEnvironment may set, and the one a misspelt override meant", () => {
    expect(TUNABLE_VARIABLES).toEqual(expect.arrayContaining(['CURATE_CHANGE_FIELDS', 'CURATE_INLINE_MIN_REMAINING_SECONDS']));
    expect(() => settingsFromContext(new App({ context: { functionEnvironment: '{"CURATE_INLNE_MIN_REMAINING_SECONDS": "0"}' } }))).toThrow(
      'got CURATE_INLNE_MIN_REMAINING_SECONDS: did you mean CURATE_INLINE_MIN_REMAINING_SECONDS?',
    );
  });
});

describe('ExporterStack with every context value given (not bundled)', () => {
  const s = synthesizeOnce({
    thingparkBaseUrl: 'https://eu.thingpark.example/',
    clientIdParameterName: 'tp/id',
    clientSecretParameterName: '/tp/secret',
    snapshotPrefix: 'exports/fleet/',
    scheduleExpression: 'cron(0 6 * * ? *)',
    schedulePeriodMinutes: '1440',
    kmsKeyArn: KEY_ARN,
    glueDatabaseName: 'fleet',
    functionEnvironment: '{"THINGPARK_PAGE_SIZE": 500, "POWERTOOLS_LOG_LEVEL": "DEBUG"}',
    functionMemoryMb: '3008',
  });

  it('gives the function the memory asked for, and V8 a heap limit that leaves the same 128 MB outside it', () => {
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 3008,
      Environment: { Variables: Match.objectLike({ NODE_OPTIONS: '--enable-source-maps --max-old-space-size=2880' }) },
    });
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
    const underPrefix =
      /^\/exports\/fleet\/(devices\/\*|manifests\/\*|attempts\/\*|indexes\/\*|checkpoints\/\*|curated\/\*|curated\/(device_snapshots|device_changes)\/dt=\*\/run=\*\/part-\*\.parquet|curated\/state\/\*\.(state\.gz|progress\.json)|latest\.json)$/;
    expect(resources).not.toEqual([]);
    expect(resources.map((resource) => resource['Fn::Join'][1][1]).filter((key: string) => !underPrefix.test(key))).toEqual([]);
    const conditionalWrites = bucketPolicyStatements(s.template, bucketId).filter((statement) => statement.Action === 's3:PutObject');
    expect(conditionalWrites.map((statement) => statement.Resource['Fn::Join'][1][1])).toEqual([
      '/exports/fleet/manifests/*',
      '/exports/fleet/checkpoints/*',
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
