import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { DEPLOYED_CONTEXT, glueTable, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

  describe('analytics', () => {
    it('has a Glue table over <prefix>devices/ with date projection on dt', () => {
      const table = glueTable(s.template, 'devices').Properties.TableInput;
      expect(table.Name).toBe('devices');
      expect(table.Parameters).toEqual({
        classification: 'json',
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'projection.dt.range': '2024-01-01,NOW',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.interval': '1',
        'projection.dt.interval.unit': 'DAYS',
        has_encrypted_data: false,
      });
      expect(table.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string', Comment: 'UTC date of the run (yyyy-MM-dd)' }]);
      expect(table.StorageDescriptor).toMatchObject({
        Location: { 'Fn::Join': ['', ['s3://', { Ref: s.bucketId }, '/thingpark/devices/']] },
        SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
        InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      });
      s.template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'thingpark' } });
    });

    it('declares the device brief columns with their types', () => {
      const columns = glueTable(s.template, 'devices').Properties.TableInput.StorageDescriptor.Columns;
      expect(columns.map((column: { Name: string; Type: string }) => `${column.Name} ${column.Type}`)).toEqual([
        'exportrunid string',
        'ref string',
        'eui string',
        'name string',
        'nwaddress string',
        'healthstate string',
        'lastuptimestamp bigint',
        'lastdwtimestamp bigint',
        'lastrssi double',
        'lastsnr double',
        'avgrssi double',
        'avgsnr double',
        'lastsf int',
        'lastbatlevel int',
        'alarmcount int',
        'alarmlevel int',
        'lat double',
        'lon double',
        'href string',
        'model struct<commercialName:string>',
        'networksubscription struct<commercialName:string>',
        'appserversroutingprofile struct<name:string>',
      ]);
    });

    it('has an Athena workgroup that enforces encrypted results in a TLS-only bucket of their own', () => {
      const resultsId = s.id(s.stack.analytics.resultsBucket);
      s.template.hasResourceProperties('AWS::Athena::WorkGroup', {
        Name: 'thingpark',
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          PublishCloudWatchMetricsEnabled: true,
          ResultConfiguration: {
            OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: resultsId }, '/athena-results/']] },
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
            ExpectedBucketOwner: '123456789012',
          },
        },
      });
      const results = s.template.findResources('AWS::S3::Bucket')[resultsId]!;
      expect(results.Properties).toMatchObject({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      });
      s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: resultsId },
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    });
  });
});
