import { MalformedPageError } from '../common/errors.ts';
import { checkPageCeiling, type Fallback } from '../common/paging.ts';
import type { Brief, DevicePage, ListQuery, Target } from './devices-api.ts';
import { concentrated, euiOf, inRange, plannedCount, rangePagesTarget, shortfall, splitRange, worthSplitting } from './eui-ranges.ts';
import { HeldPages } from './page-memory.ts';

/** A range of the EUI space (every EUI starting with one of `prefixes`; none: the whole fleet), read by one cursor sweep. */
export interface RangeState {
  prefixes: string[];
  /** The cursor of the last page taken; none before the range's first page. */
  after?: string;
  /** The last EUI taken: every EUI of the next page must come after it. */
  edge?: string;
  done: boolean;
  /** Devices the range's pages held, and the pages. */
  read: number;
  pages: number;
  /** The platform's count for the range on its first page, and on its latest. */
  counts: number[];
}

/** Where a cursor read stands: all a continued run needs to go on (it is saved in the checkpoint). */
export interface CursorState {
  /** 'ranges' while ranges are probed and read; 'single' once it fell back to one unfiltered sweep. */
  mode: 'ranges' | 'single';
  /** Ranges still to be probed (read, or split), by their prefixes. */
  unprobed: string[][];
  ranges: RangeState[];
  /** The fleet's count at the start, and at the end where the ranges fell short of it. */
  fleetCounts: number[];
  /** Most pages one range is read as, before it is split (eui-ranges.ts). */
  target?: number;
  fallback?: Fallback;
  /** Devices the probes of split ranges held outside the ranges they were split into, taken from those pages. */
  tailsRead: number;
  /** Pages whose devices were taken (all or some), and requests whose answer was not needed. */
  pages: number;
  wasted: number;
}

export type CursorOutcome = 'complete' | 'paused' | 'no-cursor-mode';

export interface CursorSource {
  fetch: (query: ListQuery, target: Target, signal: AbortSignal) => Promise<DevicePage>;
  /**
   * Takes a page's devices into `lane`; `again` once the ranges gave way to the unfiltered
   * sweep, which meets devices already taken. Each lane is one stretch of the EUI space,
   * taken in EUI order, and no two lanes overlap: until the ranges are given up, lanes
   * listed by their first EUI hold the fleet in EUI order.
   */
  take: (briefs: Brief[], again: boolean, lane: string) => Promise<void>;
  /** Nothing more comes to `lane`. */
  end: (lane: string) => void;
  pageSize: number;
  /** Requests the window may keep on the wire at most: how many sweeps are worth having. */
  sweeps: number;
}

export function freshCursorState(): CursorState {
  return { mode: 'ranges', unprobed: [[]], ranges: [], fleetCounts: [], tailsRead: 0, pages: 0, wasted: 0 };
}

/** Probes go first: each one can open many sweeps. */
const PROBE_PRIORITY = Number.MIN_SAFE_INTEGER;

/**
 * Reads the device list in cursor mode (`sort=EUI,asc` and `pageAfter`), which the spec
 * says skips no device, with many sweeps at once over disjoint EUI ranges (`devEUI`).
 *
 * A range's first page is its probe: its `count` says whether the range is worth
 * splitting. If it is, one page from its end (`desc`) gives its last EUI, and the range is
 * split into groups of prefixes between the two (eui-ranges.ts), each probed in turn; if
 * not, the probe is the sweep's first page and the sweep reads on from its cursor. Pages
 * are taken as they come, one at a time; a sweep or probe asks for a page only while the
 * pages asked for and not yet taken are under their byte budget (page-memory.ts), so
 * memory is bounded by bytes, not by the ranges. What is read is held against the platform's counts, per range and for
 * the fleet; a shortfall, or a brief outside its range, makes it read the whole list again
 * in one unfiltered sweep.
 *
 * A platform without cursor mode (`more` with no `cursors` on the first probe) is answered
 * `no-cursor-mode` before anything is taken. Once `pause` aborts, requests stop at the
 * next page boundary and the state says where each sweep goes on.
 */
export class CursorSweep {
  readonly #lock: { chain: Promise<void> } = { chain: Promise.resolve() };
  readonly #running = new Set<Promise<void>>();
  /** The first failure of any sweep; the others are stopped by it. */
  #failure: Error | undefined;
  /** Aborted to stop every sweep at once: the ranges were given up, or there is no cursor mode. */
  #halt = new AbortController();
  #signal: AbortSignal;
  #noCursorMode = false;
  /** The largest page taken that was not a range's last: the page size the platform serves, which may be less than asked for. */
  #fullPage = 0;
  /** Pages asked for and not yet taken: each sweep and probe waits for room before it asks for a page. */
  readonly #held = new HeldPages();

  constructor(
    private readonly source: CursorSource,
    readonly state: CursorState,
    /** The run's own signal (its deadline, a failure elsewhere): its abort is the run's failure. */
    private readonly outer: AbortSignal,
    private readonly pause?: AbortSignal,
  ) {
    this.#signal = this.#arm();
  }

  async run(): Promise<CursorOutcome> {
    for (;;) {
      await this.#readAll();
      if (this.#noCursorMode) return 'no-cursor-mode';
      if (this.pause?.aborted && !this.#complete()) return 'paused';
      if (this.state.mode === 'ranges') {
        const reason = this.state.fallback ?? ((await this.#fallsShort()) ? 'fleet-short' : undefined);
        if (reason !== undefined) {
          this.#fallBack(reason);
          continue;
        }
      }
      return 'complete';
    }
  }

  /** Devices the read has taken so far. */
  get read(): number {
    return this.state.ranges.reduce((sum, range) => sum + range.read, this.state.mode === 'ranges' ? this.state.tailsRead : 0);
  }

  #arm(): AbortSignal {
    this.#halt = new AbortController();
    return AbortSignal.any([this.outer, this.#halt.signal, ...(this.pause ? [this.pause] : [])]);
  }

  async #readAll(): Promise<void> {
    for (const prefixes of this.state.unprobed) this.#spawn(() => this.#probe(prefixes));
    for (const range of this.state.ranges) if (!range.done) this.#spawn(() => this.#sweep(range));
    while (this.#running.size > 0) await Promise.race(this.#running);
    // The run's own abort (its deadline, a failure elsewhere) is thrown as it came, an error or the signal's reason.
    this.outer.throwIfAborted();
    if (this.#failure !== undefined) throw this.#failure;
  }

  #complete(): boolean {
    return this.state.unprobed.length === 0 && this.state.ranges.every((range) => range.done);
  }

  #spawn(task: () => Promise<void>): void {
    const running: Promise<void> = task()
      .catch((error: unknown) => {
        // Stopped on purpose (paused, or every sweep halted): not a failure. The run's own abort is, and is thrown by #readAll.
        if (this.#stopped(error)) return;
        this.#failure ??= error instanceof Error ? error : new Error(`A sweep failed: ${typeof error}`);
        this.#halt.abort(error);
      })
      .finally(() => this.#running.delete(running));
    this.#running.add(running);
  }

  /** Whether a failure is only a request cancelled on purpose: paused, or every sweep halted. */
  #stopped(error: unknown): boolean {
    const reasons = [this.#halt.signal, this.pause].filter((signal) => signal?.aborted).map((signal) => signal?.reason as unknown);
    return reasons.length > 0 && (reasons.includes(error) || isAbort(error));
  }

  /** Runs `step` alone: pages are taken one at a time, so the ranges' state needs no other guard. */
  #locked<T>(step: () => Promise<T> | T): Promise<T> {
    const next = this.#lock.chain.then(step);
    this.#lock.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  #get(prefixes: string[], order: 'asc' | 'desc', after: string | undefined, target: Target): Promise<DevicePage> {
    return this.source.fetch({ order, ...(after === undefined ? {} : { after }), prefixes }, target, this.#signal);
  }

  /**
   * Probes wait for room as sweeps do: a split spawns a probe per group at once. The end
   * page of a range found worth splitting is asked for at once, its first page being held
   * until then: waiting, probes holding first pages could fill the budget and wait on each
   * other. `bothEnds` asks for both pages together, for a range that is likely split: one
   * round trip sooner, at one request more if it is not.
   */
  async #probe(prefixes: string[], bothEnds = prefixes.length === 0): Promise<void> {
    const held: DevicePage[] = [];
    const first = async (order: 'asc' | 'desc', now = false, admitted?: () => void) => {
      const ask = () => {
        const page = this.#get(prefixes, order, undefined, { priority: PROBE_PRIORITY, name: `the first ${order} page of ${rangeName(prefixes)}` });
        admitted?.();
        return page;
      };
      const page = await (now ? this.#held.askNow(ask) : this.#held.ask(this.#signal, ask));
      held.push(page);
      return page;
    };
    let both: Promise<DevicePage> | undefined;
    try {
      // Both ends go once the first page finds room, not before: probes holding end pages could fill the budget and wait on each other.
      const start = first('asc', false, bothEnds ? () => void (both = first('desc', true)) : undefined);
      const [asc, desc] = await bothHeld(start, () => both);
      const wantsEnd = await this.#locked(() => this.#takeProbe(prefixes, asc, desc));
      if (wantsEnd) {
        const end = await first('desc', true);
        await this.#locked(() => this.#takeProbe(prefixes, asc, end));
      }
    } finally {
      for (const page of held) this.#held.remove(page.bytes);
    }
  }

  /** Splits a probed range, or starts reading it; true when its last EUI is needed first. */
  async #takeProbe(prefixes: string[], asc: DevicePage, desc: DevicePage | undefined): Promise<boolean> {
    const { state } = this;
    const probed = () => (state.unprobed = state.unprobed.filter((other) => other !== prefixes));
    if (this.#halt.signal.aborted) {
      probed();
      state.wasted += desc ? 2 : 1;
      return false;
    }
    if (prefixes.length === 0 && asc.more !== false && asc.briefs.length > 0 && asc.cursor === undefined) {
      this.#noCursorMode = true;
      this.#halt.abort();
      return false;
    }
    if (!this.#inRange(prefixes, [...asc.briefs, ...(desc?.briefs ?? [])])) return false;
    const count = asc.count ?? desc?.count;
    if (prefixes.length === 0 && count !== undefined) {
      state.fleetCounts = [count];
      state.target = rangePagesTarget(count, this.#pageSize(asc), this.source.sweeps);
    }
    const worth = this.#worthSplitting(asc, count);
    if (worth && desc === undefined) return true;
    probed();
    const split = worth && desc ? this.#split(prefixes, asc, desc, count as number) : undefined;
    // A tail is written as one stretch of the EUI space: the probes' order is checked as a range's pages are.
    if (split && !(ascending(split.below) && ascending(split.above))) {
      this.#giveUp('order-broken');
      return false;
    }
    if (split) {
      // What the probes read outside the groups is all there is there: taken now, never read again.
      await this.#takeTail(split.below, `below ${rangeName(prefixes)}`);
      await this.#takeTail(split.above, `above ${rangeName(prefixes)}`);
      state.tailsRead += split.below.length + split.above.length;
      state.pages += 2;
      state.unprobed.push(...split.groups);
      // The whole fleet is almost always split, and so is the group of a concentrated split that holds its block (one of four).
      for (const group of split.groups) this.#spawn(() => this.#probe(group, split.concentrated));
      return false;
    }
    if (desc) state.wasted += 1;
    const range: RangeState = { prefixes, done: false, read: 0, pages: 0, counts: count === undefined ? [] : [count] };
    state.ranges.push(range);
    await this.#take(range, asc, `the first page of ${rangeName(prefixes)}`);
    if (!range.done) this.#spawn(() => this.#sweep(range));
    return false;
  }

  #worthSplitting(asc: DevicePage, count: number | undefined): boolean {
    if (this.state.mode !== 'ranges' || asc.more === false || asc.briefs.length === 0) return false;
    return worthSplitting(count, this.#pageSize(asc), this.state.target ?? Number.POSITIVE_INFINITY);
  }

  /**
   * Splits a range between the last EUI of its first page and the last of its end page
   * (the inner ends of what the two probes read), where the rest of its devices are: the
   * tails outside, sparse in a skewed fleet, are what the probes already hold. Undefined
   * where the probes meet (the range is hardly two pages) or it cannot be split.
   */
  #split(
    prefixes: readonly string[],
    asc: DevicePage,
    desc: DevicePage,
    count: number,
  ): { groups: string[][]; below: Brief[]; above: Brief[]; concentrated: boolean } | undefined {
    const low = euiOf(asc.briefs.at(-1) ?? {});
    const high = euiOf(desc.briefs.at(-1) ?? {});
    if (low === undefined || high === undefined || low >= high) return undefined;
    const perRange = (this.state.target ?? 1) * this.#pageSize(asc);
    const middle = Math.max(0, count - asc.briefs.length - desc.briefs.length);
    const [ascEuis, descEuis] = [euis(asc), euis(desc)];
    const groups = splitRange(low, high, plannedCount(middle, ascEuis, descEuis, perRange), perRange, prefixes);
    const start = groups?.[0]?.[0];
    const end = groups?.at(-1)?.at(-1);
    if (groups === undefined || start === undefined || end === undefined) return undefined;
    const below = asc.briefs.filter((brief) => (euiOf(brief) as string) < start);
    // The end page comes in descending order: reversed, the tail above is in EUI order like every lane.
    const above = desc.briefs
      .filter((brief) => {
        const eui = euiOf(brief) as string;
        return eui > end && !eui.startsWith(end);
      })
      .reverse();
    return { groups, below, above, concentrated: concentrated(middle, ascEuis, descEuis) };
  }

  /** A tail of a split range: a lane of its own, ended at once. */
  async #takeTail(briefs: Brief[], lane: string): Promise<void> {
    if (briefs.length === 0) return;
    await this.source.take(briefs, false, lane);
    this.source.end(lane);
  }

  /** What the platform answers as a full page: the size asked for, or what it clamps that to. */
  #pageSize(page: DevicePage): number {
    return page.more === false ? this.source.pageSize : Math.max(1, page.briefs.length);
  }

  async #sweep(range: RangeState): Promise<void> {
    let page = 1;
    while (!range.done && !this.#signal.aborted) {
      page += 1;
      const remaining = Math.max(0, (range.counts.at(-1) ?? 0) - range.read);
      // The longest ranges first: they decide when the read ends.
      const target = { priority: -remaining, name: `page ${page} of ${rangeName(range.prefixes)}` };
      const answer = await this.#held.ask(this.#signal, () => this.#get(range.prefixes, 'asc', range.after, target));
      try {
        await this.#locked(() => this.#take(range, answer, target.name));
      } finally {
        this.#held.remove(answer.bytes);
      }
    }
  }

  /**
   * Takes one page of a range: its devices, each inside the range and after the last one
   * taken (else the ranges are given up); the range is done when the list says it ended,
   * and its count is then checked.
   */
  async #take(range: RangeState, page: DevicePage, name: string): Promise<void> {
    const { state } = this;
    if (range.done || this.#halt.signal.aborted) {
      state.wasted += 1;
      return;
    }
    const kept = this.#inOrder(range, page.briefs);
    if (kept === undefined) return;
    if (page.count !== undefined) range.counts = [range.counts[0] ?? page.count, page.count];
    await this.source.take(kept.briefs, state.mode === 'single', rangeName(range.prefixes));
    range.read += page.briefs.length;
    range.pages += 1;
    state.pages += 1;
    if (page.more !== false) this.#fullPage = Math.min(this.source.pageSize, Math.max(this.#fullPage, page.briefs.length));
    this.#checkCeiling(range, name);
    if (kept.edge !== undefined) range.edge = kept.edge;
    const ended = page.more === false || page.briefs.length === 0;
    if (!ended && page.cursor === undefined) {
      throw new MalformedPageError(name, '"more" is true but "cursors.last" is missing, so the sweep cannot go on', '');
    }
    range.after = page.cursor;
    if (ended) this.#finish(range);
  }

  /**
   * A page's briefs, checked: inside the range and in EUI order (else the ranges are given
   * up: undefined). The unfiltered fallback sweep takes what it is given; the taker drops
   * what was taken before, and a brief without an EUI cannot be placed, so it is kept.
   */
  #inOrder(range: RangeState, briefs: Brief[]): { briefs: Brief[]; edge?: string } | undefined {
    let edge = range.edge;
    for (const brief of briefs) {
      const eui = euiOf(brief);
      if (this.state.mode === 'single') {
        edge = eui ?? edge;
        continue;
      }
      if (!this.#inRange(range.prefixes, [brief])) return undefined;
      if (edge !== undefined && (eui as string) <= edge) {
        this.#giveUp('order-broken');
        return undefined;
      }
      edge = eui;
    }
    return { briefs, ...(edge === undefined ? {} : { edge }) };
  }

  /** Whether every brief is inside the range; if not, the platform did not filter as asked, and the ranges are given up. */
  #inRange(prefixes: readonly string[], briefs: Brief[]): boolean {
    if (this.state.mode === 'single') return true;
    const outside = briefs.some((brief) => {
      const eui = euiOf(brief);
      return eui === undefined || !inRange(eui, prefixes);
    });
    if (outside) this.#giveUp('filter-ignored');
    return !outside;
  }

  /**
   * A range read past its page ceiling (common/paging.ts) fails the run: the platform is
   * not ending its list. Without a count there is no ceiling, only the run's time limit.
   */
  #checkCeiling(range: RangeState, name: string): void {
    if (range.counts.length === 0) return;
    const count = Math.max(...range.counts);
    checkPageCeiling(range.pages, count, this.#fullPage || this.source.pageSize, (devices) => `The platform sent ${name} while it counts ${devices} there`);
  }

  #finish(range: RangeState): void {
    range.done = true;
    this.source.end(rangeName(range.prefixes));
    if (this.state.mode === 'ranges' && shortfall(range.read, range.counts) > 0) this.#giveUp('range-short');
  }

  #giveUp(reason: Fallback): void {
    this.state.fallback ??= reason;
    this.#halt.abort();
  }

  /** Whether the ranges together fall short of the fleet's count, asking for it again (one small page) before saying so. */
  async #fallsShort(): Promise<boolean> {
    const { state } = this;
    if (shortfall(this.read, state.fleetCounts) === 0) return false;
    const now = await this.source.fetch({ order: 'asc', pageSize: 1 }, { priority: PROBE_PRIORITY, name: "the fleet's count" }, this.#signal);
    state.wasted += 1;
    if (now.count !== undefined) state.fleetCounts = [state.fleetCounts[0] ?? now.count, now.count];
    return shortfall(this.read, state.fleetCounts) > 0;
  }

  /** From here on, one unfiltered sweep from the start; what it meets again is dropped by the taker. */
  #fallBack(reason: Fallback): void {
    const { state } = this;
    state.fallback = reason;
    state.mode = 'single';
    state.unprobed = [];
    state.ranges = [{ prefixes: [], done: false, read: 0, pages: 0, counts: state.fleetCounts.slice(0, 1) }];
    this.#signal = this.#arm();
  }
}

/** Whether the briefs' EUIs (checked to be there) rise strictly. */
function ascending(briefs: readonly Brief[]): boolean {
  return briefs.every((brief, i) => i === 0 || (euiOf(briefs[i - 1] as Brief) as string) < (euiOf(brief) as string));
}

/** A page's EUIs, in its order; only for pages whose briefs were checked to have one. */
function euis(page: DevicePage): string[] {
  return page.briefs.map((brief) => euiOf(brief) ?? '');
}

function rangeName(prefixes: readonly string[]): string {
  if (prefixes.length === 0) return 'the fleet';
  return prefixes.length === 1 ? `range ${prefixes[0]}` : `range ${prefixes[0]}..${prefixes.at(-1)}`;
}

/**
 * The first page and the end page, if it was asked for (by the time the first page is in):
 * once both are in, or one failed, so that none arrives after the probe let go of what it holds.
 */
async function bothHeld(asc: Promise<DevicePage>, desc: () => Promise<DevicePage> | undefined): Promise<[DevicePage, DevicePage | undefined]> {
  const [first] = await Promise.allSettled([asc]);
  const [end] = await Promise.allSettled([desc()]);
  if (first.status === 'rejected') throw first.reason;
  if (end.status === 'rejected') throw end.reason;
  return [first.value, end.value];
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}
