import { describe, expect, it } from 'vitest';
import { orderedPages, type PagingStats } from '../../lambda/platform/ordered-pages.ts';
import { HELD_PAGE_BYTES } from '../../lambda/platform/page-memory.ts';
import type { DevicePage } from '../../lambda/platform/devices-api.ts';
import { AdaptiveWindow } from '../../lambda/platform/adaptive-window.ts';

interface Open {
  resolve: (page: DevicePage) => void;
  reject: (error: unknown) => void;
  /** Detaches the abort listener once answered, as a real fetch does. */
  done: () => void;
}

/**
 * A device list of `pages` pages of `size` briefs behind a fetch the test answers by hand
 * (or `auto`: every fetch answered after a pseudo-random number of ticks, so pages arrive
 * out of order). Pages past the end are empty with `more: false`, as the platform's are.
 * Each page weighs `bytes` (4 MiB unless given: four fit in HELD_PAGE_BYTES).
 */
function fakeList(options: { pages: number; size?: number; bytes?: number; withMore?: boolean; auto?: boolean }) {
  const { pages, size = 3, bytes = 4 * 1024 * 1024, withMore = true, auto = false } = options;
  const calls: number[] = [];
  const aborted: number[] = [];
  const open = new Map<number, Open>();
  let maxOpen = 0;
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pageOf = (index: number): DevicePage => {
    const count = index < pages ? size : 0;
    const briefs = Array.from({ length: count }, (_, i) => ({ ref: `${index}-${i}` }));
    return { index, briefs, bytes, more: withMore ? index < pages - 1 : undefined };
  };
  const fetchPage = (index: number, signal: AbortSignal) =>
    new Promise<DevicePage>((resolve, reject) => {
      calls.push(index);
      const onAbort = () => {
        if (!open.delete(index)) return;
        aborted.push(index);
        reject(signal.reason);
      };
      open.set(index, { resolve, reject, done: () => signal.removeEventListener('abort', onAbort) });
      maxOpen = Math.max(maxOpen, open.size);
      signal.addEventListener('abort', onAbort);
      if (auto) {
        let ticks = Math.floor(random() * 5);
        const tick = () => (ticks-- > 0 ? setImmediate(tick) : answer(index));
        setImmediate(tick);
      }
    });
  const answer = (index: number) => {
    const request = open.get(index);
    if (!request) return;
    open.delete(index);
    request.done();
    request.resolve(pageOf(index));
  };
  const fail = (index: number, error: Error) => {
    const request = open.get(index);
    open.delete(index);
    request?.done();
    request?.reject(error);
  };
  return {
    calls,
    aborted,
    open,
    fetchPage,
    answer,
    fail,
    get maxOpen() {
      return maxOpen;
    },
  };
}

function run(list: ReturnType<typeof fakeList>, max = 4, firstIndex = 0) {
  const stats: PagingStats = { pages: 0, wasted: 0 };
  const window = new AdaptiveWindow(max);
  const iterator = orderedPages(list.fetchPage, { firstIndex, window, signal: new AbortController().signal, stats });
  return { stats, window, iterator };
}

/** Reads the iterator to its end in the background: the indexes yielded so far, and the end. */
function consume(iterator: AsyncGenerator<DevicePage>) {
  const yielded: number[] = [];
  const done = (async () => {
    for await (const page of iterator) yielded.push(page.index);
  })();
  return { yielded, done };
}

/** Grows `window` to `limit` with rounds of instant answers, each filling it (latency holds at 0). */
async function widen(window: AdaptiveWindow, limit: number) {
  while (window.limit < limit) {
    const tickets = await Promise.all(Array.from({ length: window.limit }, (_, i) => window.acquire(i)));
    for (const ticket of tickets) {
      window.succeeded(ticket);
      window.release();
    }
  }
}

const ticks = async (n = 10) => {
  for (let i = 0; i < n; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

describe('orderedPages', () => {
  it('yields pages in index order when later pages arrive first', async () => {
    const list = fakeList({ pages: 4 });
    const { yielded, done } = consume(run(list, 4).iterator);
    await ticks();
    expect([...list.open.keys()]).toEqual([0, 1, 2, 3]);
    for (const index of [3, 2, 1]) list.answer(index);
    await ticks();
    expect(yielded).toEqual([]);
    list.answer(0);
    await ticks();
    expect(yielded).toEqual([0, 1, 2, 3]);
    await done;
  });

  it.each([1, 2, 4, 8])('fetches every page exactly once and stops at the last (window %i)', async (max) => {
    const list = fakeList({ pages: 37, auto: true });
    const { iterator, stats } = run(list, max);
    const { yielded, done } = consume(iterator);
    await done;
    expect(yielded).toEqual(Array.from({ length: 37 }, (_, i) => i));
    const pagesOfTheList = list.calls.filter((index) => index < 37);
    expect(pagesOfTheList.sort((a, b) => a - b)).toEqual(yielded);
    expect(stats.pages).toBe(37);
    // Fetched past the end: few, counted as wasted, and the unanswered ones cancelled.
    const pastTheEnd = list.calls.filter((index) => index >= 37);
    expect(stats.wasted).toBe(pastTheEnd.length);
    expect(stats.wasted).toBeLessThanOrEqual(max);
    expect(list.open.size).toBe(0);
    expect(list.maxOpen).toBeLessThanOrEqual(max);
  });

  it('ends at an empty page when the platform leaves `more` out', async () => {
    const list = fakeList({ pages: 5, withMore: false, auto: true });
    const { iterator } = run(list, 3);
    const yielded: DevicePage[] = [];
    for await (const page of iterator) yielded.push(page);
    expect(yielded.map((page) => page.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(yielded.at(-1)?.briefs).toEqual([]);
  });

  it('starts from the configured first index', async () => {
    const list = fakeList({ pages: 4, auto: true });
    const { yielded, done } = consume(run(list, 2, 1).iterator);
    await done;
    expect(yielded).toEqual([1, 2, 3]);
    expect(list.calls).not.toContain(0);
  });

  it('keeps at most window.max fetches unfinished, and past a slow page holds at most 2 × max large pages', async () => {
    // HELD_PAGE_BYTES holds 4 such pages, < 2 × 4: the window's bound applies.
    const list = fakeList({ pages: 100, size: 4000 });
    const { iterator } = run(list, 4);
    const first = iterator.next();
    await ticks();
    expect([...list.open.keys()]).toEqual([0, 1, 2, 3]);
    // Page 0 is slow; the ones behind it keep the window busy until 8 pages are held.
    for (let round = 0; round < 10; round += 1) {
      for (const index of [...list.open.keys()].filter((i) => i !== 0)) list.answer(index);
      await ticks();
      expect(list.open.size).toBeLessThanOrEqual(4);
    }
    expect(Math.max(...list.calls)).toBe(7);
    list.answer(0);
    expect((await first).value?.index).toBe(0);
    await iterator.return(undefined);
  });

  it('fetches further ahead as the window grows, and never past twice its ceiling', async () => {
    // HELD_PAGE_BYTES holds 4 such pages: only the window's bound applies.
    const list = fakeList({ pages: 100, size: 4000 });
    const window = new AdaptiveWindow(8, { initial: 2, now: () => 0 });
    const stats: PagingStats = { pages: 0, wasted: 0 };
    const iterator = orderedPages(list.fetchPage, { firstIndex: 0, window, signal: new AbortController().signal, stats });
    const first = iterator.next();
    await ticks();
    expect([...list.open.keys()]).toEqual([0, 1]);
    await widen(window, 8);
    expect(window.reach).toBe(8);
    // Page 0 is slow; the ones behind it now keep 8 fetches going until 16 pages are held.
    for (let round = 0; round < 10; round += 1) {
      for (const index of [...list.open.keys()].filter((i) => i !== 0)) list.answer(index);
      await ticks();
      expect(list.open.size).toBeLessThanOrEqual(8);
    }
    expect(list.maxOpen).toBe(8);
    expect(Math.max(...list.calls)).toBe(15);
    list.answer(0);
    expect((await first).value?.index).toBe(0);
    await iterator.return(undefined);
  });

  it('does not fetch further ahead than the window while the writer is what lags', async () => {
    const list = fakeList({ pages: 100, size: 1000 });
    const { iterator } = run(list, 4);
    const first = iterator.next();
    await ticks();
    for (let round = 0; round < 5; round += 1) {
      for (const index of [...list.open.keys()]) list.answer(index);
      await ticks();
    }
    await first;
    // The consumer holds page 0 and has not asked for more: 4 pages fetched, then nothing.
    expect(list.calls).toEqual([0, 1, 2, 3, 4]);
    await iterator.return(undefined);
  });

  it('holds more pages when they are small, up to HELD_PAGE_BYTES of them', async () => {
    const bytes = 64 * 1024;
    const list = fakeList({ pages: 1000, size: 100, bytes });
    const { iterator } = run(list, 4);
    const first = iterator.next();
    await ticks();
    for (let round = 0; round < 100; round += 1) {
      for (const index of [...list.open.keys()].filter((i) => i !== 0)) list.answer(index);
      await ticks(2);
    }
    expect(Math.max(...list.calls) + 1).toBe(HELD_PAGE_BYTES / bytes);
    list.answer(0);
    await first;
    await iterator.return(undefined);
  });

  it('stops starting fetches once a page that ends the list has arrived, before its turn', async () => {
    const list = fakeList({ pages: 6 });
    const { iterator, stats } = run(list, 4);
    const { yielded, done } = consume(iterator);
    await ticks();
    // Page 0 is slow; 1..3 come, then 4..7: page 5 ends the list, 6 and 7 are past it.
    for (let round = 0; round < 4; round += 1) {
      for (const index of [...list.open.keys()].filter((i) => i !== 0)) list.answer(index);
      await ticks();
    }
    expect(Math.max(...list.calls)).toBeLessThanOrEqual(7);
    list.answer(0);
    await done;
    expect(yielded).toEqual([0, 1, 2, 3, 4, 5]);
    expect(stats.wasted).toBe(list.calls.filter((index) => index > 5).length);
  });

  it('throws the failure of the page whose turn it is and cancels the fetches ahead', async () => {
    const list = fakeList({ pages: 10 });
    const { yielded, done } = consume(run(list, 4).iterator);
    await ticks();
    list.answer(0);
    list.fail(1, new Error('page 1: HTTP 400'));
    await expect(done).rejects.toThrow('page 1: HTTP 400');
    expect(yielded).toEqual([0]);
    expect(list.aborted.sort()).toEqual([2, 3, 4]);
    expect(list.open.size).toBe(0);
  });

  it('ignores the failure of a fetch past the end of the list', async () => {
    const list = fakeList({ pages: 2 });
    const { iterator, stats } = run(list, 4);
    const { yielded, done } = consume(iterator);
    await ticks();
    list.fail(3, new Error('page 3: HTTP 500'));
    list.answer(0);
    list.answer(1);
    await done;
    expect(yielded).toEqual([0, 1]);
    // Every fetch past page 1 (the failed one among them) is wasted, and none is left open.
    expect(list.calls.filter((index) => index > 1)).toContain(3);
    expect(stats.wasted).toBe(list.calls.filter((index) => index > 1).length);
    expect(list.open.size).toBe(0);
  });
});
