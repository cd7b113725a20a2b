import type { Logger } from '@aws-lambda-powertools/logger';
import { putMarker, removeStrayFiles } from '../storage/attempts.ts';
import { deleteRunCheckpoints } from '../storage/checkpoints.ts';
import { deleteObjects, type Refusal } from '../storage/deletes.ts';
import { checkpointKeys, markerKey, type RunKeys } from '../storage/layout.ts';
import type { SliceRecord } from './checkpoint.ts';
import type { RunServices } from '../common/services.ts';

/**
 * The earlier invocations of a continued run. Each wrote its data files under its own
 * attempt (so that an invocation retried from the same checkpoint never overwrites another's
 * files), and its marker stays `running` while the run goes on: that is what keeps a
 * committing attempt of the same run, and the settling of old attempts, away from them.
 * Markers are refreshed whenever an invocation of the run starts or stops, so that none
 * looks older than an invocation lasts while the run continues.
 */
export async function refreshMarkers(services: RunServices, keys: RunKeys, runId: string, slices: readonly SliceRecord[]): Promise<void> {
  const { s3, config } = services;
  await Promise.all(
    slices.map(({ attempt, startedAt }) =>
      putMarker(s3, config.bucket, markerKey(config.prefix, attempt), {
        runId,
        attempt,
        dataPrefix: keys.dataPrefix,
        manifestKey: keys.manifestKey,
        indexPrefix: keys.indexPrefix,
        startedAt,
        state: 'running',
      }),
    ),
  );
}

/** Removes the markers of earlier invocations once nothing of theirs is left to guard. */
export async function removeMarkers(services: RunServices, attempts: readonly string[]): Promise<Refusal[]> {
  const { refused } = await deleteObjects(
    services.s3,
    services.config.bucket,
    attempts.map((attempt) => markerKey(services.config.prefix, attempt)),
  );
  return refused;
}

/**
 * After the run's commit: no checkpoint of it can be resumed any more. When this attempt
 * lost the commit to another attempt of the run, the earlier invocations' files, which that
 * manifest does not list, go too, with their markers. A failure is logged, not thrown: the
 * run is committed either way, and checkpoints expire (see the bucket's lifecycle).
 */
export async function settleAfterCommit(
  services: RunServices,
  keys: RunKeys,
  run: { runId: string; prefix: string; lineage: readonly string[]; committedHere: boolean; logger: Logger },
): Promise<void> {
  const { s3, config } = services;
  const { runId, lineage, logger } = run;
  try {
    if (!run.committedHere) await releaseLineage(services, keys, lineage, logger, runId);
    const { refused } = await deleteRunCheckpoints(s3, config.bucket, run.prefix, runId);
    if (refused.length > 0) logger.warn("S3 did not delete the committed run's checkpoints; they expire", { runId, refused });
  } catch (error) {
    logger.warn("Could not remove the committed run's checkpoints; they expire", { runId, error: error instanceof Error ? error.message : String(error) });
  }
}

/**
 * Removes what the given invocations of a run wrote that no manifest lists (read again just
 * before, so a committed run's files always stay), then their markers: the markers stay
 * where a file could not be removed, so that a later run settles it.
 */
export async function releaseLineage(
  services: RunServices,
  keys: RunKeys,
  lineage: readonly string[],
  logger: Logger,
  runId: string,
): Promise<{ deleted: string[]; refused: Refusal[] }> {
  const { s3, config } = services;
  const mine = new Set(lineage);
  const files = await removeStrayFiles(s3, config.bucket, keys, (attempt) => attempt !== undefined && mine.has(attempt));
  if (files.refused.length > 0) {
    logger.error('S3 did not delete data files of an abandoned run; their markers stay for a later run to settle them', { runId, refused: files.refused });
    return files;
  }
  const refused = await removeMarkers(services, lineage);
  return { deleted: files.deleted, refused };
}

/** The checkpoints the given invocations saved, each with its key sets. */
export function lineageCheckpoints(prefix: string, runId: string, lineage: readonly string[]) {
  return lineage.map((attempt) => checkpointKeys(prefix, runId, attempt));
}
