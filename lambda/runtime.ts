import { S3Client } from '@aws-sdk/client-s3';
import { ssmCredentials } from './auth/credentials.ts';
import { TokenCache } from './auth/token-cache.ts';
import { clientCredentialsGrant } from './auth/token-grant.ts';
import type { Config } from './config.ts';
import type { RunServices } from './run/run-context.ts';

/** What outlives one invocation in a warm execution context: clients and the token. */
export function createServices(config: Config): RunServices {
  const credentials = ssmCredentials(config, config.credentialsCacheSeconds);
  return {
    config,
    // Endpoints come from the SDK's own AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SSM.
    s3: new S3Client({}),
    tokens: new TokenCache(clientCredentialsGrant(config, credentials), config.tokenRenewMarginSeconds),
  };
}
