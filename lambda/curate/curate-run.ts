import type { Logger } from '@aws-lambda-powertools/logger';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../common/config.ts';
import { deadlineIn, pauseFor } from '../common/deadline.ts';
import { CurationError, DeadlineError, ErrorCode, RunLimitError } from '../common/errors.ts';
import { deleteObjects } from '../storage/deletes.ts';
import { curatedKeys, manifestKey, manifestsPrefix, progressKeyOf, stateKeyOf, type CuratedKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { putJson, readJson, statusOf } from '../storage/s3-json.ts';
import { CHANGE_COLUMNS, changeColumnName, changeRows, type ChangeCounts } from './changes.ts';
import { switchCurrent, type Switch } from './current-table.ts';
import {
  CURATION_MAX_INVOCATIONS,
  hasProgress,
  readProgress,
  removeProgress,
  rowsOf,
  saveProgress,
  type CurationProgress,
  type ProgressCounts,
} from './curation-progress.ts';
import { FleetSignalCounter } from './fleet-signals.ts';
import { BaseState, hasState, readState, StateWriter, stateEntry, type StateEntry } from './fleet-state.ts';
import { ParquetFiles } from './parquet-files.ts';
import { previousCommittedRun, type CommittedRun } from './previous-run.ts';
import { rawBriefs } from './raw-briefs.ts';
import { readRun, replayState } from './read-run.ts';
import type { CurationRecord } from './record.ts';
import { lookUpRecord, manifestHash, removeReplacedFiles } from './record-lookup.ts';
import type { CurationSettings } from './settings.ts';
import { SNAPSHOT_COLUMNS } from './snapshot-rows.ts';

/** What curating a run returns: its record, and what became of it now. */
export type CurationSummary = CurationRecord & {
  status: 'curated' | 'already-curated';
  /** What `devices_current` shows now: this run (switched now, or already), or a newer one. */
  current: Switch;
  bucket: string;
  recordKey: string;
  currentKey: string;
  /** This invocation's time: all of the curation, or only the check of an already curated run. */
  elapsedMs: number;
  /** The record of an earlier commit of this run id, when the run was exported again after its manifest expired. */
  supersedes?: string;
};

/**
 * What a curation that goes on in another invocation answers: how far it got, and the event
 * that goes on with it (the same one: its progress is in S3).
 */
export interface CurationPause {
  status: 'curating';
  runId: string;
  /** Devices read so far, of the run's `total`. */
  read: number;
  total: number;
  /** Invocations the curation has taken so far. */
  invocations: number;
  event: { curate: string };
}

export interface CurateRequest {
  runId: string;
  /** Milliseconds left before the Lambda's hard timeout. */
  remainingMs: () => number;
  logger: Logger;
}

/**
 * Curates a committed run, reading only S3: the raw files its manifest lists, and the run
 * before it (its curated state, else its raw files). In order: the run's device_snapshots
 * files (typed Parquet) and, at the same time, its state for the next run; its changes
 * since the previous run (device_changes); its record, written once, last; then the
 * devices_current switch. A run already curated is only switched (if nothing newer is
 * current); a run exported again under the same id (its manifest expired and the schedule
 * was redone) is curated anew, with a record of its own (record-lookup.ts).
 *
 * A run whose devices take longer than an invocation goes on over several: an invocation
 * stops reading RUN_CHECKPOINT_MARGIN_SECONDS before its deadline, completes its files,
 * saves its progress (curation-progress.ts) and answers `"status": "curating"`; the same
 * event goes on from there. Once every device is read, the progress is saved again, so that
 * a failure after (the changes, the record) resumes with them. If anything fails, what this
 * invocation wrote and no progress lists is removed; what the progress lists stays for the
 * next attempt, unless the failure is one no attempt gets past (a damaged raw file, a limit),
 * which removes it all. Nothing is visible until the record.
 */
export async function curateRun(
  services: { s3: S3Client; config: Config },
  settings: CurationSettings,
  request: CurateRequest,
): Promise<CurationSummary | CurationPause> {
  const { s3, config } = services;
  const { runId, logger } = request;
  const started = Date.now();
  const manifest = (await readJson<Manifest>(s3, config.bucket, manifestKey(config.prefix, runId)))?.value;
  if (!manifest) {
    throw new CurationError(
      ErrorCode.RUN_NOT_COMMITTED,
      `Run ${runId} has no manifest under ${manifestsPrefix(config.prefix)} in ${config.bucket}: it never committed, or its manifest expired. Only committed runs are curated`,
    );
  }
  const keys = curatedKeys(config.prefix, runId);
  const { recordKey, existing, supersedes, earlier } = await lookUpRecord(s3, config.bucket, keys, manifest);
  const summaryOf = async (record: CurationRecord, status: CurationSummary['status']): Promise<CurationSummary> => {
    const files = record.snapshotFiles.map(({ key }) => key);
    const current = await switchCurrent(s3, config.bucket, keys.currentKey, { runId, runTime: manifest.runTime }, files);
    if (current === 'newer-run-current') logger.info('A newer run is current; devices_current left as it is', { runId });
    const elapsedMs = Date.now() - started;
    return { ...record, status, current, bucket: config.bucket, recordKey, currentKey: keys.currentKey, elapsedMs, ...(supersedes ? { supersedes } : {}) };
  };

  if (existing) {
    logger.info('Run already curated; its files are kept as they are', { runId, recordKey });
    return summaryOf(existing, 'already-curated');
  }
  if (supersedes) logger.warn('The run was exported again after its manifest expired: curating this commit anew', { runId, supersedes, recordKey });

  const hash = manifestHash(manifest);
  const progress = await readProgress(s3, config.bucket, keys, manifest, hash, (problems, refused) =>
    logger.warn('The progress saved for this curation is not one this code saves for this commit of the run: starting over', { runId, problems, refused }),
  );
  if (progress)
    logger.info('Going on with the curation where the last invocation stopped', { runId, read: progress.devices, invocations: progress.invocations });
  const outcome = await attempt(services, settings, { manifest, hash, keys, progress, logger, started, remainingMs: request.remainingMs() });
  if ('status' in outcome) return outcome;
  const record = outcome;
  try {
    await putJson(s3, config.bucket, recordKey, record, { IfNoneMatch: '*' });
  } catch (error) {
    if (statusOf(error) !== 412) throw error;
    // Another curation of this run wrote the same files and its record first.
    logger.warn('Another curation of this run recorded it first', { runId });
    const winner = await readJson<CurationRecord>(s3, config.bucket, recordKey);
    if (winner) return summaryOf(winner.value, 'already-curated');
    throw error;
  }
  const leftover = (await deleteObjects(s3, config.bucket, [keys.progressKey])).refused;
  if (earlier) leftover.push(...(await removeReplacedFiles(s3, config.bucket, keys, earlier, record)));
  if (leftover.length > 0) logger.error('S3 did not delete objects the curated run no longer needs', { runId, refused: leftover });
  logger.info('Run curated', { runId, devices: record.devices, added: record.added, removed: record.removed, changed: record.changed });
  return summaryOf(record, 'curated');
}

interface Attempt {
  manifest: Manifest;
  hash: string;
  keys: CuratedKeys;
  progress: CurationProgress | undefined;
  logger: Logger;
  started: number;
  remainingMs: number;
}

/**
 * One invocation's part of the curation, within its deadline: the record when it got to the
 * end, or where it stopped. On failure, removes what it wrote (see curateRun) and throws.
 */
async function attempt(services: { s3: S3Client; config: Config }, settings: CurationSettings, run: Attempt): Promise<CurationRecord | CurationPause> {
  const { s3, config } = services;
  const { manifest, keys, progress } = run;
  const read = { devices: progress?.devices ?? 0 };
  const budgetMs = run.remainingMs - config.deadlineMarginSeconds * 1000;
  const deadline = deadlineIn(budgetMs, () =>
    curationDeadlineError(manifest.runId, config.deadlineMarginSeconds, { read: read.devices, total: rowsOf(manifest), elapsedMs: Date.now() - run.started }),
  );
  const pause = pauseFor(run.remainingMs, config);
  const metadata = { 'export-run-id': manifest.runId };
  const firstFile = progress?.snapshotFiles.length ?? 0;
  const snapshots = new ParquetFiles(s3, config.bucket, (part) => keys.snapshotKey(firstFile + part), SNAPSHOT_COLUMNS, { metadata });
  const changes = new ParquetFiles(s3, config.bucket, keys.changesKey, CHANGE_COLUMNS, { metadata });
  const state = progress?.read ? undefined : new StateWriter(s3, config.bucket, keys.stateKey, { runId: manifest.runId, fields: settings.changeFields });
  const saved: { counts?: ProgressCounts } = {};
  const parts = { ...run, snapshots, changes, state, signal: deadline.signal, pause: pause?.signal, read, saved };
  const work = curate(services, settings, parts);
  try {
    return await Promise.race([work, deadline.reached]);
  } catch (error) {
    deadline.abort(error);
    await work.catch(() => undefined);
    await state?.abort();
    const kept = saved.counts ?? progress;
    const refused = [...(saved.counts ? [] : await snapshots.discard()), ...(await changes.discard())];
    if (!kept || isFinal(error)) refused.push(...(await removeProgress(s3, config.bucket, keys, kept?.snapshotFiles.length ?? 0)));
    else
      run.logger.warn('The curation failed; what it saved so far is kept, and the next attempt goes on from it', { runId: manifest.runId, read: kept.devices });
    if (refused.length > 0)
      run.logger.error('S3 did not delete curated files of the failed curation; no record lists them', { runId: manifest.runId, refused });
    throw error;
  } finally {
    deadline.clear();
    pause?.clear();
  }
}

/** A failure no later attempt gets past without an operator: what the curation saved is of no use to it. */
function isFinal(error: unknown): boolean {
  return error instanceof CurationError || error instanceof RunLimitError;
}

interface Curation extends Attempt {
  snapshots: ParquetFiles;
  changes: ParquetFiles;
  /** None once every device is read: the state is complete. */
  state: StateWriter | undefined;
  signal: AbortSignal;
  pause: AbortSignal | undefined;
  /** Devices read so far, for the deadline's message. */
  read: { devices: number };
  /** The progress this invocation saved, once it has. */
  saved: { counts?: ProgressCounts };
}

async function curate(services: { s3: S3Client; config: Config }, settings: CurationSettings, curation: Curation): Promise<CurationRecord | CurationPause> {
  const { s3, config } = services;
  const { manifest, keys, changes, signal, logger, progress } = curation;
  const { runId } = manifest;
  const fields = settings.changeFields;
  const runTime = new Date(manifest.runTime);

  const previous = await previousCommittedRun(s3, config.bucket, config.prefix, manifest);
  const { base, entries: previousEntries } = await previousState(services, previous, fields, signal, logger);
  const reading = { s3, bucket: config.bucket, manifest, base, fields, signal, stateKey: keys.stateKey };
  let counts: ProgressCounts;
  let added: number;
  if (curation.state) {
    ({ counts, added } = await readRun({
      ...reading,
      progress,
      snapshots: curation.snapshots,
      state: curation.state,
      silentAfterHours: settings.silentAfterHours,
      pause: curation.pause,
      read: curation.read,
      started: curation.started,
    }));
    await saveProgress(s3, config.bucket, keys, manifest, curation.hash, counts);
    curation.saved.counts = counts;
    if (!counts.read || curation.pause?.aborted) return paused(manifest, counts);
  } else {
    counts = progress as CurationProgress;
    added = await replayState(reading, counts.stateEntries);
  }

  const compared: ChangeCounts = previous ? { added, removed: base.unseen, changed: base.changed } : { added: 0, removed: 0, changed: 0 };
  const removalsConfirmed = previous !== undefined && confirmedRemovals(manifest, previous.runId, compared.removed, logger);
  const changeFiles = await changes.write(
    previous && previousEntries
      ? changeRows(base, await previousEntries.open(), await currentEntries(services, keys.stateKey, fields), {
          runId,
          runTime,
          previousRunId: previous.runId,
          previousRunTime: new Date(previous.runTime),
          fields,
          removalsConfirmed,
        })
      : none(),
  );
  const fleet = new FleetSignalCounter(runTime, settings.silentAfterHours, counts.fleet);
  const signals = fleet.signals(previous && { ...compared, previousDevices: base.size, previousActiveShare: await previousActiveShare(services, previous) });
  return {
    schemaVersion: 1,
    runId,
    runTime: manifest.runTime,
    curatedAt: new Date().toISOString(),
    durationMs: (progress?.elapsedMs ?? 0) + (Date.now() - curation.started),
    devices: counts.devices,
    unkeyed: counts.unkeyed,
    comparison: previous ? 'compared' : 'first-run',
    ...(previous ? { previousRunId: previous.runId, previousRunTime: previous.runTime, comparedFrom: previousEntries?.from } : {}),
    changeFields: fields.map(changeColumnName),
    ...compared,
    removalsConfirmed,
    signals,
    snapshotFiles: counts.snapshotFiles.map(({ rows, bytes }, part) => ({ key: keys.snapshotKey(part), rows, bytes })),
    changeFiles,
    stateKey: keys.stateKey,
    manifestHash: curation.hash,
  };
}

/**
 * Where an invocation stopped, as it answers; a curation that still has devices to read after
 * its last allowed invocation fails instead (one that has read them all only writes its changes next).
 */
function paused(manifest: Manifest, counts: ProgressCounts): CurationPause {
  const { runId } = manifest;
  const total = rowsOf(manifest);
  if (!counts.read && counts.invocations >= CURATION_MAX_INVOCATIONS) {
    throw new RunLimitError(
      ErrorCode.CURATION_INVOCATION_LIMIT,
      `Stopped curating run ${runId} after ${counts.invocations} invocations (${Math.round(counts.elapsedMs / 1000)} s), the most one curation takes, with ${counts.devices} of its ${total} devices read; ` +
        `nothing of it is visible and what it wrote is removed. Raise the function's memory (functionMemoryMb), which Lambda raises its CPU with, then curate it: {"curate": "${runId}"}.`,
    );
  }
  return { status: 'curating', runId, read: counts.devices, total, invocations: counts.invocations, event: { curate: runId } };
}

/**
 * The previous run's devices, to compare with (empty for a first run), and where its
 * entries come from, to be read again for the change rows.
 */
async function previousState(
  services: { s3: S3Client; config: Config },
  previous: CommittedRun | undefined,
  fields: readonly string[],
  signal: AbortSignal,
  logger: Logger,
): Promise<{ base: BaseState; entries?: PreviousEntries }> {
  let base = new BaseState();
  if (!previous) return { base };
  let entries = await entriesOf(services, previous, fields, logger);
  try {
    for await (const entry of await entries.open()) base.add(checked(entry, signal));
  } catch (error) {
    // The state is derived and can be damaged like any object; the raw files it came from are the record.
    if (entries.from !== 'state' || signal.aborted || statusOf(error) !== undefined) throw error;
    logger.warn("The previous run's curated state cannot be read; reading its raw files instead", {
      previousRun: previous.runId,
      error: error instanceof Error ? error.message : String(error),
    });
    base = new BaseState();
    entries = await entriesOf(services, previous, fields, logger, 'raw');
    for await (const entry of await entries.open()) base.add(checked(entry, signal));
  }
  return { base, entries };
}

interface PreviousEntries {
  from: 'state' | 'raw';
  open: () => Promise<AsyncIterable<StateEntry>>;
}

/**
 * Where the previous run's entries come from, readable twice (to load its state, then to
 * write the changes): its curated state when it compares the same fields, else its raw
 * files, which hold everything.
 */
async function entriesOf(
  services: { s3: S3Client; config: Config },
  previous: CommittedRun,
  fields: readonly string[],
  logger: Logger,
  only?: 'raw',
): Promise<PreviousEntries> {
  const { s3, config } = services;
  const stateKey = stateKeyOf(config.prefix, previous.runId);
  // A state with a progress beside it is one a curation still going on is writing: not the whole run.
  const whole = only === undefined && !(await hasProgress(s3, config.bucket, progressKeyOf(config.prefix, previous.runId)));
  if (whole && (await hasState(s3, config.bucket, stateKey, fields))) {
    return {
      from: 'state',
      open: async () => (await readState(s3, config.bucket, stateKey, fields)) ?? raise(`The state ${stateKey} disappeared while it was read`),
    };
  }
  logger.info('The previous run has no curated state for these fields; reading its raw files', { previousRun: previous.runId });
  return {
    from: 'raw',
    open: () =>
      Promise.resolve(
        (async function* () {
          try {
            for await (const brief of rawBriefs(s3, previous.manifest)) {
              const entry = stateEntry(brief, fields);
              if (entry) yield entry;
            }
          } catch (error) {
            if (error instanceof CurationError) {
              throw new CurationError(error.code, `Run ${previous.runId}, the run before, which this run is compared with: ${error.message}`, { cause: error });
            }
            throw error;
          }
        })(),
      ),
  };
}

/**
 * The ACTIVE share the record of the previous run's commit holds (a run exported again under
 * its id has a record of its own beside the earlier one's): none when that commit was not
 * curated, or before signals were.
 */
async function previousActiveShare(services: { s3: S3Client; config: Config }, previous: CommittedRun): Promise<number | undefined> {
  const { s3, config } = services;
  const { existing } = await lookUpRecord(s3, config.bucket, curatedKeys(config.prefix, previous.runId), previous.manifest);
  return existing?.signals?.active_share;
}

/** This run's entries, read back from the state it has just written. */
async function currentEntries(services: { s3: S3Client; config: Config }, key: string, fields: readonly string[]): Promise<AsyncIterable<StateEntry>> {
  return (await readState(services.s3, services.config.bucket, key, fields)) ?? raise(`The state ${key} just written cannot be read back`);
}

/**
 * Removed rows are confirmed when the export compared this run with the same previous run,
 * looked every missing device up and left none unresolved: then each device missing from
 * the snapshot was confirmed gone by the platform, and a device the paging skipped was
 * found and is in the snapshot. Otherwise (no comparison, another run compared with, or
 * devices left unresolved) a removed device may be one the paging skipped.
 */
function confirmedRemovals(manifest: Manifest, previousRunId: string, removed: number, logger: Logger): boolean {
  if (manifest.verification !== 'compared' || manifest.comparedWith !== previousRunId || manifest.counts.unresolved !== 0) return false;
  if (manifest.counts.removed === removed) return true;
  logger.warn('The export confirmed another number of devices gone than curation finds missing; removals left unconfirmed', {
    runId: manifest.runId,
    confirmedByExport: manifest.counts.removed,
    missing: removed,
  });
  return false;
}

function checked<T>(value: T, signal: AbortSignal): T {
  signal.throwIfAborted();
  return value;
}

async function* none(): AsyncGenerator<never> {}

function raise(message: string): never {
  throw new Error(message);
}

/**
 * Why curation stopped at its deadline, and what the operator does: a DeadlineError, which
 * the state machine retries. A curation reaches it only where it cannot stop early (given no
 * more than RUN_DEADLINE_MARGIN_SECONDS and RUN_CHECKPOINT_MARGIN_SECONDS by an export that
 * ended late), or while completing its files or writing the changes: the next attempt goes on
 * from its saved progress, if it has one. The pace (the devices read, in the time taken) is
 * only reported: it scales up what came before the first device too.
 */
export function curationDeadlineError(runId: string, marginSeconds: number, progress: { read: number; total: number; elapsedMs: number }): DeadlineError {
  const { read, total } = progress;
  const seconds = Math.round(progress.elapsedMs / 1000);
  const where = read >= total ? `every one of its ${total} devices read and its files still being written` : `${read} of its ${total} devices read`;
  const pace =
    read > 0 && read < total ? ` At that pace its devices alone take about ${Math.ceil((progress.elapsedMs * total) / read / 1000)} s to curate.` : '';
  return new DeadlineError(
    `Stopped curating run ${runId} ${marginSeconds} s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS), after ${seconds} s with ${where}; ` +
      `nothing of it is visible and devices_current is as it was.${pace} Curate it in an invocation of its own: {"curate": "${runId}"}; ` +
      'a run that needs more than one goes on over several, from the progress each saves.',
  );
}
