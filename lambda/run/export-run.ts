import type { Logger } from '@aws-lambda-powertools/logger';
import { deadlineFor, pauseFor } from '../common/deadline.ts';
import { DeadlineError } from '../common/errors.ts';
import type { Continuation, Trigger } from '../common/request-types.ts';
import type { RunServices } from '../common/services.ts';
import { runKeys, type RunKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { advancePointer, pointerTo } from '../storage/pointer.ts';
import { readJson } from '../storage/s3-json.ts';
import { buildManifest } from './build-manifest.ts';
import { checkCeilings, checkForeign, triggerOf } from './checkpoint.ts';
import { FleetReader } from './fleet-reader.ts';
import { readCheckpoint, releaseContinuation, SliceLifecycle, type Slice } from './lifecycle.ts';
import { reportProgress } from './progress.ts';
import { streamSnapshot, sweepFinished, type PausedSnapshot, type StreamedSnapshot } from './stream-snapshot.ts';
import { summaryOf, type RunSummary } from './summary.ts';
import { FleetVerification, previousRun, previousRunAgain } from './verify-fleet.ts';

/** What sets one run apart from another. */
export interface RunOptions {
  runId: string;
  /** Unique to this invocation; names its data files and its marker. */
  attempt: string;
  /** Milliseconds left before the Lambda's hard timeout. */
  remainingMs: () => number;
  logger: Logger;
}

/** What an export invocation answers: the run's summary, or how to continue it. */
export type ExportAnswer = RunSummary | Continuation;

/**
 * One export, top to bottom: a run already committed is returned as it is; otherwise the
 * fleet is streamed into the run's data files, checked against the previous run's key
 * index (the run `latest` names now), described by a manifest, and committed and
 * published. If anything fails before the commit, the data files are removed and nothing
 * else changes; where an upload could still land, the attempt's marker stays for a later
 * run to settle.
 *
 * A run that will not finish in this invocation stops at a page boundary instead, once
 * only RUN_DEADLINE_MARGIN_SECONDS + RUN_CHECKPOINT_MARGIN_SECONDS are left, saves a
 * checkpoint and answers with a Continuation: `resumeRun` goes on from there.
 */
export async function exportRun(services: RunServices, trigger: Trigger, options: RunOptions): Promise<ExportAnswer> {
  const { config } = services;
  const { runId, attempt, logger } = options;
  const startedAt = new Date();
  const keys = runKeys(config.prefix, runId, attempt);

  const committed = await committedRun(services, keys, startedAt, logger);
  if (committed) return committed;
  // Read while the fleet is swept: the comparison needs it only once the sweep is done, and
  // a failure to read it is thrown there, not reported now as unhandled.
  const previous = previousRun(services, keys.latestKey, logger);
  void previous.catch(() => undefined);
  logger.info('Run started', { runId, trigger: trigger.kind, runTime: trigger.runTime.toISOString() });
  const earlier = { files: [], sweep: { pages: 0, wasted: 0, written: 0 }, tokenRequests: 0, slices: [] };
  return exportSlice(services, { runId, trigger, startedAt, keys, previous, earlier }, options);
}

/**
 * Goes on with a run from the checkpoint a Continuation names, once it is shown to be this
 * deployment's, unaltered and recent (checkpoint.ts says what is refused, with EventError;
 * lifecycle.ts reads it back). A run that has been committed meanwhile, by this
 * continuation's own last invocation or by another attempt, is returned as it is
 * (`already-committed`).
 */
export async function resumeRun(services: RunServices, request: Continuation, options: Omit<RunOptions, 'runId'>): Promise<ExportAnswer> {
  const { config } = services;
  const { attempt, logger } = options;
  const { runId } = request;
  checkForeign(request, config);
  const startedAt = new Date();
  const keys = runKeys(config.prefix, runId, attempt);
  const committed = await committedRun(services, keys, startedAt, logger);
  if (committed) {
    await releaseContinuation(services, keys, request, logger);
    return committed;
  }
  const { checkpoint, seen, lookups } = await readCheckpoint(services, request, startedAt);
  checkCeilings(checkpoint, config, startedAt);
  const previous = previousRunAgain(services, checkpoint.previous, logger);
  void previous.catch(() => undefined);
  const { duplicates, unkeyed, requests, retries, pages, tokenRequests } = checkpoint.counts;
  logger.info('Run resumed', { runId, slice: checkpoint.slices.length + 1, from: request.checkpoint, devices: seen.size + unkeyed, pages });
  return exportSlice(
    services,
    {
      runId,
      trigger: triggerOf(checkpoint),
      startedAt: new Date(checkpoint.startedAt),
      keys,
      previous,
      earlier: {
        files: checkpoint.files,
        sweep: checkpoint.sweep,
        ...(checkpoint.verification ? { verification: FleetVerification.resume(checkpoint.verification, lookups) } : {}),
        tokenRequests,
        slices: checkpoint.slices,
        reader: { seen, counts: { duplicates, unkeyed, requests, retries, pages } },
      },
    },
    { ...options, runId },
  );
}

/**
 * One invocation's part of a run: from where earlier invocations stopped (nowhere, for a
 * run's first), to its commit, or to where it stops to let another invocation go on.
 * lifecycle.ts owns each step around the streaming: the markers, the checkpoint, the commit
 * and what it releases.
 */
async function exportSlice(services: RunServices, slice: Slice, options: RunOptions): Promise<ExportAnswer> {
  const lifecycle = await SliceLifecycle.start(services, slice, options);
  const streamed = await streamSlice(services, slice, lifecycle, options);
  if ('paused' in streamed) return lifecycle.checkpoint(streamed.paused, streamed.reader);
  const { config } = services;
  const { runId, trigger, keys, startedAt } = slice;
  const manifest = buildManifest({ runId, trigger, config, keys, snapshot: streamed.done, startedAt, finishedAt: new Date() });
  const summary = await lifecycle.commit(manifest);
  await lifecycle.release(summary);
  return summary;
}

/**
 * Streams this invocation's part of the fleet (stream-snapshot.ts) into the lifecycle's
 * writer, within the invocation's deadline, stopping at a page boundary once it is time to
 * checkpoint; progress is logged as it goes. A failure, or a pause before any progress
 * (a run that makes none is not continued), fails the invocation.
 */
async function streamSlice(
  services: RunServices,
  slice: Slice,
  lifecycle: SliceLifecycle,
  options: RunOptions,
): Promise<{ done: StreamedSnapshot } | { paused: PausedSnapshot; reader: FleetReader }> {
  const { config } = services;
  const { logger } = options;
  const { runId, keys, earlier } = slice;
  const { writer } = lifecycle;
  const remainingMs = options.remainingMs();
  const deadline = deadlineFor(remainingMs, config.deadlineMarginSeconds);
  const pause = pauseFor(remainingMs, config);
  const reader = new FleetReader(services, { runId, writer, logger }, earlier.reader);
  const pagesBefore = reader.pages;
  const progress = reportProgress(
    () => ({
      devices: reader.seen.size + reader.unkeyed,
      pages: reader.pages,
      window: reader.window,
      phase: sweepFinished(earlier.sweep) ? 'verification' : 'sweep',
    }),
    { runId, slice: lifecycle.number, logger },
  );
  let outcome;
  try {
    outcome = await streamSnapshot(services, {
      runId,
      reader,
      writer,
      deadline,
      pause: pause?.signal,
      logger,
      previous: slice.previous,
      indexKey: keys.indexKey,
      earlier,
    });
  } catch (error) {
    await lifecycle.failed();
    throw error;
  } finally {
    deadline.clear();
    pause?.clear();
    progress.stop();
  }
  progress.report();
  if (!('paused' in outcome)) return outcome;
  if (reader.pages === pagesBefore && (outcome.paused.verification?.resolved ?? 0) === 0) {
    await lifecycle.discard();
    throw new DeadlineError(
      `The invocation's time for work ran out before it wrote a page or resolved a device (RUN_CHECKPOINT_MARGIN_SECONDS ${config.checkpointMarginSeconds}); ` +
        'a run that makes no progress is not continued. Check that the platform answers, or give the invocation more time.',
    );
  }
  return { paused: outcome.paused, reader };
}

/**
 * A redelivered schedule whose run is done: its summary, after finishing its publication
 * in case the earlier attempt stopped between manifest and pointer.
 */
async function committedRun(services: RunServices, keys: RunKeys, startedAt: Date, logger: Logger): Promise<RunSummary | undefined> {
  const { config, s3 } = services;
  const committed = await readJson<Manifest>(s3, config.bucket, keys.manifestKey);
  if (!committed) return undefined;
  const pointerMoved = await advancePointer(s3, config.bucket, keys.latestKey, pointerTo(committed.value, keys.manifestKey));
  logger.info('Run already committed; returning its summary', { runId: committed.value.runId });
  return summaryOf(committed.value, { status: 'already-committed', keys, pointerMoved, tokenRequests: 0, startedAt });
}
