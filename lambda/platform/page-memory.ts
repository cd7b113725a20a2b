import { whenAborted } from '../common/abort-callbacks.ts';

/**
 * What pages of the device list may cost in memory, counted in characters of their JSON
 * (a parsed page costs two to three times that again, until it is written). Counted in
 * pages, the cost would follow the briefs' size: pages of 1,000 briefs are 0.6 MB each on
 * the simulated fleet and 20 MB with the 7.3 brief's histories at 20 KB a brief, and 32
 * such pages on the wire and as many waiting to be written took the export past 550 MB.
 */
const MiB = 1024 * 1024;

/** Pages on the wire at once (adaptive-window.ts): the window never lets more go than fit. */
export const IN_FLIGHT_PAGE_BYTES = 32 * MiB;

/**
 * Pages fetched and waiting for their turn to be written (ordered-pages.ts), or for the
 * writer (cursor-sweep.ts, where pages asked for and not yet arrived count too, against
 * this and IN_FLIGHT_PAGE_BYTES together). A page waiting only waits: past a few, the
 * writer is what lags, and more would only cost memory.
 */
export const HELD_PAGE_BYTES = 16 * MiB;

/** How many pages of `pageBytes` fit in `budget`: at least one, so a run of any page size goes on. */
export function pagesFitting(budget: number, pageBytes: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, pageBytes)));
}

/**
 * The bytes of pages asked for and not yet taken, against a budget: a reader asks for a
 * page only once those are under the budget, and the page counts from that moment (as the
 * largest answer so far, until its own size is known). Counted only once they arrived,
 * pages asked for by many readers at once, each of which had found room while none had
 * arrived yet, were all held on arrival: with one reader per EUI range, that grew with the
 * fleet.
 */
export class HeldPages {
  #bytes = 0;
  /** The largest answer so far: what a page asked for is counted as until it arrives. */
  #largest = 0;
  readonly #waiting = new Set<() => void>();

  constructor(private readonly budget = IN_FLIGHT_PAGE_BYTES + HELD_PAGE_BYTES) {}

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Asks for a page once there is room, counting it from then: its answer is held until
   * `remove`d, a failed request not at all. Rejects with the signal's reason if it aborts
   * while waiting.
   */
  async ask<T extends { bytes: number }>(signal: AbortSignal, ask: () => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    // Rechecked on every wake: readers woken together must not all take the same room.
    while (this.#bytes >= this.budget) await this.#room(signal);
    return this.askNow(ask);
  }

  /** Asks for a page at once, room or not: for a page the asker cannot let go of what it holds without. */
  async askNow<T extends { bytes: number }>(ask: () => Promise<T>): Promise<T> {
    const reserved = this.#largest;
    this.#bytes += reserved;
    let answer: T;
    try {
      answer = await ask();
    } catch (error) {
      this.remove(reserved);
      throw error;
    }
    this.#largest = Math.max(this.#largest, answer.bytes);
    this.remove(reserved - answer.bytes);
    return answer;
  }

  remove(bytes: number): void {
    this.#bytes -= bytes;
    if (this.#bytes >= this.budget) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const resume of waiting) resume();
  }

  #room(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const resume = () => {
        stopListening();
        resolve();
      };
      const stopListening = whenAborted(signal, () => {
        this.#waiting.delete(resume);
        reject(signal.reason as Error);
      });
      this.#waiting.add(resume);
    });
  }
}
