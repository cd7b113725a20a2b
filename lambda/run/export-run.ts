import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@aws-lambda-powertools/logger';
import { DeadlineError, ErrorCode, StorageError } from '../errors.ts';
import type { Trigger } from '../event.ts';
import { runKeys } from '../storage/keys.ts';
import { orderedPages, type PagingStats } from '../platform/ordered-pages.ts';
import {
  advancePointer,
  commitManifest,
  manifestOwner,
  readJson,
  removeStrayFiles,
  type Manifest,
  type ManifestOwner,
  type Pointer,
  type RunCounts,
} from '../storage/manifest.ts';
import { RetryBudget, retrying } from '../common/retry.ts';
import type { Runtime } from '../runtime.ts';
import { DataWriter } from '../storage/data-writer.ts';
import { pageFetcher, type Brief, type RequestStats } from '../platform/devices-api.ts';
import { AdaptiveWindow } from '../platform/adaptive-window.ts';

/** The handler's answer: what the run did and where its snapshot is. */
export type RunSummary = {
  runId: string;
  status: 'committed' | 'already-committed';
  trigger: Trigger['kind'];
  label?: string;
  runTime: string;
} & Omit<RunCounts, 'tokenRequests'> & {
    /** Grants this invocation made; a replayed run made none. */
    tokenRequests: number;
    bucket: string;
    manifestKey: string;
    latestKey: string;
    pointerMoved: boolean;
    dataKeys: string[];
    bytes: number;
    durationMs: number;
  };

export interface RunOptions {
  runId: string;
  /** Tells this attempt's files from another delivery's of the same run. */
  attempt: string;
  /** Milliseconds left before the Lambda's hard timeout. */
  remainingMs: () => number;
  logger: Logger;
}

/**
 * One export: page through the fleet into the snapshot's data files, then commit the
 * manifest, then move the pointer. Until the manifest exists the run is invisible to
 * readers; if anything fails first, the data files are removed and nothing else changes.
 */
export async function exportRun(runtime: Runtime, trigger: Trigger, options: RunOptions): Promise<RunSummary> {
  const { config, s3 } = runtime;
  const { runId, logger } = options;
  const startedAt = new Date();
  const keys = runKeys(config.prefix, runId, trigger.runTime, options.attempt);

  const committed = await readJson<Manifest>(s3, config.bucket, keys.manifestKey);
  if (committed) {
    // A redelivered schedule: the run is done; finish its publication in case the
    // earlier attempt stopped between manifest and pointer.
    const pointerMoved = await advancePointer(s3, config.bucket, keys.latestKey, pointerOf(committed.value, keys.manifestKey));
    logger.info('Run already committed; returning its summary', { runId });
    return summaryOf(committed.value, 'already-committed', keys.manifestKey, keys.latestKey, pointerMoved, 0, startedAt);
  }
  const grantsBefore = runtime.tokens.grants;
  const deadline = deadlineFor(options.remainingMs(), config.deadlineMarginSeconds);
  const requestStats: RequestStats = { requests: 0, throttled: 0, tokenRefusals: 0 };
  const pagingStats: PagingStats = { pages: 0, wasted: 0 };
  const budget = new RetryBudget(config.runRetryBudget);
  const window = new AdaptiveWindow(config.concurrency);
  const writer = new DataWriter(s3, config.bucket, keys.dataKey, config.fileMaxBytes, { 'export-run-id': runId });
  const seen = new Set<DeviceKey>();
  let duplicates = 0;
  let unkeyed = 0;

  const fetchPage = pageFetcher({
    baseUrl: config.baseUrl,
    pageSize: config.pageSize,
    requestTimeoutMs: config.requestTimeoutMs,
    tokens: runtime.tokens,
    retry: retrying({ maxRetries: config.maxRetries, budget }),
    window,
    stats: requestStats,
  });

  // Stops the paging when the run fails elsewhere (the writer), as the deadline does.
  const stop = new AbortController();
  const signal = AbortSignal.any([deadline.signal, stop.signal]);
  const stream = async (): Promise<void> => {
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

  logger.info('Run started', { runId, trigger: trigger.kind, runTime: trigger.runTime.toISOString() });
  const discard = () =>
    writer.discard().catch((cleanup: unknown) =>
      logger.error('Could not remove the failed run\'s data files; they have no manifest and are not part of any snapshot', {
        runId,
        error: cleanup instanceof Error ? cleanup.message : String(cleanup),
      }),
    );
  let files;
  const streaming = stream();
  try {
    await Promise.race([streaming, deadline.reached]);
    files = await Promise.race([writer.close(), deadline.reached]);
  } catch (error) {
    stop.abort(error);
    await discard();
    // The abort ends page fetches and waits at once; a token grant in flight hears no
    // signal and may take its timeout and retries, long past the deadline: not waited for.
    await Promise.race([streaming.catch(() => undefined), sleep(WIND_DOWN_MS)]);
    throw deadline.signal.aborted ? deadline.signal.reason : error;
  } finally {
    deadline.clear();
  }

  const finishedAt = new Date();
  const manifest: Manifest = {
    schemaVersion: 1,
    runId,
    trigger: trigger.kind,
    ...(trigger.kind === 'on-demand' && trigger.label ? { label: trigger.label } : {}),
    runTime: trigger.runTime.toISOString(),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    source: { baseUrl: config.baseUrl.href, pageSize: config.pageSize, firstPageIndex: config.firstPageIndex },
    counts: {
      devices: files.reduce((sum, file) => sum + file.devices, 0),
      pages: pagingStats.pages,
      pageRequests: requestStats.requests,
      wastedRequests: pagingStats.wasted,
      duplicates,
      unkeyed,
      throttled: requestStats.throttled,
      retries: budget.spent,
      tokenRequests: runtime.tokens.grants - grantsBefore,
    },
    bucket: config.bucket,
    tableLocation: keys.tableLocation,
    dataPrefix: keys.dataPrefix,
    files,
    bytes: files.reduce((sum, file) => sum + file.bytes, 0),
  };
  let failure: unknown;
  let commit: ManifestOwner | undefined = { owner: 'this attempt' };
  try {
    if (!(await commitManifest(s3, config.bucket, keys.manifestKey, manifest))) {
      commit = await manifestOwner(s3, config.bucket, keys.manifestKey, manifest);
    }
  } catch (error) {
    failure = error;
    commit = await manifestOwner(s3, config.bucket, keys.manifestKey, manifest);
  }
  if (commit === undefined) {
    // Deleting the data could leave a committed manifest listing missing files; keeping it
    // leaves at worst files no manifest lists, which a redelivery of the run removes.
    logger.error('Could not tell whether the manifest was written; kept this attempt\'s data files', {
      runId,
      manifestKey: keys.manifestKey,
      dataKeys: files.map(({ key }) => key),
    });
    throw failure ?? new StorageError(ErrorCode.COMMIT_UNCERTAIN, `The manifest ${keys.manifestKey} exists but could not be read; this attempt's data files were kept`);
  }
  if (commit.owner === 'nobody') {
    await discard();
    throw failure ?? new StorageError(ErrorCode.COMMIT_REFUSED, `S3 refused the manifest ${keys.manifestKey} as existing, yet it is not there; nothing was published`);
  }
  if (commit.owner === 'another attempt') {
    await discard();
    logger.warn('Another attempt committed this run first; removed this attempt\'s files and returned its summary', { runId });
    return summaryOf(commit.manifest, 'already-committed', keys.manifestKey, keys.latestKey, false, 0, startedAt);
  }
  if (failure) logger.warn('The manifest write reported a failure but landed; the run is committed', { runId });
  const stray = await removeStrayFiles(s3, config.bucket, keys.dataPrefix, new Set(files.map(({ key }) => key)));
  if (stray.removed > 0) logger.warn('Removed data files an earlier, failed attempt of this run left', { runId, stray: stray.removed });
  if (stray.refused.length > 0) {
    logger.error('S3 did not delete data files an earlier, failed attempt of this run left; readers of the whole table see them', {
      runId,
      refused: stray.refused,
    });
  }
  const pointerMoved = await advancePointer(s3, config.bucket, keys.latestKey, pointerOf(manifest, keys.manifestKey));
  if (!pointerMoved) logger.warn('A newer run already holds the latest pointer; left it there', { runId });
  return summaryOf(manifest, 'committed', keys.manifestKey, keys.latestKey, pointerMoved, manifest.counts.tokenRequests, startedAt);
}

/** How long a failed run lets its cancelled fetches wind down before it reports. */
const WIND_DOWN_MS = 200;

/**
 * A device's identity for de-duplication. The set of them is the one structure of a run
 * that grows with the fleet: refs that are plain decimal integers, as the platform's are,
 * are kept as numbers, which take half the memory of strings (about 20 MB per million
 * devices instead of 43). A string key is never a canonical integer, so the two kinds
 * cannot collide, and an EUI key is always a string.
 */
type DeviceKey = string | number;

const CANONICAL_INTEGER = /^(?:0|[1-9]\d{0,14})$/;

/** De-duplication key: the device's `ref`, else its EUI (case-insensitive). */
function deviceKey(brief: Brief): DeviceKey | undefined {
  const { ref, EUI } = brief;
  if (typeof ref === 'number') return Number.isSafeInteger(ref) && ref >= 0 ? ref : String(ref);
  if (typeof ref === 'string' && ref !== '') return CANONICAL_INTEGER.test(ref) ? Number(ref) : ref;
  if (typeof EUI === 'string' && EUI !== '') return `e${EUI.toUpperCase()}`;
  return undefined;
}

/** The brief as the platform sent it, with the run id appended, without copying the object. */
function withRunId(brief: Brief, runField: string): string {
  const json = JSON.stringify(brief);
  return json.length === 2 ? `{${runField.slice(1)}` : json.slice(0, -1) + runField;
}

function deadlineFor(remainingMs: number, marginSeconds: number) {
  const controller = new AbortController();
  const budgetMs = remainingMs - marginSeconds * 1000;
  let fire: (reason: unknown) => void = () => undefined;
  const reached = new Promise<never>((_, reject) => {
    fire = reject;
  });
  reached.catch(() => undefined);
  const timer = setTimeout(() => {
    const reason = new DeadlineError(
      `Stopped ${marginSeconds} s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS) with the export unfinished; ` +
        'nothing was published. Raise the function timeout or THINGPARK_CONCURRENCY, or lower THINGPARK_REQUEST_TIMEOUT_MS.',
    );
    controller.abort(reason);
    fire(reason);
  }, Math.max(0, budgetMs));
  return { signal: controller.signal, reached, clear: () => clearTimeout(timer) };
}

function pointerOf(manifest: Manifest, manifestKey: string): Pointer {
  return {
    runId: manifest.runId,
    runTime: manifest.runTime,
    manifestKey,
    devices: manifest.counts.devices,
    finishedAt: manifest.finishedAt,
  };
}

function summaryOf(
  manifest: Manifest,
  status: RunSummary['status'],
  manifestKey: string,
  latestKey: string,
  pointerMoved: boolean,
  tokenRequests: number,
  startedAt: Date,
): RunSummary {
  const { tokenRequests: _requestsOfTheRun, ...counts } = manifest.counts;
  return {
    runId: manifest.runId,
    status,
    trigger: manifest.trigger,
    ...(manifest.label ? { label: manifest.label } : {}),
    runTime: manifest.runTime,
    ...counts,
    tokenRequests,
    bucket: manifest.bucket,
    manifestKey,
    latestKey,
    pointerMoved,
    dataKeys: manifest.files.map((file) => file.key),
    bytes: manifest.bytes,
    durationMs: Date.now() - startedAt.getTime(),
  };
}
