import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@aws-lambda-powertools/logger';
import { inEuiOrder, type DataFile, type DataWriter } from '../storage/data-writer.ts';
import { writeKeyIndex, type KeyIndexEntry } from '../storage/key-index.ts';
import type { RunCounts } from '../storage/manifest.ts';
import type { Deadline } from '../common/deadline.ts';
import { ListIncompleteError } from '../common/errors.ts';
import type { Fallback, Paging } from '../common/paging.ts';
import { freshCursorState, type CursorState } from '../platform/cursor-sweep.ts';
import { shortfall } from '../platform/eui-ranges.ts';
import type { FleetReader, Sweep } from './fleet-reader.ts';
import type { RunServices } from '../common/services.ts';
import { FleetVerification, type PreviousRun, type Verified } from './verify-fleet.ts';

/** The fleet, written and verified: its files, its key index, and what the run counted. */
export interface StreamedSnapshot extends Pick<Verified, 'verification' | 'comparedWith'> {
  /** How the list was read (see common/paging.ts), and where offset paging started. */
  source: { paging: Paging; firstPageIndex?: number };
  fallback?: Fallback;
  /** The files, listed in EUI order where they hold the fleet in that order (a cursor read that did not fall back). */
  files: DataFile[];
  order?: 'eui';
  index: KeyIndexEntry;
  counts: RunCounts;
}

/**
 * The run's reading of the list so far, over every invocation of a continued run: how it
 * reads (`paging`, decided by the platform's first answer), where it goes on from (the
 * ranges' cursors, or `next`, the next page of an offset sweep), and once `finished`,
 * `requests`: the requests made by then (the run's page requests).
 */
export interface SweepSoFar extends Sweep {
  paging?: Paging;
  cursor?: CursorState;
  /** The page offset paging started at: configured, or learned from the platform. */
  firstPageIndex?: number;
  /** A finished cursor read: how many EUI ranges it read, and why it fell back to one sweep, if it did. */
  ranges?: number;
  fallback?: Fallback;
  finished?: boolean;
  requests?: number;
}

/** Whether the run's reading of the list is over (what follows is verification, then the commit). */
export function sweepFinished(sweep: SweepSoFar): boolean {
  return sweep.finished === true;
}

/** Where a run stands when its invocation's time is up: files complete, and what is left. */
export interface PausedSnapshot {
  /** This invocation's files, every one complete. */
  files: DataFile[];
  sweep: SweepSoFar;
  verification?: FleetVerification;
  /** Token grants, this invocation's and the earlier ones'. */
  tokenRequests: number;
}

/** What earlier invocations of a continued run did, for this one to go on from. */
export interface EarlierWork {
  files: readonly DataFile[];
  sweep: SweepSoFar;
  verification?: FleetVerification;
  tokenRequests: number;
}

const NOT_NEEDED: Verified = { verification: 'not-needed', recovered: 0, removed: 0, unresolved: 0, verificationRequests: 0 };

/**
 * Reads the list, or goes on reading it, into the reader: in cursor mode unless the
 * configuration asks for offsets or the platform has no cursor mode, in which case it
 * pages by offset from the page it starts at (learned). Updates `sweep` as it goes.
 */
async function readList(
  reader: FleetReader,
  sweep: SweepSoFar,
  how: { signal: AbortSignal; pause?: AbortSignal; paging: 'auto' | Paging },
): Promise<'paused' | 'done'> {
  const { signal, pause } = how;
  if (sweep.paging === undefined && how.paging === 'offset') sweep.paging = 'offset';
  if (sweep.paging !== 'offset') {
    sweep.paging = 'cursor';
    sweep.cursor ??= freshCursorState();
    const outcome = await reader.cursorSweep(signal, sweep.cursor, pause);
    if (outcome === 'paused') return 'paused';
    if (outcome === 'complete') {
      const { pages, wasted, ranges, fallback } = sweep.cursor;
      Object.assign(sweep, { pages, wasted, written: reader.seen.size + reader.unkeyed, ranges: ranges.length, finished: true });
      if (fallback !== undefined) sweep.fallback = fallback;
      delete sweep.cursor;
      return 'done';
    }
    sweep.paging = 'offset';
    sweep.wasted += sweep.cursor.wasted + 2;
    delete sweep.cursor;
  }
  sweep.firstPageIndex ??= await reader.firstPageIndex(signal);
  const part = await reader.sweep(signal, false, { from: sweep.next ?? sweep.firstPageIndex, pause });
  sweep.pages += part.pages;
  sweep.wasted += part.wasted;
  sweep.written += part.written;
  sweep.firstCount ??= part.firstCount;
  if (part.lastCount !== undefined) sweep.lastCount = part.lastCount;
  sweep.next = part.next;
  if (part.next !== undefined) return 'paused';
  sweep.finished = true;
  return 'done';
}

/**
 * An offset read that ends short of what the platform counted lost devices: offset paging
 * is capped (the spec: the page index and the devices it reaches are limited system-wide),
 * or the list ended early. Such a run must not commit as complete.
 */
function checkOffsetRead(reader: FleetReader, sweep: SweepSoFar): void {
  const read = reader.seen.size + reader.unkeyed;
  const missing = shortfall(read, [sweep.firstCount, sweep.lastCount]);
  if (missing === 0) return;
  throw new ListIncompleteError(
    'LIST_ENDED_EARLY',
    `Offset paging ended after ${read} devices (${sweep.pages} pages) while the platform counted ${Math.min(sweep.firstCount ?? read, sweep.lastCount ?? read)}: ` +
      `${missing} devices were not reached. The platform limits how far offset paging goes; a platform with cursor mode is read without that limit ` +
      '(THINGPARK_PAGING=auto).',
  );
}

/** How long a failed run lets its cancelled fetches wind down before it reports. */
const WIND_DOWN_MS = 200;

/**
 * Pages through the fleet in page order into the run's data files, each device once (its
 * first occurrence), every row tagged with the run id; then verifies the result against
 * the previous run (verify-fleet.ts), and writes the key index the next run compares with.
 * If anything fails or the deadline comes first, the writer is discarded (this invocation's
 * files and the index removed) and the failure is thrown.
 *
 * When `pause` aborts first (the invocation's time is up, see export-run.ts), it stops at
 * the next page or lookup boundary, completes the open data file and resolves with where
 * the run stands, for a checkpoint; a continued run starts from `earlier`.
 */
export async function streamSnapshot(
  services: RunServices,
  run: {
    runId: string;
    reader: FleetReader;
    writer: DataWriter;
    deadline: Deadline;
    pause?: AbortSignal;
    logger: Logger;
    previous: Promise<PreviousRun>;
    indexKey: string;
    earlier: EarlierWork;
  },
): Promise<{ done: StreamedSnapshot } | { paused: PausedSnapshot }> {
  const { config, tokens, s3 } = services;
  const { runId, reader, writer, deadline, pause, logger, earlier } = run;
  const grantsBefore = tokens.grants;
  // Updated in place as the sweep goes, so that progress reports can tell the phase.
  const sweep = earlier.sweep;
  let verification = earlier.verification;
  const { paging } = config;

  // Stops the paging when the run fails elsewhere (the writer), as the deadline does.
  const stop = new AbortController();
  const signal = AbortSignal.any([deadline.signal, stop.signal]);
  const produce = async () => {
    if (!sweepFinished(sweep)) {
      const read = await readList(reader, sweep, { signal, pause, paging });
      if (read === 'paused') return { paused: true as const };
      sweep.requests = reader.requests.requests;
    }
    const verified = await verify();
    if (!verified) return { paused: true as const };
    if (sweep.paging === 'offset') checkOffsetRead(reader, sweep);
    const files = await writer.close();
    writer.adopt(run.indexKey);
    const index = await writeKeyIndex(s3, config.bucket, run.indexKey, reader.seen);
    return { paused: false as const, verified, files, index };
  };
  // Cursor mode skips no device: only an offset read is compared with the previous run.
  const verify = async (): Promise<Verified | undefined> => {
    if (sweep.paging === 'cursor') return NOT_NEEDED;
    const previous = await run.previous;
    const firstPageIndex = sweep.firstPageIndex ?? 0;
    verification ??= FleetVerification.start(previous, reader.seen, { sweep, firstPageIndex, logger, runId });
    return verification.run(reader, previous, { sweep, signal, pause, logger, runId });
  };

  let produced: Awaited<ReturnType<typeof produce>>;
  let files: DataFile[];
  const producing = produce();
  try {
    produced = await Promise.race([producing, deadline.reached]);
    // Stopped at a boundary: the open data file is completed, within the deadline too.
    files = produced.paused ? await Promise.race([writer.close(), deadline.reached]) : produced.files;
  } catch (error) {
    stop.abort(error);
    await discardQuietly(writer, runId, logger);
    // The abort ends page fetches and waits at once; a token grant in flight hears no
    // signal and may take its timeout and retries, long past the deadline: not waited for.
    await Promise.race([producing.catch(() => undefined), sleep(WIND_DOWN_MS)]);
    throw deadline.signal.aborted ? deadline.signal.reason : error;
  }
  const tokenRequests = earlier.tokenRequests + tokens.grants - grantsBefore;
  if (produced.paused) return { paused: { files, sweep, ...(verification ? { verification } : {}), tokenRequests } };
  return { done: snapshotOf(reader, { sweep, earlier, files, verified: produced.verified, index: produced.index, tokenRequests }) };
}

/** The snapshot a run wrote once the list is read and verified: every invocation's files, and the counts of the whole run. */
function snapshotOf(
  reader: FleetReader,
  run: { sweep: SweepSoFar; earlier: EarlierWork; files: DataFile[]; verified: Verified; index: KeyIndexEntry; tokenRequests: number },
): StreamedSnapshot {
  const { sweep, verified, index, tokenRequests } = run;
  const { verification: outcome, comparedWith, ...verificationCounts } = verified;
  const written = [...run.earlier.files, ...run.files];
  // Each lane of a cursor read is in EUI order (cursor-sweep.ts); the unfiltered sweep of a fallback overlaps them.
  const ordered = sweep.paging === 'cursor' && sweep.fallback === undefined ? inEuiOrder(written) : undefined;
  const allFiles = ordered ?? written;
  return {
    source: { paging: sweep.paging ?? 'cursor', ...(sweep.firstPageIndex === undefined ? {} : { firstPageIndex: sweep.firstPageIndex }) },
    ...(sweep.fallback === undefined ? {} : { fallback: sweep.fallback }),
    files: allFiles,
    ...(ordered === undefined ? {} : { order: 'eui' as const }),
    index,
    verification: outcome,
    ...(comparedWith === undefined ? {} : { comparedWith }),
    counts: {
      devices: allFiles.reduce((sum, file) => sum + file.devices, 0),
      pages: sweep.pages,
      pageRequests: sweep.requests ?? reader.requests.requests,
      wastedRequests: sweep.wasted,
      duplicates: reader.duplicates,
      unkeyed: reader.unkeyed,
      throttled: reader.requests.throttled,
      retries: reader.budget.spent,
      tokenRequests,
      ranges: sweep.ranges ?? 0,
      ...verificationCounts,
    },
  };
}

/**
 * Removes a failed run's data files; a failure to do so is logged, not thrown, so the
 * run's own failure is what the caller sees. The attempt's marker lets a later run finish
 * the removal.
 */
export async function discardQuietly(writer: DataWriter, runId: string, logger: Logger): Promise<void> {
  await writer.discard().catch((cleanup: unknown) =>
    logger.error("Could not remove the failed run's data files; they have no manifest and are not part of any snapshot", {
      runId,
      error: cleanup instanceof Error ? cleanup.message : String(cleanup),
    }),
  );
}
