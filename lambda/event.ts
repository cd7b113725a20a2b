import { EventError } from './errors.ts';

/** What started a run, reduced to what the run needs. */
export type Trigger =
  | { kind: 'schedule'; runTime: Date }
  | { kind: 'on-demand'; runTime: Date; label?: string };

export const ON_DEMAND_FIELDS = ['label'] as const;
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CLASSIC_SCHEDULE_FIELDS = new Set(['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'resources', 'detail']);

/**
 * How far a schedule time may be ahead of the function's clock. A schedule is delivered at
 * or after its time, so being ahead only ever comes from clocks disagreeing, which is
 * seconds; five minutes absorbs that and still refuses a mistyped date.
 */
export const SCHEDULE_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * Accepts, and nothing else:
 * - EventBridge Scheduler's payload `{ "scheduledTime": "<ISO time>" }`;
 * - a classic EventBridge scheduled rule event (`"detail-type": "Scheduled Event"`, `time`);
 * - an on-demand `{}` or `{ "label": "<1-64 of A-Za-z0-9._->" }`.
 * Anything else is rejected before any request is made.
 */
export function parseTrigger(event: unknown, now: Date): Trigger {
  if (event === null || event === undefined) return { kind: 'on-demand', runTime: now };
  if (typeof event !== 'object' || Array.isArray(event)) {
    throw new EventError(`The event must be a JSON object, got ${Array.isArray(event) ? 'an array' : typeof event}. ${usage()}`);
  }
  const fields = event as Record<string, unknown>;
  if ('scheduledTime' in fields) {
    const extra = Object.keys(fields).filter((name) => name !== 'scheduledTime');
    if (extra.length > 0) throw new EventError(`A scheduled event carries only "scheduledTime"; unexpected: ${extra.join(', ')}. ${usage()}`);
    return { kind: 'schedule', runTime: scheduleTime(fields.scheduledTime, 'scheduledTime', now) };
  }
  if (fields['detail-type'] === 'Scheduled Event' && fields.source === 'aws.events') {
    const extra = Object.keys(fields).filter((name) => !CLASSIC_SCHEDULE_FIELDS.has(name));
    if (extra.length > 0) throw new EventError(`Unexpected fields in a scheduled rule event: ${extra.join(', ')}. ${usage()}`);
    return { kind: 'schedule', runTime: scheduleTime(fields.time, 'time', now) };
  }
  const unknown = Object.keys(fields).filter((name) => !(ON_DEMAND_FIELDS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new EventError(`Unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')} in an on-demand event. ${usage()}`);
  }
  const { label } = fields;
  if (label === undefined) return { kind: 'on-demand', runTime: now };
  if (typeof label !== 'string' || !LABEL.test(label)) {
    throw new EventError(`"label" must be 1 to 64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit. ${usage()}`);
  }
  return { kind: 'on-demand', runTime: now, label };
}

function scheduleTime(value: unknown, field: string, now: Date): Date {
  const time = typeof value === 'string' ? new Date(value) : undefined;
  if (!time || Number.isNaN(time.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(value as string)) {
    throw new EventError(`"${field}" must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(value)}.`);
  }
  // Past times stay accepted: redeliveries and redos of old schedules are legitimate.
  if (time.getTime() > now.getTime() + SCHEDULE_CLOCK_SKEW_MS) {
    throw new EventError(
      `"${field}" is in the future: ${JSON.stringify(value)}, now is ${now.toISOString()}. ` +
        `A run's time orders the "latest" pointer, so a future run would keep every later run from moving it; ` +
        `at most ${SCHEDULE_CLOCK_SKEW_MS / 60_000} minutes ahead are allowed, for clock skew.`,
    );
  }
  return time;
}

function usage(): string {
  return `Allowed on demand: {} or {"label": "..."} (fields: ${ON_DEMAND_FIELDS.join(', ')}); scheduled: {"scheduledTime": "<ISO time>"} or an EventBridge "Scheduled Event".`;
}

/**
 * A schedule's run id is its time alone, so a redelivered schedule maps to the same run.
 * An on-demand run adds its attempt, so two operators' runs never collide.
 */
export function runIdOf(trigger: Trigger, requestId: string): string {
  const stamp = trigger.runTime.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return trigger.kind === 'schedule' ? stamp : `${stamp}-${attemptOf(requestId)}`;
}

/** One invocation's short, key-safe name: the start of its request id. */
export function attemptOf(requestId: string): string {
  return requestId.replace(/[^A-Za-z0-9]/g, '').slice(0, 8).toLowerCase() || 'local';
}
