import type { Logger } from '@aws-lambda-powertools/logger';
import { putMarker, type Marker } from '../storage/attempts.ts';
import type { DataWriter } from '../storage/data-writer.ts';
import { deleteObjects } from '../storage/deletes.ts';
import type { RunKeys } from '../storage/layout.ts';
import type { RunServices } from '../common/services.ts';

/** The life of this attempt's marker: written before any data, removed once nothing of it can be left over. */
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
