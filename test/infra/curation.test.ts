import { describe, expect, it } from 'vitest';
import { glueTable, resourcesOf, synthesizeOnce } from './synth.ts';

describe('ExporterStack: the curated tables (infra/curation.ts)', () => {
  const s = synthesizeOnce({});
  const location = (folder: string) => ({ 'Fn::Join': ['', ['s3://', { Ref: s.bucketId }, `/thingpark/${folder}`]] });
  const columnsOf = (name: string) =>
    glueTable(s.template, name).Properties.TableInput.StorageDescriptor.Columns.map(
      (column: { Name: string; Type: string }) => `${column.Name} ${column.Type}`,
    );

  it('declares device_snapshots and device_changes as Parquet over their own folders, partitioned by a projected dt', () => {
    for (const [name, folder] of [
      ['device_snapshots', 'curated/device_snapshots/'],
      ['device_changes', 'curated/device_changes/'],
    ] as const) {
      const table = glueTable(s.template, name).Properties.TableInput;
      expect(table.StorageDescriptor, name).toMatchObject({
        Location: location(folder),
        SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
        InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
      });
      expect(table.PartitionKeys, name).toEqual([{ Name: 'dt', Type: 'string', Comment: 'UTC date of the run (yyyy-MM-dd)' }]);
      expect(table.Parameters, name).toMatchObject({
        classification: 'parquet',
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.range': '2024-01-01,NOW',
      });
    }
  });

  it('types the Parquet columns as the files do: timestamps, doubles, bigints, a list, a boolean', () => {
    expect(columnsOf('device_snapshots')).toEqual([
      'run_id string',
      'run_time timestamp',
      'ref string',
      'eui string',
      'name string',
      'nw_address string',
      'health_state string',
      'model_commercial_name string',
      'subscription_commercial_name string',
      'routing_profile_name string',
      'last_up_timestamp timestamp',
      'last_dw_timestamp timestamp',
      'last_rssi double',
      'last_snr double',
      'avg_rssi double',
      'avg_snr double',
      'last_sf bigint',
      'last_bat_level bigint',
      'alarm_count bigint',
      'alarm_level bigint',
      'lat double',
      'lon double',
      'href string',
      'other_fields string',
    ]);
    expect(columnsOf('devices_current')).toEqual(columnsOf('device_snapshots'));
    expect(columnsOf('device_changes')).toEqual([
      'run_id string',
      'run_time timestamp',
      'previous_run_id string',
      'previous_run_time timestamp',
      'change string',
      'device_key string',
      'ref string',
      'eui string',
      'name string',
      'health_state_before string',
      'health_state_after string',
      'changed_fields array<string>',
      'before string',
      'after string',
      'confirmed boolean',
    ]);
  });

  it('makes devices_current a symlink table over the folder holding only symlink.txt, unpartitioned', () => {
    const table = glueTable(s.template, 'devices_current').Properties.TableInput;
    expect(table.StorageDescriptor).toMatchObject({
      Location: location('curated/devices_current/'),
      InputFormat: 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
      SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
    });
    expect(table.PartitionKeys).toBeUndefined();
  });

  it('reads the manifests as the runs table and the curation records as curated_runs, with the JSON SerDe', () => {
    for (const [name, folder] of [
      ['runs', 'manifests/'],
      ['curated_runs', 'curated/runs/'],
    ] as const) {
      expect(glueTable(s.template, name).Properties.TableInput.StorageDescriptor, name).toMatchObject({
        Location: location(folder),
        SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
      });
    }
    expect(columnsOf('runs')).toContain(
      'counts struct<devices:bigint,pages:bigint,pageRequests:bigint,wastedRequests:bigint,duplicates:bigint,unkeyed:bigint,throttled:bigint,retries:bigint,tokenRequests:bigint,recovered:bigint,removed:bigint,unresolved:bigint,verificationRequests:bigint>',
    );
    expect(columnsOf('curated_runs')).toEqual(
      expect.arrayContaining([
        'added bigint',
        'removed bigint',
        'changed bigint',
        'removals_confirmed boolean',
        'change_fields array<string>',
        'manifest_hash string',
        'signals struct<silent_after_hours:int,devices_by_health:map<string,bigint>,health_share:map<string,double>,active_share:double,active_share_change:double,silent_devices:bigint,silent_share:double,never_seen_devices:bigint,never_seen_share:double,added_share:double,removed_share:double,changed_share:double>',
      ]),
    );
  });

  it("names the runs tables' columns in snake_case, each mapped to its key in the JSON", () => {
    const serde = (name: string) => glueTable(s.template, name).Properties.TableInput.StorageDescriptor.SerdeInfo.Parameters;
    expect(columnsOf('runs').slice(0, 7)).toEqual([
      'run_id string',
      'trigger string',
      'label string',
      'run_time string',
      'started_at string',
      'finished_at string',
      'duration_ms bigint',
    ]);
    expect(serde('runs')).toMatchObject({ 'mapping.run_id': 'runid', 'mapping.run_time': 'runtime', 'mapping.compared_with': 'comparedwith' });
    expect(serde('runs')).not.toHaveProperty('mapping.trigger');
    expect(serde('curated_runs')).toMatchObject({
      'mapping.run_id': 'runid',
      'mapping.previous_run_id': 'previousrunid',
      'mapping.removals_confirmed': 'removalsconfirmed',
      'mapping.change_fields': 'changefields',
    });
    for (const name of ['runs', 'curated_runs']) {
      for (const column of columnsOf(name)) expect(column, name).toMatch(/^[a-z_]+ /);
    }
  });

  it('saves the four day-one queries in the workgroup, each naming the tables it reads', () => {
    const ids = new Set(s.stack.curation.namedQueries.map((query) => s.stack.getLogicalId(query)));
    const queries = Object.entries(resourcesOf(s.template, 'AWS::Athena::NamedQuery'))
      .filter(([id]) => ids.has(id))
      .map(([, query]) => query.Properties);
    expect(queries.map((query) => query.Name)).toEqual([
      'Fleet by health now',
      'Devices silent for more than 24 hours',
      'Health changes over the last 7 days',
      'Runs of the last day',
    ]);
    expect(queries).toEqual(queries.map(() => expect.objectContaining({ Database: 'thingpark', WorkGroup: 'thingpark' })));
    expect(queries[0]!.QueryString).toContain('FROM thingpark.devices_current');
    expect(queries[1]!.QueryString).toContain("last_up_timestamp < current_timestamp - INTERVAL '24' HOUR");
    expect(queries[2]!.QueryString).toContain("contains(changed_fields, 'health_state')");
    expect(queries[3]!.QueryString).toContain('LEFT JOIN thingpark.curated_runs c ON c.run_id = r.run_id');
  });

  it('alarms when a curation fails (not when one is skipped for the state machine to run), and expires the comparison state after a week', () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'curationFailed',
      Namespace: 'ThingParkExporter',
      Statistic: 'Sum',
      Period: 300,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ Ref: s.id(s.stack.monitoring.topic) }],
    });
    expect(Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter((alarm) => JSON.stringify(alarm).includes('curationSkipped'))).toEqual([]);
    const rules = s.template.findResources('AWS::S3::Bucket')[s.bucketId]!.Properties.LifecycleConfiguration.Rules;
    expect(rules).toContainEqual({ Id: 'expire-curated-state', Prefix: 'thingpark/curated/state/', ExpirationInDays: 7, Status: 'Enabled' });
  });
});
