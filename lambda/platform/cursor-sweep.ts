import { MalformedPageError } from '../common/errors.ts';
import type { Fallback } from '../common/paging.ts';
import type { Brief, DevicePage, ListQuery, Target } from './devices-api.ts';
import { childPrefixes, euiOf, rangePagesTarget, shortfall, worthSplitting } from './eui-ranges.ts';

export type Order = 'asc' | 'desc';

/** One end of a range's sweep: where it reads on from, and how far it got. */
export interface RangeEnd {
  /** The cursor of the last page taken from this end; none before its first page. */
  after?: string;
  /** The EUI furthest from this end taken so far: the other end stops short of it. */
  edge?: string;
}

/** A range of the EUI space (every EUI starting with `prefix`), read from both ends at once. */
export interface RangeState {
  prefix: string;
  asc: RangeEnd;
  /** None for a one-ended sweep (the unfiltered fallback). */
  desc?: RangeEnd;
  done: boolean;
  /** Devices the range's pages held, once each. */
  read: number;
  /** The platform's count for the range on its first page, and on its latest. */
  counts: number[];
}

/** Where a cursor read stands: all a continued run needs to go on (see checkpoints). */
export interface CursorState {
  /** 'ranges' while ranges are probed and read; 'single' once it fell back to one unfiltered sweep. */
  mode: 'ranges' | 'single';
  /** Ranges still to be probed (read from both ends, or split). */
  unprobed: string[];
  ranges: RangeState[];
  /** The fleet's count at the start, and at the end where the ranges fell short of it. */
  fleetCounts: number[];
  /** Most pages one range is read as, before it is split (eui-ranges.ts). */
  target?: number;
  fallback?: Fallback;
  /** Pages whose devices were taken, and requests whose answer was not needed. */
  pages: number;
  wasted: number;
}

export type CursorOutcome = 'complete' | 'paused' | 'no-cursor-mode';

export interface CursorSource {
  fetch: (query: ListQuery, target: Target, signal: AbortSignal) => Promise<DevicePage>;
  /** Takes a page's devices; `again` once the ranges gave way to the unfiltered sweep, which meets devices already taken. */
  take: (briefs: Brief[], again: boolean) => Promise<void>;
  pageSize: number;
  /** Requests the window may keep on the wire at most: how many sweeps are worth having. */
  sweeps: number;
}

export function freshCursorState(): CursorState {
  return { mode: 'ranges', unprobed: [''], ranges: [], fleetCounts: [], pages: 0, wasted: 0 };
}

/** Probes go first: each one can open up to sixteen sweeps. */
const PROBE_PRIORITY = Number.MIN_SAFE_INTEGER;

/**
 * Reads the device list in cursor mode (`sort=EUI,...` and `pageAfter`), which the spec
 * says skips no device, with many sweeps at once over disjoint EUI ranges (`devEUI`).
 *
 * A range is first probed with one page from each end (`asc` and `desc`, in parallel):
 * their `count` says whether it is worth splitting, and their EUIs where (eui-ranges.ts).
 * A range not split is read from both ends by two sweeps that stop where they meet, the
 * probe pages being their first pages. Pages are taken as they come, one at a time, so
 * memory is bounded by the requests in flight, not by the ranges. What it reads is held
 * against the platform's counts, per range and for the fleet; a shortfall, or a brief
 * outside its range, makes it read the whole list again in one unfiltered sweep.
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
    return this.state.ranges.reduce((sum, range) => sum + range.read, 0);
  }

  #arm(): AbortSignal {
    this.#halt = new AbortController();
    return AbortSignal.any([this.outer, this.#halt.signal, ...(this.pause ? [this.pause] : [])]);
  }

  async #readAll(): Promise<void> {
    for (const prefix of this.state.unprobed) this.#spawn(() => this.#probe(prefix));
    for (const range of this.state.ranges) if (!range.done) this.#spawnSweeps(range);
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

  #spawnSweeps(range: RangeState): void {
    this.#spawn(() => this.#sweep(range, 'asc'));
    if (range.desc) this.#spawn(() => this.#sweep(range, 'desc'));
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

  #get(prefix: string, order: Order, after: string | undefined, target: Target): Promise<DevicePage> {
    return this.source.fetch({ order, ...(after === undefined ? {} : { after }), prefixes: prefix === '' ? [] : [prefix] }, target, this.#signal);
  }

  /**
   * A range's first page from its start; the whole fleet's also from its end, at once, as
   * it is almost always split. A smaller range asks for its end only when its count says
   * it is worth splitting: a range read whole then costs no request beyond its pages.
   */
  async #probe(prefix: string): Promise<void> {
    const first = (order: Order) => this.#get(prefix, order, undefined, { priority: PROBE_PRIORITY, name: `the first ${order} page of ${rangeName(prefix)}` });
    const [asc, desc] = await Promise.all(prefix === '' ? [first('asc'), first('desc')] : [first('asc')]);
    const wantsEnd = await this.#locked(() => this.#takeProbe(prefix, asc, desc));
    if (wantsEnd) {
      const end = await first('desc');
      await this.#locked(() => this.#takeProbe(prefix, asc, end));
    }
  }

  /** Splits a probed range, or starts reading it; true when its last EUI is needed first. */
  async #takeProbe(prefix: string, asc: DevicePage, desc: DevicePage | undefined): Promise<boolean> {
    const { state } = this;
    if (this.#halt.signal.aborted) {
      state.unprobed = state.unprobed.filter((other) => other !== prefix);
      state.wasted += desc ? 2 : 1;
      return false;
    }
    if (prefix === '' && asc.more !== false && asc.briefs.length > 0 && asc.cursor === undefined) {
      this.#noCursorMode = true;
      this.#halt.abort();
      return false;
    }
    if (!this.#inRange(prefix, [...asc.briefs, ...(desc?.briefs ?? [])])) return false;
    const count = asc.count ?? desc?.count;
    if (prefix === '' && count !== undefined) {
      state.fleetCounts = [count];
      state.target = rangePagesTarget(count, this.#pageSize(asc), this.source.sweeps);
    }
    const split = this.#worthSplitting(asc, count);
    if (split && desc === undefined) return true;
    state.unprobed = state.unprobed.filter((other) => other !== prefix);
    const children = split && desc ? this.#children(prefix, asc, desc) : undefined;
    if (children) {
      state.wasted += 2;
      state.unprobed.push(...children);
      for (const child of children) this.#spawn(() => this.#probe(child));
      return false;
    }
    const range: RangeState = { prefix, asc: {}, desc: {}, done: false, read: 0, counts: count === undefined ? [] : [count] };
    state.ranges.push(range);
    await this.#take(range, 'asc', asc);
    if (desc && !range.done) await this.#take(range, 'desc', desc);
    else if (desc) state.wasted += 1;
    if (!range.done) this.#spawnSweeps(range);
    return false;
  }

  #worthSplitting(asc: DevicePage, count: number | undefined): boolean {
    if (this.state.mode !== 'ranges' || asc.more === false || asc.briefs.length === 0) return false;
    return worthSplitting(count, this.#pageSize(asc), this.state.target ?? Number.POSITIVE_INFINITY);
  }

  #children(prefix: string, asc: DevicePage, desc: DevicePage): string[] | undefined {
    const first = euiOf(asc.briefs[0] ?? {});
    const last = euiOf(desc.briefs[0] ?? {});
    return first === undefined || last === undefined ? undefined : childPrefixes(prefix, first, last);
  }

  /** What the platform answers as a full page: the size asked for, or what it clamps that to. */
  #pageSize(page: DevicePage): number {
    return page.more === false ? this.source.pageSize : Math.max(1, page.briefs.length);
  }

  async #sweep(range: RangeState, order: Order): Promise<void> {
    let page = 1;
    while (!range.done && !this.#signal.aborted) {
      const end = order === 'asc' ? range.asc : range.desc;
      if (end === undefined) return;
      const remaining = Math.max(0, (range.counts.at(-1) ?? Number.POSITIVE_INFINITY) - range.read);
      // The last page between the ends is asked for once, from the start: from both ends it would come twice.
      if (order === 'desc' && range.asc.edge !== undefined && remaining <= this.source.pageSize) return;
      page += 1;
      const target = { priority: -remaining, name: `page ${page} of ${rangeName(range.prefix)} (${order})` };
      const answer = await this.#get(range.prefix, order, end.after, target);
      await this.#locked(() => this.#take(range, order, answer, target.name));
    }
  }

  /**
   * Takes one page of a range from one end: its devices up to where the other end got,
   * in the order asked for and inside the range (else the ranges are given up). The range
   * is done when the ends meet or the list says it ended; then its count is checked.
   */
  async #take(range: RangeState, order: Order, page: DevicePage, name = `the first ${order} page of ${rangeName(range.prefix)}`): Promise<void> {
    const { state } = this;
    if (range.done || this.#halt.signal.aborted) {
      state.wasted += 1;
      return;
    }
    const end = (order === 'asc' ? range.asc : range.desc) as RangeEnd;
    const other = order === 'asc' ? range.desc : range.asc;
    const kept = this.#upTo(range, order, page.briefs, other?.edge);
    if (kept === undefined) return;
    if (page.count !== undefined) range.counts = [range.counts[0] ?? page.count, page.count];
    await this.source.take(kept.briefs, state.mode === 'single');
    range.read += kept.briefs.length;
    const ended = page.more === false || page.briefs.length === 0;
    // A page counts when it gave devices or ended the range (an empty fleet is one page); one the other end had wholly read is wasted.
    if (kept.briefs.length > 0 || (ended && !kept.met)) state.pages += 1;
    else state.wasted += 1;
    end.edge = kept.edge ?? end.edge;
    if (!ended && page.cursor === undefined && !kept.met) {
      throw new MalformedPageError(name, '"more" is true but "cursors.last" is missing, so the sweep cannot go on', '');
    }
    end.after = page.cursor;
    if (kept.met || ended || allRead(range)) this.#finish(range);
  }

  /** A page's briefs that the other end has not reached, and whether it reached them; undefined when the ranges were given up. */
  #upTo(range: RangeState, order: Order, briefs: Brief[], otherEdge: string | undefined): { briefs: Brief[]; edge?: string; met: boolean } | undefined {
    const end = (order === 'asc' ? range.asc : range.desc) as RangeEnd;
    const kept: Brief[] = [];
    let edge = end.edge;
    for (const brief of briefs) {
      const eui = euiOf(brief);
      if (this.state.mode === 'single' && eui === undefined) {
        kept.push(brief);
        continue;
      }
      if (!this.#inRange(range.prefix, [brief])) return undefined;
      if (edge !== undefined && !ahead(eui as string, edge, order)) {
        if (this.state.mode === 'single') continue;
        this.#giveUp('order-broken');
        return undefined;
      }
      if (otherEdge !== undefined && !ahead(otherEdge, eui as string, order)) return { briefs: kept, ...(edge === undefined ? {} : { edge }), met: true };
      kept.push(brief);
      edge = eui;
    }
    return { briefs: kept, ...(edge === undefined ? {} : { edge }), met: false };
  }

  /** Whether every brief is inside the range; if not, the platform did not filter as asked, and the ranges are given up. */
  #inRange(prefix: string, briefs: Brief[]): boolean {
    if (this.state.mode === 'single') return true;
    const outside = briefs.some((brief) => !euiOf(brief)?.startsWith(prefix));
    if (outside) this.#giveUp('filter-ignored');
    return !outside;
  }

  #finish(range: RangeState): void {
    range.done = true;
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
    state.ranges = [{ prefix: '', asc: {}, done: false, read: 0, counts: state.fleetCounts.slice(0, 1) }];
    this.#signal = this.#arm();
  }
}

/**
 * Whether a range's ends have read all of it without meeting: as many devices as it
 * counted, and a count that did not change while it was read. Otherwise (devices deleted
 * or added meanwhile) only the ends meeting, or the list's end, says so.
 */
function allRead(range: RangeState): boolean {
  return range.counts.length > 0 && range.counts.every((count) => count === range.read);
}

/** Whether `eui` comes after `than` in the order of a sweep from this end. */
function ahead(eui: string, than: string, order: Order): boolean {
  return order === 'asc' ? eui > than : eui < than;
}

function rangeName(prefix: string): string {
  return prefix === '' ? 'the fleet' : `range ${prefix}`;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}
