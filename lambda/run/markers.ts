import type { Logger } from '@aws-lambda-powertools/logger';
import type { RunServices } from '../common/services.ts';
import { putMarker, removeStrayFiles, type Marker } from '../storage/attempts.ts';
import type { DataWriter } from '../storage/data-writer.ts';
import { deleteObjects, type Refusal } from '../storage/deletes.ts';
import { markerKey, type RunKeys } from '../storage/layout.ts';
import type { SliceRecord } from './checkpoint.ts';

/**
 * The markers of a run's invocations (storage/attempts.ts says what a marker is). This
 * invocation's is written before any data and removed once nothing of it can be left over.
 * A continued run's earlier invocations each wrote their data files under their own
 * attempt (so that an invocation retried from the same checkpoint never overwrites
 * another's files), and their markers stay `running` while the run goes on: that is what
 * keeps a committing attempt of the same run, and the settling of old attempts, away from
 * them. They are refreshed whenever an invocation of the run starts or stops, so that none
 * looks older than an invocation lasts while the run continues.
 */

/** The life of this attempt's marker. */
export interface TrackedMarker {
  readonly attempt: string;
  started(): Promise<void>;
  /** Its files are committed, or removed with nothing in flight: the marker goes. */
  ended(logger: Logger): Promise<void>;
  /** The run failed: the marker goes if the writer left nothing, else it stays, marked failed, for a later run. */
  failed(writer: DataWriter, logger: Logger): Promise<void>;
}

export function trackMarker(services: RunServices, keys: RunKeys, run: { runId: string; attempt: string; startedAt: Date }): TrackedMarker {
  const { s3, config } = services;
  const marker: Omit<Marker, 'state'> = {
    runId: run.runId,
    attempt: run.attempt,
    dataPrefix: keys.dataPrefix,
    manifestKey: keys.manifestKey,
    indexPrefix: keys.indexPrefix,
    startedAt: run.startedAt.toISOString(),
  };
  const ended = async (logger: Logger): Promise<void> => {
    const { refused } = await deleteObjects(s3, config.bucket, [keys.markerKey]).catch(() => ({ refused: [keys.markerKey] }));
    if (refused.length > 0) logger.warn("Could not remove this attempt's marker; a later run removes it", { runId: run.runId, refused });
  };
  return {
    attempt: run.attempt,
    started: () => putMarker(s3, config.bucket, keys.markerKey, { ...marker, state: 'running' }),
    ended,
    async failed(writer, logger) {
      if (writer.leftNothing) return ended(logger);
      await putMarker(s3, config.bucket, keys.markerKey, { ...marker, state: 'failed' }).catch(() =>
        logger.warn('Could not mark this attempt failed; a later run settles it once its marker is an hour old', { runId: run.runId }),
      );
    },
  };
}

/** Writes the markers of the given invocations of a run again, `running`: none of them may be settled for another hour. */
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
 * Removes what the given invocations of a run wrote that no manifest lists (read again just
 * before, so a committed run's files always stay), then their markers: the markers stay
 * where a file could not be removed, so that a later run settles it.
 */
export async function releaseLineage(services: RunServices, keys: RunKeys, lineage: readonly string[], logger: Logger, runId: string): Promise<void> {
  const { s3, config } = services;
  const mine = new Set(lineage);
  const files = await removeStrayFiles(s3, config.bucket, keys, (attempt) => attempt !== undefined && mine.has(attempt));
  if (files.refused.length > 0) {
    logger.error('S3 did not delete data files of an abandoned run; their markers stay for a later run to settle them', { runId, refused: files.refused });
    return;
  }
  await removeMarkers(services, lineage);
}
