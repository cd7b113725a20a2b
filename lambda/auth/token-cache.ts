/** What the token endpoint granted: a bearer token and how long it lives. */
export interface Grant {
  accessToken: string;
  /** Lifetime in seconds, as the server said; undefined when it said nothing. */
  expiresIn?: number;
}

interface CachedToken {
  value: string;
  renewAt: number;
}

/**
 * The one access token of this execution context. It is built once per context (see
 * lambda/services.ts), so warm invocations reuse it, and it is renewed once its remaining lifetime
 * drops under the margin. The margin is capped at half the token's lifetime: a token that
 * lives less than the margin is still used for half its life rather than renewed on every
 * request. Concurrent callers share one grant in flight.
 */
export class TokenCache {
  #token: CachedToken | undefined;
  #pending: Promise<string> | undefined;
  #grants = 0;

  constructor(
    private readonly grant: () => Promise<Grant>,
    private readonly marginSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Grants made since this context started; the run summary reports the difference. */
  get grants(): number {
    return this.#grants;
  }

  async get(): Promise<string> {
    const token = this.#token;
    if (token && this.now() < token.renewAt) return token.value;
    this.#pending ??= this.#renew().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** Drops the token the platform refused, unless another caller already replaced it. */
  invalidate(value: string): void {
    if (this.#token?.value === value) this.#token = undefined;
  }

  async #renew(): Promise<string> {
    this.#token = undefined;
    const startedAt = this.now();
    this.#grants += 1;
    const { accessToken, expiresIn } = await this.grant();
    // Measured from the request's start, so time spent waiting for the answer counts; and
    // the server's expiry is in whole seconds, rounded down, so up to one second of the
    // stated lifetime may already be gone.
    const lifetimeMs = expiresIn === undefined ? Number.POSITIVE_INFINITY : Math.max(expiresIn - 1, expiresIn / 2) * 1000;
    const marginMs = Math.min(this.marginSeconds * 1000, lifetimeMs / 2);
    this.#token = { value: accessToken, renewAt: startedAt + lifetimeMs - marginMs };
    return accessToken;
  }
}
