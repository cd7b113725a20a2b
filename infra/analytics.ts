import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface AnalyticsProps {
  /** The snapshot bucket. */
  bucket: s3.IBucket;
  /** The table location inside it: `<prefix>devices/`. */
  tablePrefix: string;
  /** Glue database name; also the Athena workgroup's. */
  databaseName: string;
}

const { STRING, BIG_INT, DOUBLE, INTEGER } = glue.Schema;
const commercialName = glue.Schema.struct([{ name: 'commercialName', type: STRING }]);

/**
 * The fields of a ThingPark device brief that analysts query most. The data files keep
 * every field the platform sent; the OpenX SerDe ignores the ones not declared here and
 * matches the declared ones case-insensitively (`exportrunid` reads `exportRunId`).
 */
/**
 * Tables partitioned by the run's UTC date, as the keys are (dt=YYYY-MM-DD). Days are
 * projected, not crawled: a new day is queryable at once, with no ALTER TABLE ADD PARTITION.
 */
export const DAILY_PARTITIONS = {
  partitionKeys: [{ name: 'dt', type: STRING, comment: 'UTC date of the run (yyyy-MM-dd)' }],
  partitionProjection: {
    dt: glue.PartitionProjectionConfiguration.date({
      min: '2024-01-01',
      max: 'NOW',
      format: 'yyyy-MM-dd',
      step: { interval: 1, intervalUnit: glue.DateIntervalUnit.DAYS },
    }),
  },
};

export const DEVICE_COLUMNS: glue.Column[] = [
  { name: 'exportrunid', type: STRING, comment: 'The run that wrote the row; filter on one run for one snapshot' },
  { name: 'ref', type: STRING },
  { name: 'eui', type: STRING },
  { name: 'name', type: STRING },
  { name: 'nwaddress', type: STRING },
  { name: 'healthstate', type: STRING },
  { name: 'lastuptimestamp', type: BIG_INT },
  { name: 'lastdwtimestamp', type: BIG_INT },
  { name: 'lastrssi', type: DOUBLE },
  { name: 'lastsnr', type: DOUBLE },
  { name: 'avgrssi', type: DOUBLE },
  { name: 'avgsnr', type: DOUBLE },
  { name: 'lastsf', type: INTEGER },
  { name: 'lastbatlevel', type: INTEGER },
  { name: 'alarmcount', type: INTEGER },
  { name: 'alarmlevel', type: INTEGER },
  { name: 'lat', type: DOUBLE },
  { name: 'lon', type: DOUBLE },
  { name: 'href', type: STRING },
  { name: 'model', type: commercialName },
  { name: 'networksubscription', type: commercialName },
  { name: 'appserversroutingprofile', type: glue.Schema.struct([{ name: 'name', type: STRING }]) },
];

/** A Glue table over the snapshot data and an Athena workgroup to query it with. */
export class Analytics extends Construct {
  readonly database: glue.Database;
  readonly table: glue.S3Table;
  readonly resultsBucket: s3.Bucket;
  readonly workGroup: athena.CfnWorkGroup;
  readonly workGroupName: string;

  constructor(scope: Construct, id: string, props: AnalyticsProps) {
    super(scope, id);

    this.database = new glue.Database(this, 'Database', {
      databaseName: props.databaseName,
      description: 'ThingPark device snapshots written by thingpark-exporter',
    });

    // Runs are sub-folders of a day and are read with it; filter on exportrunid for a
    // single snapshot.
    this.table = new glue.S3Table(this, 'DevicesTable', {
      database: this.database,
      tableName: 'devices',
      description: 'One row per device per export run (gzip NDJSON, Hive-style dt partitions)',
      storage: glue.S3TableStorage.fromBucket(props.bucket),
      s3Prefix: props.tablePrefix,
      dataFormat: glue.DataFormat.JSON,
      compressed: true,
      columns: DEVICE_COLUMNS,
      ...DAILY_PARTITIONS,
      // SSE-S3 objects are decrypted by S3 itself; the flag is for client-side encryption.
      hasEncryptedData: false,
    });

    this.resultsBucket = new s3.Bucket(this, 'QueryResultsBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-query-results', expiration: Duration.days(30) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    Validations.of(this.resultsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'Holds only Athena query results, which expire after 30 days; Athena and CloudTrail already record who ran which query.',
    });

    this.workGroupName = props.databaseName;
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: 'Queries over the thingpark-exporter snapshots',
      state: 'ENABLED',
      // Lets the stack be deleted although the workgroup holds saved queries.
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: 'AUTO' },
        resultConfiguration: {
          outputLocation: this.resultsBucket.s3UrlForObject('athena-results/'),
          expectedBucketOwner: Stack.of(this).account,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });
  }
}
