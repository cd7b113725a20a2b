/**
 * The shapes of the requests the function accepts, as the run reads them: here, below the
 * run, because the run makes a continuation and resumes and abandons from one, while the
 * handler's parse (lambda/requests.ts) checks that an event has exactly these shapes.
 */

/** What started a run, reduced to what the run needs. */
export type Trigger = { kind: 'schedule'; runTime: Date } | { kind: 'on-demand'; runTime: Date; label?: string };

/**
 * What an export answers when it stopped before its end to go on in another invocation:
 * small (its state is in the checkpoint it names, not here), so that a state machine can
 * carry it whatever the fleet. Invoking the function with exactly this object resumes the
 * run where it stopped. Its fields are a public contract.
 */
export interface Continuation {
  status: 'continue';
  runId: string;
  /** The attempt of the invocation that stopped, and saved the checkpoint. */
  attempt: string;
  bucket: string;
  /** The checkpoint's key (storage/layout.ts `checkpointKeys`). */
  checkpoint: string;
  /** SHA-256 of the checkpoint's bytes, hex: a resume refuses any other checkpoint. */
  sha256: string;
  /** Invocations the run has had so far. */
  slice: number;
  /** `sweep` while the device list is read, `verification` once it is checked against the previous run. */
  phase: 'sweep' | 'verification';
  /** Devices and pages written so far, and the time the invocations took. */
  devices: number;
  pages: number;
  elapsedMs: number;
}

/** The fields of a Continuation, in order: an event with exactly these is a continuation. */
export const CONTINUATION_FIELDS = ['status', 'runId', 'attempt', 'bucket', 'checkpoint', 'sha256', 'slice', 'phase', 'devices', 'pages', 'elapsedMs'] as const;

/** The fields of `{"abandon": {...}}`: a continuation's, naming the run and its last checkpoint. */
export const ABANDON_FIELDS = ['runId', 'attempt', 'bucket', 'checkpoint', 'sha256'] as const;

/** `{"abandon": {...}}`: the run and the checkpoint its last continuation named. */
export type AbandonRequest = Pick<Continuation, (typeof ABANDON_FIELDS)[number]>;
