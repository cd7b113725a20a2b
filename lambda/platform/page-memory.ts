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
 * writer (cursor-sweep.ts). A page waiting only waits: past a few, the writer is what
 * lags, and more would only cost memory.
 */
export const HELD_PAGE_BYTES = 16 * MiB;

/** How many pages of `pageBytes` fit in `budget`: at least one, so a run of any page size goes on. */
export function pagesFitting(budget: number, pageBytes: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, pageBytes)));
}

/**
 * The bytes of pages fetched and not yet taken, against HELD_PAGE_BYTES: a reader waits
 * for `room` before it asks for another page. What is already on the wire still arrives,
 * so the total can pass the budget by the pages in flight, never by more.
 */
export class HeldPages {
  #bytes = 0;
  readonly #waiting = new Set<() => void>();

  constructor(private readonly budget = HELD_PAGE_BYTES) {}

  get bytes(): number {
    return this.#bytes;
  }

  add(bytes: number): void {
    this.#bytes += bytes;
  }

  remove(bytes: number): void {
    this.#bytes -= bytes;
    if (this.#bytes >= this.budget) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const resume of waiting) resume();
  }

  /** Resolves once the pages held are under the budget; rejects with the signal's reason if it aborts first. */
  room(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.#bytes < this.budget) return Promise.resolve();
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
