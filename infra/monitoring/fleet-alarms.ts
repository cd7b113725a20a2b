import { Duration } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { FLEET_METRICS, HEALTH_DIMENSION } from '../../lambda/curate/fleet-metrics.ts';
import { HEALTH_STATES } from '../../lambda/curate/fleet-signals.ts';
import { fleetQueries } from '../fleet-queries.ts';
import type { FleetThresholds } from '../fleet-thresholds.ts';
import type { Monitoring } from './monitoring.ts';

export interface FleetWatchProps {
  monitoring: Monitoring;
  thresholds: FleetThresholds;
  /** How often a run is scheduled: each alarm looks at one period, which holds one run. */
  schedulePeriod: Duration;
  /** CURATE_SILENT_AFTER_HOURS as the function is given it, for the silent devices' query. */
  silentAfterHours: number;
  workGroup: athena.CfnWorkGroup;
  databaseName: string;
}

export type FleetAlarms = Partial<Record<'massRemoval' | 'healthDrop' | 'silentShare' | 'silentAnomaly', cloudwatch.Alarm>>;

/**
 * Alarms on what the runs say of the fleet (lambda/curate/fleet-signals.ts), each with the
 * saved Athena query that lists the devices concerned, on the stack's topic; and the
 * fleet's health, silence and changes on the dashboard.
 */
export class FleetWatch extends Construct {
  readonly alarms: FleetAlarms;
  readonly namedQueries: athena.CfnNamedQuery[];

  constructor(scope: Construct, id: string, props: FleetWatchProps) {
    super(scope, id);
    const queries = fleetQueries(props.databaseName, props.silentAfterHours);
    this.namedQueries = Object.entries(queries).map(([key, { name, description, sql }]) => {
      const query = new athena.CfnNamedQuery(this, `${key}Query`, {
        name,
        description,
        database: props.databaseName,
        workGroup: props.workGroup.name,
        queryString: sql,
      });
      // The query names the workgroup, which must exist first.
      query.node.addDependency(props.workGroup);
      return query;
    });
    const lookFirst = (name: string) => `Look first at the saved Athena query "${name}" (workgroup ${props.workGroup.name}).`;
    this.alarms = fleetAlarms(this, props, {
      removed: lookFirst(queries.removed.name),
      leftActive: lookFirst(queries.leftActive.name),
      silent: lookFirst(queries.silent.name),
    });
    for (const alarm of Object.values(this.alarms)) props.monitoring.addAlarm(alarm);
    props.monitoring.addWidgets(...fleetWidgets(props, this.alarms));
  }
}

/** The signals come once per run: the period each alarm looks at is the schedule's, no longer than a day. */
function periodOf(schedulePeriod: Duration): Duration {
  return Duration.minutes(Math.min(schedulePeriod.toMinutes(), 24 * 60));
}

/** Each alarm whose threshold is set: one run past it raises it; a period without a run says nothing. */
function fleetAlarms(scope: Construct, props: FleetWatchProps, lookFirst: Record<'removed' | 'leftActive' | 'silent', string>): FleetAlarms {
  const { monitoring, thresholds } = props;
  const period = periodOf(props.schedulePeriod);
  const onRun = (id: string, metric: cloudwatch.IMetric, threshold: number, below: boolean, alarmDescription: string) =>
    new cloudwatch.Alarm(scope, id, {
      alarmDescription,
      metric,
      threshold,
      comparisonOperator: below ? cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD : cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  const { massRemovalPercent, healthDropPoints, silentPercent, silentAnomalyBand } = thresholds;
  const limits: { name: keyof FleetAlarms; id: string; metric: string; statistic: string; threshold?: number; below: boolean; description: string }[] = [
    {
      name: 'massRemoval',
      id: 'FleetMassRemovalAlarm',
      metric: FLEET_METRICS.removedShare,
      statistic: 'Maximum',
      threshold: massRemovalPercent,
      below: false,
      description: `Mass removal: a run found more than ${massRemovalPercent} % of the previous run's devices gone (${FLEET_METRICS.removedShare}). ${lookFirst.removed}`,
    },
    {
      name: 'healthDrop',
      id: 'FleetHealthDropAlarm',
      metric: FLEET_METRICS.activeShareChange,
      statistic: 'Minimum',
      threshold: healthDropPoints === undefined ? undefined : -healthDropPoints,
      below: true,
      description: `Health drop: the share of ACTIVE devices fell by more than ${healthDropPoints} points since the run before (${FLEET_METRICS.activeShareChange}). ${lookFirst.leftActive}`,
    },
    {
      name: 'silentShare',
      id: 'FleetSilentShareAlarm',
      metric: FLEET_METRICS.silentShare,
      statistic: 'Maximum',
      threshold: silentPercent,
      below: false,
      description: `Silent devices: more than ${silentPercent} % of the fleet sent no uplink for ${props.silentAfterHours} hours before the run (${FLEET_METRICS.silentShare}). ${lookFirst.silent}`,
    },
  ];
  const alarms: FleetAlarms = {};
  for (const { name, id, metric, statistic, threshold, below, description } of limits) {
    if (threshold !== undefined) alarms[name] = onRun(id, monitoring.metric(metric, statistic, period), threshold, below, description);
  }
  if (silentAnomalyBand !== undefined) {
    alarms.silentAnomaly = new cloudwatch.AnomalyDetectionAlarm(scope, 'FleetSilentAnomalyAlarm', {
      alarmDescription: `Silent devices above their usual rhythm: the silent count left its anomaly band (${silentAnomalyBand} standard deviations, ${FLEET_METRICS.silentDevices}). ${lookFirst.silent}`,
      metric: monitoring.metric(FLEET_METRICS.silentDevices, 'Maximum', period),
      stdDevs: silentAnomalyBand,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
  return alarms;
}

/** The fleet's row: health per state over time, silent and never-seen devices, and the changes' shares against their thresholds. */
function fleetWidgets({ monitoring, thresholds }: FleetWatchProps, alarms: FleetAlarms): cloudwatch.IWidget[] {
  const hourly = Duration.hours(1);
  const byState = HEALTH_STATES.map((state) => {
    const metric = monitoring.metric(FLEET_METRICS.devicesByHealth, 'Maximum', hourly);
    return metric.with({ dimensionsMap: { ...metric.dimensions, [HEALTH_DIMENSION]: state }, label: state });
  });
  const line = (value: number | undefined, label: string) => (value === undefined ? [] : [{ value, label }]);
  const widgets: cloudwatch.IWidget[] = [
    new cloudwatch.GraphWidget({
      title: 'Fleet health: devices per state',
      left: byState,
      right: [monitoring.metric(FLEET_METRICS.activeShare, 'Maximum', hourly), monitoring.metric(FLEET_METRICS.activeShareChange, 'Minimum', hourly)],
      rightAnnotations: line(thresholds.healthDropPoints === undefined ? undefined : -thresholds.healthDropPoints, 'health drop'),
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Silent and never-seen devices',
      left: [monitoring.metric(FLEET_METRICS.silentDevices, 'Maximum', hourly), monitoring.metric(FLEET_METRICS.neverSeenDevices, 'Maximum', hourly)],
      right: [monitoring.metric(FLEET_METRICS.silentShare, 'Maximum', hourly)],
      rightAnnotations: line(thresholds.silentPercent, 'silent share alarm'),
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Fleet changes per run (% of the fleet)',
      left: [FLEET_METRICS.addedShare, FLEET_METRICS.removedShare, FLEET_METRICS.changedShare].map((name) => monitoring.metric(name, 'Maximum', hourly)),
      leftAnnotations: line(thresholds.massRemovalPercent, 'mass removal'),
      width: 8,
    }),
  ];
  const set = Object.values(alarms);
  return set.length === 0 ? widgets : [...widgets, new cloudwatch.AlarmStatusWidget({ title: 'Fleet alarms', alarms: set, width: 24 })];
}
