import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type { ExporterAlarms, ExporterMetric, Thresholds, Watched } from './alarms.ts';

const hourly = Duration.hours(1);

/** The dashboard's rows of a run: what it exported and how, what it cost, the alarms, and its verification. */
export function runRows(watched: Watched, limits: Thresholds, alarms: ExporterAlarms, metric: ExporterMetric): cloudwatch.IWidget[][] {
  const fn = watched.function;
  return [
    [
      new cloudwatch.GraphWidget({
        title: 'Devices exported',
        left: [metric('devices', 'Maximum', hourly)],
        right: [metric('duplicates', 'Sum', hourly)],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Pages and requests',
        left: [metric('pages', 'Sum', hourly), metric('pageRequests', 'Sum', hourly)],
        right: [metric('throttled', 'Sum', hourly)],
        width: 12,
      }),
    ],
    [
      new cloudwatch.GraphWidget({
        title: 'Run duration (ms)',
        left: [metric('durationMs', 'Maximum', hourly), fn.metricDuration({ statistic: 'Maximum', period: hourly })],
        leftAnnotations: [{ value: limits.deadline, label: 'deadline' }],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Token grants',
        left: [metric('tokenRequests', 'Sum', hourly)],
        width: 12,
      }),
    ],
    [
      new cloudwatch.GraphWidget({
        title: 'Runs: succeeded, errors, throttles',
        left: [
          metric('exportSucceeded', 'Sum', hourly),
          fn.metricErrors({ statistic: 'Sum', period: hourly }),
          fn.metricThrottles({ statistic: 'Sum', period: hourly }),
        ],
        width: 12,
      }),
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: Object.values(alarms),
        width: 12,
      }),
    ],
    [
      // Devices the paging skipped and the verification found again, and devices of the
      // previous run gone since: a fleet that changes while it is read shows here.
      new cloudwatch.GraphWidget({
        title: 'Verified against the previous run',
        left: [metric('recovered', 'Sum', hourly), metric('removed', 'Sum', hourly), metric('unresolved', 'Sum', hourly)],
        right: [metric('verificationRequests', 'Sum', hourly)],
        width: 24,
      }),
    ],
  ];
}

/**
 * A run over several invocations is one execution: how long runs take against the
 * schedule, and how their executions end, with the schedules skipped because a run was
 * still going (each also counted as succeeded).
 */
export function executionRow({ stateMachine, skippedSchedules }: Watched, limits: Thresholds): cloudwatch.IWidget[] {
  return [
    new cloudwatch.GraphWidget({
      title: 'Run executions: time (ms)',
      left: [stateMachine.metricTime({ statistic: 'Maximum', period: hourly })],
      leftAnnotations: [{ value: limits.executionTime, label: '80% of schedule period' }],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Run executions: succeeded, failed, timed out; schedules skipped',
      left: [
        stateMachine.metricSucceeded({ statistic: 'Sum', period: hourly }),
        stateMachine.metricFailed({ statistic: 'Sum', period: hourly }),
        stateMachine.metricTimedOut({ statistic: 'Sum', period: hourly }),
        skippedSchedules.with({ statistic: 'Sum', period: hourly }),
      ],
      width: 12,
    }),
  ];
}
