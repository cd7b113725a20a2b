import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { DataFile, DataWriter } from '../storage/data-writer.ts';
import { writeKeyIndex, type KeyIndexEntry } from '../storage/key-index.ts';
import type { RunCounts } from '../storage/manifest.ts';
import type { Deadline } from './deadline.ts';
import { FleetReader } from './fleet-reader.ts';
import type { RunServices } from './run-context.ts';
import { verifyFleet, type PreviousRun, type Verified } from './verify-fleet.ts';

/** The fleet, written and verified: its files, its key index, and what the run counted. */
export interface StreamedSnapshot extends Pick<Verified, 'verification' | 'comparedWith'> {
  files: DataFile[];
  index: KeyIndexEntry;
  counts: RunCounts;
}

/** How long a failed run lets its cancelled fetches wind down before it reports. */
const WIND_DOWN_MS = 200;

/**
 * Pages through the fleet in page order into the run's data files, each device once (its
 * first occurrence), every row tagged with the run id; then verifies the result against
 * the previous run (verify-fleet.ts), and writes the key index the next run compares with.
 * If anything fails or the deadline comes first, the writer is discarded (its files and
 * the index removed) and the failure is thrown.
 */
export async function streamSnapshot(
  services: RunServices,
  run: { runId: string; writer: DataWriter; deadline: Deadline; logger: Logger; previous: Promise<PreviousRun>; indexKey: string },
): Promise<StreamedSnapshot> {
  const { config, tokens, s3 } = services;
  const { runId, writer, deadline, logger } = run;
  const grantsBefore = tokens.grants;
  const reader = new FleetReader(services, { runId, writer, logger });

  // Stops the paging when the run fails elsewhere (the writer), as the deadline does.
  const stop = new AbortController();
  const signal = AbortSignal.any([deadline.signal, stop.signal]);
  const produce = async () => {
    const sweep = await reader.sweep(signal);
    const pageRequests = reader.requests.requests;
    const verified = await verifyFleet(reader, await run.previous, { sweep, signal, logger, runId });
    const files = await writer.close();
    writer.adopt(run.indexKey);
    const index = await writeKeyIndex(s3, config.bucket, run.indexKey, reader.seen);
    return { sweep, pageRequests, verified, files, index };
  };

  let produced: Awaited<ReturnType<typeof produce>>;
  const producing = produce();
  try {
    produced = await Promise.race([producing, deadline.reached]);
  } catch (error) {
    stop.abort(error);
    await discardQuietly(writer, runId, logger);
    // The abort ends page fetches and waits at once; a token grant in flight hears no
    // signal and may take its timeout and retries, long past the deadline: not waited for.
    await Promise.race([producing.catch(() => undefined), sleep(WIND_DOWN_MS)]);
    throw deadline.signal.aborted ? deadline.signal.reason : error;
  }
  const { sweep, pageRequests, verified, files, index } = produced;
  const { verification, comparedWith, ...verificationCounts } = verified;
  return {
    files,
    index,
    verification,
    ...(comparedWith === undefined ? {} : { comparedWith }),
    counts: {
      devices: files.reduce((sum, file) => sum + file.devices, 0),
      pages: sweep.pages,
      pageRequests,
      wastedRequests: sweep.wasted,
      duplicates: reader.duplicates,
      unkeyed: reader.unkeyed,
      throttled: reader.requests.throttled,
      retries: reader.budget.spent,
      tokenRequests: tokens.grants - grantsBefore,
      ...verificationCounts,
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
    logger.error("Could not remove the failed run's data files; they have no manifest and are not part of any snapshot", {
      runId,
      error: cleanup instanceof Error ? cleanup.message : String(cleanup),
    }),
  );
}
