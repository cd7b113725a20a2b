import { describe, expect, it } from 'vitest';
import type { Brief, DevicePage, ListQuery } from '../../lambda/platform/devices-api.ts';
import { CursorSweep, freshCursorState, type CursorState } from '../../lambda/platform/cursor-sweep.ts';

/**
 * The device list's cursor mode over a fixed list of EUIs, as plain values: enough to
 * check the sweep's arithmetic (ranges, meeting ends, counts) without a server. The
 * simulator plays the same protocol over HTTP for the integration tests.
 */
interface ListBehaviour {
  ignoreFilter?: boolean;
  noCursors?: boolean;
  /** Devices a filtered request leaves out (a range that ends early). */
  hideFromFiltered?: (eui: string) => boolean;
  /** Called before each answer: the list may change under the sweep. */
  beforeAnswer?: (query: ListQuery, list: string[]) => void;
  /** From this request on, every page read on from a cursor is the last one answered again, still saying there is more. */
  repeatFrom?: number;
  /** A range's end page (`desc`, no cursor) with its first two devices swapped: out of order. */
  unsortedEnd?: boolean;
}

function cursorList(euis: string[], pageSize: number, behaviour: ListBehaviour = {}) {
  const list = [...euis].sort();
  const queries: ListQuery[] = [];
  let answered: DevicePage | undefined;
  const fetch = (query: ListQuery): Promise<DevicePage> => {
    queries.push(query);
    if (behaviour.repeatFrom !== undefined && queries.length >= behaviour.repeatFrom && query.after !== undefined && answered) {
      return Promise.resolve(answered);
    }
    behaviour.beforeAnswer?.(query, list);
    const prefixes = behaviour.ignoreFilter ? [] : (query.prefixes ?? []);
    const filtered = prefixes.length > 0;
    let matching = list.filter((eui) => prefixes.length === 0 || prefixes.some((prefix) => eui.startsWith(prefix)));
    if (filtered && behaviour.hideFromFiltered) matching = matching.filter((eui) => !behaviour.hideFromFiltered?.(eui));
    if (query.order === 'desc') matching.reverse();
    const after = query.after === undefined ? undefined : (JSON.parse(Buffer.from(query.after, 'base64').toString()) as { EUI: string }).EUI;
    const start = after === undefined ? 0 : matching.findIndex((eui) => (query.order === 'desc' ? eui < after : eui > after));
    const size = query.pageSize ?? pageSize;
    const page = start < 0 ? [] : matching.slice(start, start + size);
    if (behaviour.unsortedEnd && query.order === 'desc' && after === undefined && page.length > 1) page.splice(0, 2, page[1] as string, page[0] as string);
    const more = start >= 0 && start + size < matching.length;
    const last = page.at(-1);
    const briefs = page.map((EUI): Brief => ({ EUI }));
    answered = {
      index: 0,
      briefs,
      bytes: JSON.stringify(briefs).length,
      more,
      count: matching.length,
      ...(more && !behaviour.noCursors && last ? { cursor: Buffer.from(JSON.stringify({ EUI: last })).toString('base64') } : {}),
    };
    return Promise.resolve(answered);
  };
  return { list, queries, fetch };
}

async function sweepAll(
  euis: string[],
  options: { pageSize?: number; sweeps?: number; behaviour?: ListBehaviour; state?: CursorState; pause?: AbortSignal } = {},
) {
  const pageSize = options.pageSize ?? 10;
  const platform = cursorList(euis, pageSize, options.behaviour);
  const taken: string[] = [];
  const seen = new Set<string>();
  /** What each lane was given, in order, and the lanes ended. */
  const lanes = new Map<string, string[]>();
  const ended: string[] = [];
  const state = options.state ?? freshCursorState();
  const sweep = new CursorSweep(
    {
      fetch: platform.fetch,
      take: (briefs, again, lane) => {
        if (ended.includes(lane)) throw new Error(`${lane} was given devices after it ended`);
        for (const { EUI } of briefs as { EUI: string }[]) {
          if (again && seen.has(EUI)) continue;
          seen.add(EUI);
          taken.push(EUI);
          lanes.set(lane, [...(lanes.get(lane) ?? []), EUI]);
        }
        return Promise.resolve();
      },
      end: (lane) => void ended.push(lane),
      pageSize,
      sweeps: options.sweeps ?? 8,
    },
    state,
    new AbortController().signal,
    options.pause,
  );
  const outcome = await sweep.run();
  return { outcome, taken, state, lanes, ended, queries: platform.queries, list: platform.list };
}

const hex = (n: number, digits = 16) => n.toString(16).toUpperCase().padStart(digits, '0');
/** The i-th of a sequence of distinct values spread evenly over `digits` hex digits (a multiplicative hash). */
const spread = (i: number, digits: number) => ((BigInt(i + 1) * 0x9e3779b97f4a7c15n) % 16n ** BigInt(digits)).toString(16).toUpperCase().padStart(digits, '0');
/** 95 % under one OUI, the rest DevEUIs spread over the space and IMEIs. */
function skewedFleet(size: number): string[] {
  return Array.from({ length: size }, (_, i) => {
    if (i % 100 < 95) return `70B3D5${spread(i, 10)}`;
    if (i % 100 < 99) return spread(i, 16);
    return String(350000000000000 + i * 104729).padStart(15, '0');
  });
}

function duplicatesOf(values: string[]): string[] {
  return values.filter((value, index) => values.indexOf(value) !== index);
}

describe('CursorSweep', () => {
  it('reads a small fleet in one sweep, each device once, its first page the probe', async () => {
    const euis = Array.from({ length: 15 }, (_, i) => hex(i));
    const { outcome, taken, queries, state } = await sweepAll(euis);
    expect(outcome).toBe('complete');
    expect([...taken].sort()).toEqual([...euis].sort());
    // The first page from each end at once (the fleet is usually split), then the second page.
    expect(queries.map(({ order, after }) => `${order}${after === undefined ? '' : ' after'}`)).toEqual(['asc', 'desc', 'asc after']);
    expect(state).toMatchObject({ mode: 'ranges', pages: 2, wasted: 1 });
  });

  it('splits a skewed fleet with mixed identifiers into ranges and reads every device exactly once', async () => {
    const euis = skewedFleet(5000);
    const { outcome, taken, state, queries } = await sweepAll(euis, { pageSize: 50, sweeps: 16 });
    expect(outcome).toBe('complete');
    expect(duplicatesOf(taken)).toEqual([]);
    expect(taken).toHaveLength(euis.length);
    expect(state.fallback).toBeUndefined();
    // The OUI's devices are read by several ranges, all of them past its six digits.
    const prefixes = state.ranges.flatMap((range) => range.prefixes);
    expect(prefixes.filter((prefix) => prefix.startsWith('70B3D5')).length).toBeGreaterThan(1);
    // Disjoint ranges: no prefix is the start of another.
    expect(prefixes.filter((prefix) => prefixes.some((other) => other !== prefix && other.startsWith(prefix)))).toEqual([]);
    // Requests: the fleet's pages, plus the probes of the ranges that were split.
    const pages = Math.ceil(euis.length / 50);
    expect(queries.length).toBeLessThan(pages * 1.5);
  });

  it('gives each range, and each tail its probes held, a lane of its own: in EUI order, disjoint, each ended once', async () => {
    const euis = skewedFleet(10_000);
    const { outcome, lanes, ended, state } = await sweepAll(euis, { pageSize: 100, sweeps: 32 });
    expect(outcome).toBe('complete');
    expect(state.tailsRead).toBeGreaterThan(0);
    // A tail from an end page, which comes in descending order, is among them.
    expect([...lanes].some(([lane, taken]) => lane.startsWith('above ') && taken.length > 1)).toBe(true);
    expect([...ended].sort()).toEqual([...lanes.keys()].sort());
    expect(duplicatesOf(ended)).toEqual([]);
    // Listed by their first EUI, the lanes are the whole fleet in EUI order.
    const byFirst = [...lanes.values()].sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1));
    expect(byFirst.flat()).toEqual([...euis].sort());
  });

  it('gives the ranges up when an end page is out of order, rather than write its tail out of order', async () => {
    const euis = skewedFleet(10_000);
    const { outcome, taken, state } = await sweepAll(euis, { pageSize: 100, sweeps: 32, behaviour: { unsortedEnd: true } });
    expect(outcome).toBe('complete');
    expect(state.fallback).toBe('order-broken');
    expect(duplicatesOf(taken)).toEqual([]);
    expect(taken).toHaveLength(euis.length);
  });

  it('reads a uniform fleet of 100 pages in ranges of even size, within 1.1 times its pages in requests', async () => {
    const euis = Array.from({ length: 10_000 }, (_, i) => spread(i, 16));
    const { outcome, taken, state, queries } = await sweepAll(euis, { pageSize: 100, sweeps: 32 });
    expect(outcome).toBe('complete');
    expect(taken).toHaveLength(euis.length);
    // Ranges of one or two one-digit prefixes were split again when two: 120 requests, 16 ranges of 7 pages.
    expect(queries.length).toBeLessThanOrEqual(110);
    const sizes = state.ranges.map((range) => range.read);
    expect(Math.max(...sizes) / Math.min(...sizes)).toBeLessThan(1.25);
  });

  it('reads a skewed fleet of 100 pages within 1.1 times its pages in requests, the sparse EUIs in a few ranges', async () => {
    const euis = skewedFleet(10_000);
    const { outcome, taken, state, queries } = await sweepAll(euis, { pageSize: 100, sweeps: 32 });
    expect(outcome).toBe('complete');
    expect(duplicatesOf(taken)).toEqual([]);
    expect(taken).toHaveLength(euis.length);
    // Planned for the whole middle, the first split made a dozen ranges of a page or less around the OUI's block.
    expect(queries.length).toBeLessThanOrEqual(110);
    expect(state.ranges.filter((range) => range.pages <= 1).length).toBeLessThanOrEqual(4);
  });

  it("asks the groups of a concentrated split for both their ends at once, so the block's ranges start a round trip sooner", async () => {
    const euis = skewedFleet(10_000);
    const { queries } = await sweepAll(euis, { pageSize: 100, sweeps: 32 });
    // The fleet's pair, then each of the four groups' first pages, the block's among them, with its end page.
    const firstPages = queries.filter((query) => query.after === undefined && (query.prefixes ?? []).length > 0);
    const groups = firstPages.slice(0, 8);
    expect(groups.filter((query) => query.order === 'asc')).toHaveLength(4);
    expect(groups.filter((query) => query.order === 'desc')).toHaveLength(4);
    expect(new Set(groups.map((query) => (query.prefixes ?? []).join()))).toHaveLength(4);
  });

  it('answers no-cursor-mode on the first probe of a platform without cursors, having taken nothing', async () => {
    const { outcome, taken } = await sweepAll(
      Array.from({ length: 30 }, (_, i) => hex(i)),
      { behaviour: { noCursors: true } },
    );
    expect(outcome).toBe('no-cursor-mode');
    expect(taken).toEqual([]);
  });

  it('falls back to one unfiltered sweep when the platform ignores the filter, and still takes each device once', async () => {
    const euis = skewedFleet(2000);
    const { outcome, taken, state } = await sweepAll(euis, { pageSize: 20, sweeps: 16, behaviour: { ignoreFilter: true } });
    expect(outcome).toBe('complete');
    expect(state).toMatchObject({ mode: 'single', fallback: 'filter-ignored' });
    expect(duplicatesOf(taken)).toEqual([]);
    expect(taken).toHaveLength(euis.length);
  });

  it('falls back when a range ends short of its count', async () => {
    const euis = skewedFleet(2000);
    const hidden = euis[1234] as string;
    const { taken, state } = await sweepAll(euis, { pageSize: 20, sweeps: 16, behaviour: { hideFromFiltered: (eui) => eui === hidden } });
    expect(state.fallback).toMatch(/range-short|fleet-short/);
    expect(taken).toContain(hidden);
    expect(taken).toHaveLength(euis.length);
  });

  it('falls back when devices sit outside every range (an EUI that is not hex)', async () => {
    const euis = [...skewedFleet(1000), '70B3D5:0000000001', '70B3D5@0000000002'];
    const { taken, state } = await sweepAll(euis, { pageSize: 10, sweeps: 16 });
    expect(state.fallback).toBe('fleet-short');
    expect(taken).toEqual(expect.arrayContaining(['70B3D5:0000000001', '70B3D5@0000000002']));
    expect(taken).toHaveLength(euis.length);
  });

  it('skips no device when devices are deleted mid-sweep, and needs no fallback', async () => {
    const euis = skewedFleet(3000);
    let requests = 0;
    const deleted: string[] = [];
    const { taken, state } = await sweepAll(euis, {
      pageSize: 25,
      sweeps: 16,
      behaviour: {
        beforeAnswer: (_query, list) => {
          requests += 1;
          // Every 10th request deletes a device somewhere in the list.
          if (requests % 10 === 0) deleted.push(...list.splice((requests * 37) % list.length, 1));
        },
      },
    });
    expect(state.fallback).toBeUndefined();
    const survivors = euis.filter((eui) => !deleted.includes(eui));
    expect(survivors.filter((eui) => !taken.includes(eui))).toEqual([]);
    expect(duplicatesOf(taken)).toEqual([]);
  });

  it('fails with RUN_PAGE_LIMIT when the platform repeats a page forever, past the ranges and the unfiltered sweep', async () => {
    const euis = skewedFleet(2000);
    const run = sweepAll(euis, { pageSize: 50, sweeps: 4, behaviour: { repeatFrom: 12 } });
    await expect(run).rejects.toMatchObject({ name: 'RunLimitError', code: 'RUN_PAGE_LIMIT' });
    await expect(run).rejects.toThrow(/while it counts 2000 devices there \(40 pages of 50, and a margin of 10\)/);
  });

  it('sets its page ceiling by the page size the platform serves, not the one asked for', async () => {
    const euis = skewedFleet(600);
    const platform = cursorList(euis, 20);
    // Asked for pages of 100, served pages of 20: 30 pages in one range, past a ceiling of 6 + 10 pages of 100.
    const fetch = (query: ListQuery) => platform.fetch({ ...query, pageSize: Math.min(query.pageSize ?? 20, 20) });
    let taken = 0;
    const sweep = new CursorSweep(
      { fetch, take: (briefs) => Promise.resolve(void (taken += briefs.length)), end: () => undefined, pageSize: 100, sweeps: 1 },
      freshCursorState(),
      new AbortController().signal,
    );
    expect(await sweep.run()).toBe('complete');
    expect(taken).toBe(600);
  });

  it('pauses at a page boundary and resumes from its state to the same result', async () => {
    const euis = skewedFleet(3000);
    const pause = new AbortController();
    let answered = 0;
    const first = await sweepAll(euis, {
      pageSize: 25,
      sweeps: 16,
      pause: pause.signal,
      behaviour: {
        beforeAnswer: () => {
          answered += 1;
          if (answered === 40) pause.abort();
        },
      },
    });
    expect(first.outcome).toBe('paused');
    const state = JSON.parse(JSON.stringify(first.state)) as CursorState;
    const second = await sweepAll(euis, { pageSize: 25, sweeps: 16, state });
    expect(second.outcome).toBe('complete');
    const all = [...first.taken, ...second.taken];
    expect(duplicatesOf(all)).toEqual([]);
    expect([...all].sort()).toEqual([...euis].sort());
  });
  it('holds pages by bytes while the writer lags, however many ranges ask at once', async () => {
    const euis = skewedFleet(5000);
    const platform = cursorList(euis, 50);
    // Pages of 20 MiB, as 1,000 briefs of 20 KB make them, answered after a round trip.
    const pageBytes = 20 * 2 ** 20;
    let untaken = 0;
    let mostUntaken = 0;
    const sweep = new CursorSweep(
      {
        fetch: async (query) => {
          const page = await platform.fetch(query);
          await new Promise((resolve) => setImmediate(resolve));
          untaken += 1;
          mostUntaken = Math.max(mostUntaken, untaken);
          return { ...page, bytes: pageBytes };
        },
        end: () => undefined,
        take: async () => {
          untaken -= 1;
          // The writer is slower than the platform.
          await new Promise((resolve) => setTimeout(resolve, 1));
        },
        pageSize: 50,
        sweeps: 16,
      },
      freshCursorState(),
      new AbortController().signal,
    );
    expect(await sweep.run()).toBe('complete');
    expect(sweep.state.ranges.length).toBeGreaterThan(8);
    // The budgets (page-memory.ts: 40 MiB asked for, 8 MiB arrived) admit two pages; a probe's end page, and the page the fleet's probe left untaken, come on top.
    expect(mostUntaken).toBeLessThanOrEqual(5);
  });
});
