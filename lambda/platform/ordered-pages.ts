import type { DevicePage } from './devices-api.ts';
import type { AdaptiveWindow } from './adaptive-window.ts';
import { HELD_PAGE_BYTES, pagesFitting } from './page-memory.ts';

export interface PagingStats {
  pages: number;
  /**
   * Page fetches started past the page that ended the list, then cancelled (whether or
   * not they had reached the platform yet): the price of not knowing the count.
   */
  wasted: number;
}

/**
 * Yields the device list's pages strictly in page-index order, whatever order they arrive
 * in, while later pages are fetched ahead: de-duplication then keeps a device's first
 * occurrence and output is reproducible run to run.
 *
 * How far ahead, and why:
 * - at most `window.reach` page fetches are unfinished (waiting for the window, on the
 *   wire, or waiting to retry); the window's gate keeps at most `window.limit` of them on
 *   the wire. The reach is the limit, or what it was before the platform last pushed back:
 *   pages sleeping through a Retry-After after a cut do not stop the others from using
 *   the window, and fetching ahead follows the window as it grows and settles;
 * - at most `2 * window.reach` pages, or more if pages are small (up to HELD_PAGE_BYTES
 *   of them, page-memory.ts), are held: unfinished, or fetched and waiting for their turn.
 *   The reach is never above `window.max`, nor above the pages that fit in
 *   IN_FLIGHT_PAGE_BYTES, so this bounds memory by bytes, not by the fleet. The slack lets the fetches
 *   behind a slow or retried page carry on instead of stalling until it arrives (a
 *   Retry-After of a second is 20 pages at 20 requests/s); when the next page is already
 *   there (the writer lags) the slack is not used.
 * New fetches start whenever one finishes, not only when a page is yielded. The total is
 * unknown, so fetching continues until a page that ends the list (`more: false` or no
 * briefs) arrives; fetches already started past it are cancelled once it is yielded and
 * counted as wasted.
 */
export async function* orderedPages(
  fetchPage: (index: number, signal: AbortSignal) => Promise<DevicePage>,
  options: { firstIndex: number; window: AdaptiveWindow; signal: AbortSignal; stats: PagingStats },
): AsyncGenerator<DevicePage, void> {
  const { window, stats } = options;
  const ahead = new AbortController();
  const signal = AbortSignal.any([options.signal, ahead.signal]);
  let largest = 1;
  let arrived = false;
  // The first page known to end the list, once one has arrived (maybe ahead of its turn).
  let last = Number.POSITIVE_INFINITY;
  // Holds exactly the pages [expected, next): started and not yet yielded.
  const pending = new Map<number, Promise<DevicePage>>();
  let next = options.firstIndex;
  let expected = options.firstIndex;
  const finished = new Set<number>();
  let stopped = false;

  const fill = (): void => {
    for (;;) {
      const unfinished = pending.size - finished.size;
      const reach = window.reach;
      // More than `reach` held pages only while the next page to yield is still unfinished:
      // when it is the writer that lags, fetching further ahead only costs memory.
      const room = finished.has(expected) ? reach : Math.max(2 * reach, arrived ? pagesFitting(HELD_PAGE_BYTES, largest) : 0);
      if (stopped || next > last || unfinished >= reach || pending.size >= room) return;
      const index = next;
      const request = fetchPage(index, signal);
      const settled = (page?: DevicePage): void => {
        if (!pending.has(index)) return;
        finished.add(index);
        if (page) {
          if (isLast(page)) last = Math.min(last, index);
          largest = Math.max(largest, page.bytes);
          arrived = true;
        }
        fill();
      };
      // Awaited in turn below; until then a failure must not count as unhandled.
      request.then(settled, () => settled());
      pending.set(next, request);
      next += 1;
    }
  };

  try {
    for (;;) {
      fill();
      const page = await (pending.get(expected) as Promise<DevicePage>);
      pending.delete(expected);
      finished.delete(expected);
      expected += 1;
      stats.pages += 1;
      yield page;
      if (isLast(page)) break;
    }
  } finally {
    stopped = true;
    stats.wasted += pending.size;
    ahead.abort();
    await Promise.allSettled(pending.values());
  }
}

/** Whether a page ends the device list (it says so, or it is empty). */
export function isLast(page: DevicePage): boolean {
  return page.more === false || page.briefs.length === 0;
}
