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
 * Pages fetched and waiting for their turn to be written (ordered-pages.ts): the slack that
 * lets pages arrive ahead of a slow one. A page waiting only waits: past a few, the writer
 * is what lags, and more would only cost memory.
 */
export const HELD_PAGE_BYTES = 16 * MiB;

/**
 * Pages arrived and waiting for the writer in cursor mode (cursor-sweep.ts), where no page
 * waits for another: each range's pages are taken as they come, so a few keep the writer
 * busy. A quarter of the ordered pages' slack: at a million ordinary briefs, where the
 * writer is what lags, 16 MiB peaked at 255 to 271 MB resident and 8 MiB at 230 MB at 100 ms
 * of latency, but at 0 ms 8 MiB peaked at 251.8 to 259.2 MB and 4 MiB at 234.2 to 247.3 MB,
 * in the same time and CPU (`npm run bench -- --only='1000k @ 0 ms' --exporter-only`, three
 * runs each, the machine otherwise idle).
 */
export const WRITER_QUEUE_BYTES = 4 * MiB;

/** How many pages of `pageBytes` fit in `budget`: at least one, so a run of any page size goes on. */
export function pagesFitting(budget: number, pageBytes: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, pageBytes)));
}

/**
 * The bytes of pages asked for and not yet taken, against two budgets: a reader asks for a
 * page only while the pages asked for and not yet taken are under `budget`, and those
 * arrived and not yet taken under `waitingBudget`; a page counts from the moment it is
 * asked for (as the largest answer so far, until its own size is known; as half the budget
 * before any has arrived). Counted only once
 * they arrived, pages asked for by many readers at once, each of which had found room while
 * none had arrived yet, were all held on arrival: with one reader per EUI range, that grew
 * with the fleet. Arrived pages have a budget of their own (WRITER_QUEUE_BYTES): under the
 * total's alone, a writer that lags lets many more small pages wait, each parsed page
 * costing several times its text.
 */
export class HeldPages {
  /** Reserved for pages asked for and not yet arrived, and the bytes of those arrived and not yet taken. */
  #asked = 0;
  #arrived = 0;
  /** The largest answer so far: what a page asked for is counted as until it arrives. */
  #largest = 0;
  readonly #waiting = new Set<() => void>();

  constructor(
    private readonly budget = IN_FLIGHT_PAGE_BYTES + WRITER_QUEUE_BYTES,
    private readonly waitingBudget = WRITER_QUEUE_BYTES,
  ) {}

  get bytes(): number {
    return this.#asked + this.#arrived;
  }

  /**
   * Asks for a page once there is room, counting it from then: its answer is held until
   * `remove`d, a failed request not at all. Rejects with the signal's reason if it aborts
   * while waiting.
   */
  async ask<T extends { bytes: number }>(signal: AbortSignal, ask: () => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    // Rechecked on every wake: readers woken together must not all take the same room.
    while (this.#full()) await this.#room(signal);
    return this.askNow(ask);
  }

  /** Asks for a page at once, room or not: for a page the asker cannot let go of what it holds without. */
  async askNow<T extends { bytes: number }>(ask: () => Promise<T>): Promise<T> {
    // Until an answer has arrived its size is unknown: counted as half the budget, two pages
    // go out (a plan's first pair of probes), not every reader's first page at once. A run
    // resumed in a new invocation starts its ranges together: with pages of 1,000 briefs of
    // 20 KB, one core, that took the heap to 583 MB.
    const reserved = this.#largest || Math.ceil(this.budget / 2);
    this.#asked += reserved;
    let answer: T;
    try {
      answer = await ask();
    } finally {
      // Whoever this wakes checks for room again later, by when the answer below is counted.
      this.#asked -= reserved;
      this.#wake();
    }
    this.#largest = Math.max(this.#largest, answer.bytes);
    this.#arrived += answer.bytes;
    return answer;
  }

  #full(): boolean {
    return this.#arrived >= this.waitingBudget || this.bytes >= this.budget;
  }

  remove(bytes: number): void {
    this.#arrived -= bytes;
    this.#wake();
  }

  #wake(): void {
    if (this.#full()) return;
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
