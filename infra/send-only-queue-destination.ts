import type { Construct } from 'constructs';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';

/**
 * An SQS queue as a Lambda destination that grants the function `sqs:SendMessage` only.
 * `SqsDestination` grants with `grantSendMessages`, which adds GetQueueAttributes and
 * GetQueueUrl: Lambda addresses the destination by its ARN and never calls either.
 */
export class SendOnlyQueueDestination implements lambda.IDestination {
  constructor(private readonly queue: sqs.IQueue) {}

  bind(_scope: Construct, fn: lambda.IFunction): lambda.DestinationConfig {
    this.queue.grant(fn, 'sqs:SendMessage');
    // A producer to a queue under a customer-managed key needs the key as well.
    this.queue.encryptionMasterKey?.grant(fn, 'kms:GenerateDataKey', 'kms:Decrypt');
    return { destination: this.queue.queueArn };
  }
}
