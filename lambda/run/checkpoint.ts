import type { Config } from '../common/config.ts';
import { ErrorCode, EventError, RunLimitError } from '../common/errors.ts';
import type { Continuation, Trigger } from '../common/request-types.ts';
import { SETTLED_MS } from '../storage/attempts.ts';
import type { KeySetEntry } from '../storage/checkpoints.ts';
import type { DataFile } from '../storage/data-writer.ts';
import { checkpointKeys } from '../storage/layout.ts';
import { checkContents } from './checkpoint-contents.ts';
import type { ReaderCounts } from './fleet-reader.ts';
import { sweepFinished, type PausedSnapshot, type SweepSoFar } from './stream-snapshot.ts';
import type { PreviousRun, VerificationProgress } from './verify-fleet.ts';

/** One invocation of a continued run: its attempt names its data files and its marker. */
export interface SliceRecord {
  attempt: string;
  startedAt: string;
  durationMs: number;
}

/** Everything a continued run's next invocation needs, saved where the last one stopped. */
export interface Checkpoint {
  schemaVersion: 1;
  runId: string;
  /** The attempt that saved it. */
  attempt: string;
  bucket: string;
  prefix: string;
  trigger: { kind: Trigger['kind']; runTime: string; label?: string };
  /** When the run's first invocation started. */
  startedAt: string;
  savedAt: string;
  /** Every invocation so far, in order, the one that saved it last: their markers guard the files. */
  slices: SliceRecord[];
  /** Every data file written so far, each complete, in order. */
  files: DataFile[];
  sweep: SweepSoFar;
  /** Once the first sweep is complete. */
  verification?: VerificationProgress;
  counts: ReaderCounts & { tokenRequests: number };
  /** The committed run this one compares itself with, as the first invocation found it. */
  previous: Omit<PreviousRun, 'index'>;
  /** The de-duplication set: the key of every device written so far. */
  seen: KeySetEntry;
  /** The verification's lookups not yet made, once it is looking devices up. */
  lookups?: KeySetEntry;
}

/** Where a slice stopped, as its invocation holds it: what the checkpoint saves. */
export interface StoppedSlice {
  runId: string;
  /** The attempt of the invocation that stopped. */
  attempt: string;
  trigger: Trigger;
  /** When the run's first invocation started. */
  startedAt: Date;
  /** Every invocation so far, the one that stopped last. */
  slices: SliceRecord[];
  /** Every data file written so far, in order. */
  files: DataFile[];
  paused: PausedSnapshot;
  counts: ReaderCounts;
  previous: Omit<PreviousRun, 'index'>;
}

/** The checkpoint of a slice that stopped, once its key sets are stored (`seen`, `lookups`) where `bucket` and `prefix` keep them. */
export function checkpointOf(
  stopped: StoppedSlice,
  stored: { bucket: string; prefix: string; seen: KeySetEntry; lookups?: KeySetEntry | undefined; savedAt: Date },
): Checkpoint {
  const { trigger, paused } = stopped;
  return {
    schemaVersion: 1,
    runId: stopped.runId,
    attempt: stopped.attempt,
    bucket: stored.bucket,
    prefix: stored.prefix,
    trigger: {
      kind: trigger.kind,
      runTime: trigger.runTime.toISOString(),
      ...(trigger.kind === 'on-demand' && trigger.label ? { label: trigger.label } : {}),
    },
    startedAt: stopped.startedAt.toISOString(),
    savedAt: stored.savedAt.toISOString(),
    slices: stopped.slices,
    files: stopped.files,
    sweep: paused.sweep,
    ...(paused.verification ? { verification: paused.verification.progress } : {}),
    counts: { ...stopped.counts, tokenRequests: paused.tokenRequests },
    previous: stopped.previous,
    seen: stored.seen,
    ...(stored.lookups ? { lookups: stored.lookups } : {}),
  };
}

/** The Continuation that resumes a run from the checkpoint saved at `key`, whose bytes have that SHA-256. */
export function continuationOf(checkpoint: Checkpoint, saved: { key: string; sha256: string }): Continuation {
  const { runId, attempt, bucket, slices, files } = checkpoint;
  return {
    status: 'continue',
    runId,
    attempt,
    bucket,
    checkpoint: saved.key,
    sha256: saved.sha256,
    slice: slices.length,
    phase: sweepFinished(checkpoint.sweep) ? 'verification' : 'sweep',
    devices: files.reduce((sum, file) => sum + file.devices, 0),
    pages: checkpoint.counts.pages,
    elapsedMs: slices.reduce((sum, { durationMs }) => sum + durationMs, 0),
  };
}

/**
 * How long after an invocation stopped its run may be resumed. The markers it refreshed
 * when it stopped keep the run's files from being settled for SETTLED_MS (an hour); ten
 * minutes are kept back, so that a resume that starts just before the end still refreshes
 * them again before a later run can settle them.
 */
export const RESUME_WITHIN_MS = SETTLED_MS - 10 * 60 * 1000;

/** The trigger a checkpoint carries, as the run's first invocation parsed it. */
export function triggerOf(checkpoint: Pick<Checkpoint, 'trigger'>): Trigger {
  const { kind, runTime, label } = checkpoint.trigger;
  const at = new Date(runTime);
  return kind === 'schedule' ? { kind, runTime: at } : { kind, runTime: at, ...(label === undefined ? {} : { label }) };
}

/**
 * Refuses, before anything is read, a continuation that is not this deployment's: of
 * another bucket, or whose checkpoint is not where this function keeps the checkpoints of
 * the run and attempt it names (another prefix, another run).
 */
export function checkForeign(request: Pick<Continuation, 'runId' | 'attempt' | 'bucket' | 'checkpoint'>, config: Pick<Config, 'bucket' | 'prefix'>): void {
  if (request.bucket !== config.bucket) {
    throw new EventError(
      `This continuation is of a run in bucket "${request.bucket}"; this function exports to "${config.bucket}". ` +
        'Resume a run with the function (and state machine) that started it.',
    );
  }
  const expected = checkpointKeys(config.prefix, request.runId, request.attempt).checkpoint;
  if (request.checkpoint !== expected) {
    throw new EventError(
      `This continuation names the checkpoint "${request.checkpoint}", but run ${request.runId}'s checkpoint from attempt ${request.attempt} ` +
        `would be "${expected}" under this function's prefix "${config.prefix}": it is of another prefix or another run.`,
    );
  }
}

/**
 * The checkpoint a continuation names, as S3 holds it, checked against the continuation
 * and this deployment; EventError when it is missing (forged, or its run abandoned),
 * different (forged, or not the one this continuation was given for), of another run,
 * naming objects not its run's (checkpoint-contents.ts), or too old to resume.
 */
export function checkedCheckpoint(
  request: Continuation,
  stored: { value: Checkpoint; sha256: string } | undefined,
  config: Pick<Config, 'bucket' | 'prefix'>,
  now: Date,
): Checkpoint {
  const restart = 'To export anyway, start the run again from its first event (a schedule\'s {"scheduledTime": ...} keeps its run id).';
  if (!stored) {
    throw new EventError(
      `The checkpoint ${request.checkpoint} does not exist: the continuation was not made by this function, or its run was abandoned. ${restart}`,
    );
  }
  if (stored.sha256 !== request.sha256) {
    throw new EventError(
      `The checkpoint ${request.checkpoint} does not match the continuation (its SHA-256 is ${stored.sha256}, the continuation says ${request.sha256}): ` +
        'the continuation was altered, or is not the one this checkpoint was saved for.',
    );
  }
  const checkpoint = stored.value;
  const belongs =
    checkpoint.schemaVersion === 1 &&
    checkpoint.runId === request.runId &&
    checkpoint.attempt === request.attempt &&
    checkpoint.bucket === config.bucket &&
    checkpoint.prefix === config.prefix;
  if (!belongs) {
    throw new EventError(`The checkpoint ${request.checkpoint} is not of run ${request.runId}, attempt ${request.attempt}, in this bucket and prefix.`);
  }
  checkContents(checkpoint, config.prefix);
  const ageMs = now.getTime() - Date.parse(checkpoint.savedAt);
  if (!(ageMs <= RESUME_WITHIN_MS)) {
    throw new EventError(
      `Run ${request.runId} stopped at ${checkpoint.savedAt}, ${Math.round(ageMs / 60_000)} minutes ago; a run is resumed within ` +
        `${RESUME_WITHIN_MS / 60_000} minutes of its last invocation, after which later runs may remove its files. ${restart}`,
    );
  }
  return checkpoint;
}

/**
 * Refuses to go on with a run past its ceilings: as many invocations as RUN_MAX_SLICES
 * allows have run, or RUN_MAX_MINUTES have passed since its first invocation started.
 * Checked as an invocation resumes, before anything is read of the platform: a run that
 * cannot end (a platform repeating its list) fails within them, and the next schedule starts
 * a run of its own.
 */
export function checkCeilings(
  checkpoint: Pick<Checkpoint, 'runId' | 'slices' | 'startedAt'>,
  config: Pick<Config, 'maxSlices' | 'maxRunMinutes'>,
  now: Date,
): void {
  const { runId, slices } = checkpoint;
  if (slices.length >= config.maxSlices) {
    throw new RunLimitError(
      ErrorCode.RUN_SLICE_LIMIT,
      `Run ${runId} has had ${slices.length} invocations, as many as RUN_MAX_SLICES (${config.maxSlices}) allows, and is not continued: ` +
        'a fleet that needs more invocations needs a higher RUN_MAX_SLICES; otherwise the platform may not be ending its list.',
    );
  }
  const minutes = (now.getTime() - Date.parse(checkpoint.startedAt)) / 60_000;
  if (minutes >= config.maxRunMinutes) {
    throw new RunLimitError(
      ErrorCode.RUN_TIME_LIMIT,
      `Run ${runId} started ${Math.floor(minutes)} minutes ago, RUN_MAX_MINUTES (${config.maxRunMinutes}) allows no more, and is not continued: ` +
        'a fleet that takes longer needs a higher RUN_MAX_MINUTES (and a schedule period longer than that); otherwise the platform may not be ending its list.',
    );
  }
}
