import type { Logger } from '@aws-lambda-powertools/logger';
import { EventError } from '../common/errors.ts';
import type { AbandonRequest } from '../common/request-types.ts';
import { liveAttempts, readMarkers, removeStrayFiles } from '../storage/attempts.ts';
import { runKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { readJson } from '../storage/s3-json.ts';
import { checkForeign } from './checkpoint.ts';
import { deleteLineageCheckpoints, lineageOf } from './lifecycle.ts';
import { removeMarkers } from './markers.ts';
import type { RunServices } from '../common/services.ts';

/** What an abandon did. */
export interface AbandonSummary {
  /**
   * `already-committed`: the run committed after all, and nothing of it was removed.
   * `no-checkpoint`: S3 has no such checkpoint (abandoned already, expired, or never this function's), and nothing was removed.
   */
  status: 'abandoned' | 'already-committed' | 'no-checkpoint';
  runId: string;
  /** Data files and key indexes removed. */
  removed: string[];
  /** Other attempts of the run that may still be writing: their files are left for a later run to settle. */
  running: string[];
  /** Objects S3 would not delete, with its reason. */
  refused: string[];
  checkpoints: number;
}

/**
 * Gives up a continued run that cannot go on (the state machine's cleanup after a failed
 * invocation): removes what its invocations wrote (data files, key indexes), their markers
 * and checkpoints, and what failed invocations of the run left (files of attempts no
 * longer running, as a commit would). The previous snapshot, the manifests and `latest` are
 * never touched, and a run that has committed is left as it is. Files of an attempt that
 * may still be writing (a `running` marker less than LIVE_MS old, outside this continuation)
 * are kept: a later committed run settles them.
 *
 * Refused (EventError, nothing removed) when the checkpoint named is another deployment's,
 * is there but is not the one the continuation was given for (its SHA-256 is compared
 * whatever S3 holds), or names objects not its run's. Only S3's "no such key" is taken for
 * no checkpoint, and then nothing is removed either: without it nothing shows which files
 * are the continuation's. Any other failure to read it fails the abandon, to be retried.
 */
export async function abandonRun(services: RunServices, request: AbandonRequest, logger: Logger): Promise<AbandonSummary> {
  const { s3, config } = services;
  const { runId } = request;
  checkForeign(request, config);
  const keys = runKeys(config.prefix, runId, request.attempt);
  if (await readJson<Manifest>(s3, config.bucket, keys.manifestKey)) {
    logger.info('Run already committed: nothing abandoned', { runId });
    return { status: 'already-committed', runId, removed: [], running: [], refused: [], checkpoints: 0 };
  }
  const named = await lineageOf(services, request);
  if (named.checkpoint === 'different') {
    throw new EventError(
      `The checkpoint ${request.checkpoint} is not the one this abandon event names (its SHA-256 differs, or it is not a checkpoint): nothing was removed.`,
    );
  }
  if (named.checkpoint !== 'found') {
    // Nothing shows which attempts are this continuation's: removing on the event's word alone would let anyone name any run's files.
    logger.warn('No such checkpoint: nothing abandoned. An abandon already done, or a checkpoint expired, leaves the files to the settling of old attempts', {
      runId,
    });
    return { status: 'no-checkpoint', runId, removed: [], running: [], refused: [], checkpoints: 0 };
  }
  const lineage = new Set(named.lineage);
  const others = (await readMarkers(s3, config.bucket, keys.markersPrefix)).filter(({ marker }) => marker.runId === runId && !lineage.has(marker.attempt));
  const live = liveAttempts(others);
  const files = await removeStrayFiles(s3, config.bucket, keys, (attempt) => attempt !== undefined && (lineage.has(attempt) || !live.has(attempt)));
  const refused = [...files.refused];
  if (files.refused.length === 0) refused.push(...(await removeMarkers(services, [...lineage])));
  const checkpoints = await deleteLineageCheckpoints(services, runId, [...lineage]);
  refused.push(...checkpoints.refused);
  const summary: AbandonSummary = { status: 'abandoned', runId, removed: files.deleted, running: [...live], refused, checkpoints: checkpoints.deleted.length };
  if (refused.length > 0)
    logger.error('Abandoned the run, but S3 did not delete some of what it wrote; their markers stay for a later run to settle', { ...summary });
  else logger.warn('Abandoned the run: removed what it wrote; the previous snapshot is untouched', { ...summary });
  return summary;
}
