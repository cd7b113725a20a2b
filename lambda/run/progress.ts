import type { Logger } from '@aws-lambda-powertools/logger';

/** How often a run says how it is doing: a long run's log shows it moving, or stuck. */
export const PROGRESS_EVERY_MS = 30_000;

/** What a progress line reports, read when it is written. */
export interface ProgressFigures {
  /** Devices and pages written by the run so far, earlier invocations included. */
  devices: number;
  pages: number;
  /** Requests allowed on the wire now. */
  window: number;
  phase: 'sweep' | 'verification';
}

export interface ProgressReport {
  /** Writes a line now: at the end of an invocation. */
  report(): void;
  stop(): void;
}

/**
 * An INFO line "Run progress" every PROGRESS_EVERY_MS and when asked: devices and pages so
 * far, the rate since the line before (devices a second), the window, and which invocation
 * of the run this is (`slice`, from 1).
 */
export function reportProgress(read: () => ProgressFigures, run: { runId: string; slice: number; logger: Logger; everyMs?: number }): ProgressReport {
  const { runId, slice, logger } = run;
  let last = { at: Date.now(), devices: read().devices };
  const report = (): void => {
    const figures = read();
    const at = Date.now();
    const seconds = (at - last.at) / 1000;
    const devicesPerSecond = seconds > 0 ? Math.round((figures.devices - last.devices) / seconds) : 0;
    logger.info('Run progress', { runId, slice, ...figures, devicesPerSecond });
    last = { at, devices: figures.devices };
  };
  const timer = setInterval(report, run.everyMs ?? PROGRESS_EVERY_MS);
  // A pending report never keeps an invocation (or a test) alive.
  timer.unref();
  return { report, stop: () => clearInterval(timer) };
}
