import type { Logger } from '@aws-lambda-powertools/logger';
import type { DeviceKey } from '../common/device-key.ts';
import { DeviceKeySet } from '../common/device-key-set.ts';
import { ErrorCode, EventError, StorageError } from '../common/errors.ts';
import type { AbandonRequest, Continuation, Trigger } from '../common/request-types.ts';
import type { RunServices } from '../common/services.ts';
import {
  CheckpointMismatchError,
  deleteCheckpoints,
  deleteRunCheckpoints,
  getCheckpoint,
  getKeySet,
  missingObjects,
  putCheckpoint,
  putKeySet,
} from '../storage/checkpoints.ts';
import { DataWriter } from '../storage/data-writer.ts';
import type { Refusal } from '../storage/deletes.ts';
import { MalformedKeyIndexError } from '../storage/key-index.ts';
import { checkpointKeys, type RunKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { checkContents } from './checkpoint-contents.ts';
import { checkedCheckpoint, checkpointOf, continuationOf, type Checkpoint, type SliceRecord } from './checkpoint.ts';
import { commitAndPublish } from './commit.ts';
import type { FleetReader, ReaderCounts } from './fleet-reader.ts';
import { refreshMarkers, releaseLineage, removeMarkers, trackMarker, type TrackedMarker } from './markers.ts';
import { discardQuietly, type EarlierWork, type PausedSnapshot } from './stream-snapshot.ts';
import type { RunSummary } from './summary.ts';
import type { PreviousRun } from './verify-fleet.ts';

/** What one invocation of a run is handed: the run, and what earlier invocations left it. */
export interface Slice {
  runId: string;
  trigger: Trigger;
  /** When the run's first invocation started. */
  startedAt: Date;
  keys: RunKeys;
  previous: Promise<PreviousRun>;
  earlier: EarlierWork & { slices: SliceRecord[]; reader?: { seen: DeviceKeySet; counts: ReaderCounts } };
}

/**
 * One invocation's part in the life of its run, step by step as export-run.ts takes it:
 * `start` (its marker; for a continued run, the earlier invocations' markers refreshed and
 * their files found), then `checkpoint` (the run goes on in another invocation) or `commit`,
 * then `release` (what the committed run no longer needs); `failed` or `discard` when it
 * fails. It reads and writes S3 through storage/ alone.
 */
export class SliceLifecycle {
  /** This invocation's data files: numbered on from the earlier invocations', named by its attempt. */
  readonly writer: DataWriter;
  readonly #services: RunServices;
  readonly #slice: Slice;
  readonly #marker: TrackedMarker;
  readonly #startedAt: Date;
  readonly #logger: Logger;

  private constructor(services: RunServices, slice: Slice, marker: TrackedMarker, startedAt: Date, logger: Logger) {
    const { config, s3 } = services;
    const { keys, earlier, runId } = slice;
    this.#services = services;
    this.#slice = slice;
    this.#marker = marker;
    this.#startedAt = startedAt;
    this.#logger = logger;
    this.writer = new DataWriter(s3, config.bucket, (index) => keys.dataKey(earlier.files.length + index), config.fileMaxBytes, { 'export-run-id': runId });
  }

  /**
   * Writes this invocation's marker before any data. A continued run's earlier markers are
   * refreshed before anything else, so that no run settles the files from here on; then
   * those files must all still be there (a run may have settled them before this resume
   * began): EventError otherwise.
   */
  static async start(services: RunServices, slice: Slice, run: { attempt: string; logger: Logger }): Promise<SliceLifecycle> {
    const { config, s3 } = services;
    const { runId, keys, earlier } = slice;
    const startedAt = new Date();
    const marker = trackMarker(services, keys, { runId, attempt: run.attempt, startedAt });
    await marker.started();
    if (earlier.slices.length > 0) {
      await refreshMarkers(services, keys, runId, earlier.slices);
      const missing = await missingObjects(s3, config.bucket, keys.dataPrefix, earlier.files);
      if (missing.length > 0) {
        await marker.ended(run.logger);
        throw new EventError(`Run ${runId} cannot be resumed: ${goneFiles(missing)}. Start the run again from its first event.`);
      }
    }
    return new SliceLifecycle(services, slice, marker, startedAt, run.logger);
  }

  get attempt(): string {
    return this.#marker.attempt;
  }

  /** Which of its run's invocations this is, from 1. */
  get number(): number {
    return this.#slice.earlier.slices.length + 1;
  }

  /** The invocation failed, its files removed or left to land: its marker goes or stays (markers.ts). */
  async failed(): Promise<void> {
    await this.#marker.failed(this.writer, this.#logger);
  }

  /** The invocation fails here: its files are removed, then its marker goes or stays. */
  async discard(): Promise<void> {
    await discardQuietly(this.writer, this.#slice.runId, this.#logger);
    await this.failed();
  }

  /**
   * Saves where the run stands (its key sets, then the checkpoint: checkpoint.ts builds it),
   * refreshes the markers that guard its files, and answers with the Continuation that
   * resumes it. If the checkpoint cannot be saved, the invocation fails as any run does (its
   * own files removed); the run's earlier checkpoint, if any, stays good.
   */
  async checkpoint(paused: PausedSnapshot, reader: FleetReader): Promise<Continuation> {
    const services = this.#services;
    const { config, s3 } = services;
    const { runId, keys, earlier } = this.#slice;
    const slices = [...earlier.slices, this.#record()];
    const where = checkpointKeys(config.prefix, runId, this.attempt);
    const pending = paused.verification?.pending;
    let checkpoint: Checkpoint;
    let sha256: string;
    try {
      const [seen, lookups] = await Promise.all([
        putKeySet(s3, config.bucket, where.seen, reader.seen),
        pending ? putKeySet(s3, config.bucket, where.lookups, pending) : undefined,
      ]);
      const { index: _held, ...previous } = await this.#slice.previous;
      const { trigger, startedAt } = this.#slice;
      const files = [...earlier.files, ...paused.files];
      const stopped = { runId, attempt: this.attempt, trigger, startedAt, slices, files, paused, counts: reader.counts, previous };
      checkpoint = checkpointOf(stopped, { bucket: config.bucket, prefix: config.prefix, seen, lookups, savedAt: new Date() });
      sha256 = await putCheckpoint(s3, config.bucket, where.checkpoint, checkpoint);
      await refreshMarkers(services, keys, runId, slices);
    } catch (error) {
      await this.discard();
      throw error;
    }
    // Two checkpoints back can no longer be asked for: a retry of this invocation resumes from
    // the one before, the next invocation from this one.
    const stale = earlier.slices.slice(0, -1).map(({ attempt }) => attempt);
    if (stale.length > 0) {
      await deleteLineageCheckpoints(services, runId, stale).catch((error: unknown) =>
        this.#logger.warn('Could not remove earlier checkpoints of this run; they go when the run commits, or expire', { runId, error: String(error) }),
      );
    }
    const continuation = continuationOf(checkpoint, { key: where.checkpoint, sha256 });
    this.#logger.info('Run paused: it goes on in the next invocation, which the returned continuation starts', { continuation });
    return continuation;
  }

  /**
   * Commits the run (commit.ts) with the snapshot this and the earlier invocations wrote.
   * Their markers guard files the manifest now lists: they go with this one's, once committed.
   */
  async commit(manifest: Manifest): Promise<RunSummary> {
    const { runId, keys, startedAt } = this.#slice;
    const lineage = this.#lineage();
    const tracked = this.#marker;
    const services = this.#services;
    if (lineage.length > 0) await this.#earlierFilesStillThere();
    const marker: TrackedMarker =
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
    return commitAndPublish(services, { keys, manifest, marker, writer: this.writer, startedAt, logger: this.#logger });
  }

  /** After the commit, whoever made it: what a continued run's earlier invocations left that it no longer needs goes. */
  async release(summary: Pick<RunSummary, 'status'>): Promise<void> {
    const lineage = this.#lineage();
    if (lineage.length === 0) return;
    const { runId, keys } = this.#slice;
    await settleAfterCommit(this.#services, keys, { runId, lineage, committedHere: summary.status === 'committed', logger: this.#logger });
  }

  /**
   * The earlier invocations' files, checked again just before the commit: start found them,
   * but an abandon of this run (a retried Abandon step, an operator's) may have removed them
   * since, and a manifest must never name a missing file. This invocation's files go too.
   */
  async #earlierFilesStillThere(): Promise<void> {
    const { config, s3 } = this.#services;
    const { runId, keys, earlier } = this.#slice;
    const missing = await missingObjects(s3, config.bucket, keys.dataPrefix, earlier.files);
    if (missing.length === 0) return;
    await this.discard();
    throw new StorageError(
      ErrorCode.RUN_FILES_GONE,
      `Run ${runId} was not committed: ${goneFiles(missing)} since it resumed. Start the run again from its first event.`,
    );
  }

  /** This invocation, as the run's checkpoint lists it. */
  #record(): SliceRecord {
    return { attempt: this.attempt, startedAt: this.#startedAt.toISOString(), durationMs: Date.now() - this.#startedAt.getTime() };
  }

  /** The run's earlier invocations. */
  #lineage(): string[] {
    return this.#slice.earlier.slices.map(({ attempt }) => attempt);
  }
}

/** The data files of a run that are gone, for a message: how many, and the first few. */
function goneFiles(missing: readonly string[]): string {
  return `${missing.length} of its data files are gone (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})`;
}

/** What a continuation resumes from: its checkpoint, checked, and the key sets the checkpoint names. */
export interface Resumed {
  checkpoint: Checkpoint;
  /** The de-duplication set so far. */
  seen: DeviceKeySet;
  /** The verification's lookups not yet made, once it is looking devices up. */
  lookups?: DeviceKey[];
}

/**
 * Reads back the checkpoint a continuation names, checks it against the continuation and
 * this deployment (checkpoint.ts says what is refused), then its key sets against it: one
 * read for the resume, EventError when anything is not what was saved.
 */
export async function readCheckpoint(services: RunServices, request: Continuation, now: Date): Promise<Resumed> {
  const { config, s3 } = services;
  try {
    const checkpoint = checkedCheckpoint(request, await getCheckpoint<Checkpoint>(s3, config.bucket, request.checkpoint), config, now);
    const seen = DeviceKeySet.from((await getKeySet(s3, config.bucket, checkpoint.seen)).keys());
    const lookups = checkpoint.lookups ? [...(await getKeySet(s3, config.bucket, checkpoint.lookups)).keys()] : undefined;
    return { checkpoint, seen, ...(lookups ? { lookups } : {}) };
  } catch (error) {
    if (!(error instanceof CheckpointMismatchError) && !(error instanceof MalformedKeyIndexError)) throw error;
    throw new EventError(`The checkpoint ${request.checkpoint} cannot be resumed: ${error.message}.`);
  }
}

/**
 * The invocations of a continued run as the checkpoint a continuation (or an abandon
 * request) names lists them: `missing` only when S3 answers that there is no such key,
 * `different` when it holds another than the one the request was given for, or bytes that
 * are not a checkpoint (its SHA-256 is compared first, whatever they are). A checkpoint that
 * matches but names objects not its run's is refused (EventError, checkpoint-contents.ts);
 * any other failure to read it is thrown, so that nothing is removed on a guess.
 */
export async function lineageOf(
  services: RunServices,
  request: AbandonRequest,
): Promise<{ checkpoint: 'found'; lineage: string[] } | { checkpoint: 'missing' | 'different' }> {
  const { s3, config } = services;
  let stored;
  try {
    stored = await getCheckpoint<Checkpoint>(s3, config.bucket, request.checkpoint);
  } catch (error) {
    if (error instanceof CheckpointMismatchError) return { checkpoint: 'different' };
    throw error;
  }
  if (!stored) return { checkpoint: 'missing' };
  if (stored.sha256 !== request.sha256) return { checkpoint: 'different' };
  const checkpoint = stored.value;
  if (checkpoint?.runId !== request.runId || checkpoint.attempt !== request.attempt) return { checkpoint: 'different' };
  checkContents(checkpoint, config.prefix);
  return { checkpoint: 'found', lineage: checkpoint.slices.map(({ attempt }) => attempt) };
}

/**
 * A continued run found committed (by another attempt, or by this continuation's own last
 * invocation, whose answer was lost): whatever of this continuation the manifest does not
 * list goes, with its markers and the run's checkpoints. Only for the checkpoint the
 * continuation was given for; anything else is left to the settling of old attempts.
 */
export async function releaseContinuation(services: RunServices, keys: RunKeys, request: Continuation, logger: Logger): Promise<void> {
  const named = await lineageOf(services, request);
  if (named.checkpoint !== 'found') return;
  await settleAfterCommit(services, keys, { runId: request.runId, lineage: named.lineage, committedHere: false, logger });
}

/** Deletes the checkpoints the given invocations of a run saved, each with its key sets. */
export async function deleteLineageCheckpoints(
  services: RunServices,
  runId: string,
  lineage: readonly string[],
): Promise<{ deleted: string[]; refused: Refusal[] }> {
  const { config, s3 } = services;
  return deleteCheckpoints(
    s3,
    config.bucket,
    lineage.map((attempt) => checkpointKeys(config.prefix, runId, attempt)),
  );
}

/**
 * After the run's commit: no checkpoint of it can be resumed any more. When this attempt
 * lost the commit to another attempt of the run, the earlier invocations' files, which that
 * manifest does not list, go too, with their markers. A failure is logged, not thrown: the
 * run is committed either way, and checkpoints expire (see the bucket's lifecycle).
 */
async function settleAfterCommit(
  services: RunServices,
  keys: RunKeys,
  run: { runId: string; lineage: readonly string[]; committedHere: boolean; logger: Logger },
): Promise<void> {
  const { s3, config } = services;
  const { runId, lineage, logger } = run;
  try {
    if (!run.committedHere) await releaseLineage(services, keys, lineage, logger, runId);
    const { refused } = await deleteRunCheckpoints(s3, config.bucket, config.prefix, runId);
    if (refused.length > 0) logger.warn("S3 did not delete the committed run's checkpoints; they expire", { runId, refused });
  } catch (error) {
    logger.warn("Could not remove the committed run's checkpoints; they expire", { runId, error: error instanceof Error ? error.message : String(error) });
  }
}
