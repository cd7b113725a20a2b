import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { bucketPolicyStatements, DEPLOYED_CONTEXT, objectArn, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

  describe('snapshot bucket', () => {
    it('blocks public access, enforces TLS, is encrypted and versioned, and is retained', () => {
      s.template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
        Properties: Match.objectLike({
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      });
      s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: s.bucketId },
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
        },
      });
    });

    it('refuses, to every principal, a manifest write without If-None-Match and a pointer write without a condition', () => {
      const denies = bucketPolicyStatements(s.template, s.bucketId).filter((statement) => statement.Action === 's3:PutObject');
      const created = { 's3:if-none-match': 'true' };
      const conditional = { 's3:if-none-match': 'true', 's3:if-match': 'true' };
      const deny = (Sid: string, key: string, missing: Record<string, string>) => ({
        Sid,
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: 's3:PutObject',
        Resource: objectArn(s.bucketId, `thingpark/${key}`),
        Condition: { Null: missing, Bool: { 's3:ObjectCreationOperation': 'true' } },
      });
      expect(denies).toEqual([
        deny('ManifestsAreCreatedOnce', 'manifests/*', created),
        deny('CheckpointsAreCreatedOnce', 'checkpoints/*', created),
        deny('PointerIsWrittenConditionally', 'latest.json', conditional),
        deny('CurationRecordsAreCreatedOnce', 'curated/runs/*', created),
        deny('CurrentTableIsSwitchedConditionally', 'curated/devices_current/symlink.txt', conditional),
      ]);
    });

    it('aborts stale uploads, expires old versions, and expires snapshots after snapshotExpirationDays', () => {
      const bucket = s.template.findResources('AWS::S3::Bucket')[s.bucketId]!;
      expect(bucket.Properties.LifecycleConfiguration.Rules).toEqual([
        { Id: 'abort-incomplete-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        {
          Id: 'expire-noncurrent-versions',
          NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          ExpiredObjectDeleteMarker: true,
          Status: 'Enabled',
        },
        { Id: 'expire-checkpoints', Prefix: 'thingpark/checkpoints/', ExpirationInDays: 1, Status: 'Enabled' },
        { Id: 'expire-devices', Prefix: 'thingpark/devices/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-manifests', Prefix: 'thingpark/manifests/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-indexes', Prefix: 'thingpark/indexes/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-curated-state', Prefix: 'thingpark/curated/state/', ExpirationInDays: 7, Status: 'Enabled' },
        // The curated tables hold the same device data: they go with the raw files.
        { Id: 'expire-curated-snapshots', Prefix: 'thingpark/curated/device_snapshots/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-curated-changes', Prefix: 'thingpark/curated/device_changes/', ExpirationInDays: 90, Status: 'Enabled' },
        { Id: 'expire-curated-records', Prefix: 'thingpark/curated/runs/', ExpirationInDays: 90, Status: 'Enabled' },
      ]);
    });
  });
});
