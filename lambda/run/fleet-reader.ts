import type { Logger } from '@aws-lambda-powertools/logger';
import { RetryBudget, logRetries, retrying } from '../common/retry.ts';
import { AdaptiveWindow } from '../platform/adaptive-window.ts';
import { deviceFetcher } from '../platform/device-lookup.ts';
import { pageFetcher, type Brief, type DevicePage, type PageSource, type RequestStats } from '../platform/devices-api.ts';
import { orderedPages, type PagingStats } from '../platform/ordered-pages.ts';
import type { DataWriter } from '../storage/data-writer.ts';
import { deviceKey, type DeviceKey } from './device-key.ts';
import type { RunServices } from './run-context.ts';

/** What one pass over the device list saw. */
export interface Sweep extends PagingStats {
  /** Devices this pass wrote: seen for the first time in the run. */
  written: number;
  /** The platform's `count` on the first and the last page, where it sends one. */
  firstCount?: number;
  lastCount?: number;
}

/**
 * How a run reads the fleet and writes what it reads: sweeps of the device list and
 * lookups of single devices, all through one token cache, window (and its pacer), retry
 * policy and retry budget, into one writer, each device once (its first occurrence), every
 * row tagged with the run id. `seen` holds the key of every device written: the run's
 * de-duplication set, and the key index it commits.
 */
export class FleetReader {
  readonly seen = new Set<DeviceKey>();
  readonly requests: RequestStats = { requests: 0, throttled: 0, tokenRefusals: 0 };
  readonly budget: RetryBudget;
  /** Devices the first sweep met again, and dropped. */
  duplicates = 0;
  /** Devices with neither ref nor EUI, written as they came. */
  unkeyed = 0;
  readonly #window: AdaptiveWindow;
  readonly #fetchPage: (index: number, signal: AbortSignal) => Promise<DevicePage>;
  readonly #lookup: (id: string, signal: AbortSignal) => Promise<Brief | undefined>;
  readonly #runField: string;

  constructor(
    private readonly services: RunServices,
    private readonly run: { runId: string; writer: DataWriter; logger: Logger },
  ) {
    const { config, tokens } = services;
    this.budget = new RetryBudget(config.runRetryBudget);
    this.#window = new AdaptiveWindow(config.concurrency);
    const source: PageSource = {
      baseUrl: config.baseUrl,
      pageSize: config.pageSize,
      requestTimeoutMs: config.requestTimeoutMs,
      tokens,
      retry: retrying({ maxRetries: config.maxRetries, budget: this.budget, onRetry: logRetries(run.logger) }),
      window: this.#window,
      stats: this.requests,
    };
    this.#fetchPage = pageFetcher(source);
    this.#lookup = deviceFetcher(source);
    this.#runField = `,"exportRunId":${JSON.stringify(run.runId)}}`;
  }

  /**
   * One pass over the device list, in page order. On the first pass a device met again is
   * a duplicate (the fleet shifted under the paging); on a later one every device is met
   * again, so only those not yet seen count, and a device with neither ref nor EUI, which
   * nothing tells apart from the copy the first pass wrote, is left out.
   */
  async sweep(signal: AbortSignal, again = false): Promise<Sweep> {
    const sweep: Sweep = { pages: 0, wasted: 0, written: 0 };
    const pages = orderedPages(this.#fetchPage, { firstIndex: this.services.config.firstPageIndex, window: this.#window, signal, stats: sweep });
    for await (const page of pages) {
      if (page.count !== undefined) {
        sweep.firstCount ??= page.count;
        sweep.lastCount = page.count;
      }
      for (const brief of page.briefs) {
        if (await this.#admit(brief, deviceKey(brief), again)) sweep.written += 1;
      }
      this.run.logger.debug('Page written', { runId: this.run.runId, page: page.index, briefs: page.briefs.length, window: this.#window.limit });
    }
    return sweep;
  }

  /** The device with this key as the platform has it now; undefined when it says there is none. */
  lookup(key: DeviceKey, signal: AbortSignal): Promise<Brief | undefined> {
    return this.#lookup(String(key), signal);
  }

  /** Writes a device a lookup found, under the key it was asked for, unless already written. */
  found(key: DeviceKey, brief: Brief): Promise<boolean> {
    return this.#admit(brief, key, true);
  }

  async #admit(brief: Brief, key: DeviceKey | undefined, again: boolean): Promise<boolean> {
    if (key === undefined) {
      if (again) return false;
      this.unkeyed += 1;
    } else if (this.seen.has(key)) {
      if (!again) this.duplicates += 1;
      return false;
    } else this.seen.add(key);
    await this.run.writer.write(withRunId(brief, this.#runField));
    return true;
  }
}

/** The brief as the platform sent it, with the run id appended, without copying the object. */
function withRunId(brief: Brief, runField: string): string {
  const json = JSON.stringify(brief);
  return json.length === 2 ? `{${runField.slice(1)}` : json.slice(0, -1) + runField;
}
