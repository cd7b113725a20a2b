import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** What the exporter's alarms and dashboard watch. */
export interface Watched {
  function: lambda.IFunction;
  deadLetterQueue: sqs.IQueue;
  functionTimeout: Duration;
  /** RUN_DEADLINE_MARGIN_SECONDS: an invocation still running this close to its timeout did not stop cleanly. */
  deadlineMargin: Duration;
  /** The state machine that runs each scheduled export over as many invocations as it takes. */
  stateMachine: sfn.IStateMachine;
  /** Scheduled executions that ended at once, an older one running (counted among the succeeded too). */
  skippedSchedules: cloudwatch.Metric;
  /** How often a run is scheduled; two periods without a success raise an alarm. */
  schedulePeriod: Duration;
}

/** A metric the function publishes, by name: Powertools' namespace and service dimension. */
export type ExporterMetric = (metricName: string, statistic: string, period?: Duration) => cloudwatch.Metric;

// A type, not an interface: Object.values() of it is typed as alarms.
export type ExporterAlarms = {
  errors: cloudwatch.Alarm;
  deadLetters: cloudwatch.Alarm;
  duration: cloudwatch.Alarm;
  noSuccess: cloudwatch.Alarm;
  executionsFailed: cloudwatch.Alarm;
  executionsTimedOut: cloudwatch.Alarm;
  executionTime: cloudwatch.Alarm;
};

/** The lines two alarms draw, in milliseconds; the dashboard shows them on their graphs. */
export interface Thresholds {
  /** An invocation this long ran into its deadline. */
  deadline: number;
  /** A run this long takes most of its schedule period. */
  executionTime: number;
}

export function thresholds({ functionTimeout, deadlineMargin, schedulePeriod }: Watched): Thresholds {
  return {
    deadline: functionTimeout.toMilliseconds() - deadlineMargin.toMilliseconds(),
    // The one figure that says a fleet is outgrowing its schedule: the next run would start
    // before this one ends, and both would share the platform's fair use.
    executionTime: schedulePeriod.toMilliseconds() * 0.8,
  };
}

/** An alarm on any occurrence within its period: each is a run an operator looks at. */
export function onAnyOccurrence(scope: Construct, id: string, metric: cloudwatch.IMetric, alarmDescription: string): cloudwatch.Alarm {
  return onAnyAbove(scope, id, metric, 0, alarmDescription);
}

/** An alarm on one datapoint above `threshold`; no datapoint is no trouble. */
function onAnyAbove(scope: Construct, id: string, metric: cloudwatch.IMetric, threshold: number, alarmDescription: string): cloudwatch.Alarm {
  return new cloudwatch.Alarm(scope, id, {
    alarmDescription,
    metric,
    threshold,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}

/** The ways a run goes wrong in the function: it fails, dead-letters, runs into its deadline, or none succeeds. */
export function functionAlarms(scope: Construct, watched: Watched, limits: Thresholds, metric: ExporterMetric) {
  const fn = watched.function;
  const fiveMinutes = Duration.minutes(5);
  const errors = onAnyOccurrence(
    scope,
    'ErrorsAlarm',
    fn.metricErrors({ statistic: 'Sum', period: fiveMinutes }),
    'A run failed (Lambda Errors > 0). Its log and the DLQ message say why.',
  );
  const deadLetters = onAnyOccurrence(
    scope,
    'DeadLettersAlarm',
    watched.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: fiveMinutes }),
    'A run failed after its retries, or a schedule could not be delivered: messages are waiting in the DLQ.',
  );
  // An invocation of a run that does not fit stops 50 s before its timeout (the margins
  // of lambda/common/env.ts), so a long duration is normal; one that reaches the deadline did
  // not stop cleanly (a checkpoint that took too long, or a run that could not stop).
  const duration = onAnyAbove(
    scope,
    'DurationAlarm',
    fn.metricDuration({ statistic: 'Maximum', period: fiveMinutes }),
    limits.deadline,
    `An invocation ran into its deadline, ${watched.deadlineMargin.toSeconds()} s before the ${watched.functionTimeout.toMinutes()}-minute timeout: it did not stop cleanly to let its run go on.`,
  );
  // No datapoint at all is the failure this alarm exists for: missing data breaches.
  const noSuccess = new cloudwatch.Alarm(scope, 'NoSuccessAlarm', {
    alarmDescription: `No export succeeded within two schedule periods (${watched.schedulePeriod.toMinutes()} minutes each).`,
    metric: metric('exportSucceeded', 'Sum', watched.schedulePeriod),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });
  return { errors, deadLetters, duration, noSuccess };
}

/** The ways a run's execution goes wrong: it fails, times out, or takes most of its schedule period. */
export function executionAlarms(scope: Construct, { stateMachine, schedulePeriod }: Watched, limits: Thresholds) {
  const fiveMinutes = Duration.minutes(5);
  const executionsFailed = onAnyOccurrence(
    scope,
    'ExecutionsFailedAlarm',
    stateMachine.metricFailed({ statistic: 'Sum', period: fiveMinutes }),
    "A run's state machine execution failed: its error is the failed invocation's (the execution's history says which); its partial data was removed.",
  );
  const executionsTimedOut = onAnyOccurrence(
    scope,
    'ExecutionsTimedOutAlarm',
    stateMachine.metricTimedOut({ statistic: 'Sum', period: fiveMinutes }),
    "A run's state machine execution reached its timeout and stopped, with no cleanup: a later run settles what it left.",
  );
  const executionTime = onAnyAbove(
    scope,
    'ExecutionTimeAlarm',
    stateMachine.metricTime({ statistic: 'Maximum', period: fiveMinutes }),
    limits.executionTime,
    `A run took more than 80% of the ${schedulePeriod.toMinutes()}-minute schedule period: the next run would soon start before it ends.`,
  );
  return { executionsFailed, executionsTimedOut, executionTime };
}
