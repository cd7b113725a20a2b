import type { Logger } from '@aws-lambda-powertools/logger';
import { MalformedKeyIndexError, readKeyIndex, type KeyIndex } from '../storage/key-index.ts';
import type { Manifest, RunCounts, Verification } from '../storage/manifest.ts';
import type { Pointer } from '../storage/pointer.ts';
import { readJson } from '../storage/s3-json.ts';
import type { Brief } from '../platform/devices-api.ts';
import type { DeviceKey } from '../common/device-key.ts';
import type { DeviceKeySet } from '../common/device-key-set.ts';
import { isAbort, type FleetReader, type Sweep } from './fleet-reader.ts';
import type { RunServices } from '../common/services.ts';

/** The committed run a run compares itself with: the one `latest` names when it starts. */
export interface PreviousRun {
  verification: Verification;
  runId?: string;
  index?: KeyIndex;
  /** Where the index is: a continued run reads it again in each invocation. */
  indexKey?: string;
  /** Why there is no index to compare with, for the log. */
  reason?: string;
}

/** What the verification did, for the manifest and the summary. */
export type Verified = Pick<RunCounts, 'recovered' | 'removed' | 'unresolved' | 'verificationRequests'> & {
  verification: Verification;
  comparedWith?: string;
};

/**
 * The previous committed run and its key index. A run before key indexes, or one whose
 * manifest or index has expired, cannot be read, or is not the index its manifest lists (its
 * stored size or its count differs), leaves nothing to compare with: the run
 * goes on without, as a first run does. An S3 failure fails the run, as for any read.
 */
export async function previousRun(services: RunServices, latestKey: string, logger: Logger): Promise<PreviousRun> {
  const { s3, config } = services;
  const pointer = await readJson<Pointer>(s3, config.bucket, latestKey);
  if (!pointer) return { verification: 'first-run', reason: 'no run is committed yet' };
  const { runId, manifestKey } = pointer.value;
  const manifest = await readJson<Manifest>(s3, config.bucket, manifestKey);
  const entry = manifest?.value.index;
  try {
    const index = entry && (await readKeyIndex(s3, config.bucket, entry.key, entry));
    if (index) return { verification: 'compared', runId, index, indexKey: entry.key };
  } catch (error) {
    if (!(error instanceof MalformedKeyIndexError)) throw error;
    logger.warn("The previous run's key index cannot be read; this run is not compared with it", {
      previousRun: runId,
      index: entry?.key,
      error: error.message,
    });
  }
  const reason = !manifest ? 'its manifest is gone' : !entry ? 'it was written before key indexes' : 'its index is gone or unreadable';
  return { verification: 'no-previous-index', runId, reason: `the previous run has no key index: ${reason}` };
}

/**
 * How far a run's verification has got: what it found so far and what is left. A run that
 * continues in another invocation carries it in its checkpoint (with the keys still to look
 * up, when it stopped among them).
 */
export interface VerificationProgress extends Pick<Verified, 'verification' | 'comparedWith' | 'recovered' | 'removed' | 'unresolved'> {
  /** Requests the verification made in earlier invocations. */
  requests: number;
  /** Keys of the previous run's index that the first sweep had not seen. */
  notSeen: number;
  sweptAgain: boolean;
  /** The second sweep, while it is unfinished: the page it goes on from. */
  resweepFrom?: number;
  /** Set once the lookups are decided (after any second sweep): the keys not yet asked for follow it. */
  lookingUp?: true;
}

/**
 * The previous run a continued run compares itself with, as its first invocation found it:
 * the same run, whatever `latest` names by now. Its index is read again; should it have gone
 * meanwhile (expired, or removed by hand), the run goes on without, saying why.
 */
export async function previousRunAgain(services: RunServices, found: Omit<PreviousRun, 'index'>, logger: Logger): Promise<PreviousRun> {
  if (found.indexKey === undefined) return found;
  try {
    const index = await readKeyIndex(services.s3, services.config.bucket, found.indexKey);
    if (index) return { ...found, index };
  } catch (error) {
    if (!(error instanceof MalformedKeyIndexError)) throw error;
  }
  logger.warn("The previous run's key index is gone or unreadable since this run began; this run is not compared with it", {
    previousRun: found.runId,
    index: found.indexKey,
  });
  const { indexKey: _gone, ...rest } = found;
  return { ...rest, verification: 'no-previous-index', reason: 'the previous run has no key index: its index is gone or unreadable' };
}

/**
 * After the sweep, before the commit: makes sure the snapshot holds every device the
 * previous run exported that still exists. Offset paging over a fleet that shrinks while it
 * is read skips a device at a page boundary for every device deleted among those already
 * read, and nothing in the pages shows it. Each key of the previous run's index that this
 * run did not see is a device either deleted since, or skipped; resolved cheapest first:
 *
 * - no more than there are pages in the sweep: one lookup each (200: recovered and written;
 *   404 or 400 "Device not found": removed);
 * - more: one more sweep costs fewer requests than the lookups, and finds what the first
 *   one skipped (de-duplication keeps each device once); then a lookup for each still
 *   missing, up to one sweep's worth again. Past that they are nearly all devices deleted
 *   since the previous run (a skipped device has to be skipped by both sweeps), and looking
 *   them all up could take longer than a run has: they are counted as `unresolved`.
 *
 * So verification costs at most two sweeps' worth of requests, and nothing but the index
 * comparison when no device is missing. The cost model is in docs/performance.md.
 *
 * Without an index there is nothing to look up; but where the platform's `count` fell
 * between the first and the last page, devices were deleted during the sweep and some were
 * probably skipped, so the list is swept once more.
 *
 * Like the sweep, it stops at a boundary when its invocation's time is up (`pause`): between
 * pages of the second sweep, or between lookups (answers in key order; those after the stop
 * are asked again), and `progress` and `pending` say where to go on.
 */
export class FleetVerification {
  #progress: VerificationProgress;
  #pending: DeviceKey[] | undefined;
  /** Lookups answered in this invocation. */
  resolved = 0;

  private constructor(progress: VerificationProgress, pending?: DeviceKey[]) {
    this.#progress = progress;
    this.#pending = pending;
  }

  /** Decides, once the first sweep is complete, what the verification will do, and says so. */
  static start(previous: PreviousRun, seen: DeviceKeySet, run: { sweep: Sweep; firstPageIndex: number; logger: Logger; runId: string }): FleetVerification {
    const { sweep, firstPageIndex, logger, runId } = run;
    const { firstCount, lastCount } = sweep;
    const shrank = firstCount !== undefined && lastCount !== undefined && lastCount < firstCount;
    if (firstCount !== lastCount) logger.info('The fleet changed size while it was read', { runId, firstCount, lastCount });
    const progress: VerificationProgress = {
      verification: previous.verification,
      recovered: 0,
      removed: 0,
      unresolved: 0,
      requests: 0,
      notSeen: 0,
      sweptAgain: false,
    };
    if (!previous.index) {
      logger.info('No previous key index to compare with: verification skipped', {
        runId,
        verification: previous.verification,
        reason: previous.reason,
        previousRun: previous.runId,
      });
      if (shrank) {
        logger.info('The fleet shrank while it was read: sweeping it once more for devices the paging skipped', { runId, firstCount, lastCount });
        progress.resweepFrom = firstPageIndex;
      }
      return new FleetVerification(progress);
    }
    progress.comparedWith = previous.runId;
    progress.notSeen = missingFrom(previous.index, seen).length;
    progress.sweptAgain = progress.notSeen > sweep.pages;
    if (progress.sweptAgain) progress.resweepFrom = firstPageIndex;
    return new FleetVerification(progress);
  }

  /** A verification an earlier invocation of the run left off. */
  static resume(progress: VerificationProgress, pending?: DeviceKey[]): FleetVerification {
    return new FleetVerification({ ...progress }, progress.lookingUp ? (pending ?? []) : undefined);
  }

  get progress(): Readonly<VerificationProgress> {
    return this.#progress;
  }

  /** The keys still to look up, once the lookups are decided. */
  get pending(): readonly DeviceKey[] | undefined {
    return this.#pending;
  }

  /** Carries on: resolves with what the verification did, or undefined when `pause` stopped it first. */
  async run(
    reader: FleetReader,
    previous: PreviousRun,
    run: { sweep: Sweep; signal: AbortSignal; pause?: AbortSignal; logger: Logger; runId: string },
  ): Promise<Verified | undefined> {
    const { sweep, signal, pause, logger, runId } = run;
    const progress = this.#progress;
    const requestsBefore = reader.requests.requests;
    const requests = () => progress.requests + reader.requests.requests - requestsBefore;
    const paused = () => {
      progress.requests = requests();
      return undefined;
    };

    if (progress.resweepFrom !== undefined) {
      const again = await reader.sweep(signal, true, { from: progress.resweepFrom, pause });
      progress.recovered += again.written;
      if (again.next !== undefined) {
        progress.resweepFrom = again.next;
        return paused();
      }
      delete progress.resweepFrom;
    }
    if (previous.index && !progress.lookingUp) {
      // After a second sweep, only what both missed; at most one sweep's worth of lookups.
      const missing = missingFrom(previous.index, reader.seen);
      this.#pending = missing.slice(0, sweep.pages);
      progress.unresolved = missing.length - this.#pending.length;
      progress.lookingUp = true;
    }
    if (this.#pending && this.#pending.length > 0) {
      const done = await this.#lookUp(reader, this.#pending, signal, pause);
      this.#pending = this.#pending.slice(done);
      if (this.#pending.length > 0) return paused();
    }

    const { verification, comparedWith, recovered, removed, unresolved } = progress;
    const result: Verified = {
      verification,
      ...(comparedWith === undefined ? {} : { comparedWith }),
      recovered,
      removed,
      unresolved,
      verificationRequests: requests(),
    };
    if (previous.index) {
      const figures = { runId, previousDevices: previous.index.count, notSeen: progress.notSeen, sweptAgain: progress.sweptAgain, ...result };
      if (result.recovered > 0) logger.info('Recovered devices the sweep missed', figures);
      else logger.info('Compared the snapshot with the previous run', figures);
      if (result.unresolved > 0) {
        logger.warn('Left devices of the previous run unresolved: two sweeps missed them, and looking them all up would cost more than a sweep', figures);
      }
    }
    return result;
  }

  /**
   * Asks for every key at once (the window lets through as many as it allows, in this
   * order), and writes the answers in key order as they come: a device found is recovered,
   * one the platform says is gone is removed. Returns how many keys, from the first, are
   * done: all of them, unless `pause` stopped it.
   */
  async #lookUp(reader: FleetReader, keys: readonly DeviceKey[], signal: AbortSignal, pause: AbortSignal | undefined): Promise<number> {
    const asking = pause ? AbortSignal.any([signal, pause]) : signal;
    const answers = keys.map((key) => reader.lookup(key, asking));
    for (const answer of answers) void answer.catch(() => undefined);
    let done = 0;
    try {
      while (done < keys.length) {
        const brief = await (answers[done] as Promise<Brief | undefined>);
        if (!brief) this.#progress.removed += 1;
        else if (await reader.found(keys[done] as DeviceKey, brief)) this.#progress.recovered += 1;
        done += 1;
        this.resolved += 1;
        if (pause?.aborted) break;
      }
    } catch (error) {
      if (!pause?.aborted || signal.aborted || !isAbort(error, pause)) throw error;
    }
    return done;
  }
}

/** Keys of the previous run's index this run has not seen, in the index's order. */
function missingFrom(index: KeyIndex, seen: DeviceKeySet): DeviceKey[] {
  const missing: DeviceKey[] = [];
  for (const key of index.keys()) if (!seen.has(key)) missing.push(key);
  return missing;
}
