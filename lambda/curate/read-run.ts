import type { S3Client } from '@aws-sdk/client-s3';
import { CurationError, ErrorCode } from '../common/errors.ts';
import type { Manifest } from '../storage/manifest.ts';
import { rowsOf, type CurationProgress, type ProgressCounts } from './curation-progress.ts';
import { FleetSignalCounter } from './fleet-signals.ts';
import { readState, stateEntry, type BaseState, type StateEntry, type StateWriter } from './fleet-state.ts';
import type { ParquetFiles } from './parquet-files.ts';
import { rawBriefs, type RawPosition } from './raw-briefs.ts';
import { snapshotRow } from './snapshot-rows.ts';

/** What reading a run's raw files needs: where to write, where it stands, and when to stop. */
export interface RunReading {
  s3: S3Client;
  bucket: string;
  manifest: Manifest;
  /** Where the invocations before this one got; none for the first. */
  progress: CurationProgress | undefined;
  /** The previous run's devices, which every device read is compared with. */
  base: BaseState;
  snapshots: ParquetFiles;
  state: StateWriter;
  /** Where the run's state is: read back from by a resumed invocation, then written whole again. */
  stateKey: string;
  fields: readonly string[];
  silentAfterHours: number;
  /** Aborts the work: the invocation's deadline, or a failure elsewhere. */
  signal: AbortSignal;
  /** Aborts when this invocation should stop reading, after the device it is on, to go on in another. */
  pause: AbortSignal | undefined;
  /** Devices read so far, for the deadline's message. */
  read: { devices: number };
  started: number;
}

/**
 * Reads the run's raw files on from where the progress stands, into device_snapshots (files
 * numbered on from the earlier invocations'), the run's state and the fleet's counts, until
 * they end or `pause` asks to stop; always at least one device, so that every invocation
 * moves the curation on. The state is written whole again: the earlier invocations' entries
 * first (read back from their state, and compared with the previous run again, since BaseState
 * is rebuilt by each invocation), then this one's. Returns what the progress keeps, and the
 * devices new since the previous run among all read so far.
 */
export async function readRun(reading: RunReading): Promise<{ counts: ProgressCounts; added: number }> {
  const { manifest, progress, base, state, pause, read } = reading;
  const runTime = new Date(manifest.runTime);
  let added = progress ? await replayState(reading, progress.stateEntries, (entry) => state.write(entry)) : 0;
  const fleet = new FleetSignalCounter(runTime, reading.silentAfterHours, progress?.fleet);
  const position: RawPosition = progress ? { ...progress.next } : { file: 0, line: 0 };
  let { devices, unkeyed, stateEntries } = progress ?? { devices: 0, unkeyed: 0, stateEntries: 0 };
  read.devices = devices;
  const rows = async function* () {
    for await (const brief of rawBriefs(reading.s3, manifest, { signal: reading.signal, position })) {
      reading.signal.throwIfAborted();
      devices += 1;
      read.devices = devices;
      fleet.add(brief);
      const entry = stateEntry(brief, reading.fields);
      if (entry === undefined) unkeyed += 1;
      else {
        stateEntries += 1;
        await state.write(entry);
        if (base.compare(entry) === 'added') added += 1;
      }
      yield snapshotRow(brief, { runId: manifest.runId, runTime });
      if (pause?.aborted) return;
    }
  };
  const files = await reading.snapshots.write(rows());
  await state.close();
  const counts: ProgressCounts = {
    invocations: (progress?.invocations ?? 0) + 1,
    elapsedMs: (progress?.elapsedMs ?? 0) + (Date.now() - reading.started),
    next: position,
    read: devices === rowsOf(manifest),
    devices,
    unkeyed,
    stateEntries,
    fleet: fleet.tally(),
    snapshotFiles: [...(progress?.snapshotFiles ?? []), ...files.map(({ rows: fileRows, bytes }) => ({ rows: fileRows, bytes }))],
  };
  return { counts, added };
}

/**
 * Compares the first `entries` devices of the run's saved state with the previous run (each
 * handed to `each` too), as the invocations that read them did; returns how many are new.
 * A state that is gone, or holds fewer, fails with PROGRESS_DAMAGED.
 */
export async function replayState(
  reading: Pick<RunReading, 's3' | 'bucket' | 'manifest' | 'base' | 'fields' | 'signal' | 'stateKey'>,
  entries: number,
  each?: (entry: StateEntry) => Promise<void>,
): Promise<number> {
  const { manifest } = reading;
  const key = reading.stateKey;
  const saved = await readState(reading.s3, reading.bucket, key, reading.fields);
  let replayed = 0;
  let added = 0;
  if (saved) {
    for await (const entry of saved) {
      if (replayed === entries) break;
      reading.signal.throwIfAborted();
      replayed += 1;
      if (reading.base.compare(entry) === 'added') added += 1;
      await each?.(entry);
    }
  }
  if (replayed < entries) {
    throw new CurationError(
      ErrorCode.PROGRESS_DAMAGED,
      `Run ${manifest.runId}: the state its curation saved so far (${key}) holds ${saved ? replayed : 'no'} entries where its progress counts ${entries}. ` +
        `What the curation saved is removed: curate the run again, from the start: {"curate": "${manifest.runId}"}`,
    );
  }
  return added;
}
