import type { Logger } from '@aws-lambda-powertools/logger';
import { handleType, retry } from 'cockatiel';
import { whenAborted } from './abort-callbacks.ts';
import { PlatformError, RetryBudgetError } from './errors.ts';

/** A failure worth trying again: network trouble, a timeout, 5xx, 429 or 503. */
export class TransientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    /** The server asked us to wait this long (Retry-After), in milliseconds. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransientError';
  }

  /** The platform pushed back (its rate limiter answers 429, or NGINX's default 503). */
  get throttled(): boolean {
    return this.status === 429 || this.status === 503;
  }
}

/** Retries allowed for a whole run: a platform that keeps failing is not pushed harder. */
export class RetryBudget {
  #spent: number;
  /** `spent`: what earlier invocations of a continued run already took from it. */
  constructor(
    readonly limit: number,
    spent = 0,
  ) {
    this.#spent = spent;
  }
  get spent(): number {
    return this.#spent;
  }
  take(): boolean {
    if (this.#spent >= this.limit) return false;
    this.#spent += 1;
    return true;
  }
}

export interface RetryOptions {
  maxRetries: number;
  budget: RetryBudget;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Retry-After values above this are capped: a server may not park the run for long. */
  maxRetryAfterMs?: number;
  /** Told of each retry before its wait, so that a struggling platform shows in the log as it happens. */
  onRetry?: (retry: RetryNotice) => void;
}

/** One retry about to be made: what failed, which retry this is, and how long it waits first. */
export interface RetryNotice {
  /** The failure's message: it names the operation, the host and the cause, and quotes no token. */
  failure: string;
  status?: number;
  retry: number;
  maxRetries: number;
  waitMs: number;
}

/**
 * One WARN line per retry, with what failed and how long it waits: a platform that
 * struggles shows in the log while it happens, not only once the run has given up.
 */
export function logRetries(log: Pick<Logger, 'warn'>): (notice: RetryNotice) => void {
  return ({ failure, status, retry, maxRetries, waitMs }) =>
    log.warn('Retrying after a transient failure', { failure, ...(status === undefined ? {} : { status }), retry, maxRetries, waitMs });
}

export type Retrying = <T>(attempt: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal) => Promise<T>;

/**
 * Exponential backoff with full jitter (random in [0, min(max, base * 2^n))), or the
 * server's Retry-After where it sent one (capped at `maxRetryAfterMs`). Only TransientError
 * is retried, at most `maxRetries` times per call, and each retry is paid from the budget
 * before it is made: a failure that is not retried costs nothing. Cockatiel drives the
 * attempts; the wait between them is ours, so that it ends as soon as the caller's signal
 * aborts (a deadline, or a page no longer needed) instead of parking the run.
 *
 * Gives up with PlatformError once a call has used its retries (the last failure in the
 * message), with RetryBudgetError once the budget is spent, and with the signal's reason
 * when the caller aborted.
 */
export function retrying(options: RetryOptions): Retrying {
  const { maxRetries, budget, baseDelayMs = 250, maxDelayMs = 20_000, maxRetryAfterMs = 60_000, onRetry } = options;
  const policy = retry(handleType(TransientError), { maxAttempts: maxRetries });
  const delayAfter = (error: TransientError, retryNumber: number): number => {
    if (error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, maxRetryAfterMs);
    return Math.floor(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (retryNumber - 1)));
  };
  return (attempt, signal) =>
    policy.execute(async ({ attempt: retries, signal: attemptSignal }) => {
      try {
        return await attempt(attemptSignal);
      } catch (error) {
        if (!(error instanceof TransientError)) throw error;
        if (attemptSignal.aborted) throw attemptSignal.reason;
        if (retries >= maxRetries) {
          throw new PlatformError(
            `Gave up after ${maxRetries} ${maxRetries === 1 ? 'retry' : 'retries'} (THINGPARK_MAX_RETRIES); last failure: ${error.message}`,
            error.status,
            { cause: error },
          );
        }
        if (!budget.take()) {
          throw new RetryBudgetError(`The run spent its retry budget (${budget.limit} retries, RUN_RETRY_BUDGET); last failure: ${error.message}`, {
            cause: error,
          });
        }
        const waitMs = delayAfter(error, retries + 1);
        onRetry?.({ failure: error.message, status: error.status, retry: retries + 1, maxRetries, waitMs });
        await wait(waitMs, attemptSignal);
        // The policy handles it: the next attempt starts at once, the wait is done.
        throw error;
      }
    }, signal);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stopListening();
      resolve();
    }, ms);
    // Many requests of a run may wait out a Retry-After at once, on the same signal.
    const stopListening = whenAborted(signal, () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** Parses Retry-After in both of its forms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Codes of failures that no retry heals, because nothing about them changes between
 * attempts: a certificate the client does not trust (expired, self-signed, for another
 * name, an unknown issuer), TLS spoken to something that does not speak it, a URL that
 * does not parse. A refused or dropped connection, a reset, a timeout or a DNS failure may
 * be a server restarting or a network blip, and stays retried.
 */
const LASTING_CODES = /^(?:CERT_|ERR_TLS_CERT|ERR_SSL_|ERR_INVALID_URL$|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/;

/**
 * What makes a failure one that cannot heal, for a message, or undefined for one that
 * may: a lasting code (above) with the TLS or URL error's own words, or a URL fetch refuses
 * outright, such as a port browsers block ("bad port": 9, 25, 6000, ...), which undici
 * refuses before any connection and would refuse on every retry. Looked for along the
 * cause chain, where undici and openid-client leave it.
 */
export function lastingFailure(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string' && LASTING_CODES.test(code)) {
      // A URL that does not parse is named by its code only: its message quotes the URL.
      return code === 'ERR_INVALID_URL' ? 'ERR_INVALID_URL: the URL does not parse' : `${code}: ${current.message.slice(0, 200)}`;
    }
    if (current.message === 'bad port') return 'bad port: fetch refuses to connect to this port';
    current = current.cause;
  }
  return undefined;
}

/** fetch's network failures and timeouts, as opposed to answers the server gave. */
export function isNetworkError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === 'TimeoutError' ||
    error.name === 'AbortError' ||
    (error instanceof TypeError && /fetch failed|network|terminated|socket/i.test(error.message))
  );
}
