import { DeadlineError } from '../errors.ts';

export interface Deadline {
  /** Aborts when the deadline is reached, with the DeadlineError as its reason. */
  signal: AbortSignal;
  /** Rejects with the DeadlineError when the deadline is reached; never resolves. */
  reached: Promise<never>;
  clear(): void;
}

/** The point, `marginSeconds` before the Lambda's hard timeout, at which a run stops itself. */
export function deadlineFor(remainingMs: number, marginSeconds: number): Deadline {
  const controller = new AbortController();
  let fire: (reason: unknown) => void = () => undefined;
  const reached = new Promise<never>((_, reject) => {
    fire = reject;
  });
  reached.catch(() => undefined);
  const timer = setTimeout(
    () => {
      const reason = new DeadlineError(
        `Stopped ${marginSeconds} s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS) with the export unfinished; ` +
          'nothing was published. Raise the function timeout or THINGPARK_CONCURRENCY, or lower THINGPARK_REQUEST_TIMEOUT_MS.',
      );
      controller.abort(reason);
      fire(reason);
    },
    Math.max(0, remainingMs - marginSeconds * 1000),
  );
  return { signal: controller.signal, reached, clear: () => clearTimeout(timer) };
}
