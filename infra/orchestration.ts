import { CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

export interface OrchestrationProps {
  function: lambda.IFunction;
  /** The function's own timeout: an invocation's task may take it and a little more. */
  functionTimeout: Duration;
}

/**
 * Errors of the Lambda service itself, not of the function: retried with backoff. The
 * function runs one invocation at a time (reserved concurrency 1), so another run's
 * invocation in progress answers TooManyRequestsException for up to its 15 minutes: the
 * retries reach a minute apart and last 21 minutes in all. No jitter: the only contender is
 * that one invocation, and jitter would halve the time the retries cover.
 */
export const LAMBDA_TRANSIENT_ERRORS = ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'];

/** Function errors that the same event would meet again: a retry cannot help (docs/failure-behaviour.md). */
export const NOT_RETRIED_ERRORS = ['EventError', 'ConfigError', 'ClientRejectedError', 'RunLimitError'];

/**
 * The state machine that runs an export to its end, however many invocations it takes
 * (docs/operate-long-runs.md): it invokes the function with its input, and again with each
 * `"status": "continue"` answer, until the run answers with its summary; then curates the
 * run if the export's invocation had no time left to (or failed to). A failed invocation is
 * retried (from the same checkpoint); when it fails for good, the run's partial data is
 * removed (`{"abandon": ...}`, once a checkpoint exists) and the execution fails with the
 * invocation's error. JSONPath throughout.
 */
export class Orchestration extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: OrchestrationProps) {
    super(scope, id);
    const invoke = invoker(this, props);
    const removal = this.removalOnFailure(invoke);

    const exportSlice = invoke('Export', sfn.TaskInput.fromJsonPathAt('$'), {
      comment: 'One invocation of the export: from the schedule, or from where the previous one stopped',
      outputPath: '$.Payload',
    });
    exportSlice.addRetry({ errors: NOT_RETRIED_ERRORS, maxAttempts: 0 });
    // As Lambda retries a failed asynchronous invocation: twice, a minute and two apart.
    exportSlice.addRetry({ errors: [sfn.Errors.ALL], interval: Duration.minutes(1), backoffRate: 2, maxAttempts: 2 });
    exportSlice.addCatch(removal, { resultPath: '$.failure' });

    const curated = this.curationUnlessDone(invoke);
    const more = new sfn.Choice(this, 'Continue?', { comment: 'A run that stopped to go on answers "status": "continue": invoked again with that answer' })
      .when(sfn.Condition.and(sfn.Condition.isPresent('$.status'), sfn.Condition.stringEquals('$.status', 'continue')), exportSlice)
      .otherwise(curated);
    exportSlice.next(more);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'thingpark-exporter: one export, over as many invocations as it takes, then its curation',
      definitionBody: sfn.DefinitionBody.fromChainable(exportSlice),
      // A run of ten million devices at the platform's fair use takes about six hours.
      timeout: Duration.hours(24),
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    this.acknowledgeFindings(props.function);
  }

  /**
   * Where a failed export goes: once the failed invocation was given a continuation, its
   * partial data is removed first; then the execution fails with the invocation's error.
   */
  private removalOnFailure(invoke: Invoke): sfn.Choice {
    const failed = new sfn.Fail(this, 'ExportFailed', {
      comment: "The invocation's error, as the function reported it",
      errorPath: '$.failure.Error',
      causePath: '$.failure.Cause',
    });
    const abandon = invoke(
      'Abandon',
      sfn.TaskInput.fromObject({
        abandon: {
          runId: sfn.JsonPath.stringAt('$.runId'),
          attempt: sfn.JsonPath.stringAt('$.attempt'),
          bucket: sfn.JsonPath.stringAt('$.bucket'),
          checkpoint: sfn.JsonPath.stringAt('$.checkpoint'),
          sha256: sfn.JsonPath.stringAt('$.sha256'),
        },
      }),
      {
        comment: "Removes the run's partial data, markers and checkpoints; the previous snapshot stays",
        resultSelector: { 'status.$': '$.Payload.status' },
        resultPath: '$.abandoned',
      },
    );
    abandon.addCatch(failed, { resultPath: '$.abandonFailure' });
    abandon.next(failed);
    return new sfn.Choice(this, 'Checkpointed?', {
      comment: 'Whether the failed invocation was given a continuation: then there is partial data to remove',
    })
      .when(sfn.Condition.and(sfn.Condition.isPresent('$.status'), sfn.Condition.stringEquals('$.status', 'continue')), abandon)
      .otherwise(failed);
  }

  /** Where a finished export goes: done, or curated first when its invocation skipped or failed curation. */
  private curationUnlessDone(invoke: Invoke): sfn.Choice {
    const curate = invoke('Curate', sfn.TaskInput.fromObject({ curate: sfn.JsonPath.stringAt('$.runId') }), {
      comment: 'Curates the committed run, which its export invocation had no time left to do, or failed to',
      resultSelector: { 'status.$': '$.Payload.status', 'summary.$': '$.Payload' },
      resultPath: '$.curation',
    });
    curate.addRetry({ errors: [sfn.Errors.ALL], interval: Duration.minutes(1), backoffRate: 2, maxAttempts: 2 });
    curate.addCatch(
      new sfn.Fail(this, 'CurationFailed', {
        comment: 'The export is committed and published; only its curation failed',
        errorPath: '$.curationFailure.Error',
        causePath: '$.curationFailure.Cause',
      }),
      { resultPath: '$.curationFailure' },
    );
    const done = new sfn.Succeed(this, 'Done');
    curate.next(done);
    return new sfn.Choice(this, 'Curated?', {
      comment: "An export's invocation curates the run when it has time left; when it had not, or failed to, this does",
    })
      .when(
        sfn.Condition.and(
          sfn.Condition.isPresent('$.curation.status'),
          sfn.Condition.or(sfn.Condition.stringEquals('$.curation.status', 'skipped'), sfn.Condition.stringEquals('$.curation.status', 'failed')),
        ),
        curate,
      )
      .otherwise(done);
  }

  private acknowledgeFindings(fn: lambda.IFunction): void {
    const fnId = Stack.of(this).getLogicalId(fn.node.defaultChild as CfnElement);
    Validations.of(this.stateMachine).acknowledge({
      id: 'AwsSolutions-SF2',
      reason:
        "No X-Ray tracing. Every step is an invocation of the one function, and the execution's history and its log group (level ALL, with the data each step received and returned) show every step, its input, output, error and timing; the function's own log lines carry the run id. A trace would add nothing to follow, and X-Ray's actions cannot be granted on less than every resource.",
    });
    Validations.of(this.stateMachine.role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::<${fnId}.Arn>:*]`,
        reason:
          "LambdaInvoke grants the function and its qualified ARNs (versions and aliases) to the state machine's role; the role can invoke nothing but this function.",
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "Logging to CloudWatch Logs: the log-delivery actions Step Functions needs (logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) support no resource-level permission, so AWS documents them on '*'. The role holds no other wildcard.",
      },
    );
  }
}

type Invoke = (name: string, payload: sfn.TaskInput, extra?: Partial<tasks.LambdaInvokeProps>) => tasks.LambdaInvoke;

/** A task that invokes the function, retried on the Lambda service's own errors. */
function invoker(scope: Construct, props: OrchestrationProps): Invoke {
  return (name, payload, extra = {}) => {
    const task = new tasks.LambdaInvoke(scope, name, {
      lambdaFunction: props.function,
      payload,
      // The retries below replace the default ones, with TooManyRequestsException added.
      retryOnServiceExceptions: false,
      taskTimeout: sfn.Timeout.duration(props.functionTimeout.plus(Duration.minutes(1))),
      ...extra,
    });
    task.addRetry({
      errors: LAMBDA_TRANSIENT_ERRORS,
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxDelay: Duration.minutes(1),
      maxAttempts: 25,
    });
    return task;
  };
}
