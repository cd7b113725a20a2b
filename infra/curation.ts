import { CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { CHANGE_COLUMNS } from '../lambda/curate/changes.ts';
import { snakeCase, type ColumnSpec } from '../lambda/curate/columns.ts';
import type { FleetSignals } from '../lambda/curate/fleet-signals.ts';
import { CURATED_FOLDERS, CURATED_REMOVABLE, CURRENT_SYMLINK, FOLDERS } from '../lambda/storage/layout.ts';
import { SNAPSHOT_COLUMNS } from '../lambda/curate/snapshot-rows.ts';
import { DAILY_PARTITIONS } from './analytics.ts';
import { onAnyOccurrence } from './monitoring/alarms.ts';
import type { Monitoring } from './monitoring/monitoring.ts';

export interface CurationProps {
  bucket: s3.Bucket;
  /** The snapshot prefix P: raw data under P devices/, manifests under P manifests/. */
  prefix: string;
  database: glue.IDatabase;
  /** The database's name as configured: the saved queries name their tables by it. */
  databaseName: string;
  workGroup: athena.CfnWorkGroup;
  /** The function's role: curation runs in the exporter function. */
  role: iam.Role;
  /** Where curation's alarm and figures go, beside the export's. */
  monitoring: Monitoring;
  /** The snapshots' retention (snapshotExpirationDays): the per-run curated tables and records go with them. */
  expirationDays?: number;
}

/** How long a run's comparison state is kept: the next run reads it; past that a backfill reads raw files. */
export const STATE_EXPIRATION_DAYS = 7;

/**
 * The analyst's tables over what curation writes (lambda/curate/), and what curation may
 * do: the Glue tables device_snapshots, devices_current, device_changes, runs and
 * curated_runs; Athena queries an operator wants on day one; the function's access to the
 * raw files and the curated folders, and nothing more; the conditional writes the switch
 * and the records rest on; added/removed/changed on the dashboard, and an alarm when
 * curation fails.
 */
export class Curation extends Construct {
  readonly tables: Record<'deviceSnapshots' | 'devicesCurrent' | 'deviceChanges' | 'runs' | 'curatedRuns', glue.S3Table>;
  readonly namedQueries: athena.CfnNamedQuery[];
  readonly failedAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: CurationProps) {
    super(scope, id);
    const { bucket, prefix } = props;
    this.tables = this.declareTables(props);

    this.namedQueries = Object.entries(namedQueries(props.databaseName)).map(
      ([name, { description, sql }], index) =>
        new athena.CfnNamedQuery(this, `Query${index}`, {
          name,
          description,
          database: props.databaseName,
          workGroup: props.workGroup.name,
          queryString: sql,
        }),
    );
    // The queries name the workgroup, which must exist first.
    for (const query of this.namedQueries) query.node.addDependency(props.workGroup);

    this.grantCuration(props);
    this.enforceConditionalWrites(props);
    // The state is only read by the next run; a backfill older than this reads raw files.
    bucket.addLifecycleRule({ id: 'expire-curated-state', prefix: `${prefix}${CURATED_FOLDERS.state}`, expiration: Duration.days(STATE_EXPIRATION_DAYS) });
    // The curated tables hold the raw files' device data (positions included): kept no longer.
    // The current table's one object is replaced by every curation and never expires.
    if (props.expirationDays !== undefined) {
      for (const [name, folder] of [
        ['snapshots', CURATED_FOLDERS.snapshots],
        ['changes', CURATED_FOLDERS.changes],
        ['records', CURATED_FOLDERS.records],
      ] as const) {
        bucket.addLifecycleRule({ id: `expire-curated-${name}`, prefix: `${prefix}${folder}`, expiration: Duration.days(props.expirationDays) });
      }
    }

    this.failedAlarm = this.watch(props.monitoring);
  }

  /** The analyst's tables over the curated folders, and over the manifests and curation records. */
  private declareTables({ bucket, prefix, database }: CurationProps): Curation['tables'] {
    const storage = glue.S3TableStorage.fromBucket(bucket);
    const common = { database, storage, hasEncryptedData: false };

    return {
      deviceSnapshots: new glue.S3Table(this, 'DeviceSnapshotsTable', {
        ...common,
        ...DAILY_PARTITIONS,
        tableName: 'device_snapshots',
        description: 'One typed row per device per curated run (Parquet, Snappy; other_fields GZIP)',
        s3Prefix: `${prefix}${CURATED_FOLDERS.snapshots}`,
        dataFormat: glue.DataFormat.PARQUET,
        columns: glueColumns(SNAPSHOT_COLUMNS),
      }),
      // A symlink table: its location holds one object listing the newest curated run's
      // Parquet files, replaced whole when a newer run is curated (lambda/curate/current-table.ts).
      devicesCurrent: new glue.S3Table(this, 'DevicesCurrentTable', {
        ...common,
        tableName: 'devices_current',
        description: 'The fleet now: exactly the newest curated run, switched atomically',
        s3Prefix: `${prefix}${CURATED_FOLDERS.current}`,
        dataFormat: new glue.DataFormat({
          inputFormat: new glue.InputFormat('org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'),
          outputFormat: glue.OutputFormat.HIVE_IGNORE_KEY_TEXT,
          serializationLibrary: glue.SerializationLibrary.PARQUET,
        }),
        columns: glueColumns(SNAPSHOT_COLUMNS),
      }),
      deviceChanges: new glue.S3Table(this, 'DeviceChangesTable', {
        ...common,
        ...DAILY_PARTITIONS,
        tableName: 'device_changes',
        description: 'Devices added, removed or changed since the previous committed run (Parquet, Snappy)',
        s3Prefix: `${prefix}${CURATED_FOLDERS.changes}`,
        dataFormat: glue.DataFormat.PARQUET,
        columns: glueColumns(CHANGE_COLUMNS),
      }),
      runs: this.jsonObjectsTable('RunsTable', RUN_TABLE, {
        ...common,
        tableName: 'runs',
        description: 'One row per committed run: its manifest (one line of JSON each)',
        s3Prefix: `${prefix}${FOLDERS.manifests}`,
      }),
      curatedRuns: this.jsonObjectsTable('CuratedRunsTable', CURATED_RUN_TABLE, {
        ...common,
        tableName: 'curated_runs',
        description: 'One row per curated run: its changes since the previous run, and its files (one line of JSON each)',
        s3Prefix: `${prefix}${CURATED_FOLDERS.records}`,
      }),
    };
  }

  /** A Glue table over one-line JSON objects, its snake_case columns mapped to the objects' keys. */
  private jsonObjectsTable(id: string, table: ReturnType<typeof jsonTable>, props: Omit<glue.S3TableProps, 'dataFormat' | 'columns'>): glue.S3Table {
    const created = new glue.S3Table(this, id, { ...props, dataFormat: glue.DataFormat.JSON, columns: table.columns });
    // The construct sets only the SerDe's class; its properties are set on the resource.
    (created.node.defaultChild as glue.CfnTable).addPropertyOverride('TableInput.StorageDescriptor.SerdeInfo.Parameters', table.serdeParameters);
    return created;
  }

  /**
   * An alarm when curation fails, and added/removed/changed on the dashboard. Failures
   * only: a curation skipped for lack of time is expected at the end of a long, continued
   * run, and the state machine curates that run in an invocation of its own.
   */
  private watch(monitoring: Monitoring): cloudwatch.Alarm {
    const failedAlarm = monitoring.addAlarm(
      onAnyOccurrence(
        this,
        'CurationFailedAlarm',
        monitoring.metric('curationFailed', 'Sum', Duration.minutes(5)),
        'A run committed but its curation failed: the curated tables lag. The "Curation failed" log line gives the event that curates it.',
      ),
    );
    const perRun = (metricName: string) => monitoring.metric(metricName, 'Sum', Duration.hours(1));
    monitoring.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Fleet changes per run (curated)',
        left: [perRun('devicesAdded'), perRun('devicesRemoved'), perRun('devicesChanged')],
        right: [perRun('curationFailed'), perRun('curationSkipped')],
        width: 24,
      }),
    );
    return failedAlarm;
  }

  /**
   * Exactly what lambda/curate/ calls: it reads the raw data files its manifests list
   * (GetObject on devices/*; manifests and the pointer are read already), writes its
   * Parquet files and state (multipart uploads, aborted and deleted again when curation
   * fails), reads the previous run's state, its own records and the current table's
   * symlink, and writes those two conditionally. Deletes (and aborted uploads) reach only
   * the kinds of object a failed curation removes of its own: Parquet files of the two
   * per-run tables and state files, by their names; never a curation record nor the current
   * table's symlink. Nothing outside curated/ is written.
   */
  private grantCuration({ role, bucket, prefix }: CurationProps): void {
    const curated = bucket.arnForObjects(`${prefix}${FOLDERS.curated}*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadRawAndCurated',
        actions: ['s3:GetObject'],
        resources: [bucket.arnForObjects(`${prefix}${FOLDERS.table}*`), curated],
      }),
    );
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'WriteCurated', actions: ['s3:PutObject'], resources: [curated] }));
    const ownFiles = CURATED_REMOVABLE.map((pattern) => bucket.arnForObjects(`${prefix}${pattern}`));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'RemoveFailedCuration', actions: ['s3:AbortMultipartUpload', 's3:DeleteObject'], resources: ownFiles }),
    );
    const id = (construct: Construct) => Stack.of(this).getLogicalId(construct.node.defaultChild as CfnElement);
    const arn = (pattern: string) => `AwsSolutions-IAM5[Resource::<${id(bucket)}.Arn>/${prefix}${pattern}]`;
    Validations.of(role).acknowledge(
      {
        id: arn(`${FOLDERS.curated}*`),
        reason:
          'Curated objects are named per run (device_snapshots/ and device_changes/ dt=<date>/run=<id>/part-<n>.parquet, state/<id>.state.gz, runs/<id>.json) plus the one current-table object (devices_current/symlink.txt): read and written under this folder only. The records and the symlink are written conditionally, and are never deleted by the function.',
      },
      ...CURATED_REMOVABLE.map((pattern) => ({
        id: arn(pattern),
        reason: `What a failed curation removes of its own (ParquetFiles.discard, the state file, and the progress of a curation going on over invocations, removed once its run is curated: lambda/curate/curate-run.ts): ${pattern}, by name; its multipart uploads are aborted there too. IAM cannot tell one run's objects from another's, so this reaches every run's objects of that name; never a curation record (runs/) nor the current table's symlink.`,
      })),
    );
  }

  /**
   * What keeps the current table from moving backwards, and a run from being recorded
   * twice, are conditional writes; as for manifests and the pointer, an unconditional
   * PutObject of those keys is refused to every principal.
   */
  private enforceConditionalWrites({ bucket, prefix }: CurationProps): void {
    const deny = (sid: string, key: string, missingHeaders: Record<string, 'true'>) =>
      bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['s3:PutObject'],
          resources: [bucket.arnForObjects(`${prefix}${key}`)],
          conditions: { Null: missingHeaders, Bool: { 's3:ObjectCreationOperation': 'true' } },
        }),
      );
    deny('CurationRecordsAreCreatedOnce', `${CURATED_FOLDERS.records}*`, { 's3:if-none-match': 'true' });
    deny('CurrentTableIsSwitchedConditionally', CURRENT_SYMLINK, { 's3:if-none-match': 'true', 's3:if-match': 'true' });
  }
}

const GLUE_TYPES: Record<ColumnSpec['type'], glue.Type> = {
  string: glue.Schema.STRING,
  timestamp: glue.Schema.TIMESTAMP,
  double: glue.Schema.DOUBLE,
  bigint: glue.Schema.BIG_INT,
  boolean: glue.Schema.BOOLEAN,
  'array<string>': glue.Schema.array(glue.Schema.STRING),
};

function glueColumns(specs: readonly ColumnSpec[]): glue.Column[] {
  return specs.map(({ name, type, comment }) => ({ name, type: GLUE_TYPES[type], comment }));
}

const { STRING, BIG_INT, BOOLEAN, INTEGER, DOUBLE } = glue.Schema;
const struct = (fields: Record<string, glue.Type>) => glue.Schema.struct(Object.entries(fields).map(([name, type]) => ({ name, type })));
const files = (count: 'rows' | 'devices') =>
  glue.Schema.array(struct({ key: STRING, [count]: BIG_INT, bytes: BIG_INT, ...(count === 'devices' ? { uncompressedBytes: BIG_INT } : {}) }));

/**
 * A table over one-line JSON objects (manifests, curation records), its columns in the
 * curated tables' snake_case: each top-level key is mapped to its column by the OpenX
 * SerDe's `mapping.` properties (lower case, as the SerDe reads keys case-insensitively).
 * Struct members keep the JSON's names.
 */
function jsonTable(fields: [key: string, type: glue.Type, comment?: string][]): { columns: glue.Column[]; serdeParameters: Record<string, string> } {
  const columns = fields.map(([key, type, comment]) => ({ name: snakeCase(key), type, ...(comment ? { comment } : {}) }));
  const serdeParameters = Object.fromEntries(
    fields.filter(([key]) => snakeCase(key) !== key.toLowerCase()).map(([key]) => [`mapping.${snakeCase(key)}`, key.toLowerCase()]),
  );
  return { columns, serdeParameters };
}

const COUNTS = [
  'devices',
  'pages',
  'pageRequests',
  'wastedRequests',
  'duplicates',
  'unkeyed',
  'throttled',
  'retries',
  'tokenRequests',
  'recovered',
  'removed',
  'unresolved',
  'verificationRequests',
];

/** A manifest (lambda/storage/manifest.ts); times are ISO 8601 text: from_iso8601_timestamp(run_time). */
export const RUN_TABLE = jsonTable([
  ['runId', STRING],
  ['trigger', STRING, 'schedule or on-demand'],
  ['label', STRING],
  ['runTime', STRING, 'ISO 8601, UTC'],
  ['startedAt', STRING],
  ['finishedAt', STRING],
  ['durationMs', BIG_INT],
  ['source', struct({ baseUrl: STRING, pageSize: INTEGER, firstPageIndex: INTEGER })],
  ['counts', struct(Object.fromEntries(COUNTS.map((name) => [name, BIG_INT])))],
  ['verification', STRING],
  ['comparedWith', STRING],
  ['bucket', STRING],
  ['tableLocation', STRING],
  ['dataPrefix', STRING],
  ['files', files('devices')],
  ['bytes', BIG_INT],
]);

/** A curation record (lambda/curate/record.ts). */
export const CURATED_RUN_TABLE = jsonTable([
  ['runId', STRING],
  ['runTime', STRING, 'ISO 8601, UTC'],
  ['curatedAt', STRING],
  ['durationMs', BIG_INT],
  ['devices', BIG_INT],
  ['unkeyed', BIG_INT],
  ['comparison', STRING, 'compared, or first-run'],
  ['previousRunId', STRING],
  ['previousRunTime', STRING],
  ['comparedFrom', STRING],
  ['changeFields', glue.Schema.array(STRING), 'The compared fields, named as device_changes.changed_fields names them'],
  ['added', BIG_INT],
  ['removed', BIG_INT],
  ['changed', BIG_INT],
  ['removalsConfirmed', BOOLEAN],
  [
    'signals',
    struct({
      silent_after_hours: INTEGER,
      devices_by_health: glue.Schema.map(STRING, BIG_INT),
      health_share: glue.Schema.map(STRING, DOUBLE),
      active_share: DOUBLE,
      active_share_change: DOUBLE,
      silent_devices: BIG_INT,
      silent_share: DOUBLE,
      never_seen_devices: BIG_INT,
      never_seen_share: DOUBLE,
      added_share: DOUBLE,
      removed_share: DOUBLE,
      changed_share: DOUBLE,
    } satisfies Record<keyof FleetSignals, glue.Type>),
    "The fleet's health in this run (lambda/curate/fleet-signals.ts): shares in %, active_share_change in points",
  ],
  ['snapshotFiles', files('rows')],
  ['changeFiles', files('rows')],
  ['stateKey', STRING],
  ['manifestHash', STRING, 'Which commit of the run this record is of: a run exported again under its id has a record of its own'],
]);

/** The queries an operator wants on day one, saved in the workgroup (docs/analytics.md explains each). */
export function namedQueries(database: string): Record<string, { description: string; sql: string }> {
  return {
    'Fleet by health now': {
      description: 'Devices per health state in the newest curated run',
      sql: `SELECT health_state, count(*) AS devices\nFROM ${database}.devices_current\nGROUP BY 1\nORDER BY 2 DESC;`,
    },
    'Devices silent for more than 24 hours': {
      description: 'Devices of the newest curated run with no uplink in the last 24 hours (or none ever)',
      sql:
        `SELECT ref, eui, name, health_state, last_up_timestamp\nFROM ${database}.devices_current\n` +
        `WHERE last_up_timestamp IS NULL OR last_up_timestamp < current_timestamp - INTERVAL '24' HOUR\nORDER BY last_up_timestamp NULLS FIRST;`,
    },
    'Health changes over the last 7 days': {
      description: "Every change of a device's health state seen by a run of the last 7 days",
      sql:
        `SELECT run_time, ref, name, health_state_before, health_state_after\nFROM ${database}.device_changes\n` +
        `WHERE dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')\n  AND change = 'changed' AND contains(changed_fields, 'health_state')\nORDER BY run_time, ref;`,
    },
    'Runs of the last day': {
      description: 'Each run of the last 24 hours: its counts, duration, and the changes its curation found',
      sql:
        `SELECT r.run_id, r.trigger, r.run_time, r.counts.devices, r.duration_ms, c.added, c.removed, c.changed, c.removals_confirmed, c.curated_at\n` +
        `FROM ${database}.runs r\nLEFT JOIN ${database}.curated_runs c ON c.run_id = r.run_id\n` +
        `WHERE from_iso8601_timestamp(r.run_time) > current_timestamp - INTERVAL '1' DAY\nORDER BY r.run_time DESC;`,
    },
  };
}
