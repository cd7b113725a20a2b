import { describe, expect, it } from 'vitest';
import { DEPLOYED_CONTEXT, synthesizeOnce } from './synth.ts';

describe('ExporterStack with the default context', () => {
  const s = synthesizeOnce(DEPLOYED_CONTEXT);

  describe('outputs', () => {
    it('names everything an operator needs, and the exact on-demand command', () => {
      const outputs = s.template.toJSON().Outputs as Record<string, { Value: unknown }>;
      expect(Object.keys(outputs).sort()).toEqual(
        [
          'AlarmTopicArn',
          'AthenaWorkGroupName',
          'DeadLetterQueueUrl',
          'FunctionName',
          'GlueDatabaseName',
          'GlueTableName',
          'InvokeCommand',
          'SnapshotBucketName',
          'StartExecutionCommand',
          'StateMachineArn',
        ].sort(),
      );
      expect(outputs.SnapshotBucketName!.Value).toEqual({ Ref: s.bucketId });
      expect(outputs.FunctionName!.Value).toEqual({ Ref: s.functionId });
      expect(outputs.DeadLetterQueueUrl!.Value).toEqual({ Ref: s.queueId });
      expect(outputs.AlarmTopicArn!.Value).toEqual({ Ref: s.id(s.stack.monitoring.topic) });
      expect(outputs.InvokeCommand!.Value).toEqual({
        'Fn::Join': [
          '',
          [
            'aws lambda invoke --region eu-west-1 --function-name ',
            { Ref: s.functionId },
            " --cli-binary-format raw-in-base64-out --cli-read-timeout 0 --payload '{}' summary.json && cat summary.json",
          ],
        ],
      });
    });
  });
});
