import { DeadlineError, ErrorCode, RunLimitError } from '../common/errors.ts';
import type { FleetReader } from './fleet-reader.ts';
import type { PausedSnapshot } from './stream-snapshot.ts';

/** Where a slice's reader stood when the slice began. */
export interface SliceStart {
  pages: number;
  devices: number;
}

export function sliceStart(reader: FleetReader): SliceStart {
  return { pages: reader.pages, devices: reader.seen.size + reader.unkeyed };
}

/**
 * Why a paused slice got its run no further, or undefined when it did. A slice progresses
 * when it writes a device the run had not written, or resolves a lookup; a slice of a sweep
 * that meets known devices by design (verification's second sweep, or a cursor read fallen
 * back to one unfiltered sweep) progresses when it reads pages, each past where the slice
 * before stopped. Reading pages of only known devices in the first sweep is what a platform
 * repeating its pages does: continuing would read them until the run's ceilings.
 */
export function stall(reader: FleetReader, start: SliceStart, paused: PausedSnapshot, checkpointMarginSeconds: number): Error | undefined {
  const pages = reader.pages - start.pages;
  const written = reader.seen.size + reader.unkeyed - start.devices;
  const resolved = paused.verification?.resolved ?? 0;
  if (written > 0 || resolved > 0) return undefined;
  if (pages === 0) {
    return new DeadlineError(
      `The invocation's time for work ran out before it wrote a page or resolved a device (RUN_CHECKPOINT_MARGIN_SECONDS ${checkpointMarginSeconds}); ` +
        'a run that makes no progress is not continued. Check that the platform answers, or give the invocation more time.',
    );
  }
  if (rereading(paused)) return undefined;
  return new RunLimitError(
    ErrorCode.RUN_PAGE_LIMIT,
    `The invocation read ${pages} pages holding only devices the run had already written: the platform is repeating its pages, ` +
      'and a run that reads nothing new is not continued. Nothing is committed.',
  );
}

/** Whether the run stopped in a sweep whose pages hold devices already written by design. */
function rereading(paused: PausedSnapshot): boolean {
  return paused.verification?.progress.resweepFrom !== undefined || paused.sweep.cursor?.mode === 'single';
}
