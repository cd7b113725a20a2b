import type { Logger } from '@aws-lambda-powertools/logger';
import type { Trigger } from '../event.ts';
import { DataWriter } from '../storage/data-writer.ts';
import { runKeys, type RunKeys } from '../storage/keys.ts';
import type { Manifest } from '../storage/manifest.ts';
import { advancePointer, pointerTo } from '../storage/pointer.ts';
import { readJson } from '../storage/s3-json.ts';
import { trackAttempt } from './attempt.ts';
import { buildManifest } from './build-manifest.ts';
import { commitAndPublish } from './commit.ts';
import { deadlineFor } from './deadline.ts';
import type { RunOptions, RunServices } from './run-context.ts';
import { streamSnapshot } from './stream-snapshot.ts';
import { summaryOf, type RunSummary } from './summary.ts';
import { previousRun } from './verify-fleet.ts';

/**
 * One export, top to bottom: a run already committed is returned as it is; otherwise the
 * fleet is streamed into the run's data files, checked against the previous run's key
 * index (the run `latest` names now), described by a manifest, and committed and
 * published. If anything fails before the commit, the data files are removed and nothing
 * else changes; where an upload could still land, the attempt's marker stays for a later
 * run to settle.
 */
export async function exportRun(services: RunServices, trigger: Trigger, options: RunOptions): Promise<RunSummary> {
  const { config, s3 } = services;
  const { runId, attempt, logger } = options;
  const startedAt = new Date();
  const keys = runKeys(config.prefix, runId, trigger.runTime, attempt);

  const committed = await committedRun(services, keys, startedAt, logger);
  if (committed) return committed;
  // Read while the fleet is swept: the comparison needs it only once the sweep is done, and
  // a failure to read it is thrown there, not reported now as unhandled.
  const previous = previousRun(services, keys.latestKey, logger);
  void previous.catch(() => undefined);

  const tracked = trackAttempt(services, keys, { runId, attempt, startedAt });
  await tracked.started();
  logger.info('Run started', { runId, trigger: trigger.kind, runTime: trigger.runTime.toISOString() });
  const writer = new DataWriter(s3, config.bucket, keys.dataKey, config.fileMaxBytes, { 'export-run-id': runId });
  const deadline = deadlineFor(options.remainingMs(), config.deadlineMarginSeconds);
  let snapshot;
  try {
    snapshot = await streamSnapshot(services, { runId, writer, deadline, logger, previous, indexKey: keys.indexKey });
  } catch (error) {
    await tracked.failed(writer, logger);
    throw error;
  } finally {
    deadline.clear();
  }
  const manifest = buildManifest({ runId, trigger, config, keys, snapshot, startedAt, finishedAt: new Date() });
  return commitAndPublish(services, { keys, manifest, attempt: tracked, writer, startedAt, logger });
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
