import type { DevicePage } from './thingpark.ts';
import type { AdaptiveWindow } from './window.ts';

export interface PagingStats {
  pages: number;
  /** Requested ahead of the page that ended the list: the price of not knowing the count. */
  wasted: number;
}

/**
 * Yields the device list's pages in page order while up to `window.limit` pages are
 * requested ahead. The total is unknown, so it keeps fetching ahead until the page that
 * ends the list (`more: false` or no briefs) arrives; requests beyond it are cancelled and
 * counted as wasted. Pages come out strictly in index order, whatever order they arrive
 * in, so de-duplication keeps a device's first occurrence and output is reproducible.
 * Fetched pages wait in the window until their turn, so memory is bounded by the window.
 */
export async function* orderedPages(
  fetchPage: (index: number, signal: AbortSignal) => Promise<DevicePage>,
  options: { firstIndex: number; window: AdaptiveWindow; signal: AbortSignal; stats: PagingStats },
): AsyncGenerator<DevicePage> {
  const { window, stats } = options;
  const ahead = new AbortController();
  const signal = AbortSignal.any([options.signal, ahead.signal]);
  const pending = new Map<number, Promise<DevicePage>>();
  let next = options.firstIndex;
  let expected = options.firstIndex;
  try {
    for (;;) {
      while (pending.size < window.limit) {
        const request = fetchPage(next, signal);
        // Awaited in turn below; until then a failure must not count as unhandled.
        request.catch(() => undefined);
        pending.set(next, request);
        next += 1;
      }
      const page = await (pending.get(expected) as Promise<DevicePage>);
      pending.delete(expected);
      expected += 1;
      stats.pages += 1;
      yield page;
      if (page.more === false || page.briefs.length === 0) break;
    }
  } finally {
    stats.wasted += pending.size;
    ahead.abort();
    await Promise.allSettled(pending.values());
  }
}
