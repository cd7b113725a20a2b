import { RatePacer } from './rate-pacer.ts';

/** Handed out with each send; given back to `rejected` so that one burst is one signal. */
export type Ticket = number;

interface Waiter {
  priority: number;
  resolve: (ticket: Ticket) => void;
  reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * The gate every page request passes on its way to the platform: at most `limit` requests
 * on the wire at once, sent no faster than the pacer's rate (see rate-pacer.ts).
 *
 * The limit is additive-increase, multiplicative-decrease: it halves when the platform
 * pushes back (429/503) and grows by one after twice its size in consecutive successes,
 * back up to `max`. Rejections of requests sent before the last cut do not cut again:
 * one burst of 429s is one signal, not many; the pacer is cut on the same epochs.
 *
 * Waiting requests are admitted lowest priority first, and callers pass the page index:
 * a retried early page goes ahead of later ones, because the ordered output cannot move
 * past it and every page behind it only waits in memory.
 */
export class AdaptiveWindow {
  static readonly RECHECK_MS = 50;
  #limit: number;
  #successes = 0;
  #generation = 0;
  #cuts = 0;
  #inFlight = 0;
  #maxInFlight = 0;
  readonly #waiting: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly max: number,
    readonly min = 1,
    readonly pacer: RatePacer = new RatePacer(),
  ) {
    this.#limit = max;
  }

  get limit(): number {
    return this.#limit;
  }

  get cuts(): number {
    return this.#cuts;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The most requests ever on the wire at once: never above `max`. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  /**
   * Resolves when this request may be sent, with its ticket; the caller must `release()`
   * once its answer is read. Rejects with the signal's reason if it aborts while waiting.
   */
  acquire(priority: number, signal?: AbortSignal): Promise<Ticket> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Ticket>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.#waiting.indexOf(waiter);
          if (at >= 0) this.#waiting.splice(at, 1);
          if (this.#waiting.length === 0) this.#clearTimer();
          reject(signal?.reason);
        },
      };
      // Stable: equal priorities keep their arrival order.
      let at = this.#waiting.length;
      while (at > 0 && (this.#waiting[at - 1] as Waiter).priority > priority) at -= 1;
      this.#waiting.splice(at, 0, waiter);
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#dispatch();
    });
  }

  /** The request admitted by `acquire` is over (answered, failed or aborted). */
  release(): void {
    this.#inFlight -= 1;
    this.#dispatch();
  }

  succeeded(): void {
    this.pacer.succeeded();
    if (this.#limit >= this.max) return;
    this.#successes += 1;
    if (this.#successes >= 2 * this.#limit) {
      this.#limit += 1;
      this.#successes = 0;
      this.#dispatch();
    }
  }

  rejected(ticket: Ticket): void {
    this.#successes = 0;
    if (ticket < this.#generation) return;
    this.#generation += 1;
    this.#cuts += 1;
    this.#limit = Math.max(this.min, Math.floor(this.#limit / 2));
    this.pacer.cut();
  }

  #dispatch(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#limit) {
      const wait = this.pacer.delay();
      if (wait > 0) {
        // Looked at again at least every RECHECK_MS: while the pacer probes, its rate rises
        // by the millisecond, and a wait computed from a slow early rate (seconds, after a
        // first rejection in a small burst) would stall sends the new rate already allows.
        this.#timer ??= setTimeout(
          () => {
            this.#timer = undefined;
            this.#dispatch();
          },
          Math.ceil(Math.min(wait, AdaptiveWindow.RECHECK_MS)),
        );
        return;
      }
      const waiter = this.#waiting.shift() as Waiter;
      waiter.signal?.removeEventListener('abort', waiter.onAbort);
      this.#inFlight += 1;
      this.#maxInFlight = Math.max(this.#maxInFlight, this.#inFlight);
      this.pacer.sent();
      waiter.resolve(this.#generation);
    }
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
