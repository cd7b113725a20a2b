import type { Logger } from '@aws-lambda-powertools/logger';
import { DeadlineError, EventError } from '../common/errors.ts';
import type { Continuation, Trigger } from '../common/request-types.ts';
import { CheckpointMismatchError, deleteCheckpoints, getCheckpoint, getKeySet, missingObjects, putCheckpoint, putKeySet } from '../storage/checkpoints.ts';
import { DataWriter } from '../storage/data-writer.ts';
import { MalformedKeyIndexError } from '../storage/key-index.ts';
import { checkpointKeys, runKeys, type RunKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { advancePointer, pointerTo } from '../storage/pointer.ts';
import { readJson } from '../storage/s3-json.ts';
import { buildManifest } from './build-manifest.ts';
import { checkedCheckpoint, checkForeign, triggerOf, type Checkpoint, type SliceRecord } from './checkpoint.ts';
import { commitAndPublish } from './commit.ts';
import { deadlineFor, pauseFor } from '../common/deadline.ts';
import type { DeviceKey } from '../common/device-key.ts';
import { FleetReader, type ReaderCounts } from './fleet-reader.ts';
import { lineageCheckpoints, refreshMarkers, removeMarkers, settleAfterCommit } from './lineage.ts';
import { trackMarker, type TrackedMarker } from './marker.ts';
import { reportProgress } from './progress.ts';
import type { RunServices } from '../common/services.ts';
import { discardQuietly, streamSnapshot, sweepFinished, type EarlierWork, type PausedSnapshot } from './stream-snapshot.ts';
import { summaryOf, type RunSummary } from './summary.ts';
import { FleetVerification, previousRun, previousRunAgain, type PreviousRun } from './verify-fleet.ts';

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

/** What one invocation of a run is handed: the run, and what earlier invocations left it. */
interface Slice {
  runId: string;
  trigger: Trigger;
  /** When the run's first invocation started. */
  startedAt: Date;
  keys: RunKeys;
  previous: Promise<PreviousRun>;
  earlier: EarlierWork & { slices: SliceRecord[]; reader?: { seen: Set<DeviceKey>; counts: ReaderCounts } };
}

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
 * deployment's, unaltered and recent (checkpoint.ts says what is refused, with EventError).
 * A run that has been committed meanwhile, by this continuation's own last invocation or by
 * another attempt, is returned as it is (`already-committed`).
 */
export async function resumeRun(services: RunServices, request: Continuation, options: Omit<RunOptions, 'runId'>): Promise<ExportAnswer> {
  const { config, s3 } = services;
  const { attempt, logger } = options;
  const { runId } = request;
  checkForeign(request, config);
  const startedAt = new Date();
  const keys = runKeys(config.prefix, runId, attempt);
  const committed = await committedRun(services, keys, startedAt, logger);
  if (committed) {
    await releaseQuietly(services, keys, request, logger);
    return committed;
  }
  let stored;
  try {
    stored = await getCheckpoint<Checkpoint>(s3, config.bucket, request.checkpoint);
  } catch (error) {
    if (!(error instanceof CheckpointMismatchError)) throw error;
    throw new EventError(`The checkpoint ${request.checkpoint} cannot be resumed: ${error.message}.`);
  }
  const checkpoint = checkedCheckpoint(request, stored, config, startedAt);
  let seen: Set<DeviceKey>;
  let lookups: DeviceKey[] | undefined;
  try {
    seen = new Set((await getKeySet(s3, config.bucket, checkpoint.seen)).keys());
    lookups = checkpoint.lookups ? [...(await getKeySet(s3, config.bucket, checkpoint.lookups)).keys()] : undefined;
  } catch (error) {
    if (!(error instanceof CheckpointMismatchError) && !(error instanceof MalformedKeyIndexError)) throw error;
    throw new EventError(`The checkpoint ${request.checkpoint} cannot be resumed: ${error.message}.`);
  }
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
 */
async function exportSlice(services: RunServices, slice: Slice, options: RunOptions): Promise<ExportAnswer> {
  const { config, s3 } = services;
  const { attempt, logger } = options;
  const { runId, keys, earlier } = slice;
  const sliceStartedAt = new Date();
  const number = earlier.slices.length + 1;

  const tracked = trackMarker(services, keys, { runId, attempt, startedAt: sliceStartedAt });
  await tracked.started();
  if (earlier.slices.length > 0) {
    // Refreshed before anything else, so that no run settles the files from here on; then
    // they must all still be there (a run may have settled them before this resume began).
    await refreshMarkers(services, keys, runId, earlier.slices);
    const missing = await missingObjects(s3, config.bucket, keys.dataPrefix, earlier.files);
    if (missing.length > 0) {
      await tracked.ended(logger);
      throw new EventError(
        `Run ${runId} cannot be resumed: ${missing.length} of its data files are gone (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}). ` +
          'Start the run again from its first event.',
      );
    }
  }

  // File numbers go on from the earlier invocations'; each file's name carries this invocation's attempt.
  const writer = new DataWriter(s3, config.bucket, (index) => keys.dataKey(earlier.files.length + index), config.fileMaxBytes, { 'export-run-id': runId });
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
    { runId, slice: number, logger },
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
    await tracked.failed(writer, logger);
    throw error;
  } finally {
    deadline.clear();
    pause?.clear();
    progress.stop();
  }
  progress.report();
  const record: SliceRecord = { attempt, startedAt: sliceStartedAt.toISOString(), durationMs: Date.now() - sliceStartedAt.getTime() };

  if ('paused' in outcome) {
    if (reader.pages === pagesBefore && (outcome.paused.verification?.resolved ?? 0) === 0) {
      await discardQuietly(writer, runId, logger);
      await tracked.failed(writer, logger);
      throw new DeadlineError(
        `The invocation's time for work ran out before it wrote a page or resolved a device (RUN_CHECKPOINT_MARGIN_SECONDS ${config.checkpointMarginSeconds}); ` +
          'a run that makes no progress is not continued. Check that the platform answers, or give the invocation more time.',
      );
    }
    return checkpointRun(services, slice, { paused: outcome.paused, reader, writer, tracked, record, logger });
  }

  const manifest = buildManifest({ runId, trigger: slice.trigger, config, keys, snapshot: outcome.done, startedAt: slice.startedAt, finishedAt: new Date() });
  const lineage = earlier.slices.map((earlierSlice) => earlierSlice.attempt);
  // The earlier invocations' markers guard files the manifest now lists: they go with this one's, once committed.
  const committing: TrackedMarker =
    lineage.length === 0
      ? tracked
      : {
          ...tracked,
          async ended(log) {
            await tracked.ended(log);
            const refused = await removeMarkers(services, lineage);
            if (refused.length > 0) log.warn("Could not remove the markers of the run's earlier invocations; a later run removes them", { runId, refused });
          },
        };
  const summary = await commitAndPublish(services, { keys, manifest, marker: committing, writer, startedAt: slice.startedAt, logger });
  if (lineage.length > 0) {
    await settleAfterCommit(services, keys, { runId, prefix: config.prefix, lineage, committedHere: summary.status === 'committed', logger });
  }
  return summary;
}

/**
 * Saves where the run stands, refreshes the markers that guard its files, and answers with
 * the Continuation that resumes it. If the checkpoint cannot be saved, the invocation fails
 * as any run does (its own files removed); the run's earlier checkpoint, if any, stays good.
 */
async function checkpointRun(
  services: RunServices,
  slice: Slice,
  stopped: { paused: PausedSnapshot; reader: FleetReader; writer: DataWriter; tracked: TrackedMarker; record: SliceRecord; logger: Logger },
): Promise<Continuation> {
  const { config, s3 } = services;
  const { runId, keys, earlier } = slice;
  const { paused, reader, writer, tracked, record, logger } = stopped;
  const slices = [...earlier.slices, record];
  const files = [...earlier.files, ...paused.files];
  const where = checkpointKeys(config.prefix, runId, record.attempt);
  const pending = paused.verification?.pending;
  let sha256: string;
  try {
    const [seen, lookups] = await Promise.all([
      putKeySet(s3, config.bucket, where.seen, reader.seen),
      pending ? putKeySet(s3, config.bucket, where.lookups, pending) : undefined,
    ]);
    const { index: _held, ...previous } = await slice.previous;
    const checkpoint: Checkpoint = {
      schemaVersion: 1,
      runId,
      attempt: record.attempt,
      bucket: config.bucket,
      prefix: config.prefix,
      trigger: {
        kind: slice.trigger.kind,
        runTime: slice.trigger.runTime.toISOString(),
        ...(slice.trigger.kind === 'on-demand' && slice.trigger.label ? { label: slice.trigger.label } : {}),
      },
      startedAt: slice.startedAt.toISOString(),
      savedAt: new Date().toISOString(),
      slices,
      files,
      sweep: paused.sweep,
      ...(paused.verification ? { verification: paused.verification.progress } : {}),
      counts: {
        duplicates: reader.duplicates,
        unkeyed: reader.unkeyed,
        requests: { ...reader.requests },
        retries: reader.budget.spent,
        pages: reader.pages,
        tokenRequests: paused.tokenRequests,
      },
      previous,
      seen,
      ...(lookups ? { lookups } : {}),
    };
    sha256 = await putCheckpoint(s3, config.bucket, where.checkpoint, checkpoint);
    await refreshMarkers(services, keys, runId, slices);
  } catch (error) {
    await discardQuietly(writer, runId, logger);
    await tracked.failed(writer, logger);
    throw error;
  }
  // Two checkpoints back can no longer be asked for: a retry of this invocation resumes from
  // the one before, the next invocation from this one.
  const stale = lineageCheckpoints(
    config.prefix,
    runId,
    earlier.slices.slice(0, -1).map(({ attempt }) => attempt),
  );
  if (stale.length > 0) {
    await deleteCheckpoints(s3, config.bucket, stale).catch((error: unknown) =>
      logger.warn('Could not remove earlier checkpoints of this run; they go when the run commits, or expire', { runId, error: String(error) }),
    );
  }
  const continuation: Continuation = {
    status: 'continue',
    runId,
    attempt: record.attempt,
    bucket: config.bucket,
    checkpoint: where.checkpoint,
    sha256,
    slice: slices.length,
    phase: sweepFinished(paused.sweep) ? 'verification' : 'sweep',
    devices: files.reduce((sum, file) => sum + file.devices, 0),
    pages: reader.pages,
    elapsedMs: slices.reduce((sum, { durationMs }) => sum + durationMs, 0),
  };
  logger.info('Run paused: it goes on in the next invocation, which the returned continuation starts', { continuation });
  return continuation;
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

/**
 * A continued run found committed (by another attempt, or by this continuation's own last
 * invocation, whose answer was lost): whatever of this continuation the manifest does not
 * list goes, with its markers and the run's checkpoints. Only for the checkpoint the
 * continuation was given for; anything else is left to the settling of old attempts.
 */
async function releaseQuietly(services: RunServices, keys: RunKeys, request: Continuation, logger: Logger): Promise<void> {
  const { s3, config } = services;
  const stored = await getCheckpoint<Checkpoint>(s3, config.bucket, request.checkpoint).catch(() => undefined);
  if (stored?.sha256 !== request.sha256) return;
  const lineage = stored.value.slices.map(({ attempt }) => attempt);
  await settleAfterCommit(services, keys, { runId: request.runId, prefix: config.prefix, lineage, committedHere: false, logger });
}
