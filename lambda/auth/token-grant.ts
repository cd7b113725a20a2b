import * as oidc from 'openid-client';
import type { Config } from '../common/config.ts';
import type { ClientCredentials, CredentialsSource } from './credentials.ts';
import { ClientRejectedError, PlatformError } from '../common/errors.ts';
import { RetryBudget, TransientError, isNetworkError, lastingFailure, parseRetryAfter, retrying, type RetryOptions } from '../common/retry.ts';
import { failureName, holdsPiece } from '../common/redact.ts';
import type { Grant } from './token-cache.ts';

type GrantConfig = Pick<Config, 'tokenUrl' | 'tokenAuth' | 'requestTimeoutMs' | 'maxRetries'>;

/** Keycloak's answers for a client it does not accept: permanent until the credentials change. */
const REJECTED_CLIENT = new Set(['invalid_client', 'unauthorized_client']);

class RejectedClient extends Error {}

/** RFC 6750 §2.1 b64token: all that may follow "Bearer " in an Authorization header. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The longest access token accepted. Keycloak's JWTs, roles and all, run to a few KB;
 * NGINX refuses a header line over 8 KiB by default and Node a header block over 16 KiB.
 * Twice NGINX's default leaves room for a raised limit, and a longer "token" is some other
 * answer that would only fail later, on every page, with less said about why.
 */
export const MAX_TOKEN_CHARS = 16 * 1024;

/**
 * The OAuth error codes quoted in messages: RFC 6749 allows any printable ASCII but `"`
 * and `\` (1*( %x20-21 / %x23-5B / %x5D-7E )), which fits a quoted request or a sentence;
 * its registered codes and Keycloak's are lower-case words joined by "_", under 30
 * characters. Anything else, and a code that holds the client secret, is "unrecognised".
 */
const OAUTH_ERROR_CODE = /^[a-z0-9_.-]{1,64}$/i;

/**
 * The client-credentials grant through openid-client. Network errors and 5xx are retried;
 * a rejected client re-reads the SSM parameters once (the secret may have been rotated)
 * and then fails for good: retrying a rejected client only locks the account out sooner.
 */
export function clientCredentialsGrant(config: GrantConfig, credentials: CredentialsSource, onRetry?: RetryOptions['onRetry']): () => Promise<Grant> {
  // Named in every failure, so that a message says which endpoint did not answer; the
  // host only: config.ts refuses a token URL with a user name or password in it.
  const endpoint = config.tokenUrl.host;
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
    const retry = retrying({ maxRetries: config.maxRetries, budget: new RetryBudget(config.maxRetries), onRetry });
    const response = await retry(() => requestToken(configuration, creds.clientSecret, endpoint));
    checkAccessToken(response.access_token);
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
  const auth = config.tokenAuth === 'client_secret_basic' ? oidc.ClientSecretBasic(clientSecret) : oidc.ClientSecretPost(clientSecret);
  const configuration = new oidc.Configuration({ issuer: config.tokenUrl.origin, token_endpoint: config.tokenUrl.href }, clientId, undefined, auth);
  configuration.timeout = Math.ceil(config.requestTimeoutMs / 1000);
  // config.ts already refused plain http to anything but a loopback address.
  if (config.tokenUrl.protocol === 'http:') oidc.allowInsecureRequests(configuration);
  return configuration;
}

/**
 * A granted token is sent as a header value on every page request: one that is not a
 * b64token would be refused there, by a message quoting it, so it is refused here, by a
 * message that names the rule it breaks and nothing of the token.
 */
function checkAccessToken(token: string): void {
  let problem: string | undefined;
  if (token.length === 0) {
    problem = 'it is empty';
  } else if (token.length > MAX_TOKEN_CHARS) {
    problem = `it is ${token.length} characters long, over the ${MAX_TOKEN_CHARS} accepted`;
  } else if (!B64TOKEN.test(token)) {
    const at = /[^A-Za-z0-9\-._~+/=]/.exec(token)?.index;
    problem =
      at === undefined
        ? 'its "=" padding is not only at its end, after at least one other character'
        : `it has ${characterKind(token.charCodeAt(at))} at character ${at + 1}`;
  }
  if (problem === undefined) return;
  throw new PlatformError(
    `The token endpoint granted an access token that is not an RFC 6750 b64token ` +
      `(letters, digits, "-._~+/", then "=" padding; at most ${MAX_TOKEN_CHARS} characters): ${problem}.`,
  );
}

/** A character of a refused token, named by its kind rather than shown. */
function characterKind(code: number): string {
  if (code === 0x0a || code === 0x0d) return 'a line break';
  if (code === 0x20 || code === 0x09) return 'a blank';
  if (code < 0x20 || code === 0x7f) return 'a control character';
  if (code > 0x7f) return 'a non-ASCII character';
  return 'a punctuation character';
}

/** The OAuth error code as a message may quote it, or "unrecognised". */
function errorCode(value: unknown, clientSecret: string): string {
  if (typeof value !== 'string' || !OAUTH_ERROR_CODE.test(value)) return 'unrecognised';
  // A code the server built from the request could be the secret itself, and pass the syntax.
  return holdsPiece(value, [clientSecret]) ? 'unrecognised' : value;
}

/** One token request, its failure sorted into retryable, rejected client, or permanent. */
async function requestToken(configuration: oidc.Configuration, clientSecret: string, endpoint: string) {
  try {
    return await oidc.clientCredentialsGrant(configuration);
  } catch (error) {
    throw classify(error, clientSecret, endpoint);
  }
}

function classify(error: unknown, clientSecret: string, endpoint: string): Error {
  if (error instanceof oidc.ResponseBodyError) {
    const detail = `HTTP ${error.status} ${errorCode(error.error, clientSecret)}`;
    if (REJECTED_CLIENT.has(error.error)) return new RejectedClient(detail);
    if (error.status >= 500 || error.status === 429) {
      return new TransientError(`token endpoint ${endpoint} answered ${detail}`, error.status, retryAfterOf(error.response));
    }
    return new PlatformError(`The token endpoint refused the grant: ${detail}`, error.status);
  }
  // A 401 with a WWW-Authenticate challenge: what an OAuth server must answer when the client
  // authenticated with HTTP Basic (client_secret_basic), and oidc-provider does. The OAuth
  // error is in the challenge's parameters rather than the body.
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const oauthError = error.cause.map((challenge) => challenge.parameters.error).find((value) => value !== undefined);
    const detail = `HTTP ${error.status}${oauthError !== undefined ? ` ${errorCode(oauthError, clientSecret)}` : ''}`;
    if (error.status === 401 || (oauthError !== undefined && REJECTED_CLIENT.has(oauthError))) return new RejectedClient(detail);
    if (error.status >= 500 || error.status === 429) {
      return new TransientError(`token endpoint ${endpoint} answered ${detail}`, error.status, retryAfterOf(error.response));
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
      return new TransientError(`token endpoint ${endpoint} answered HTTP ${status}`, status, retryAfterOf(response));
    }
    return new PlatformError(`The token endpoint answered HTTP ${status} without an OAuth error`, status);
  }
  const lasting = lastingFailure(error);
  if (lasting !== undefined) {
    return new PlatformError(`The token endpoint ${endpoint} cannot be reached, so the grant is not retried: ${lasting}`, undefined, { cause: error });
  }
  if (isNetworkError(error)) {
    return new TransientError(`token endpoint ${endpoint} unreachable: ${failureName(error)}`);
  }
  const code = (error as { code?: unknown }).code;
  // openid-client wraps its own timeout (and an abort) in a ClientError whose cause is the
  // DOMException: as transient as a dropped connection.
  if (code === 'OAUTH_TIMEOUT' || isNetworkError((error as { cause?: unknown }).cause)) {
    return new TransientError(`token endpoint ${endpoint} did not answer in time (${typeof code === 'string' ? code : 'timeout'})`);
  }
  return new PlatformError(`The token endpoint's answer was not a usable token response${typeof code === 'string' ? ` (${code})` : ''}`);
}

function responseOf(error: unknown): Response | undefined {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Response ? cause : undefined;
}

/** A rate-limited or unavailable token endpoint may say when to come back. */
function retryAfterOf(response: Response | undefined): number | undefined {
  return parseRetryAfter(response?.headers.get('retry-after') ?? null);
}
