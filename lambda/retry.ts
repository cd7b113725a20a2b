import { DelegateBackoff, handleWhen, retry, type IRetryBackoffContext } from 'cockatiel';
import { RetryBudgetError } from './errors.ts';

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
  #spent = 0;
  constructor(readonly limit: number) {}
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
}

export type Retrying = <T>(attempt: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal) => Promise<T>;

/**
 * Exponential backoff with full jitter (random in [0, min(max, base * 2^n))), or the
 * server's Retry-After where it sent one. Only TransientError is retried, and each retry
 * is paid from the run's budget.
 */
export function retrying(options: RetryOptions): Retrying {
  const { maxRetries, budget, baseDelayMs = 250, maxDelayMs = 20_000, maxRetryAfterMs = 60_000 } = options;
  let exhausted = false;
  const policy = retry(
    handleWhen((error) => {
      if (!(error instanceof TransientError)) return false;
      if (budget.take()) return true;
      exhausted = true;
      return false;
    }),
    {
      maxAttempts: maxRetries,
      backoff: new DelegateBackoff((context: IRetryBackoffContext<unknown>) => {
        const error = 'error' in context.result ? context.result.error : undefined;
        if (error instanceof TransientError && error.retryAfterMs !== undefined) {
          return Math.min(error.retryAfterMs, maxRetryAfterMs);
        }
        return Math.floor(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (context.attempt - 1)));
      }),
    },
  );
  return async (attempt, signal) => {
    try {
      return await policy.execute(({ signal: attemptSignal }) => attempt(attemptSignal), signal);
    } catch (error) {
      if (exhausted && error instanceof TransientError) {
        throw new RetryBudgetError(
          `The run spent its retry budget (${budget.limit} retries, RUN_RETRY_BUDGET); last failure: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    }
  };
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

/** fetch's network failures and timeouts, as opposed to answers the server gave. */
export function isNetworkError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === 'TimeoutError' ||
    error.name === 'AbortError' ||
    (error instanceof TypeError && /fetch failed|network|terminated|socket/i.test(error.message))
  );
}
