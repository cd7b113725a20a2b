import { describe, expect, it } from 'vitest';
import { arnOf, DEPLOYED_CONTEXT, joinedJson, onlyResource, policyStatements, resourcesOf, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

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
        DeadLetterConfig: { Arn: arnOf(s.queueId) },
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
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: arnOf(s.queueId) },
      ]);
    });
  });

  describe('state machine (runs over several invocations)', () => {
    /** The definition as Step Functions reads it: references as `<Ref:id>` and `<GetAtt:id.attribute>`. */
    const definition = (): any => joinedJson(onlyResource(s.template, 'AWS::StepFunctions::StateMachine').Properties.DefinitionString);
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
      Parameters: { FunctionName: `<GetAtt:${s.functionId}.Arn>`, ...payload },
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
        { ErrorEquals: ['EventError', 'ConfigError', 'ClientRejectedError', 'RunLimitError'], MaxAttempts: 0 },
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
        { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: [arnOf(s.functionId), { 'Fn::Join': ['', [arnOf(s.functionId), ':*']] }] },
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

    it('is named in the outputs, with the command that starts a run through it', () => {
      const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
      const machine = { Ref: s.id(s.stack.orchestration.stateMachine) };
      expect(outputs.StateMachineArn!.Value).toEqual(machine);
      expect(outputs.StartExecutionCommand!.Value).toEqual({
        'Fn::Join': ['', ['aws stepfunctions start-execution --region eu-west-1 --state-machine-arn ', machine, " --input '{}'"]],
      });
    });
  });
});
