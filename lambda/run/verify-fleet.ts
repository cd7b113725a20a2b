import type { Logger } from '@aws-lambda-powertools/logger';
import { MalformedKeyIndexError, readKeyIndex, type KeyIndex } from '../storage/key-index.ts';
import type { Manifest, RunCounts, Verification } from '../storage/manifest.ts';
import type { Pointer } from '../storage/pointer.ts';
import { readJson } from '../storage/s3-json.ts';
import type { DeviceKey } from './device-key.ts';
import type { FleetReader, Sweep } from './fleet-reader.ts';
import type { RunServices } from './run-context.ts';

/** The committed run a run compares itself with: the one `latest` names when it starts. */
export interface PreviousRun {
  verification: Verification;
  runId?: string;
  index?: KeyIndex;
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
 * manifest or index has expired or cannot be read, leaves nothing to compare with: the run
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
    const index = entry && (await readKeyIndex(s3, config.bucket, entry.key));
    if (index) return { verification: 'compared', runId, index };
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
 */
export async function verifyFleet(
  reader: FleetReader,
  previous: PreviousRun,
  run: { sweep: Sweep; signal: AbortSignal; logger: Logger; runId: string },
): Promise<Verified> {
  const { sweep, signal, logger, runId } = run;
  const requestsBefore = reader.requests.requests;
  const { firstCount, lastCount } = sweep;
  const shrank = firstCount !== undefined && lastCount !== undefined && lastCount < firstCount;
  if (firstCount !== lastCount) logger.info('The fleet changed size while it was read', { runId, firstCount, lastCount });
  const verified: Verified = { verification: previous.verification, recovered: 0, removed: 0, unresolved: 0, verificationRequests: 0 };
  const done = (): Verified => ({ ...verified, verificationRequests: reader.requests.requests - requestsBefore });

  if (!previous.index) {
    logger.info('No previous key index to compare with: verification skipped', {
      runId,
      verification: previous.verification,
      reason: previous.reason,
      previousRun: previous.runId,
    });
    if (shrank) {
      logger.info('The fleet shrank while it was read: sweeping it once more for devices the paging skipped', { runId, firstCount, lastCount });
      verified.recovered = (await reader.sweep(signal, true)).written;
    }
    return done();
  }

  verified.comparedWith = previous.runId;
  let missing = missingFrom(previous.index, reader.seen);
  const notSeen = missing.length;
  const sweptAgain = notSeen > sweep.pages;
  if (sweptAgain) {
    verified.recovered += (await reader.sweep(signal, true)).written;
    missing = missing.filter((key) => !reader.seen.has(key));
  }
  const asked = missing.slice(0, sweep.pages);
  verified.unresolved = missing.length - asked.length;
  // All asked at once: the window lets through as many as it allows, in this order.
  const answers = await Promise.all(asked.map((key) => reader.lookup(key, signal)));
  for (const [i, brief] of answers.entries()) {
    if (!brief) verified.removed += 1;
    else if (await reader.found(asked[i] as DeviceKey, brief)) verified.recovered += 1;
  }

  const result = done();
  const figures = { runId, previousDevices: previous.index.count, notSeen, sweptAgain, ...result };
  if (result.recovered > 0) logger.info('Recovered devices the sweep missed', figures);
  else logger.info('Compared the snapshot with the previous run', figures);
  if (result.unresolved > 0) {
    logger.warn('Left devices of the previous run unresolved: two sweeps missed them, and looking them all up would cost more than a sweep', figures);
  }
  return result;
}

/** Keys of the previous run's index this run has not seen, in the index's order. */
function missingFrom(index: KeyIndex, seen: ReadonlySet<DeviceKey>): DeviceKey[] {
  const missing: DeviceKey[] = [];
  for (const key of index.keys()) if (!seen.has(key)) missing.push(key);
  return missing;
}
