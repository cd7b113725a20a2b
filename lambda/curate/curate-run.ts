import type { Logger } from '@aws-lambda-powertools/logger';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../common/config.ts';
import { CurationError, DeadlineError, ErrorCode, RunLimitError } from '../common/errors.ts';
import { deleteObjects } from '../storage/deletes.ts';
import { curatedKeys, manifestKey, manifestsPrefix, stateKeyOf, type CuratedKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { putJson, readJson, statusOf } from '../storage/s3-json.ts';
import { CHANGE_COLUMNS, changeColumnName, changeRows, type ChangeCounts } from './changes.ts';
import { switchCurrent, type Switch } from './current-table.ts';
import { FleetSignalCounter } from './fleet-signals.ts';
import { BaseState, hasState, readState, StateWriter, stateEntry, type StateEntry } from './fleet-state.ts';
import { ParquetFiles } from './parquet-files.ts';
import { previousCommittedRun, type CommittedRun } from './previous-run.ts';
import { rawBriefs } from './raw-briefs.ts';
import type { CurationRecord } from './record.ts';
import { lookUpRecord, manifestHash, removeReplacedFiles } from './record-lookup.ts';
import type { CurationSettings } from './settings.ts';
import { snapshotRow, SNAPSHOT_COLUMNS } from './snapshot-rows.ts';
import { deadlineIn } from '../common/deadline.ts';

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
 * was redone) is curated anew, with a record of its own (record-lookup.ts). If anything fails before the record, what this attempt wrote is removed and
 * nothing visible changed; a retry writes the same files again.
 */
export async function curateRun(services: { s3: S3Client; config: Config }, settings: CurationSettings, request: CurateRequest): Promise<CurationSummary> {
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

  const progress = { devices: 0 };
  const budgetMs = request.remainingMs() - config.deadlineMarginSeconds * 1000;
  const deadline = deadlineIn(budgetMs, () =>
    curationDeadlineError(runId, config.deadlineMarginSeconds, {
      read: progress.devices,
      total: manifest.counts.devices,
      elapsedMs: Date.now() - started,
      budgetMs,
    }),
  );
  const metadata = { 'export-run-id': runId };
  const snapshots = new ParquetFiles(s3, config.bucket, keys.snapshotKey, SNAPSHOT_COLUMNS, { metadata });
  const changes = new ParquetFiles(s3, config.bucket, keys.changesKey, CHANGE_COLUMNS, { metadata });
  const state = new StateWriter(s3, config.bucket, keys.stateKey, { runId, fields: settings.changeFields });
  const work = curate(services, settings, { manifest, keys, snapshots, changes, state, signal: deadline.signal, logger, started, progress });
  let record: CurationRecord;
  try {
    record = await Promise.race([work, deadline.reached]);
  } catch (error) {
    deadline.abort(error);
    await work.catch(() => undefined);
    await state.abort();
    // The state may be complete already (it is closed before the change rows are written).
    const refused = [...(await snapshots.discard()), ...(await changes.discard()), ...(await deleteObjects(s3, config.bucket, [keys.stateKey])).refused];
    if (refused.length > 0) logger.error('S3 did not delete curated files of the failed curation; no record lists them', { runId, refused });
    throw error;
  } finally {
    deadline.clear();
  }
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
  if (earlier) {
    const refused = await removeReplacedFiles(s3, config.bucket, keys, earlier, record);
    if (refused.length > 0) logger.error("S3 did not delete the earlier commit's curated files that this one replaces", { runId, refused });
  }
  logger.info('Run curated', { runId, devices: record.devices, added: record.added, removed: record.removed, changed: record.changed });
  return summaryOf(record, 'curated');
}

interface Curation {
  manifest: Manifest;
  keys: CuratedKeys;
  snapshots: ParquetFiles;
  changes: ParquetFiles;
  state: StateWriter;
  signal: AbortSignal;
  logger: Logger;
  started: number;
  /** Devices read from the raw files so far, for the deadline's message. */
  progress: { devices: number };
}

async function curate(services: { s3: S3Client; config: Config }, settings: CurationSettings, curation: Curation): Promise<CurationRecord> {
  const { s3, config } = services;
  const { manifest, keys, snapshots, changes, state, signal, logger, progress } = curation;
  const { runId } = manifest;
  const fields = settings.changeFields;
  const runTime = new Date(manifest.runTime);

  const previous = await previousCommittedRun(s3, config.bucket, config.prefix, manifest);
  let base = new BaseState();
  let previousEntries = previous ? await entriesOf(services, previous, fields, logger) : undefined;
  try {
    if (previousEntries) for await (const entry of await previousEntries.open()) base.add(checked(entry, signal));
  } catch (error) {
    // The state is derived and can be damaged like any object; the raw files it came from are the record.
    if (!previous || previousEntries?.from !== 'state' || signal.aborted || statusOf(error) !== undefined) throw error;
    logger.warn("The previous run's curated state cannot be read; reading its raw files instead", {
      previousRun: previous.runId,
      error: error instanceof Error ? error.message : String(error),
    });
    base = new BaseState();
    previousEntries = await entriesOf(services, previous, fields, logger, 'raw');
    for await (const entry of await previousEntries.open()) base.add(checked(entry, signal));
  }

  let unkeyed = 0;
  let added = 0;
  const fleet = new FleetSignalCounter(runTime, settings.silentAfterHours);
  const rows = async function* () {
    for await (const brief of rawBriefs(s3, manifest, signal)) {
      signal.throwIfAborted();
      progress.devices += 1;
      fleet.add(brief);
      const entry = stateEntry(brief, fields);
      if (entry === undefined) unkeyed += 1;
      else {
        await state.write(entry);
        if (base.compare(entry) === 'added') added += 1;
      }
      yield snapshotRow(brief, { runId, runTime });
    }
  };
  const snapshotFiles = await snapshots.write(rows());
  await state.close();
  const devices = snapshotFiles.reduce((sum, file) => sum + file.rows, 0);

  const counts: ChangeCounts = previous ? { added, removed: base.unseen, changed: base.changed } : { added: 0, removed: 0, changed: 0 };
  const removalsConfirmed = previous !== undefined && confirmedRemovals(manifest, previous.runId, counts.removed, logger);
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
  const signals = fleet.signals(previous && { ...counts, previousDevices: base.size, previousActiveShare: await previousActiveShare(services, previous) });
  return {
    schemaVersion: 1,
    runId,
    runTime: manifest.runTime,
    curatedAt: new Date().toISOString(),
    durationMs: Date.now() - curation.started,
    devices,
    unkeyed,
    comparison: previous ? 'compared' : 'first-run',
    ...(previous ? { previousRunId: previous.runId, previousRunTime: previous.runTime, comparedFrom: previousEntries?.from } : {}),
    changeFields: fields.map(changeColumnName),
    ...counts,
    removalsConfirmed,
    signals,
    snapshotFiles,
    changeFiles,
    stateKey: keys.stateKey,
    manifestHash: manifestHash(manifest),
  };
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
): Promise<{ from: 'state' | 'raw'; open: () => Promise<AsyncIterable<StateEntry>> }> {
  const { s3, config } = services;
  const stateKey = stateKeyOf(config.prefix, previous.runId);
  if (only === undefined && (await hasState(s3, config.bucket, stateKey, fields))) {
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

/** The longest a Lambda invocation can run, whatever the function's timeout. */
const INVOCATION_MAX_SECONDS = 900;

/**
 * A curation given at most this much less than the longest invocation (its margin aside) had
 * an invocation to itself, the Curate step's or an operator's: the slack covers a cold start
 * and the reads before curating proper.
 */
const WHOLE_INVOCATION_SLACK_SECONDS = 60;

/**
 * Why curation stopped at its deadline, and what the operator does. One that had an
 * invocation to itself and read devices all along needs more than any invocation gives at
 * this CPU, which Lambda raises with memory: a RunLimitError, which the state machine does not
 * retry, since the same CPU would fail the same way. Any other (an export's inline curation
 * with the time the export left, or one that read nothing, stuck) is a DeadlineError, which
 * the state machine retries in an invocation of its own. The pace (the devices read, in the
 * time taken) is only reported: it scales up what came before the first device too, and
 * leaves out the change rows written after the last.
 */
export function curationDeadlineError(
  runId: string,
  marginSeconds: number,
  progress: { read: number; total: number; elapsedMs: number; budgetMs: number },
): DeadlineError | RunLimitError {
  const { read, total } = progress;
  const seconds = Math.round(progress.elapsedMs / 1000);
  const where = read >= total ? `every one of its ${total} devices read and its files still being written` : `${read} of its ${total} devices read`;
  const stopped = `Stopped curating run ${runId} ${marginSeconds} s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS), after ${seconds} s with ${where}; nothing of it is visible and devices_current is as it was.`;
  const pace =
    read > 0 && read < total ? ` At that pace its devices alone take about ${Math.ceil((progress.elapsedMs * total) / read / 1000)} s to curate.` : '';
  const memory = "the function's memory (functionMemoryMb), which Lambda raises its CPU with";
  const wholeInvocation = progress.budgetMs >= (INVOCATION_MAX_SECONDS - marginSeconds - WHOLE_INVOCATION_SLACK_SECONDS) * 1000;
  if (wholeInvocation && read > 0) {
    return new RunLimitError(
      ErrorCode.CURATION_TIME_LIMIT,
      `${stopped}${pace} It had an invocation to itself: at this CPU the run needs more than an invocation's ${INVOCATION_MAX_SECONDS} s. ` +
        `Raise ${memory}, then curate it: {"curate": "${runId}"}.`,
    );
  }
  return new DeadlineError(
    `${stopped}${pace} Curate it in an invocation of its own: {"curate": "${runId}"}. ` +
      `A run that takes longer than an invocation's ${INVOCATION_MAX_SECONDS} s curates only with more CPU: raise ${memory}.`,
  );
}
