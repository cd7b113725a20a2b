import { DeadlineError } from './errors.ts';

export interface Deadline {
  /** Aborts when the deadline is reached, with the DeadlineError as its reason. */
  signal: AbortSignal;
  /** Rejects with the DeadlineError when the deadline is reached; never resolves. */
  reached: Promise<never>;
  clear(): void;
}

/** The point, `marginSeconds` before the Lambda's hard timeout, at which a run stops itself. */
export function deadlineFor(remainingMs: number, marginSeconds: number): Deadline {
  return deadlineIn(
    remainingMs - marginSeconds * 1000,
    () =>
      new DeadlineError(
        `Stopped ${marginSeconds} s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS) with the export unfinished; ` +
          'nothing was published. Raise the function timeout or THINGPARK_CONCURRENCY, or lower THINGPARK_REQUEST_TIMEOUT_MS.',
      ),
  );
}

/**
 * A deadline `inMs` from now that aborts with `reason()`; `abort` ends the work early for
 * another reason (a failure elsewhere), as the deadline would.
 */
export function deadlineIn(inMs: number, reason: () => Error): Deadline & { abort(cause: unknown): void } {
  const controller = new AbortController();
  let fire: (reason: unknown) => void = () => undefined;
  const reached = new Promise<never>((_, reject) => {
    fire = reject;
  });
  reached.catch(() => undefined);
  const timer = setTimeout(
    () => {
      const error = reason();
      controller.abort(error);
      fire(error);
    },
    Math.max(0, inMs),
  );
  return { signal: controller.signal, reached, clear: () => clearTimeout(timer), abort: (cause) => controller.abort(cause) };
}

/** Why a run stopped to go on in another invocation: not a failure, and never thrown. */
export class SliceEnd extends Error {
  override readonly name = 'SliceEnd';
}

export interface Pause {
  /** Aborts, with a SliceEnd, when this invocation should stop at the next boundary. */
  signal: AbortSignal;
  clear(): void;
}

/**
 * When an invocation stops to let its run go on in another: `checkpointMarginSeconds`
 * before its deadline, the time it has to complete its open data file and save where it
 * stands. None when the invocation has less than that: the run then goes as far as its
 * deadline lets it, as it did before runs could continue.
 */
export function pauseFor(remainingMs: number, margins: { deadlineMarginSeconds: number; checkpointMarginSeconds: number }): Pause | undefined {
  const workMs = remainingMs - (margins.deadlineMarginSeconds + margins.checkpointMarginSeconds) * 1000;
  if (workMs <= 0) return undefined;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new SliceEnd('This invocation stopped to let its run go on in another')), workMs);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
