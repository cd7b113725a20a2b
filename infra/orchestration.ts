import { Aws, CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

export interface OrchestrationProps {
  function: lambda.IFunction;
  /** The function's own timeout: an invocation's task may take it and a little more. */
  functionTimeout: Duration;
  /** Where the count of skipped schedules goes: the exporter's metrics namespace. */
  metricsNamespace: string;
}

/**
 * Errors of the Lambda service itself, not of the function: retried with backoff. The
 * function runs one invocation at a time (reserved concurrency 1), so another run's
 * invocation in progress answers TooManyRequestsException for up to its 15 minutes: the
 * retries reach a minute apart and last 21 minutes in all. No jitter: the only contender is
 * that one invocation, and jitter would halve the time the retries cover. A scheduled
 * execution does not wait here for another execution's run: it ends at once (`skipIfOverlapping`);
 * an execution started by hand, the Curate and Abandon steps, and any execution while the
 * function is invoked directly, do.
 */
export const LAMBDA_TRANSIENT_ERRORS = ['Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.TooManyRequestsException'];

/** Function errors that the same event would meet again: a retry cannot help (docs/failure-behaviour.md). */
export const NOT_RETRIED_ERRORS = ['EventError', 'ConfigError', 'ClientRejectedError', 'RunLimitError'];

/** The state a skipped scheduled execution ends in; the state machine's log counts its entries as `scheduleSkipped`. */
export const SKIPPED_STATE = 'Skipped';

/** Of the executions ListExecutions lists (most recent first), the last: the oldest still running. */
const OLDEST_RUNNING = '$.running.oldest[0].ExecutionArn';

/**
 * The state machine that runs an export to its end, however many invocations it takes
 * (docs/operate-long-runs.md): it invokes the function with its input, and again with each
 * `"status": "continue"` answer, until the run answers with its summary; then curates the
 * run if the export's invocation had no time left to (or failed to). A failed invocation is
 * retried (from the same checkpoint); when it fails for good, the run's partial data is
 * removed (`{"abandon": ...}`, once a checkpoint exists) and the execution fails with the
 * invocation's error. A scheduled execution that finds an older one running ends at once
 * instead (`skipIfOverlapping`). JSONPath throughout.
 */
export class Orchestration extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;
  /** Scheduled executions that ended at once because an older one was running (from the state machine's log). */
  readonly skippedSchedules: cloudwatch.Metric;

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
    const start = this.skipIfOverlapping(exportSlice);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'thingpark-exporter: one export, over as many invocations as it takes, then its curation',
      definitionBody: sfn.DefinitionBody.fromChainable(start),
      // A run of ten million devices at the platform's fair use takes about six hours.
      timeout: Duration.hours(24),
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    this.grantListExecutions();
    this.skippedSchedules = this.countSkips(props.metricsNamespace);
    this.acknowledgeFindings(props.function);
  }

  /**
   * Where an execution starts. One the schedule started (its input has `scheduledTime`) first
   * lists the executions of this state machine that are running. When an older one is among
   * them (a run longer than the schedule period, or one started by hand), this one's Export
   * would only queue on the function's one reserved slot, for the 21 minutes of
   * LAMBDA_TRANSIENT_ERRORS, then fail and raise the ExecutionsFailed alarm for nothing: it
   * ends at once instead, saying which execution runs.
   *
   * It ends succeeded, not failed: a skipped schedule is no fault of this run, and the one
   * still running is watched already (ExecutionsFailed when it fails, at the latest at its
   * RUN_MAX_MINUTES or RUN_MAX_SLICES ceiling; ExecutionTime when it closes, being longer
   * than the schedule period; NoSuccess when two periods pass without a commit). A failure
   * would page once more for each schedule the long run overlaps. The skip stays visible: the
   * execution's output (`"status": "skipped"` and the running execution's ARN), and the
   * `scheduleSkipped` count on the dashboard.
   *
   * ListExecutions answers most recent first, so the last listed is the oldest running: when
   * that is this execution, none older runs (its first page holds 100: with more running, the
   * last of them is still older than this one). Two executions started together both read the
   * same list, so both take the same one for the oldest: that one runs, the other skips. An
   * execution started by hand (no `scheduledTime`) goes straight to Export, as before. When
   * the listing fails, the execution goes on to Export: the check can skip a schedule, never
   * fail one.
   */
  private skipIfOverlapping(exportSlice: sfn.IChainable): sfn.Choice {
    const running = new sfn.CustomState(this, 'RunningExecutions', {
      // A CustomState rather than CallAwsService: that one grants its action in the role's
      // default policy, which the state machine depends on and so cannot name it (a
      // dependency cycle); the grant is in a policy of its own (grantListExecutions).
      stateJson: {
        Type: 'Task',
        Comment: "Lists this state machine's running executions, most recent first",
        Resource: `arn:${Aws.PARTITION}:states:::aws-sdk:sfn:listExecutions`,
        Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', StatusFilter: 'RUNNING' },
        // The last listed (a list of none or one): the oldest running.
        ResultSelector: { 'oldest.$': '$.Executions[-1:]' },
        ResultPath: '$.running',
      },
    });
    // Back to the execution's own input, which is what Export takes (the function refuses any other field).
    const proceed = new sfn.Pass(this, 'Proceed', {
      comment: "No older execution runs: the schedule's run starts, with the execution's input",
      inputPath: '$$.Execution.Input',
    }).next(exportSlice);
    running.addCatch(proceed, { resultPath: '$.runningFailure' });

    const skipped = new sfn.Pass(this, 'SkipSchedule', {
      comment: 'An older execution runs: this schedule would only queue behind it',
      parameters: {
        status: 'skipped',
        reason:
          "An older execution of this state machine is running (runningExecution). The function runs one invocation at a time, so this schedule's run would only have waited behind it; it did not start. The next schedule starts a run as usual.",
        scheduledTime: sfn.JsonPath.stringAt('$.scheduledTime'),
        runningExecution: sfn.JsonPath.stringAt(OLDEST_RUNNING),
      },
    }).next(new sfn.Succeed(this, SKIPPED_STATE, { comment: 'Ended at once: no run, nothing written' }));
    running.next(
      new sfn.Choice(this, 'OlderRunning?', { comment: 'Whether the oldest running execution is another than this one' })
        .when(
          sfn.Condition.and(sfn.Condition.isPresent(OLDEST_RUNNING), sfn.Condition.not(sfn.Condition.stringEqualsJsonPath(OLDEST_RUNNING, '$$.Execution.Id'))),
          skipped,
        )
        .otherwise(proceed),
    );
    return new sfn.Choice(this, 'Scheduled?', { comment: 'Started by the schedule: first, whether an older execution is still running' })
      .when(sfn.Condition.isPresent('$.scheduledTime'), running)
      .otherwise(exportSlice);
  }

  /**
   * ListExecutions on this state machine alone, for the check above. In a policy of its own:
   * the state machine is created after its role's default policy (it needs the log-delivery
   * grants there to be created), so that policy cannot name it. Until this one is attached,
   * the check fails and the execution runs, as before it existed.
   */
  private grantListExecutions(): void {
    new iam.Policy(this, 'ListExecutionsPolicy', {
      roles: [this.stateMachine.role],
      statements: [new iam.PolicyStatement({ actions: ['states:ListExecutions'], resources: [this.stateMachine.stateMachineArn] })],
    });
  }

  /**
   * Skipped schedules, counted from the state machine's log (level ALL logs every state
   * entered, by name). The log is delivered on a best-effort basis: a count for the
   * dashboard, not for an alarm; each skipped execution's output is the record.
   */
  private countSkips(metricsNamespace: string): cloudwatch.Metric {
    const filter = this.logGroup.addMetricFilter('SkippedSchedules', {
      filterPattern: logs.FilterPattern.all(
        logs.FilterPattern.stringValue('$.type', '=', 'SucceedStateEntered'),
        logs.FilterPattern.stringValue('$.details.name', '=', SKIPPED_STATE),
      ),
      metricNamespace: metricsNamespace,
      metricName: 'scheduleSkipped',
      metricValue: '1',
    });
    return filter.metric({ statistic: 'Sum' });
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

  /** Where a finished export goes: done, or curated first when its invocation skipped, failed or did not finish curation. */
  private curationUnlessDone(invoke: Invoke): sfn.Choice {
    const curate = invoke('Curate', sfn.TaskInput.fromObject({ curate: sfn.JsonPath.stringAt('$.runId') }), {
      comment: 'Curates the committed run, which its export invocation had no time left to do, or failed to',
      resultSelector: { 'status.$': '$.Payload.status', 'summary.$': '$.Payload' },
      resultPath: '$.curation',
    });
    curate.addRetry({ errors: NOT_RETRIED_ERRORS, maxAttempts: 0 });
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
    const curating = (status: string) => sfn.Condition.stringEquals('$.curation.status', status);
    curate.next(
      new sfn.Choice(this, 'StillCurating?', {
        comment: 'A curation that needs another invocation answers "status": "curating" and goes on from its saved progress with the same event',
      })
        .when(sfn.Condition.and(sfn.Condition.isPresent('$.curation.status'), curating('curating')), curate)
        .otherwise(done),
    );
    return new sfn.Choice(this, 'Curated?', {
      comment: "An export's invocation curates the run when it has time left; when it had not, failed to, or did not finish, this does",
    })
      .when(
        sfn.Condition.and(sfn.Condition.isPresent('$.curation.status'), sfn.Condition.or(curating('skipped'), curating('failed'), curating('curating'))),
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
