import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validations, type App } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { DEPLOYED_CONTEXT, synthesizeOnce } from './synth.ts';

interface Acknowledgement {
  /** The construct acknowledged on. */
  path: string;
  /** The rule id, without the `Validations::` prefix. */
  id: string;
  reason: string;
}

/** Every acknowledged cdk-nag finding of the app, one per construct and rule. */
function acknowledgements(app: App): Acknowledgement[] {
  const acknowledged: Acknowledgement[] = [];
  for (const construct of app.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [key, reason] of Object.entries(entry.data as Record<string, string>)) {
        acknowledged.push({ path: construct.node.path, id: key.replace(/^[A-Za-z]+::/, ''), reason });
      }
    }
  }
  return acknowledged;
}
describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

  describe('cdk-nag AwsSolutions', () => {
    it('finds nothing unacknowledged, and the validation report is empty', () => {
      expect(s.pack.validateScope(s.app).violations).toEqual([]);
      const reportFile = join(s.app.outdir, 'validation-report.json');
      expect(existsSync(reportFile)).toBe(true);
      const report = JSON.parse(readFileSync(reportFile, 'utf8'));
      expect(report.pluginReports.flatMap((plugin: { violations?: unknown[] }) => plugin.violations ?? [])).toEqual([]);
      const annotations = Annotations.fromStack(s.stack);
      expect(annotations.findError('*', Match.anyValue())).toEqual([]);
      expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
    });

    it('acknowledges exactly the expected findings, each with a reason', () => {
      const acknowledged = acknowledgements(s.app);
      expect([...new Set(acknowledged.map((entry) => entry.id))].sort()).toEqual(
        [
          'AwsSolutions-S1',
          'AwsSolutions-SQS3',
          'AwsSolutions-SF2',
          'AwsSolutions-IAM5[Resource::*]',
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/attempts/*]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/checkpoints/*]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/curated/*]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/curated/device_changes/dt=*/run=*/part-*.parquet]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/curated/device_snapshots/dt=*/run=*/part-*.parquet]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/curated/state/*.progress.json]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/curated/state/*.state.gz]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/devices/*]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/indexes/*]`,
          `AwsSolutions-IAM5[Resource::<${s.bucketId}.Arn>/thingpark/manifests/*]`,
          `AwsSolutions-IAM5[Resource::<${s.functionId}.Arn>:*]`,
        ].sort(),
      );
      expect(acknowledged.filter(({ reason }) => reason.length <= 40)).toEqual([]);
    });

    it('acknowledges S1 on what is true: no per-request audit of the bucket, and the trade-off accepted', () => {
      // The stack has no trail: the reason may not rest on one.
      s.template.resourceCountIs('AWS::CloudTrail::Trail', 0);
      const onBucket = acknowledgements(s.app).filter((entry) => entry.path === s.stack.bucket.node.path && entry.id === 'AwsSolutions-S1');
      expect(onBucket).toHaveLength(1);
      const { reason } = onBucket[0]!;
      expect(reason).toMatch(/records no per-request audit/);
      expect(reason).toMatch(/creates no CloudTrail trail/);
      expect(reason).toMatch(/Accepted trade-off: without such a trail, who read or wrote which object is not traceable/);
    });
  });
});
