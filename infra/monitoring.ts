import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface MonitoringProps {
  function: lambda.IFunction;
  deadLetterQueue: sqs.IQueue;
  functionTimeout: Duration;
  /** RUN_DEADLINE_MARGIN_SECONDS: an invocation still running this close to its timeout did not stop cleanly. */
  deadlineMargin: Duration;
  /** The state machine that runs each scheduled export over as many invocations as it takes. */
  stateMachine: sfn.IStateMachine;
  /** How often a run is scheduled; two periods without a success raise an alarm. */
  schedulePeriod: Duration;
  serviceName: string;
  metricsNamespace: string;
  alarmEmail?: string;
}

/** Alarms on the ways an export goes wrong, the topic they notify, and a dashboard. */
export class Monitoring extends Construct {
  readonly key: kms.Key;
  readonly topic: sns.Topic;
  readonly alarms: {
    errors: cloudwatch.Alarm;
    deadLetters: cloudwatch.Alarm;
    duration: cloudwatch.Alarm;
    noSuccess: cloudwatch.Alarm;
    executionsFailed: cloudwatch.Alarm;
    executionsTimedOut: cloudwatch.Alarm;
    executionTime: cloudwatch.Alarm;
  };
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const fn = props.function;
    const { partition, region, account } = Stack.of(this);

    // CloudWatch cannot publish to a topic under the AWS-managed aws/sns key: its policy
    // cannot be changed to let the CloudWatch service use it.
    this.key = new kms.Key(this, 'TopicKey', {
      description: 'thingpark-exporter alarm topic',
      enableKeyRotation: true,
      // It encrypts alarm notifications only while SNS holds them: nothing kept needs it after a destroy.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    const thisAccountsAlarms = {
      ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
      StringEquals: { 'aws:SourceAccount': account },
    };
    // The same bound as the topic's policy below: CloudWatch acting for another account's
    // alarm must not be able to use this key.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToUseTheKey',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: thisAccountsAlarms,
      }),
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'thingpark-exporter alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    // enforceSSL gives the topic a policy of its own, which replaces SNS's default one:
    // CloudWatch's right to publish is stated here, for this account's alarms only.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: thisAccountsAlarms,
      }),
    );
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const fiveMinutes = Duration.minutes(5);
    const exporterMetric = (metricName: string, statistic: string, period: Duration = fiveMinutes) =>
      new cloudwatch.Metric({
        namespace: props.metricsNamespace,
        metricName,
        dimensionsMap: { service: props.serviceName },
        statistic,
        period,
      });

    const errors = this.onAny(
      'ErrorsAlarm',
      fn.metricErrors({ statistic: 'Sum', period: fiveMinutes }),
      'A run failed (Lambda Errors > 0). Its log and the DLQ message say why.',
    );
    const deadLetters = this.onAny(
      'DeadLettersAlarm',
      props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: fiveMinutes }),
      'A run failed after its retries, or a schedule could not be delivered: messages are waiting in the DLQ.',
    );
    // An invocation of a run that does not fit stops 50 s before its timeout (the margins
    // of lambda/common/config.ts), so a long duration is normal; one that reaches the deadline did
    // not stop cleanly (a checkpoint that took too long, or a run that could not stop).
    const durationThreshold = props.functionTimeout.toMilliseconds() - props.deadlineMargin.toMilliseconds();
    const duration = new cloudwatch.Alarm(this, 'DurationAlarm', {
      alarmDescription: `An invocation ran into its deadline, ${props.deadlineMargin.toSeconds()} s before the ${props.functionTimeout.toMinutes()}-minute timeout: it did not stop cleanly to let its run go on.`,
      metric: fn.metricDuration({ statistic: 'Maximum', period: fiveMinutes }),
      threshold: durationThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // No datapoint at all is the failure this alarm exists for: missing data breaches.
    const noSuccess = new cloudwatch.Alarm(this, 'NoSuccessAlarm', {
      alarmDescription: `No export succeeded within two schedule periods (${props.schedulePeriod.toMinutes()} minutes each).`,
      metric: exporterMetric('exportSucceeded', 'Sum', props.schedulePeriod),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    const executionsFailed = this.onAny(
      'ExecutionsFailedAlarm',
      props.stateMachine.metricFailed({ statistic: 'Sum', period: fiveMinutes }),
      "A run's state machine execution failed: its error is the failed invocation's (the execution's history says which); its partial data was removed.",
    );
    const executionsTimedOut = this.onAny(
      'ExecutionsTimedOutAlarm',
      props.stateMachine.metricTimedOut({ statistic: 'Sum', period: fiveMinutes }),
      "A run's state machine execution reached its timeout and stopped, with no cleanup: a later run settles what it left.",
    );
    // The one figure that says a fleet is outgrowing its schedule: the next run would start
    // before this one ends, and both would share the platform's fair use.
    const executionTimeThreshold = props.schedulePeriod.toMilliseconds() * 0.8;
    const executionTime = new cloudwatch.Alarm(this, 'ExecutionTimeAlarm', {
      alarmDescription: `A run took more than 80% of the ${props.schedulePeriod.toMinutes()}-minute schedule period: the next run would soon start before it ends.`,
      metric: props.stateMachine.metricTime({ statistic: 'Maximum', period: fiveMinutes }),
      threshold: executionTimeThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarms = { errors, deadLetters, duration, noSuccess, executionsFailed, executionsTimedOut, executionTime };
    const action = new SnsAction(this.topic);
    for (const alarm of Object.values(this.alarms)) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    const hourly = Duration.hours(1);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(7),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Devices exported',
            left: [exporterMetric('devices', 'Maximum', hourly)],
            right: [exporterMetric('duplicates', 'Sum', hourly)],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Pages and requests',
            left: [exporterMetric('pages', 'Sum', hourly), exporterMetric('pageRequests', 'Sum', hourly)],
            right: [exporterMetric('throttled', 'Sum', hourly)],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Run duration (ms)',
            left: [exporterMetric('durationMs', 'Maximum', hourly), fn.metricDuration({ statistic: 'Maximum', period: hourly })],
            leftAnnotations: [{ value: durationThreshold, label: 'deadline' }],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Token grants',
            left: [exporterMetric('tokenRequests', 'Sum', hourly)],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Runs: succeeded, errors, throttles',
            left: [
              exporterMetric('exportSucceeded', 'Sum', hourly),
              fn.metricErrors({ statistic: 'Sum', period: hourly }),
              fn.metricThrottles({ statistic: 'Sum', period: hourly }),
            ],
            width: 12,
          }),
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms: Object.values(this.alarms),
            width: 12,
          }),
        ],
        [
          // Devices the paging skipped and the verification found again, and devices of the
          // previous run gone since: a fleet that changes while it is read shows here.
          new cloudwatch.GraphWidget({
            title: 'Verified against the previous run',
            left: [exporterMetric('recovered', 'Sum', hourly), exporterMetric('removed', 'Sum', hourly), exporterMetric('unresolved', 'Sum', hourly)],
            right: [exporterMetric('verificationRequests', 'Sum', hourly)],
            width: 24,
          }),
        ],
        [
          // A run over several invocations is one execution: how long runs take against the
          // schedule, and how their executions end.
          new cloudwatch.GraphWidget({
            title: 'Run executions: time (ms)',
            left: [props.stateMachine.metricTime({ statistic: 'Maximum', period: hourly })],
            leftAnnotations: [{ value: executionTimeThreshold, label: '80% of schedule period' }],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Run executions: succeeded, failed, timed out',
            left: [
              props.stateMachine.metricSucceeded({ statistic: 'Sum', period: hourly }),
              props.stateMachine.metricFailed({ statistic: 'Sum', period: hourly }),
              props.stateMachine.metricTimedOut({ statistic: 'Sum', period: hourly }),
            ],
            width: 12,
          }),
        ],
      ],
    });
  }

  /** An alarm on any occurrence within its period: each is a run an operator looks at. */
  private onAny(id: string, metric: cloudwatch.IMetric, alarmDescription: string): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription,
      metric,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}
