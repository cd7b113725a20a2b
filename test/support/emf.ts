/** One value of one metric as CloudWatch reads it from an embedded-metric-format line. */
export interface Datapoint {
  namespace: string;
  metricName: string;
  dimensions: Record<string, string>;
  value: number;
}

interface EmfLine {
  _aws?: { CloudWatchMetrics?: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
  [key: string]: unknown;
}

/** Every datapoint of the EMF lines in `output` (one JSON object a line; other lines are skipped). */
export function emfDatapoints(output: string): Datapoint[] {
  const points: Datapoint[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"_aws"')) continue;
    const emf = JSON.parse(line) as EmfLine;
    for (const directive of emf._aws?.CloudWatchMetrics ?? []) {
      for (const set of directive.Dimensions) {
        const dimensions = Object.fromEntries(set.map((name) => [name, String(emf[name])]));
        for (const { Name } of directive.Metrics) {
          const values = emf[Name];
          for (const value of Array.isArray(values) ? values : [values])
            points.push({ namespace: directive.Namespace, metricName: Name, dimensions, value: Number(value) });
        }
      }
    }
  }
  return points;
}

/** The parts of an AWS::CloudWatch::Alarm's properties that say when a metric alarm fires. */
export interface AlarmProperties {
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Statistic: 'Maximum' | 'Minimum' | 'Sum' | 'Average' | 'SampleCount';
  ComparisonOperator: string;
  Threshold: number;
}

/**
 * Whether the alarm, as synthesized, fires on these datapoints falling in one of its
 * periods: the datapoints of its metric (namespace, name and exactly its dimensions),
 * reduced by its statistic, compared with its threshold by its operator. Undefined when no
 * datapoint is its metric's: the alarm sees missing data.
 */
export function alarmFires(alarm: AlarmProperties, points: Datapoint[]): boolean | undefined {
  const wanted = Object.fromEntries(alarm.Dimensions.map(({ Name, Value }) => [Name, Value]));
  const values = points
    .filter(
      (p) => p.namespace === alarm.Namespace && p.metricName === alarm.MetricName && JSON.stringify(sorted(p.dimensions)) === JSON.stringify(sorted(wanted)),
    )
    .map((p) => p.value);
  if (values.length === 0) return undefined;
  const statistic = {
    Maximum: Math.max(...values),
    Minimum: Math.min(...values),
    Sum: values.reduce((a, b) => a + b, 0),
    Average: values.reduce((a, b) => a + b, 0) / values.length,
    SampleCount: values.length,
  }[alarm.Statistic];
  const compare: Record<string, (a: number, b: number) => boolean> = {
    GreaterThanThreshold: (a, b) => a > b,
    GreaterThanOrEqualToThreshold: (a, b) => a >= b,
    LessThanThreshold: (a, b) => a < b,
    LessThanOrEqualToThreshold: (a, b) => a <= b,
  };
  const operator = compare[alarm.ComparisonOperator];
  if (!operator) throw new Error(`No comparison for ${alarm.ComparisonOperator}`);
  return operator(statistic, alarm.Threshold);
}

function sorted(record: Record<string, string>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1));
}
