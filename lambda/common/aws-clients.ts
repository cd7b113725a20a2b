import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { NAMING_STEP, nameAwsFailures } from './aws-failures.ts';
import type { Config } from './config.ts';

export type AwsClientSettings = Pick<Config, 'awsConnectTimeoutMs' | 'awsRequestTimeoutMs'>;

export interface AwsClients {
  s3: S3Client;
  ssm: SSMClient;
}

/**
 * The run's S3 and SSM clients. Without timeouts the SDK waits on an endpoint that accepts
 * a connection and never answers for as long as the socket lives (more than ten minutes,
 * seen), so each has a connection timeout, a request timeout that fails the attempt
 * (`throwOnRequestTimeout`: without it the SDK only warns and waits on), and an idle
 * timeout on the socket for an answer's body that stops coming. Attempts are the SDK's
 * own bounded retries (3 unless AWS_MAX_ATTEMPTS says otherwise). Endpoints come from the
 * SDK's own AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SSM, and every failure is named
 * (aws-failures.ts).
 */
export function awsClients(settings: AwsClientSettings): AwsClients {
  const s3 = new S3Client({ requestHandler: requestHandler(settings) });
  const ssm = new SSMClient({ requestHandler: requestHandler(settings) });
  s3.middlewareStack.add(nameAwsFailures('S3'), NAMING_STEP);
  ssm.middlewareStack.add(nameAwsFailures('SSM'), NAMING_STEP);
  return { s3, ssm };
}

function requestHandler({ awsConnectTimeoutMs, awsRequestTimeoutMs }: AwsClientSettings): NodeHttpHandler {
  return new NodeHttpHandler({
    connectionTimeout: awsConnectTimeoutMs,
    requestTimeout: awsRequestTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: awsRequestTimeoutMs,
  });
}
