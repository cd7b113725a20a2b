import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@aws-lambda-powertools/logger';
import { RetryBudget, retrying } from '../common/retry.ts';
import { AdaptiveWindow } from '../platform/adaptive-window.ts';
import { pageFetcher, type Brief, type RequestStats } from '../platform/devices-api.ts';
import { orderedPages, type PagingStats } from '../platform/ordered-pages.ts';
import type { DataFile, DataWriter } from '../storage/data-writer.ts';
import type { RunCounts } from '../storage/manifest.ts';
import type { Deadline } from './deadline.ts';
import { deviceKey, type DeviceKey } from './device-key.ts';
import type { RunServices } from './run-context.ts';

/** A sweep of the fleet, written: its files and what it counted. */
export interface StreamedSnapshot {
  files: DataFile[];
  counts: RunCounts;
}

/** How long a failed run lets its cancelled fetches wind down before it reports. */
const WIND_DOWN_MS = 200;

/**
 * Pages through the fleet in page order into the run's data files, each device once (its
 * first occurrence), every row tagged with the run id. If anything fails or the deadline
 * comes first, the writer is discarded (its files removed) and the failure is thrown.
 */
export async function streamSnapshot(
  services: RunServices,
  run: { runId: string; writer: DataWriter; deadline: Deadline; logger: Logger },
): Promise<StreamedSnapshot> {
  const { config, tokens } = services;
  const { runId, writer, deadline, logger } = run;
  const grantsBefore = tokens.grants;
  const requestStats: RequestStats = { requests: 0, throttled: 0, tokenRefusals: 0 };
  const pagingStats: PagingStats = { pages: 0, wasted: 0 };
  const budget = new RetryBudget(config.runRetryBudget);
  const window = new AdaptiveWindow(config.concurrency);
  const seen = new Set<DeviceKey>();
  let duplicates = 0;
  let unkeyed = 0;

  const fetchPage = pageFetcher({
    baseUrl: config.baseUrl,
    pageSize: config.pageSize,
    requestTimeoutMs: config.requestTimeoutMs,
    tokens,
    retry: retrying({ maxRetries: config.maxRetries, budget }),
    window,
    stats: requestStats,
  });

  // Stops the paging when the run fails elsewhere (the writer), as the deadline does.
  const stop = new AbortController();
  const signal = AbortSignal.any([deadline.signal, stop.signal]);
  const sweep = async (): Promise<void> => {
    const runField = `,"exportRunId":${JSON.stringify(runId)}}`;
    const pages = orderedPages(fetchPage, { firstIndex: config.firstPageIndex, window, signal, stats: pagingStats });
    for await (const page of pages) {
      for (const brief of page.briefs) {
        const key = deviceKey(brief);
        if (key === undefined) unkeyed += 1;
        else if (seen.has(key)) {
          duplicates += 1;
          continue;
        } else seen.add(key);
        await writer.write(withRunId(brief, runField));
      }
      logger.debug('Page written', { runId, page: page.index, briefs: page.briefs.length, window: window.limit });
    }
  };

  let files: DataFile[];
  const sweeping = sweep();
  try {
    await Promise.race([sweeping, deadline.reached]);
    files = await Promise.race([writer.close(), deadline.reached]);
  } catch (error) {
    stop.abort(error);
    await discardQuietly(writer, runId, logger);
    // The abort ends page fetches and waits at once; a token grant in flight hears no
    // signal and may take its timeout and retries, long past the deadline: not waited for.
    await Promise.race([sweeping.catch(() => undefined), sleep(WIND_DOWN_MS)]);
    throw deadline.signal.aborted ? deadline.signal.reason : error;
  }
  return {
    files,
    counts: {
      devices: files.reduce((sum, file) => sum + file.devices, 0),
      pages: pagingStats.pages,
      pageRequests: requestStats.requests,
      wastedRequests: pagingStats.wasted,
      duplicates,
      unkeyed,
      throttled: requestStats.throttled,
      retries: budget.spent,
      tokenRequests: tokens.grants - grantsBefore,
    },
  };
}

/**
 * Removes a failed run's data files; a failure to do so is logged, not thrown, so the
 * run's own failure is what the caller sees. The attempt's marker lets a later run finish
 * the removal.
 */
export async function discardQuietly(writer: DataWriter, runId: string, logger: Logger): Promise<void> {
  await writer.discard().catch((cleanup: unknown) =>
    logger.error('Could not remove the failed run\'s data files; they have no manifest and are not part of any snapshot', {
      runId,
      error: cleanup instanceof Error ? cleanup.message : String(cleanup),
    }),
  );
}

/** The brief as the platform sent it, with the run id appended, without copying the object. */
function withRunId(brief: Brief, runField: string): string {
  const json = JSON.stringify(brief);
  return json.length === 2 ? `{${runField.slice(1)}` : json.slice(0, -1) + runField;
}
