import type { Logger } from '@aws-lambda-powertools/logger';
import { ListIncompleteError, PlatformError } from '../common/errors.ts';
import { RetryBudget, logRetries, retrying } from '../common/retry.ts';
import { AdaptiveWindow } from '../platform/adaptive-window.ts';
import { deviceFetcher } from '../platform/device-lookup.ts';
import { CursorSweep, type CursorOutcome, type CursorState } from '../platform/cursor-sweep.ts';
import { firstPageIndex, listFetcher, pageFetcher, type Brief, type DevicePage, type PageSource, type RequestStats } from '../platform/devices-api.ts';
import { isLast, orderedPages, type PagingStats } from '../platform/ordered-pages.ts';
import type { DataWriter } from '../storage/data-writer.ts';
import { deviceKey, type DeviceKey } from '../common/device-key.ts';
import { euiOf } from '../platform/eui-ranges.ts';
import { lineOf } from '../platform/brief-text.ts';
import { DeviceKeySet } from '../common/device-key-set.ts';
import type { RunServices } from '../common/services.ts';
import { checkPageCeiling } from '../common/paging.ts';

/** What one pass over the device list saw. */
export interface Sweep extends PagingStats {
  /** Devices this pass wrote: seen for the first time in the run. */
  written: number;
  /** The platform's `count` on the first and the last page, where it sends one. */
  firstCount?: number;
  lastCount?: number;
  /** Where the pass stopped when it was paused (see `sweep`): the next page to read. */
  next?: number;
  /** The largest page that was not the last: the page size the platform serves, which may be less than asked for. */
  fullPage?: number;
}

/** What a reader has counted, carried from one invocation of a continued run to the next. */
export interface ReaderCounts {
  duplicates: number;
  unkeyed: number;
  requests: RequestStats;
  /** Retries taken from the run's budget. */
  retries: number;
  /** Pages written, by every sweep. */
  pages: number;
}

/**
 * How a run reads the fleet and writes what it reads: sweeps of the device list and
 * lookups of single devices, all through one token cache, window (and its pacer), retry
 * policy and retry budget, into one writer, each device once (its first occurrence), every
 * row tagged with the run id. `seen` holds the key of every device written: the run's
 * de-duplication set, and the key index it commits.
 */
export class FleetReader {
  readonly seen: DeviceKeySet;
  readonly requests: RequestStats;
  readonly budget: RetryBudget;
  /** Devices the first sweep met again, and dropped. */
  duplicates: number;
  /** Devices with neither ref nor EUI, written as they came. */
  unkeyed: number;
  /** Pages written, by every sweep. */
  pages: number;
  readonly #window: AdaptiveWindow;
  readonly #fetchPage: (index: number, signal: AbortSignal) => Promise<DevicePage>;
  readonly #lookup: (id: string, signal: AbortSignal) => Promise<Brief | undefined>;
  readonly #source: PageSource;
  readonly #runField: string;

  constructor(
    private readonly services: RunServices,
    private readonly run: { runId: string; writer: DataWriter; logger: Logger },
    /** A continued run's reader goes on from the set and the counts the earlier invocations left. */
    carried?: { seen: DeviceKeySet; counts: ReaderCounts },
  ) {
    const { config, tokens } = services;
    this.seen = carried?.seen ?? new DeviceKeySet();
    const counts = carried?.counts;
    this.requests = { requests: 0, throttled: 0, tokenRefusals: 0, ...counts?.requests };
    this.duplicates = counts?.duplicates ?? 0;
    this.unkeyed = counts?.unkeyed ?? 0;
    this.pages = counts?.pages ?? 0;
    this.budget = new RetryBudget(config.runRetryBudget, counts?.retries ?? 0);
    this.#window = new AdaptiveWindow(config.maxConcurrency, { initial: config.concurrency });
    const source: PageSource = {
      baseUrl: config.baseUrl,
      pageSize: config.pageSize,
      requestTimeoutMs: config.requestTimeoutMs,
      tokens,
      retry: retrying({ maxRetries: config.maxRetries, budget: this.budget, onRetry: logRetries(run.logger) }),
      window: this.#window,
      stats: this.requests,
    };
    this.#source = source;
    this.#fetchPage = pageFetcher(source);
    this.#lookup = deviceFetcher(source);
    this.#runField = `,"exportRunId":${JSON.stringify(run.runId)}}`;
  }

  /** What it has counted so far, as a checkpoint carries it to the next invocation. */
  get counts(): ReaderCounts {
    return { duplicates: this.duplicates, unkeyed: this.unkeyed, requests: { ...this.requests }, retries: this.budget.spent, pages: this.pages };
  }

  /**
   * One pass over the device list, in page order. On the first pass a device met again is
   * a duplicate (the fleet shifted under the paging); on a later one every device is met
   * again, so only those not yet seen count, and a device with neither ref nor EUI, which
   * nothing tells apart from the copy the first pass wrote, is left out.
   *
   * A continued run's pass starts at `from`, the page where an earlier invocation stopped.
   * Once `pause` aborts, the pass stops at the next page boundary: the page being written
   * is finished, fetches ahead of it are cancelled (counted as wasted), and `next` says
   * which page to read on. A pass that reaches the list's end is complete, paused or not.
   */
  async sweep(signal: AbortSignal, again: boolean, { from, pause }: { from: number; pause?: AbortSignal }): Promise<Sweep> {
    const sweep: Sweep = { pages: 0, wasted: 0, written: 0 };
    let next = from;
    const pages = orderedPages(this.#fetchPage, {
      firstIndex: next,
      window: this.#window,
      signal: pause ? AbortSignal.any([signal, pause]) : signal,
      stats: sweep,
    });
    try {
      for await (const page of pages) {
        if (page.count !== undefined) {
          sweep.firstCount ??= page.count;
          sweep.lastCount = page.count;
        }
        for (const brief of page.briefs) {
          if (await this.#admit(brief, deviceKey(brief), again)) sweep.written += 1;
        }
        this.pages += 1;
        next = page.index + 1;
        if (!isLast(page)) sweep.fullPage = Math.min(this.services.config.pageSize, Math.max(sweep.fullPage ?? 0, page.briefs.length));
        checkOffsetCeiling(page.index, sweep, this.run.runId);
        this.run.logger.debug('Page written', { runId: this.run.runId, page: page.index, briefs: page.briefs.length, window: this.#window.limit });
        if (pause?.aborted && !isLast(page)) {
          sweep.next = next;
          break;
        }
      }
    } catch (error) {
      if (pastOffsetLimit(error, sweep)) {
        throw new ListIncompleteError(
          'OFFSET_LIMIT',
          `The platform refused page ${next} (HTTP 400) after ${sweep.pages} pages, while it counted ${sweep.lastCount ?? 'more'} devices: ` +
            'it limits how far offset paging goes (the spec says the page index and the devices it reaches are limited system-wide). ' +
            'A platform with cursor mode is read without that limit (THINGPARK_PAGING=auto).',
        );
      }
      // Paused while waiting for a page: it was not written, so it is where the pass goes on.
      if (!pause?.aborted || signal.aborted || !isAbort(error, pause)) throw error;
      sweep.next = next;
    }
    return sweep;
  }

  /**
   * Reads the list in cursor mode over EUI ranges (platform/cursor-sweep.ts), from `state`
   * (a continued run's) or from the start; every state change is made in `state`, so that
   * a paused read can be saved as it stands.
   */
  async cursorSweep(signal: AbortSignal, state: CursorState, pause?: AbortSignal): Promise<CursorOutcome> {
    const { config } = this.services;
    const sweep = new CursorSweep(
      {
        fetch: listFetcher(this.#source),
        take: async (briefs, again, lane) => {
          for (const brief of briefs) await this.#admit(brief, deviceKey(brief), again, lane);
          if (briefs.length > 0) this.pages += 1;
        },
        end: (lane) => void this.run.writer.end(lane),
        pageSize: config.pageSize,
        sweeps: config.maxConcurrency,
      },
      state,
      signal,
      pause,
    );
    return sweep.run();
  }

  /** The page offset paging starts at, where the configuration leaves it to be learned. */
  firstPageIndex(signal: AbortSignal): Promise<number> {
    const configured = this.services.config.firstPageIndex;
    return configured === undefined ? firstPageIndex(this.#source, signal) : Promise.resolve(configured);
  }

  /** Requests allowed on the wire now, for progress reports. */
  get window(): number {
    return this.#window.limit;
  }

  /** The device with this key as the platform has it now; undefined when it says there is none. */
  lookup(key: DeviceKey, signal: AbortSignal): Promise<Brief | undefined> {
    return this.#lookup(String(key), signal);
  }

  /** Writes a device a lookup found, under the key it was asked for, unless already written. */
  found(key: DeviceKey, brief: Brief): Promise<boolean> {
    return this.#admit(brief, key, true);
  }

  async #admit(brief: Brief, key: DeviceKey | undefined, again: boolean, lane?: string): Promise<boolean> {
    if (key === undefined) {
      if (again) return false;
      this.unkeyed += 1;
    } else if (this.seen.has(key)) {
      if (!again) this.duplicates += 1;
      return false;
    } else this.seen.add(key);
    await this.run.writer.write(lineOf(brief, this.#runField), { ...(lane === undefined ? {} : { lane }), eui: euiOf(brief) });
    return true;
  }
}

/**
 * A 400 for a page past the first, while the platform counted more devices than were read:
 * its offset limit. Without a count nothing says so, and the 400 is reported as it came.
 */
function pastOffsetLimit(error: unknown, sweep: Sweep): boolean {
  return error instanceof PlatformError && error.status === 400 && sweep.pages > 0 && sweep.lastCount !== undefined && sweep.written < sweep.lastCount;
}

/**
 * Whether a failure is the pause itself: its reason, or the AbortError of a request it
 * cancelled (the retry policy aborts its attempts without passing the reason on).
 */
export function isAbort(error: unknown, pause: AbortSignal): boolean {
  return error === pause.reason || (error instanceof Error && error.name === 'AbortError');
}

/** An offset pass past its page ceiling (common/paging.ts) fails the run; without a count, or before a full page, there is none yet. */
function checkOffsetCeiling(pageIndex: number, sweep: Sweep, runId: string): void {
  if (sweep.lastCount === undefined || sweep.fullPage === undefined) return;
  const count = Math.max(sweep.firstCount ?? 0, sweep.lastCount);
  checkPageCeiling(pageIndex, count, sweep.fullPage, (devices) => `Run ${runId} was sent page ${pageIndex} while the platform counts ${devices}`);
}
