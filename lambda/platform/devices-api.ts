import { MalformedPageError, PlatformError } from '../errors.ts';
import { TransientError, isNetworkError, parseRetryAfter, type Retrying } from '../common/retry.ts';
import { characters, excerpt, failureName, headerValue, isJsonAnswer, isJsonMediaType, unquoted } from '../common/redact.ts';
import type { TokenCache } from '../auth/token-cache.ts';
import type { AdaptiveWindow } from './adaptive-window.ts';

export const DEVICES_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices';

/** A device brief as the platform sent it: an open object, every field kept. */
export type Brief = Record<string, unknown>;

export interface DevicePage {
  index: number;
  briefs: Brief[];
  /** False on the last page; undefined where a deployment leaves it out. */
  more: boolean | undefined;
}

/** Counters the run summary reports; shared by every request of a run. */
export interface RequestStats {
  requests: number;
  throttled: number;
  tokenRefusals: number;
}

export interface PageSource {
  baseUrl: URL;
  pageSize: number;
  requestTimeoutMs: number;
  tokens: TokenCache;
  retry: Retrying;
  window: AdaptiveWindow;
  stats: RequestStats;
}

/**
 * Fetches one page of the device list: authorised with the cached token, bounded by a
 * timeout, retried on transient failures, re-authorised once on a 401, and validated.
 */
export function pageFetcher(source: PageSource): (index: number, signal: AbortSignal) => Promise<DevicePage> {
  const root = source.baseUrl.href.replace(/\/+$/, '') + DEVICES_PATH;
  return (index, signal) =>
    source.retry(async (attemptSignal) => {
      const url = `${root}?pageIndex=${index}&pageSize=${source.pageSize}`;
      let answer = await send(source, url, index, attemptSignal);
      if (answer.status === 401) {
        source.stats.tokenRefusals += 1;
        source.tokens.invalidate(answer.token);
        answer = await send(source, url, index, attemptSignal);
        if (answer.status === 401) {
          throw new PlatformError(
            `The device API refused a freshly granted token for page ${index} (HTTP 401). ` +
              'Check that the service account may read this subscription\'s devices.',
            401,
          );
        }
      }
      return parsePage(index, answer.body, answer.contentType, answer.token);
    }, signal);
}

interface Answer {
  status: number;
  body: string;
  contentType: string;
  /** The token the request carried, to mask wherever the body is quoted. */
  token: string;
}

async function send(source: PageSource, url: string, index: number, signal: AbortSignal): Promise<Answer> {
  const { stats, window } = source;
  // A place in the window and the pacer's go first; the timeout counts from the send.
  const ticket = await window.acquire(index, signal);
  let token: string;
  let response: Response;
  let body: string;
  try {
    // Taken once through the window: a request can wait there for seconds while the
    // platform throttles, and a token taken before could expire on the way.
    token = await source.tokens.get();
    const timeout = AbortSignal.timeout(source.requestTimeoutMs);
    stats.requests += 1;
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal: AbortSignal.any([signal, timeout]),
      });
      body = await response.text();
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      // Named, never quoted: fetch's messages may quote the request, and a header value it
      // refused to send (one with a line break, say) is the token itself.
      if (!isNetworkError(error)) {
        throw new PlatformError(`The device API request for page ${index} could not be sent (${failureName(error)})`);
      }
      throw new TransientError(
        timeout.aborted
          ? `page ${index} timed out after ${source.requestTimeoutMs} ms`
          : `page ${index}: ${failureName(error)}`,
      );
    }
  } finally {
    // The next request goes on the next turn of the event loop: undici hands a connection
    // back to its pool just after the body's last chunk is read, and a request sent before
    // that opens a new connection instead of reusing this one.
    setImmediate(() => window.release());
  }
  const { status } = response;
  const contentType = response.headers.get('content-type') ?? '';
  if (status === 200 || status === 401) {
    if (status === 200) window.succeeded();
    return { status, body, contentType, token };
  }
  const detail = `page ${index}: HTTP ${status} ${quote(body, contentType, token)}`;
  if (status === 429 || status === 503) {
    stats.throttled += 1;
    window.rejected(ticket);
    throw new TransientError(detail, status, parseRetryAfter(response.headers.get('retry-after')));
  }
  if (status >= 500 || status === 408) throw new TransientError(detail, status);
  throw new PlatformError(`The device API answered ${detail}`, status);
}

/**
 * The documented shape `{ briefs: [...], more, now }`; anything else is a malformed page.
 * Only a JSON answer is quoted, and with the token masked (see common/redact.ts): a proxy's
 * error page may echo the request headers.
 */
export function parsePage(index: number, body: string, contentType: string, token?: string): DevicePage {
  const secrets = token ? [token] : [];
  const malformed = (problem: string) =>
    isJsonMediaType(contentType)
      ? new MalformedPageError(index, problem, excerpt(body, secrets))
      : new MalformedPageError(index, `${problem} (${unquoted(body, contentType, secrets)})`, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedPageError(
      index,
      `not JSON (content-type "${headerValue(contentType, secrets)}"), ${characters(body.length)}, not quoted`,
      '',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformed('expected an object with "briefs"');
  }
  const { briefs, more } = parsed as { briefs?: unknown; more?: unknown };
  if (!Array.isArray(briefs)) {
    throw malformed('"briefs" is missing or not an array');
  }
  if (more !== undefined && typeof more !== 'boolean') {
    throw malformed('"more" is not a boolean');
  }
  for (const brief of briefs) {
    if (typeof brief !== 'object' || brief === null || Array.isArray(brief)) {
      throw malformed('a brief is not an object');
    }
  }
  return { index, briefs: briefs as Brief[], more };
}

/** An error body for a message: a masked excerpt of a JSON answer, or what the answer was. */
function quote(body: string, contentType: string, token: string): string {
  if (body.length === 0) return '(empty body)';
  return isJsonAnswer(contentType, body) ? excerpt(body, [token]) : `(${unquoted(body, contentType, [token])})`;
}
