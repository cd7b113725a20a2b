import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { ssmCredentials } from './auth/credentials.ts';
import { TokenCache } from './auth/token-cache.ts';
import { clientCredentialsGrant } from './auth/token-grant.ts';
import { awsClients } from './common/aws-clients.ts';
import type { Config } from './common/config.ts';
import { DEFAULTS } from './common/env.ts';
import { logRetries } from './common/retry.ts';
import type { RunServices } from './common/services.ts';
import { loadCurationSettings, type CurationSettings } from './curate/settings.ts';

/** Everything a warm context keeps: the clients, the token, the metrics, and the settings of the curation. */
export interface Services extends RunServices {
  /**
   * Read from the environment the first time a request needs them, then kept: a bad
   * CURATE_* variable fails the requests that curate, not an abandon.
   */
  curation(): CurationSettings;
}

/**
 * The composition root: builds, once per execution context, what every invocation of it
 * shares. Nothing below the handler builds a client or a metrics object of its own.
 */
export function createServices(config: Config, logger: Logger): Services {
  const { s3, ssm } = awsClients(config);
  const credentials = ssmCredentials(config, config.credentialsCacheSeconds, new SSMProvider({ awsSdkV3Client: ssm }));
  let curation: CurationSettings | undefined;
  return {
    config,
    s3,
    tokens: new TokenCache(clientCredentialsGrant(config, credentials, logRetries(logger)), config.tokenRenewMarginSeconds),
    // Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
    metrics: new Metrics({
      serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? DEFAULTS.POWERTOOLS_SERVICE_NAME,
      namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? DEFAULTS.POWERTOOLS_METRICS_NAMESPACE,
    }),
    curation: () => (curation ??= loadCurationSettings()),
  };
}
