/**
 * How many page requests may be in flight (or fetched and waiting to be written).
 * Additive increase, multiplicative decrease: it halves when the platform pushes back
 * and grows by one after twice its size in consecutive successes. Rejections of requests
 * sent before the last cut do not cut again: one burst of 429s is one signal, not many.
 */
export class AdaptiveWindow {
  #limit: number;
  #successes = 0;
  #generation = 0;
  #cuts = 0;

  constructor(
    readonly max: number,
    readonly min = 1,
  ) {
    this.#limit = max;
  }

  get limit(): number {
    return this.#limit;
  }

  get cuts(): number {
    return this.#cuts;
  }

  /** A ticket for a request about to be sent; hand it back to `rejected`. */
  ticket(): number {
    return this.#generation;
  }

  succeeded(): void {
    if (this.#limit >= this.max) return;
    this.#successes += 1;
    if (this.#successes >= 2 * this.#limit) {
      this.#limit += 1;
      this.#successes = 0;
    }
  }

  rejected(ticket: number): void {
    this.#successes = 0;
    if (ticket < this.#generation) return;
    this.#generation += 1;
    this.#cuts += 1;
    this.#limit = Math.max(this.min, Math.floor(this.#limit / 2));
  }
}
