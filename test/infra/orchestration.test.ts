import type { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { arnOf, DEPLOYED_CONTEXT, joinedJson, onlyResource, policyStatements, resourcesOf, synthesizeOnce } from './synth.ts';

/** The logical ids each resource of the template needs first: its DependsOn, and every Ref and GetAtt in it. */
function dependencies(template: Template): Map<string, Set<string>> {
  const resources = template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
  const graph = new Map<string, Set<string>>();
  const walk = (value: unknown, into: Set<string>): void => {
    if (Array.isArray(value)) for (const item of value) walk(item, into);
    else if (typeof value === 'object' && value !== null) {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'Ref' && typeof inner === 'string' && inner in resources) into.add(inner);
        else if (key === 'Fn::GetAtt' && Array.isArray(inner) && typeof inner[0] === 'string' && inner[0] in resources) into.add(inner[0]);
        else walk(inner, into);
      }
    }
  };
  for (const [id, resource] of Object.entries(resources)) {
    const needs = new Set(resource.DependsOn ?? []);
    walk(resource, needs);
    graph.set(id, needs);
  }
  return graph;
}

/** A cycle of the graph (the ids around it), or undefined when it has none. */
function cycleOf(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const visit = (id: string, path: string[]): string[] | undefined => {
    if (path.includes(id)) return [...path.slice(path.indexOf(id)), id];
    if (done.has(id)) return undefined;
    for (const next of graph.get(id) ?? []) {
      const cycle = visit(next, [...path, id]);
      if (cycle) return cycle;
    }
    done.add(id);
    return undefined;
  };
  for (const id of graph.keys()) {
    const cycle = visit(id, []);
    if (cycle) return cycle;
  }
  return undefined;
}

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
      const { States } = definition();
      expect(Object.keys(States).sort()).toEqual(
        [
          'Scheduled?',
          'RunningExecutions',
          'OlderRunning?',
          'Proceed',
          'SkipSchedule',
          'Skipped',
          'Abandon',
          'Checkpointed?',
          'Continue?',
          'Curate',
          'Curated?',
          'StillCurating?',
          'Done',
          'Export',
          'CurationFailed',
          'ExportFailed',
        ].sort(),
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
                  { Variable: '$.curation.status', StringEquals: 'curating' },
                ],
              },
            ],
            Next: 'Curate',
          },
        ],
        Default: 'Done',
      });
      expect(States.Curate).toMatchObject({ ...invoking({ Payload: { 'curate.$': '$.runId' } }), ResultPath: '$.curation', Next: 'StillCurating?' });
      // A curation that needs another invocation is invoked again with the same event, until it answers otherwise.
      expect(States['StillCurating?']).toMatchObject({
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.curation.status', IsPresent: true },
              { Variable: '$.curation.status', StringEquals: 'curating' },
            ],
            Next: 'Curate',
          },
        ],
        Default: 'Done',
      });
      expect(States.Curate.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.curationFailure', Next: 'CurationFailed' }]);
      expect(States.Done).toEqual({ Type: 'Succeed' });
    });

    it('sends an execution started by hand (no scheduledTime) straight to Export, and a scheduled one first to the list of running executions', () => {
      const { StartAt, States } = definition();
      expect(StartAt).toBe('Scheduled?');
      expect(States['Scheduled?']).toEqual({
        Type: 'Choice',
        Comment: expect.any(String),
        Choices: [{ Variable: '$.scheduledTime', IsPresent: true, Next: 'RunningExecutions' }],
        Default: 'Export',
      });
    });

    it("lists this state machine's running executions through the AWS SDK integration, keeping only the last listed: the oldest", () => {
      const { States } = definition();
      expect(States.RunningExecutions).toEqual({
        Type: 'Task',
        Comment: expect.any(String),
        Resource: 'arn:<Ref:AWS::Partition>:states:::aws-sdk:sfn:listExecutions',
        Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', StatusFilter: 'RUNNING' },
        ResultSelector: { 'oldest.$': '$.Executions[-1:]' },
        ResultPath: '$.running',
        Next: 'OlderRunning?',
        // The check can only skip a schedule: when the listing fails, the run starts as before.
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.runningFailure', Next: 'Proceed' }],
      });
    });

    it('skips the schedule only when the oldest running execution is another one, and otherwise runs it with the execution’s own input', () => {
      const { States } = definition();
      const oldest = '$.running.oldest[0].ExecutionArn';
      expect(States['OlderRunning?']).toEqual({
        Type: 'Choice',
        Comment: expect.any(String),
        Choices: [
          {
            And: [{ Variable: oldest, IsPresent: true }, { Not: { Variable: oldest, StringEqualsPath: '$$.Execution.Id' } }],
            Next: 'SkipSchedule',
          },
        ],
        Default: 'Proceed',
      });
      expect(States.Proceed).toEqual({ Type: 'Pass', Comment: expect.any(String), InputPath: '$$.Execution.Input', Next: 'Export' });
    });

    it('ends a skipped schedule succeeded, its output naming the running execution and why this one did not run', () => {
      const { States } = definition();
      expect(States.SkipSchedule).toEqual({
        Type: 'Pass',
        Comment: expect.any(String),
        Parameters: {
          status: 'skipped',
          reason: expect.stringContaining('An older execution of this state machine is running (runningExecution)'),
          'scheduledTime.$': '$.scheduledTime',
          'runningExecution.$': '$.running.oldest[0].ExecutionArn',
        },
        Next: 'Skipped',
      });
      expect(States.SkipSchedule.Parameters.reason).toContain('one invocation at a time');
      expect(States.Skipped).toEqual({ Type: 'Succeed', Comment: expect.any(String) });
    });

    it('counts the skipped schedules from its log: each entry of the Skipped state, in the exporter’s namespace', () => {
      const filter = onlyResource(s.template, 'AWS::Logs::MetricFilter').Properties;
      expect(filter).toEqual({
        LogGroupName: { Ref: s.id(s.stack.orchestration.logGroup) },
        FilterPattern: '{ ($.type = "SucceedStateEntered") && ($.details.name = "Skipped") }',
        MetricTransformations: [{ MetricNamespace: 'ThingParkExporter', MetricName: 'scheduleSkipped', MetricValue: '1' }],
      });
    });

    it("retries Lambda's transient errors with backoff, and a failed invocation twice, except errors that would recur", () => {
      const { States } = definition();
      expect(States.Export.Retry).toEqual([
        transient,
        { ErrorEquals: ['EventError', 'ConfigError', 'ClientRejectedError', 'RunLimitError'], MaxAttempts: 0 },
        { ErrorEquals: ['States.ALL'], IntervalSeconds: 60, BackoffRate: 2, MaxAttempts: 2 },
      ]);
      expect(States.Curate.Retry).toEqual([
        transient,
        { ErrorEquals: ['EventError', 'ConfigError', 'ClientRejectedError', 'RunLimitError'], MaxAttempts: 0 },
        { ErrorEquals: ['States.ALL'], IntervalSeconds: 60, BackoffRate: 2, MaxAttempts: 2 },
      ]);
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

    it('has a role that may invoke this function and nothing else, besides delivering its logs and listing its own running executions', () => {
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
      const policies = Object.entries(resourcesOf(s.template, 'AWS::IAM::Policy')).filter(([, policy]) =>
        policy.Properties.Roles.some((r: any) => r.Ref === roleId),
      );
      const listing = s.id(s.stack.orchestration.node.findChild('ListExecutionsPolicy'));
      expect(policies.map(([id]) => id).sort()).toEqual([listing, s.id(s.stack.orchestration.stateMachine.role.node.findChild('DefaultPolicy'))].sort());
      // Its own running executions, listed: that action alone, on this state machine alone.
      expect(resourcesOf(s.template, 'AWS::IAM::Policy')[listing]!.Properties.PolicyDocument.Statement).toEqual([
        { Action: 'states:ListExecutions', Effect: 'Allow', Resource: { Ref: s.id(s.stack.orchestration.stateMachine) } },
      ]);
      const defaultPolicy = policies.find(([id]) => id !== listing)![1];
      expect(defaultPolicy.Properties.PolicyDocument.Statement).toEqual([
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

    it('grants the listing in a policy the state machine does not wait for: no dependency cycle in the template', () => {
      const graph = dependencies(s.template);
      const machineId = s.id(s.stack.orchestration.stateMachine);
      const listing = s.id(s.stack.orchestration.node.findChild('ListExecutionsPolicy'));
      expect(graph.get(listing)).toContain(machineId);
      expect(graph.get(machineId)).not.toContain(listing);
      expect(cycleOf(graph)).toBeUndefined();
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
