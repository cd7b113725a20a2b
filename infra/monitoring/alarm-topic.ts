import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';

/**
 * The topic every alarm notifies, and its key: only this account's alarms may publish to
 * it, over TLS; the operator's address, when given, is subscribed.
 */
export function alarmTopic(scope: Construct, alarmEmail: string | undefined): { key: kms.Key; topic: sns.Topic } {
  const { partition, region, account } = Stack.of(scope);
  // CloudWatch cannot publish to a topic under the AWS-managed aws/sns key: its policy
  // cannot be changed to let the CloudWatch service use it.
  const key = new kms.Key(scope, 'TopicKey', {
    description: 'thingpark-exporter alarm topic',
    enableKeyRotation: true,
    // It encrypts alarm notifications only while SNS holds them: nothing kept needs it after a destroy.
    removalPolicy: RemovalPolicy.DESTROY,
    pendingWindow: Duration.days(7),
  });
  const thisAccountsAlarms = {
    ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
    StringEquals: { 'aws:SourceAccount': account },
  };
  // The same bound as the topic's policy below: CloudWatch acting for another account's
  // alarm must not be able to use this key.
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowCloudWatchAlarmsToUseTheKey',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
      conditions: thisAccountsAlarms,
    }),
  );
  const topic = new sns.Topic(scope, 'AlarmTopic', {
    displayName: 'thingpark-exporter alarms',
    masterKey: key,
    enforceSSL: true,
  });
  // enforceSSL gives the topic a policy of its own, which replaces SNS's default one:
  // CloudWatch's right to publish is stated here, for this account's alarms only.
  topic.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowCloudWatchAlarmsToPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions: thisAccountsAlarms,
    }),
  );
  if (alarmEmail) topic.addSubscription(new EmailSubscription(alarmEmail));
  return { key, topic };
}
