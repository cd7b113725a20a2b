import * as oidc from 'openid-client';
import type { Config } from '../config.ts';
import type { ClientCredentials, CredentialsSource } from './credentials.ts';
import { ClientRejectedError, PlatformError } from '../errors.ts';
import { RetryBudget, TransientError, isNetworkError, parseRetryAfter, retrying } from '../common/retry.ts';
import type { Grant } from './token-cache.ts';

type GrantConfig = Pick<Config, 'tokenUrl' | 'tokenAuth' | 'requestTimeoutMs' | 'maxRetries'>;

/** Keycloak's answers for a client it does not accept: permanent until the credentials change. */
const REJECTED_CLIENT = new Set(['invalid_client', 'unauthorized_client']);

class RejectedClient extends Error {}

/**
 * The client-credentials grant through openid-client. Network errors and 5xx are retried;
 * a rejected client re-reads the SSM parameters once (the secret may have been rotated)
 * and then fails for good: retrying a rejected client only locks the account out sooner.
 */
export function clientCredentialsGrant(
  config: GrantConfig,
  credentials: CredentialsSource,
): () => Promise<Grant> {
  let configured: { key: string; value: oidc.Configuration } | undefined;
  const configurationFor = ({ clientId, clientSecret }: ClientCredentials): oidc.Configuration => {
    const key = `${clientId}\n${clientSecret}`;
    if (configured?.key !== key) {
      configured = { key, value: buildConfiguration(config, clientId, clientSecret) };
    }
    return configured.value;
  };
  const attempt = async (creds: ClientCredentials): Promise<Grant> => {
    const configuration = configurationFor(creds);
    // Its own budget: a grant is one request, retried at most maxRetries times.
    const retry = retrying({ maxRetries: config.maxRetries, budget: new RetryBudget(config.maxRetries) });
    const response = await retry(() => requestToken(configuration));
    return { accessToken: response.access_token, expiresIn: response.expires_in };
  };

  return async () => {
    try {
      return await attempt(await credentials.get());
    } catch (error) {
      if (!(error instanceof RejectedClient)) throw error;
    }
    try {
      return await attempt(await credentials.get({ fresh: true }));
    } catch (error) {
      if (!(error instanceof RejectedClient)) throw error;
      const [idParam, secretParam] = credentials.parameterNames;
      throw new ClientRejectedError(
        `The token endpoint ${config.tokenUrl.href} rejected the client (${error.message}), ` +
          `also after re-reading SSM parameters ${idParam} and ${secretParam}. Check that the ` +
          'ThingPark service account still exists and that these parameters hold its current ' +
          'client id and secret; the exporter will not retry until they change.',
      );
    }
  };
}

function buildConfiguration(config: GrantConfig, clientId: string, clientSecret: string): oidc.Configuration {
  const auth =
    config.tokenAuth === 'client_secret_basic'
      ? oidc.ClientSecretBasic(clientSecret)
      : oidc.ClientSecretPost(clientSecret);
  const configuration = new oidc.Configuration(
    { issuer: config.tokenUrl.origin, token_endpoint: config.tokenUrl.href },
    clientId,
    undefined,
    auth,
  );
  configuration.timeout = Math.ceil(config.requestTimeoutMs / 1000);
  // config.ts already refused plain http to anything but a loopback address.
  if (config.tokenUrl.protocol === 'http:') oidc.allowInsecureRequests(configuration);
  return configuration;
}

/** One token request, its failure sorted into retryable, rejected client, or permanent. */
async function requestToken(configuration: oidc.Configuration) {
  try {
    return await oidc.clientCredentialsGrant(configuration);
  } catch (error) {
    throw classify(error);
  }
}

function classify(error: unknown): Error {
  if (error instanceof oidc.ResponseBodyError) {
    const detail = `HTTP ${error.status} ${error.error}`;
    if (REJECTED_CLIENT.has(error.error)) return new RejectedClient(detail);
    if (error.status >= 500 || error.status === 429) {
      return new TransientError(`token endpoint answered ${detail}`, error.status, retryAfterOf(error.response));
    }
    return new PlatformError(`The token endpoint refused the grant: ${detail}`, error.status);
  }
  // A 401 with a WWW-Authenticate challenge: what an OAuth server must answer when the client
  // authenticated with HTTP Basic (client_secret_basic), and oidc-provider does. The OAuth
  // error is in the challenge's parameters rather than the body.
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const oauthError = error.cause.map((challenge) => challenge.parameters.error).find((value) => value !== undefined);
    const detail = `HTTP ${error.status}${oauthError ? ` ${oauthError}` : ''}`;
    if (error.status === 401 || (oauthError !== undefined && REJECTED_CLIENT.has(oauthError))) return new RejectedClient(detail);
    if (error.status >= 500 || error.status === 429) {
      return new TransientError(`token endpoint answered ${detail}`, error.status, retryAfterOf(error.response));
    }
    return new PlatformError(`The token endpoint refused the grant: ${detail}`, error.status);
  }
  // Only the status is kept: openid-client attaches the response body (which may hold a
  // token) to some of its errors, and nothing of it may reach a log.
  const response = responseOf(error);
  if (response !== undefined) {
    const { status } = response;
    if (status === 401) return new RejectedClient(`HTTP ${status}`);
    if (status >= 500 || status === 429 || status === 408) {
      return new TransientError(`token endpoint answered HTTP ${status}`, status, retryAfterOf(response));
    }
    return new PlatformError(`The token endpoint answered HTTP ${status} without an OAuth error`, status);
  }
  if (isNetworkError(error)) {
    return new TransientError(`token endpoint unreachable: ${(error as Error).message}`);
  }
  const code = (error as { code?: unknown }).code;
  // openid-client wraps its own timeout (and an abort) in a ClientError whose cause is the
  // DOMException: as transient as a dropped connection.
  if (code === 'OAUTH_TIMEOUT' || isNetworkError((error as { cause?: unknown }).cause)) {
    return new TransientError(`token endpoint did not answer in time (${typeof code === 'string' ? code : 'timeout'})`);
  }
  return new PlatformError(
    `The token endpoint's answer was not a usable token response${typeof code === 'string' ? ` (${code})` : ''}`,
  );
}

function responseOf(error: unknown): Response | undefined {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Response ? cause : undefined;
}

/** A rate-limited or unavailable token endpoint may say when to come back. */
function retryAfterOf(response: Response | undefined): number | undefined {
  return parseRetryAfter(response?.headers.get('retry-after') ?? null);
}
