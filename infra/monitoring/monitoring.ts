import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { alarmTopic } from './alarm-topic.ts';
import { executionAlarms, functionAlarms, thresholds, type ExporterAlarms, type Watched } from './alarms.ts';
import { executionRow, runRows } from './dashboard.ts';

export interface MonitoringProps extends Watched {
  serviceName: string;
  metricsNamespace: string;
  alarmEmail?: string;
}

/**
 * Alarms on the ways an export goes wrong, the topic they notify, and a dashboard. Other
 * constructs add theirs with addAlarm and addWidgets, on the same topic and dashboard.
 */
export class Monitoring extends Construct {
  readonly key: kms.Key;
  readonly topic: sns.Topic;
  /** The exporter's own alarms, on its function and on its runs' executions. */
  readonly alarms: ExporterAlarms;
  readonly dashboard: cloudwatch.Dashboard;
  private readonly metricsNamespace: string;
  private readonly serviceName: string;
  private readonly action: SnsAction;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.metricsNamespace = props.metricsNamespace;
    this.serviceName = props.serviceName;
    ({ key: this.key, topic: this.topic } = alarmTopic(this, props.alarmEmail));
    this.action = new SnsAction(this.topic);

    const limits = thresholds(props);
    const metric = this.metric.bind(this);
    this.alarms = { ...functionAlarms(this, props, limits, metric), ...executionAlarms(this, props, limits) };
    for (const alarm of Object.values(this.alarms)) this.addAlarm(alarm);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(7),
      widgets: [...runRows(props, limits, this.alarms, metric), executionRow(props, limits)],
    });
  }

  /** A metric the function publishes (Powertools' embedded metric format), under its namespace and service. */
  metric(metricName: string, statistic: string, period: Duration = Duration.minutes(5)): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.metricsNamespace,
      metricName,
      dimensionsMap: { service: this.serviceName },
      statistic,
      period,
    });
  }

  /** Notifies the topic when the alarm goes off and when it recovers. */
  addAlarm(alarm: cloudwatch.Alarm): cloudwatch.Alarm {
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    return alarm;
  }

  /** A row of widgets, below those already on the dashboard. */
  addWidgets(...widgets: cloudwatch.IWidget[]): void {
    this.dashboard.addWidgets(...widgets);
  }
}
