import { keptBriefs } from './brief-text.ts';
import { MalformedPageError, PlatformError } from '../common/errors.ts';
import { TransientError, isNetworkError, lastingFailure, parseRetryAfter, type Retrying } from '../common/retry.ts';
import { characters, excerpt, failureName, headerValue, isJsonAnswer, isJsonMediaType, unquoted } from '../common/redact.ts';
import type { AccessTokens } from '../common/services.ts';
import type { AdaptiveWindow } from './adaptive-window.ts';

export const DEVICES_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices';

/** A device brief as the platform sent it: an open object, every field kept. */
export type Brief = Record<string, unknown>;

export interface DevicePage {
  index: number;
  briefs: Brief[];
  /** False on the last page; undefined where a deployment leaves it out. */
  more: boolean | undefined;
  /** The devices matching the request's filter as the platform counted them for this page (the spec requires it; older deployments may leave it out). */
  count?: number;
  /** `cursors.last`: what `pageAfter` takes to read on, in cursor mode, while `more` is true. */
  cursor?: string;
  /** Characters of its JSON: what holding it costs (page-memory.ts). */
  bytes: number;
}

/**
 * One request of the device list. Offset mode names a page (`pageIndex`); cursor mode sorts
 * by EUI and reads on from the previous page's cursor (`pageAfter`), the first page of a
 * sweep having neither. `prefixes` filter by EUI prefix (`devEUI`, repeatable: their union).
 */
export interface ListQuery {
  pageIndex?: number;
  order?: 'asc' | 'desc';
  after?: string;
  prefixes?: readonly string[];
  /** Instead of the configured page size: a request that wants only the page's `count`. */
  pageSize?: number;
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
  tokens: AccessTokens;
  retry: Retrying;
  window: AdaptiveWindow;
  stats: RequestStats;
}

/**
 * Fetches one page of the device list: authorised with the cached token, bounded by a
 * timeout, retried on transient failures, re-authorised once on a 401, and validated.
 */
export function pageFetcher(source: PageSource): (index: number, signal: AbortSignal) => Promise<DevicePage> {
  const list = listFetcher(source);
  return (index, signal) => list({ pageIndex: index }, { priority: index, name: `page ${index}` }, signal);
}

/** As `pageFetcher`, for any request of the list: offset or cursor, filtered or not. */
export function listFetcher(source: PageSource): (query: ListQuery, target: Target, signal: AbortSignal) => Promise<DevicePage> {
  const root = devicesUrl(source);
  return (query, target, signal) =>
    source.retry(async (attemptSignal) => {
      const answer = await authorisedGet(source, `${root}?${listParameters(query, source.pageSize)}`, target, attemptSignal);
      return parsePage(query.pageIndex ?? 0, answer.body, answer.contentType, answer.token, query.pageIndex === undefined ? target.name : undefined);
    }, signal);
}

/** The query string of a list request. URLSearchParams encodes the cursor (it ends in `=`) as the spec asks. */
export function listParameters(query: ListQuery, pageSize: number): string {
  const parameters = new URLSearchParams();
  if (query.pageIndex !== undefined) parameters.set('pageIndex', String(query.pageIndex));
  parameters.set('pageSize', String(query.pageSize ?? pageSize));
  if (query.order) parameters.set('sort', `EUI,${query.order}`);
  if (query.after !== undefined) parameters.set('pageAfter', query.after);
  for (const prefix of query.prefixes ?? []) parameters.append('devEUI', prefix);
  return parameters.toString();
}

/**
 * The page offset paging starts at. The spec says 1, and a platform may refuse page 0 with
 * 400; older deployments counted from 0. Page 0 is asked for (one device): refused, pages
 * start at 1; answered, at 0, which loses nothing on a platform that reads 0 as 1 (its
 * first page comes twice, and the second copy is dropped as a duplicate).
 */
export async function firstPageIndex(source: PageSource, signal: AbortSignal): Promise<number> {
  const url = `${devicesUrl(source)}?${listParameters({ pageIndex: 0, pageSize: 1 }, source.pageSize)}`;
  const answer = await source.retry(
    (attemptSignal) => authorisedGet(source, url, { priority: 0, name: 'page 0', reads: (status) => status === 400 }, attemptSignal),
    signal,
  );
  return answer.status === 400 ? 1 : 0;
}

/** The device list's URL on the configured platform. */
export function devicesUrl(source: Pick<PageSource, 'baseUrl'>): string {
  return source.baseUrl.href.replace(/\/+$/, '') + DEVICES_PATH;
}

/**
 * What one request is for: its place in the window's queue (pages go by index, so that an
 * early page goes first), how messages name it, and which answers other than 200 its
 * caller reads itself instead of failing on them.
 */
export interface Target {
  priority: number;
  name: string;
  reads?: (status: number, body: string) => boolean;
}

/**
 * One GET of the device API with the cached token; a 401 drops that token and the request
 * is sent once more with a fresh one. Every request of a run, page or single device, comes
 * through here and so through the same window, pacing and token.
 */
export async function authorisedGet(source: PageSource, url: string, target: Target, signal: AbortSignal): Promise<Answer> {
  let answer = await send(source, url, target, signal);
  if (answer.status === 401) {
    source.stats.tokenRefusals += 1;
    source.tokens.invalidate(answer.token);
    answer = await send(source, url, target, signal);
    if (answer.status === 401) {
      throw new PlatformError(
        `The device API refused a freshly granted token for ${target.name} (HTTP 401). ` +
          "Check that the service account may read this subscription's devices.",
        401,
      );
    }
  }
  return answer;
}

export interface Answer {
  status: number;
  body: string;
  contentType: string;
  /** The token the request carried, to mask wherever the body is quoted. */
  token: string;
}

async function send(source: PageSource, url: string, target: Target, signal: AbortSignal): Promise<Answer> {
  const { stats, window } = source;
  // A place in the window and the pacer's go first; the timeout counts from the send.
  const ticket = await window.acquire(target.priority, signal);
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
      const lasting = lastingFailure(error);
      if (lasting !== undefined) {
        throw new PlatformError(
          `The device API request for ${target.name} to ${source.baseUrl.host} cannot succeed, so it is not retried: ${lasting}`,
          undefined,
          {
            cause: error,
          },
        );
      }
      // Named, never quoted: fetch's messages may quote the request, and a header value it
      // refused to send (one with a line break, say) is the token itself.
      if (!isNetworkError(error)) {
        throw new PlatformError(`The device API request for ${target.name} could not be sent (${failureName(error)})`);
      }
      // The host names where it failed (config.ts refuses a base URL with credentials in it).
      const from = `${target.name} from ${source.baseUrl.host}`;
      throw new TransientError(timeout.aborted ? `${from} timed out after ${source.requestTimeoutMs} ms` : `${from}: ${failureName(error)}`);
    }
  } finally {
    // The next request goes on the next turn of the event loop: undici hands a connection
    // back to its pool just after the body's last chunk is read, and a request sent before
    // that opens a new connection instead of reusing this one.
    setImmediate(() => window.release());
  }
  const { status } = response;
  const contentType = response.headers.get('content-type') ?? '';
  window.sized(body.length);
  if (status === 200 || status === 401 || target.reads?.(status, body)) {
    if (status !== 401) window.succeeded(ticket);
    return { status, body, contentType, token };
  }
  const detail = `${target.name}: HTTP ${status} ${quote(body, contentType, token)}`;
  if (status === 429 || status === 503) {
    stats.throttled += 1;
    window.rejected(ticket);
    throw new TransientError(detail, status, parseRetryAfter(response.headers.get('retry-after')));
  }
  if (status >= 500 || status === 408) throw new TransientError(detail, status);
  throw new PlatformError(`The device API answered ${detail}`, status);
}

/**
 * The documented shape `{ briefs: [...], more, count, now, cursors? }`; anything else is a
 * malformed page. Only a JSON answer is quoted, and with the token masked (see
 * common/redact.ts): a proxy's error page may echo the request headers.
 */
export function parsePage(index: number, body: string, contentType: string, token?: string, cursorPage?: string): DevicePage {
  const secrets = token ? [token] : [];
  // An offset page is named by its index; a cursor page by the caller.
  const name = cursorPage ?? `page ${index}`;
  const pageIndex = cursorPage === undefined ? index : undefined;
  const malformed = (problem: string) =>
    isJsonMediaType(contentType)
      ? new MalformedPageError(name, problem, excerpt(body, secrets), pageIndex)
      : new MalformedPageError(name, `${problem} (${unquoted(body, contentType, secrets)})`, '', pageIndex);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new MalformedPageError(name, `not JSON (content-type "${headerValue(contentType, secrets)}"), ${characters(body.length)}, not quoted`, '', pageIndex);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw malformed('expected an object with "briefs"');
  }
  const { briefs, more, cursors } = parsed as { briefs?: unknown; more?: unknown; cursors?: unknown };
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
  const cursor = cursorOf(cursors);
  if (cursor === null) throw malformed('"cursors" is not an object whose "last" is a string');
  // Checked where it decides something (the ranges' completeness); a count of another type is left out, not refused.
  const { count } = parsed as { count?: unknown };
  return {
    index,
    briefs: keptBriefs(body, briefs as Brief[]),
    more,
    bytes: body.length,
    ...(typeof count === 'number' && Number.isSafeInteger(count) && count >= 0 ? { count } : {}),
    ...(cursor === undefined ? {} : { cursor }),
  };
}

/** `cursors.last`, undefined where there is none, null where `cursors` is not what the spec describes. */
function cursorOf(cursors: unknown): string | undefined | null {
  if (cursors === undefined || cursors === null) return undefined;
  if (typeof cursors !== 'object' || Array.isArray(cursors)) return null;
  const { last } = cursors as { last?: unknown };
  if (last === undefined) return undefined;
  return typeof last === 'string' && last.length > 0 && last.length <= 4096 ? last : null;
}

/** An error body for a message: a masked excerpt of a JSON answer, or what the answer was. */
export function quote(body: string, contentType: string, token: string): string {
  if (body.length === 0) return '(empty body)';
  return isJsonAnswer(contentType, body) ? excerpt(body, [token]) : `(${unquoted(body, contentType, [token])})`;
}
