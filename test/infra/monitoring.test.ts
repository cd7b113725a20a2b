import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { arnOf, DEPLOYED_CONTEXT, joinedJson, onlyResource, resourcesOf, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

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

    it("has the exporter's seven alarms (four on the function, three on its runs' executions), curation's and the fleet's three, each notifying the topic on alarm and on recovery", () => {
      const topic = { Ref: s.id(s.stack.monitoring.topic) };
      const alarms = Object.entries(resourcesOf(s.template, 'AWS::CloudWatch::Alarm')).map(([id, { Properties }]) => ({
        id,
        AlarmActions: Properties.AlarmActions,
        OKActions: Properties.OKActions,
      }));
      expect(alarms).toHaveLength(11);
      expect(alarms).toEqual(alarms.map(({ id }) => ({ id, AlarmActions: [topic], OKActions: [topic] })));
    });

    it.each([
      [
        'on any function error',
        // Read once the stack is synthesized: the logical ids are known only then.
        () => ({
          Namespace: 'AWS/Lambda',
          MetricName: 'Errors',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: s.functionId } }],
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
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [s.queueId, 'QueueName'] } }],
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
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: s.functionId } }],
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
      const dashboard = joinedJson(onlyResource(s.template, 'AWS::CloudWatch::Dashboard').Properties.DashboardBody);
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
        ['metric', 'Run executions: succeeded, failed, timed out; schedules skipped'],
        ['metric', 'Fleet changes per run (curated)'],
        // The fleet's own row (test/infra/fleet-alarms.test.ts).
        ['metric', 'Fleet health: devices per state'],
        ['metric', 'Silent and never-seen devices'],
        ['metric', 'Fleet changes per run (% of the fleet)'],
        ['alarm', 'Fleet alarms'],
      ]);
      const hourly = (stat: string, right = false) => ({ period: 3600, stat, ...(right ? { yAxis: 'right' } : {}) });
      const exporter = (name: string, stat: string, right = false) => ['ThingParkExporter', name, 'service', 'thingpark-exporter', hourly(stat, right)];
      const fn = (name: string, stat: string) => ['AWS/Lambda', name, 'FunctionName', `<Ref:${s.functionId}>`, hourly(stat)];
      const runs = (name: string, stat: string) => ['AWS/States', name, 'StateMachineArn', `<Ref:${s.id(s.stack.orchestration.stateMachine)}>`, hourly(stat)];
      const graphs = widgets.filter((widget) => widget.type === 'metric').map((widget) => widget.properties);
      expect(graphs).toEqual(graphs.map(() => expect.objectContaining({ view: 'timeSeries', region: '<Ref:AWS::Region>' })));
      expect(graphs.slice(0, 9).map((graph) => graph.metrics)).toEqual([
        [exporter('devices', 'Maximum'), exporter('duplicates', 'Sum', true)],
        [exporter('pages', 'Sum'), exporter('pageRequests', 'Sum'), exporter('throttled', 'Sum', true)],
        [exporter('durationMs', 'Maximum'), fn('Duration', 'Maximum')],
        [exporter('tokenRequests', 'Sum')],
        [exporter('exportSucceeded', 'Sum'), fn('Errors', 'Sum'), fn('Throttles', 'Sum')],
        [exporter('recovered', 'Sum'), exporter('removed', 'Sum'), exporter('unresolved', 'Sum'), exporter('verificationRequests', 'Sum', true)],
        [runs('ExecutionTime', 'Maximum')],
        // Skipped schedules: counted from the state machine's log (no dimension), and among the succeeded too.
        [
          runs('ExecutionsSucceeded', 'Sum'),
          runs('ExecutionsFailed', 'Sum'),
          runs('ExecutionsTimedOut', 'Sum'),
          ['ThingParkExporter', 'scheduleSkipped', hourly('Sum')],
        ],
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
  });
});
