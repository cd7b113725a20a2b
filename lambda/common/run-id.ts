import { utcFields } from './calendar.ts';

/**
 * A run id: the run's UTC time to the second (its stamp, `YYYYMMDDTHHMMSSZ`), and for an
 * on-demand run a dash and its invocation (1 to 8 lower-case letters and digits). Ids sort
 * as strings in time order, the order S3 lists keys in.
 */
const RUN_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-[a-z0-9]{1,8})?$/;

/** How long a run id's stamp is: `YYYYMMDDTHHMMSSZ`. */
const STAMP_LENGTH = 16;

/**
 * A schedule's run id is its time alone, so a redelivered schedule maps to the same run.
 * An on-demand run adds its invocation, so two operators' runs never collide.
 */
export function runIdOf(trigger: { kind: 'schedule' | 'on-demand'; runTime: Date }, invocation: string): string {
  const stamp = stampOf(trigger.runTime);
  return trigger.kind === 'schedule' ? stamp : `${stamp}-${invocation}`;
}

/** One invocation's short, key-safe name: the start of its request id. */
export function invocationOf(requestId: string): string {
  return (
    requestId
      .replace(/[^A-Za-z0-9]/g, '')
      .slice(0, 8)
      .toLowerCase() || 'local'
  );
}

/** A time as run ids start, to the second: 20261128T100000Z. */
export function stampOf(time: Date): string {
  return time
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** The stamp a run id starts with: the second it names, in the form that sorts as the time does. */
export function stampOfRunId(runId: string): string {
  return runId.slice(0, STAMP_LENGTH);
}

/** A run id read back. */
export interface ParsedRunId {
  /** The time it names, rolled over when that time does not exist. */
  time: Date;
  /** Whether its fields name a time that exists (no February 30th, no hour 24). */
  exists: boolean;
  /** Its date partition, `YYYY-MM-DD`: the day its keys are filed under. */
  date: string;
}

/** A run id's time and date; undefined for a value not of the run id's form. */
export function parseRunId(runId: string): ParsedRunId | undefined {
  const match = RUN_ID.exec(runId);
  if (!match) return undefined;
  const [year = '', month = '', day = ''] = match.slice(1, 4);
  const { time, exists } = utcFields(match.slice(1, 7).map(Number), 0);
  return { time, exists, date: `${year}-${month}-${day}` };
}
