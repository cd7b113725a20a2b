import { utcFields } from './common/calendar.ts';
import { EventError } from './common/errors.ts';
import { ABANDON_FIELDS, CONTINUATION_FIELDS, type AbandonRequest, type Continuation, type Trigger } from './common/request-types.ts';
import { parseRunId } from './common/run-id.ts';
import { checkpointKeys } from './storage/layout.ts';

/**
 * Every request the function accepts: a trigger (a schedule's or an operator's) starts a
 * run; a continuation goes on with one; `{"curate": "<runId>"}` curates a committed run;
 * `{"abandon": {...}}` gives up a continued one.
 */
export type Request =
  Trigger | { kind: 'continuation'; continuation: Continuation } | { kind: 'curate'; runId: string } | { kind: 'abandon'; abandon: AbandonRequest };

const ON_DEMAND_FIELDS = ['label'] as const;
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CLASSIC_SCHEDULE_FIELDS = new Set(['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'resources', 'detail']);

/**
 * How far a schedule time may be ahead of the function's clock. A schedule is delivered at
 * or after its time, so being ahead only ever comes from clocks disagreeing, which is
 * seconds; five minutes absorbs that and still refuses a mistyped date.
 */
export const SCHEDULE_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * The earliest schedule time accepted. Old times stay legitimate (redeliveries, redos), but
 * no schedule could have been sent before CloudWatch Events, EventBridge's forerunner, came
 * out in 2016, while the values an unset, reset or defaulted clock gives (year 0000, the
 * 1970 epoch) and two-digit year slips (0026) all fall before this. A round date clear of
 * both; it also keeps run ids at four-digit years, so they sort as strings.
 */
export const EARLIEST_SCHEDULE_TIME = new Date('2000-01-01T00:00:00Z');

/**
 * RFC 3339's date-time, upper-case "T" and "Z" only. Fractions stop at nanoseconds, the
 * finest any clock or AWS service writes. Only the offset's range is checked here: the
 * other fields are checked by reading them back, which also catches days past a month's end.
 */
const SCHEDULE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])([01]\d|2[0-3]):([0-5]\d))$/;

/** How much of a value or a list an error repeats: enough to recognise it, never the whole event. */
const ECHO_CHARACTERS = 64;
const ECHO_NAMES = 10;

/**
 * The request an event is, checked as strictly as its kind asks; EventError, before any
 * request is made, for anything else. The kind is decided once, by the field that names it
 * (`curate`, `"status": "continue"`, `abandon`, in that order); an event with none of them
 * is a trigger.
 */
export function parseRequest(event: unknown, now: Date): Request {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return parseTrigger(event, now);
  const fields = event as Record<string, unknown>;
  if ('curate' in fields) return { kind: 'curate', runId: parseCurate(fields) };
  if (fields.status === 'continue') return { kind: 'continuation', continuation: parseContinuation(fields) };
  if ('abandon' in fields) return { kind: 'abandon', abandon: parseAbandon(fields) };
  return parseTrigger(fields, now);
}

/**
 * Accepts, and nothing else:
 * - EventBridge Scheduler's payload `{ "scheduledTime": "<ISO time>" }`;
 * - a classic EventBridge scheduled rule event (`"detail-type": "Scheduled Event"`, `time`);
 * - an on-demand `{}` or `{ "label": "<1-64 of A-Za-z0-9._->" }`.
 */
function parseTrigger(event: unknown, now: Date): Trigger {
  if (event === null || event === undefined) return { kind: 'on-demand', runTime: now };
  if (typeof event !== 'object' || Array.isArray(event)) {
    throw new EventError(`The event must be a JSON object, got ${Array.isArray(event) ? 'an array' : typeof event}. ${usage()}`);
  }
  const fields = event as Record<string, unknown>;
  if ('scheduledTime' in fields) {
    const extra = Object.keys(fields).filter((name) => name !== 'scheduledTime');
    if (extra.length > 0) throw new EventError(`A scheduled event carries only "scheduledTime"; unexpected: ${names(extra, bare)}. ${usage()}`);
    return { kind: 'schedule', runTime: scheduleTime(fields.scheduledTime, 'scheduledTime', now) };
  }
  if (fields['detail-type'] === 'Scheduled Event' && fields.source === 'aws.events') {
    const extra = Object.keys(fields).filter((name) => !CLASSIC_SCHEDULE_FIELDS.has(name));
    if (extra.length > 0) throw new EventError(`Unexpected fields in a scheduled rule event: ${names(extra, bare)}. ${usage()}`);
    return { kind: 'schedule', runTime: scheduleTime(fields.time, 'time', now) };
  }
  const unknown = Object.keys(fields).filter((name) => !(ON_DEMAND_FIELDS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new EventError(`Unknown field${unknown.length > 1 ? 's' : ''} ${names(unknown, shown)} in an on-demand event. ${usage()}`);
  }
  const { label } = fields;
  if (label === undefined) return { kind: 'on-demand', runTime: now };
  if (typeof label !== 'string' || !LABEL.test(label)) {
    throw new EventError(`"label" must be 1 to 64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit. ${usage()}`);
  }
  return { kind: 'on-demand', runTime: now, label };
}

/**
 * Parsed by hand rather than by `new Date`, which reads a time without a zone in the
 * function's own zone and rolls impossible fields over: 2026-02-30 would become March 2nd,
 * and 24:00 the next day's 00:00, the run id of the next day's real schedule, which would
 * then be reported as already committed.
 */
function scheduleTime(value: unknown, field: string, now: Date): Date {
  const match = typeof value === 'string' ? SCHEDULE_TIME.exec(value) : null;
  if (!match) {
    throw new EventError(
      `"${field}" must be an ISO 8601 time such as 2026-01-31T12:00:00Z ` +
        `(date, "T", hh:mm:ss, an optional fraction, then "Z" or an offset such as +01:00), got ${shown(value)}.`,
    );
  }
  const at = (group: number) => Number(match[group] ?? 0);
  const [year, month, day, hour, minute, second] = [at(1), at(2), at(3), at(4), at(5), at(6)];
  const millisecond = Number((match[7] ?? '').padEnd(3, '0').slice(0, 3));
  const offsetMs = (match[8] === '-' ? -1 : 1) * (at(9) * 60 + at(10)) * 60_000;
  const local = utcFields([year, month, day, hour, minute, second], millisecond);
  const time = new Date(local.time.getTime() - offsetMs);
  if (!local.exists) {
    throw new EventError(
      `"${field}" names a time that does not exist: ${shown(value)} would roll over to ${time.toISOString()}. ` +
        `The day must exist in its month, hours run 00-23 (24:00 is the next day's 00:00) and minutes and seconds 00-59.`,
    );
  }
  if (time.getTime() < EARLIEST_SCHEDULE_TIME.getTime()) {
    throw new EventError(
      `"${field}" is before ${EARLIEST_SCHEDULE_TIME.toISOString().replace('.000Z', 'Z')}, the earliest accepted time: ${shown(value)}. ` +
        `A schedule time this early comes from an unset or reset clock or a mistyped year.`,
    );
  }
  // Past times stay accepted: redeliveries and redos of old schedules are legitimate.
  if (time.getTime() > now.getTime() + SCHEDULE_CLOCK_SKEW_MS) {
    throw new EventError(
      `"${field}" is in the future: ${shown(value)}, now is ${now.toISOString()}. ` +
        `A run's time orders the "latest" pointer, so a future run would keep every later run from moving it; ` +
        `at most ${SCHEDULE_CLOCK_SKEW_MS / 60_000} minutes ahead are allowed, for clock skew.`,
    );
  }
  return time;
}

/** A value as an error repeats it: JSON, cut to its start when long, saying how long it was. */
function shown(value: unknown): string {
  if (typeof value === 'string') {
    return value.length <= ECHO_CHARACTERS ? JSON.stringify(value) : `${JSON.stringify(start(value))}… (${value.length} characters)`;
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length <= ECHO_CHARACTERS ? text : `${start(text)}… (${text.length} characters of JSON)`;
}

/** A field name as the scheduled-event messages list it, unquoted. */
function bare(name: string): string {
  return name.length <= ECHO_CHARACTERS ? name : `${start(name)}… (${name.length} characters)`;
}

function start(text: string): string {
  const cut = text.slice(0, ECHO_CHARACTERS);
  // Never end on half of a surrogate pair, which would print as a replacement character.
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

function names(list: string[], show: (name: string) => string): string {
  const listed = list.slice(0, ECHO_NAMES).map(show).join(', ');
  return list.length > ECHO_NAMES ? `${listed} and ${list.length - ECHO_NAMES} more` : listed;
}

function usage(): string {
  return (
    `Allowed on demand: {} or {"label": "..."} (fields: ${ON_DEMAND_FIELDS.join(', ')}); scheduled: {"scheduledTime": "<ISO time>"} or an EventBridge "Scheduled Event"; ` +
    'to curate a committed run: {"curate": "<runId>"}; to resume a run: the object it answered with "status": "continue".'
  );
}

/**
 * Whether a value is a run id some run can have: of the run id's form, naming a time that
 * exists and is not before EARLIEST_SCHEDULE_TIME (no run can have an earlier one).
 */
function isRunId(value: unknown): value is string {
  const parsed = typeof value === 'string' ? parseRunId(value) : undefined;
  return parsed !== undefined && parsed.exists && parsed.time.getTime() >= EARLIEST_SCHEDULE_TIME.getTime();
}

/**
 * The run a `{"curate": "<runId>"}` event asks to curate. Read as strictly as a schedule:
 * `curate` is the only field, and its value a run id.
 */
function parseCurate(fields: Record<string, unknown>): string {
  const extra = Object.keys(fields).filter((name) => name !== 'curate');
  if (extra.length > 0) throw new EventError(`A curate event carries only "curate"; unexpected: ${names(extra, bare)}. ${usage()}`);
  const { curate } = fields;
  if (!isRunId(curate)) {
    throw new EventError(
      `"curate" must be a run id such as 20261128T100000Z (a schedule's) or 20261128T101530Z-6bd1a0f2 (an on-demand run's), ` +
        `naming a time that exists, from ${EARLIEST_SCHEDULE_TIME.getUTCFullYear()} on; got ${shown(curate)}.`,
    );
  }
  return curate;
}

/**
 * The run a continuation asks to resume: exactly the object an export answered with
 * `"status": "continue"`, passed back as the event. Only its form is checked here. That it
 * is this deployment's, unaltered and recent is checked against the checkpoint it names
 * (run/checkpoint.ts) before anything else is done.
 */
function parseContinuation(fields: Record<string, unknown>): Continuation {
  const expected: readonly string[] = CONTINUATION_FIELDS;
  const extra = Object.keys(fields).filter((name) => !expected.includes(name));
  const missing = expected.filter((name) => !(name in fields));
  if (extra.length > 0 || missing.length > 0) {
    const wrong = [...(missing.length > 0 ? [`missing: ${names(missing, bare)}`] : []), ...(extra.length > 0 ? [`unexpected: ${names(extra, bare)}`] : [])];
    throw new EventError(`A continuation is exactly the object a run answered with "status": "continue" (${expected.join(', ')}); ${wrong.join('; ')}.`);
  }
  const problems = runReferenceProblems(fields);
  const { slice, phase, devices, pages, elapsedMs } = fields;
  if (!Number.isSafeInteger(slice) || (slice as number) < 1) problems.push(`"slice" must be a whole number from 1, got ${shown(slice)}`);
  if (phase !== 'sweep' && phase !== 'verification') problems.push(`"phase" must be "sweep" or "verification", got ${shown(phase)}`);
  for (const [name, value] of Object.entries({ devices, pages, elapsedMs })) {
    if (!Number.isSafeInteger(value) || (value as number) < 0) problems.push(`"${name}" must be a whole number from 0, got ${shown(value)}`);
  }
  if (problems.length > 0)
    throw new EventError(`The continuation is malformed: ${problems.join('; ')}. Resume a run with exactly the object it answered with.`);
  return fields as unknown as Continuation;
}

/**
 * The run an `{"abandon": {runId, attempt, bucket, checkpoint, sha256}}` event gives up
 * (run/abandon.ts: what it removes). The fields are the continuation's it was last given,
 * and are read as strictly.
 */
function parseAbandon(event: Record<string, unknown>): AbandonRequest {
  const extra = Object.keys(event).filter((name) => name !== 'abandon');
  if (extra.length > 0) throw new EventError(`An abandon event carries only "abandon"; unexpected: ${names(extra, bare)}.`);
  const { abandon } = event;
  const expected: readonly string[] = ABANDON_FIELDS;
  const fields = abandon !== null && typeof abandon === 'object' && !Array.isArray(abandon) ? (abandon as Record<string, unknown>) : undefined;
  const extraFields = fields ? Object.keys(fields).filter((name) => !expected.includes(name)) : [];
  if (!fields || extraFields.length > 0 || expected.some((name) => !(name in fields))) {
    throw new EventError(
      `"abandon" must be an object with exactly ${expected.join(', ')}: those of the continuation the run last answered with` +
        `${extraFields.length > 0 ? `; unexpected: ${names(extraFields, bare)}` : ''}.`,
    );
  }
  const problems = runReferenceProblems(fields);
  if (problems.length > 0) throw new EventError(`The abandon event is malformed: ${problems.join('; ')}.`);
  return fields as unknown as AbandonRequest;
}

/** What is wrong with the fields that name a run and its checkpoint (a continuation's or an abandon event's). */
function runReferenceProblems(fields: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const { runId, attempt, bucket, checkpoint, sha256 } = fields;
  if (!isRunId(runId)) problems.push(`"runId" must be a run id such as 20261128T100000Z, got ${shown(runId)}`);
  if (typeof attempt !== 'string' || !/^[a-z0-9]{1,32}$/.test(attempt))
    problems.push(`"attempt" must be 1 to 32 lower-case letters and digits, got ${shown(attempt)}`);
  if (typeof bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    problems.push(`"bucket" must be an S3 bucket name, got ${shown(bucket)}`);
  // The key under any prefix: which prefix is this deployment's is checked against its configuration.
  const named = typeof runId === 'string' && typeof attempt === 'string' ? checkpointKeys('', runId, attempt).checkpoint : undefined;
  if (typeof checkpoint !== 'string' || checkpoint.length > 1024 || named === undefined || !checkpoint.endsWith(named)) {
    const form = checkpointKeys('', '<runId>', '<attempt>').checkpoint;
    problems.push(`"checkpoint" must be the key of the run's checkpoint, ending in ${form}, got ${shown(checkpoint)}`);
  }
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) problems.push(`"sha256" must be 64 lower-case hex digits, got ${shown(sha256)}`);
  return problems;
}
