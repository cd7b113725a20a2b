import { App } from 'aws-cdk-lib';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { FLEET_THRESHOLD_DEFAULTS, fleetAlarmVerdicts } from '../../infra/fleet-thresholds.ts';
import { METRICS_NAMESPACE, SERVICE_NAME, settingsFromContext } from '../../infra/settings.ts';
import { addFleetMetrics } from '../../lambda/curate/fleet-metrics.ts';
import { FleetSignalCounter, type ComparedRun, type FleetSignals } from '../../lambda/curate/fleet-signals.ts';
import { alarmFires, emfDatapoints, type AlarmProperties } from '../support/emf.ts';
import { captureOutput } from '../support/lambda.ts';
import { resourcesOf, synthesizeOnce } from './synth.ts';

const RUN_TIME = new Date('2026-12-01T12:00:00Z');

/** The signals of a run of `devices` devices, `active` of them ACTIVE and `silent` silent for two days, compared as given. */
function signalsOf(devices: number, active: number, silent: number, compared?: ComparedRun): FleetSignals {
  const counter = new FleetSignalCounter(RUN_TIME, 24);
  for (let i = 0; i < devices; i += 1) {
    counter.add({ healthState: i < active ? 'ACTIVE' : 'INACTIVE', lastUpTimestamp: RUN_TIME.getTime() - (i < silent ? 48 : 1) * 3_600_000 });
  }
  return counter.signals(compared);
}

/** What the function emits for these signals, through its own Powertools metrics. */
async function emitted(signals: FleetSignals) {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });
  const { output } = await captureOutput(() => {
    addFleetMetrics(metrics, signals);
    metrics.publishStoredMetrics();
    return Promise.resolve();
  });
  return emfDatapoints(output);
}

const steady = { added: 0, removed: 0, changed: 0, previousDevices: 1000, previousActiveShare: 60 };

/** For each alarm at its default threshold: a run just below it, and one just above. */
const EDGES = {
  massRemoval: {
    below: signalsOf(900, 540, 0, { ...steady, removed: 100 }),
    above: signalsOf(899, 540, 0, { ...steady, removed: 101 }),
  },
  healthDrop: {
    below: signalsOf(1000, 500, 0, steady),
    above: signalsOf(1000, 499, 0, steady),
  },
  silentShare: {
    below: signalsOf(1000, 600, 200, steady),
    above: signalsOf(1000, 600, 201, steady),
  },
};

describe('ExporterStack: the fleet alarms (infra/monitoring/fleet-alarms.ts)', () => {
  const s = synthesizeOnce({});
  const alarm = (name: keyof typeof EDGES): AlarmProperties & Record<string, any> => {
    const construct = s.stack.fleetWatch.alarms[name];
    if (!construct) throw new Error(`no ${name} alarm`);
    return resourcesOf(s.template, 'AWS::CloudWatch::Alarm')[s.id(construct)]!.Properties as AlarmProperties & Record<string, any>;
  };

  it.each([
    ['massRemoval', 'removedShare', 'Maximum', 'GreaterThanThreshold', 10],
    ['healthDrop', 'activeShareChange', 'Minimum', 'LessThanThreshold', -10],
    ['silentShare', 'silentShare', 'Maximum', 'GreaterThanThreshold', 20],
  ] as const)(
    '%s: on %s, %s over one schedule period, %s %d, notifying the topic, and missing data is no alarm',
    (name, metric, statistic, operator, threshold) => {
      const topic = { Ref: s.id(s.stack.monitoring.topic) };
      expect(alarm(name)).toMatchObject({
        Namespace: 'ThingParkExporter',
        MetricName: metric,
        Dimensions: [{ Name: 'service', Value: 'thingpark-exporter' }],
        Statistic: statistic,
        Period: 3600,
        EvaluationPeriods: 1,
        ComparisonOperator: operator,
        Threshold: threshold,
        TreatMissingData: 'notBreaching',
        AlarmActions: [topic],
        OKActions: [topic],
      });
    },
  );

  it.each(Object.keys(EDGES) as (keyof typeof EDGES)[])(
    '%s: what the function emits for a run just below the threshold does not fire it; just above does',
    async (name) => {
      const template = alarm(name);
      expect(alarmFires(template, await emitted(EDGES[name].below))).toBe(false);
      expect(alarmFires(template, await emitted(EDGES[name].above))).toBe(true);
    },
  );

  it('judges the edge runs as the synthesized alarms do, from the same defaults (what npm start prints)', async () => {
    const ids = { massRemoval: 'mass removal', healthDrop: 'health drop', silentShare: 'silent share' } as const;
    for (const name of Object.keys(EDGES) as (keyof typeof EDGES)[]) {
      for (const side of ['below', 'above'] as const) {
        const verdict = fleetAlarmVerdicts(EDGES[name][side], FLEET_THRESHOLD_DEFAULTS).find((v) => v.alarm === ids[name]);
        expect(verdict?.fired, `${name} ${side}`).toBe(alarmFires(alarm(name), await emitted(EDGES[name][side])));
        expect(verdict?.threshold).toBe(Math.abs(alarm(name).Threshold));
      }
    }
  });

  it("emits nothing for a first run's changes, which the alarms take as no data", async () => {
    const points = await emitted(signalsOf(10, 10, 0));
    expect(alarmFires(alarm('massRemoval'), points)).toBeUndefined();
    expect(alarmFires(alarm('healthDrop'), points)).toBeUndefined();
    expect(alarmFires(alarm('silentShare'), points)).toBe(false);
  });

  it("says in each description what to look at first: a saved query of the stack's workgroup and database that lists the devices", () => {
    const queries = Object.values(resourcesOf(s.template, 'AWS::Athena::NamedQuery')).map(({ Properties }) => Properties);
    for (const name of Object.keys(EDGES) as (keyof typeof EDGES)[]) {
      const queryName = /saved Athena query "([^"]+)" \(workgroup thingpark\)/.exec(alarm(name).AlarmDescription)?.[1];
      const query = queries.find((q) => q.Name === queryName);
      expect(query, name).toMatchObject({ Database: 'thingpark', WorkGroup: 'thingpark' });
    }
    const silent = queries.find((q) => q.Name === 'Silent devices in the newest curated run');
    expect(silent!.QueryString).toContain("WHERE last_up_timestamp < run_time - INTERVAL '24' HOUR");
  });

  it('draws health per state, silent devices and the changes on the dashboard', () => {
    const body = JSON.stringify(Object.values(resourcesOf(s.template, 'AWS::CloudWatch::Dashboard'))[0]?.Properties.DashboardBody);
    for (const title of ['Fleet health: devices per state', 'Silent and never-seen devices', 'Fleet changes per run (% of the fleet)', 'Fleet alarms']) {
      expect(body).toContain(title);
    }
    for (const state of ['ACTIVE', 'INACTIVE', 'BATTERY_LOW', 'NEVER_SEEN', 'ERROR', 'OTHER']) {
      expect(body).toContain(`\\"devicesByHealth\\",\\"healthState\\",\\"${state}\\",\\"service\\",\\"thingpark-exporter\\"`);
    }
  });
});

describe('ExporterStack: fleet alarms turned off, or anomaly detection on', () => {
  const s = synthesizeOnce({ fleetMassRemovalPercent: 'off', fleetHealthDropPoints: 'off', fleetSilentPercent: '35', fleetSilentAnomalyBand: '3' });

  it('leaves out the alarms turned off, moves a threshold, and watches the silent count against its anomaly band', () => {
    expect(Object.keys(s.stack.fleetWatch.alarms).sort()).toEqual(['silentAnomaly', 'silentShare']);
    const alarms = resourcesOf(s.template, 'AWS::CloudWatch::Alarm');
    expect(alarms[s.id(s.stack.fleetWatch.alarms.silentShare as never)]?.Properties.Threshold).toBe(35);
    const anomaly = alarms[s.id(s.stack.fleetWatch.alarms.silentAnomaly as never)]!.Properties;
    expect(anomaly).toMatchObject({ ComparisonOperator: 'GreaterThanUpperThreshold', ThresholdMetricId: expect.any(String) });
    expect(JSON.stringify(anomaly.Metrics)).toContain('ANOMALY_DETECTION_BAND(m0, 3)');
    expect(JSON.stringify(anomaly.Metrics)).toContain('"MetricName":"silentDevices"');
  });
});

describe('the fleet thresholds in the context', () => {
  const settings = (context: Record<string, unknown>) => settingsFromContext(new App({ context }));

  it('has the defaults, and "off" turns an alarm off', () => {
    expect(settings({}).fleetThresholds).toEqual({ massRemovalPercent: 10, healthDropPoints: 10, silentPercent: 20 });
    expect(settings({ fleetSilentPercent: 'off', fleetHealthDropPoints: '2.5' }).fleetThresholds).toEqual({ massRemovalPercent: 10, healthDropPoints: 2.5 });
  });

  it.each([
    [{ fleetMassRemovalPercent: '0' }, 'fleetMassRemovalPercent must be a number above 0 and at most 100, or "off", got "0"'],
    [{ fleetSilentPercent: 'many' }, 'fleetSilentPercent must be a number above 0 and at most 100'],
    [{ fleetSilentAnomalyBand: '11' }, 'fleetSilentAnomalyBand must be a number above 0 and at most 10'],
  ])('refuses %j', (context, message) => {
    expect(() => settings(context)).toThrow(message);
  });
});
