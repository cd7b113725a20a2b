import type { Logger } from '@aws-lambda-powertools/logger';
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { ssmCredentials } from './auth/credentials.ts';
import { TokenCache } from './auth/token-cache.ts';
import { clientCredentialsGrant } from './auth/token-grant.ts';
import { NAMING_STEP, nameNetworkFailures } from './common/aws-failures.ts';
import { logRetries } from './common/retry.ts';
import type { Config } from './common/config.ts';
import type { RunServices } from './run/run-context.ts';

/** What outlives one invocation in a warm execution context: clients and the token. */
export function createServices(config: Config, logger: Logger): RunServices {
  // Endpoints come from the SDK's own AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SSM.
  const s3 = new S3Client({});
  const ssm = new SSMClient({});
  s3.middlewareStack.add(nameNetworkFailures('S3'), NAMING_STEP);
  ssm.middlewareStack.add(nameNetworkFailures('SSM'), NAMING_STEP);
  const credentials = ssmCredentials(config, config.credentialsCacheSeconds, new SSMProvider({ awsSdkV3Client: ssm }));
  return {
    config,
    s3,
    tokens: new TokenCache(clientCredentialsGrant(config, credentials, logRetries(logger)), config.tokenRenewMarginSeconds),
  };
}
