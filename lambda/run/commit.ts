import type { Logger } from '@aws-lambda-powertools/logger';
import { ErrorCode, StorageError } from '../common/errors.ts';
import { liveAttempts, readMarkers, removeStrayFiles, settleAttempts, type MarkerObject } from '../storage/attempts.ts';
import type { DataWriter } from '../storage/data-writer.ts';
import type { RunKeys } from '../storage/layout.ts';
import { commitManifest, manifestOwner, type Manifest } from '../storage/manifest.ts';
import { advancePointer, pointerTo } from '../storage/pointer.ts';
import type { TrackedMarker } from './markers.ts';
import type { RunServices } from '../common/services.ts';
import { discardQuietly } from './stream-snapshot.ts';
import { summaryOf, type RunSummary } from './summary.ts';

interface Commit {
  keys: RunKeys;
  manifest: Manifest;
  marker: TrackedMarker;
  writer: DataWriter;
  startedAt: Date;
  logger: Logger;
}

/**
 * Makes a written snapshot official: the manifest (conditional, so one attempt of a run
 * wins), then the tidying of what earlier attempts left, then the `latest` pointer. Until
 * the manifest exists the run is invisible to readers. Whose manifest S3 holds is read
 * back rather than inferred from the write's answer: an answer can be lost after the write
 * landed, and a store may accept a conditional write it did not honour.
 */
export async function commitAndPublish(services: RunServices, commit: Commit): Promise<RunSummary> {
  const { s3, config } = services;
  const { keys, manifest, writer, startedAt, logger } = commit;
  const { runId } = manifest;
  let failure: unknown;
  let accepted = false;
  try {
    accepted = await commitManifest(s3, config.bucket, keys.manifestKey, manifest);
  } catch (error) {
    failure = error;
  }
  const held = await manifestOwner(s3, config.bucket, keys.manifestKey, manifest);
  if (held === undefined) {
    // Deleting the data could leave a committed manifest listing missing files; keeping it
    // leaves at worst files no manifest lists, which a later run removes.
    logger.error("Could not tell whether the manifest was written; kept this attempt's data files", {
      runId,
      manifestKey: keys.manifestKey,
      dataKeys: manifest.files.map(({ key }) => key),
    });
    await commit.marker.failed(writer, logger);
    throw failure instanceof Error
      ? failure
      : new StorageError(ErrorCode.COMMIT_UNCERTAIN, `The manifest ${keys.manifestKey} exists but could not be read; this attempt's data files were kept`);
  }
  if (held.owner === 'nobody') {
    await discardQuietly(writer, runId, logger);
    await commit.marker.failed(writer, logger);
    throw failure instanceof Error
      ? failure
      : new StorageError(ErrorCode.COMMIT_REFUSED, `S3 refused the manifest ${keys.manifestKey} as existing, yet it is not there; nothing was published`);
  }
  if (held.owner === 'another attempt') {
    if (accepted) {
      logger.warn("S3 accepted this attempt's conditional manifest write yet holds another attempt's manifest: the store does not honour conditional writes", {
        runId,
        manifestKey: keys.manifestKey,
      });
    }
    await discardQuietly(writer, runId, logger);
    await commit.marker.failed(writer, logger);
    logger.warn("Another attempt committed this run first; removed this attempt's files and returned its summary", { runId });
    return summaryOf(held.manifest, { status: 'already-committed', keys, pointerMoved: false, tokenRequests: 0, startedAt });
  }
  if (failure) logger.warn('The manifest write reported a failure but landed; the run is committed', { runId });
  const others = (await readMarkers(s3, config.bucket, keys.markersPrefix)).filter(({ marker }) => marker.attempt !== commit.marker.attempt);
  await removeEarlierAttempts(services, commit, liveAttempts(others));
  await commit.marker.ended(logger);
  const pointerMoved = await advancePointer(s3, config.bucket, keys.latestKey, pointerTo(manifest, keys.manifestKey));
  if (!pointerMoved) logger.warn('A newer run already holds the latest pointer; left it there', { runId });
  await settleFailedAttempts(services, commit, others);
  return summaryOf(manifest, { status: 'committed', keys, pointerMoved, tokenRequests: manifest.counts.tokenRequests, startedAt });
}

/**
 * Deletes the files in this run's folder that its manifest does not list: what earlier
 * attempts of the run left when they failed. Files of an attempt that may still be
 * writing are left alone; on a store that ignores conditional writes it may yet commit,
 * and its manifest must not name deleted files.
 */
async function removeEarlierAttempts(services: RunServices, { keys, marker, manifest, logger }: Commit, live: ReadonlySet<string>): Promise<void> {
  const { s3, config } = services;
  const stray = await removeStrayFiles(s3, config.bucket, keys, (owner) => owner !== marker.attempt && (owner === undefined || !live.has(owner)));
  if (stray.deleted.length > 0)
    logger.warn('Removed data files an earlier, failed attempt of this run left', { runId: manifest.runId, stray: stray.deleted.length });
  if (stray.refused.length > 0) {
    logger.error('S3 did not delete data files an earlier, failed attempt of this run left; readers of the whole table see them', {
      runId: manifest.runId,
      refused: stray.refused,
    });
  }
}

/**
 * Removes what failed runs before this one left once their uploads can no longer land.
 * The run is committed by now: a failure here is logged, and the next run tries again.
 */
async function settleFailedAttempts(services: RunServices, { manifest, logger }: Commit, markers: readonly MarkerObject[]): Promise<void> {
  const { s3, config } = services;
  try {
    const settled = await settleAttempts(s3, config.bucket, markers);
    if (settled.deleted.length > 0 || settled.settled > 0) {
      logger.warn('Removed what failed attempts of earlier runs left', { runId: manifest.runId, attempts: settled.settled, files: settled.deleted });
    }
    if (settled.refused.length > 0)
      logger.error('S3 did not delete what failed attempts of earlier runs left', { runId: manifest.runId, refused: settled.refused });
  } catch (error) {
    logger.error('Could not settle failed attempts of earlier runs; the next run tries again', {
      runId: manifest.runId,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}
