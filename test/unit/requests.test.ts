import { describe, expect, it } from 'vitest';
import { EventError } from '../../lambda/common/errors.ts';
import { EARLIEST_SCHEDULE_TIME, parseRequest } from '../../lambda/requests.ts';

const now = new Date('2026-11-28T10:15:30.123Z');

describe('parseRequest: a trigger', () => {
  it('takes the scheduled time from an EventBridge Scheduler payload', () => {
    expect(parseRequest({ scheduledTime: '2026-11-28T10:00:00Z' }, now)).toEqual({
      kind: 'schedule',
      runTime: new Date('2026-11-28T10:00:00Z'),
    });
  });

  it('takes the time of a classic scheduled rule event', () => {
    const event = {
      version: '0',
      id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '123456789012',
      time: '2026-11-28T09:00:00Z',
      region: 'eu-west-1',
      resources: ['arn:aws:events:eu-west-1:123456789012:rule/hourly'],
      detail: {},
    };
    expect(parseRequest(event, now)).toEqual({ kind: 'schedule', runTime: new Date('2026-11-28T09:00:00Z') });
  });

  it('accepts an empty or labelled on-demand event', () => {
    expect(parseRequest({}, now)).toEqual({ kind: 'on-demand', runTime: now });
    expect(parseRequest({ label: 'after-rotation' }, now)).toEqual({ kind: 'on-demand', runTime: now, label: 'after-rotation' });
  });

  it.each([
    [{ lable: 'typo' }, /Unknown field "lable".*fields: label/],
    [{ label: 'has spaces' }, /"label" must be/],
    [{ scheduledTime: 'yesterday' }, /"scheduledTime" must be an ISO 8601 time/],
    [{ scheduledTime: '2026-11-28T10:00:00Z', force: true }, /unexpected: force/],
    [[], /must be a JSON object, got an array/],
    ['run', /must be a JSON object, got string/],
  ])('rejects %j with a message that says what is allowed', (event, message) => {
    expect(() => parseRequest(event, now)).toThrow(EventError);
    expect(() => parseRequest(event, now)).toThrow(message);
  });

  it.each([
    [{ scheduledTime: '2062-01-01T00:00:00Z' }, 'scheduledTime', '2062-01-01T00:00:00Z'],
    [{ 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2026-11-28T10:20:31Z' }, 'time', '2026-11-28T10:20:31Z'],
  ])('refuses a schedule time in the future, which would hold the latest pointer for every later run: %j', (event, field, value) => {
    expect(() => parseRequest(event, now)).toThrow(EventError);
    expect(() => parseRequest(event, now)).toThrow(
      `"${field}" is in the future: "${value}", now is 2026-11-28T10:15:30.123Z. A run's time orders the "latest" pointer`,
    );
  });

  it('accepts past schedule times and a few minutes of clock skew', () => {
    // Redeliveries and redos of old schedules are legitimate, however old.
    expect(parseRequest({ scheduledTime: '2020-01-01T00:00:00Z' }, now)).toEqual({ kind: 'schedule', runTime: new Date('2020-01-01T00:00:00Z') });
    expect(parseRequest({ scheduledTime: '2026-11-28T10:20:30.123Z' }, now)).toEqual({ kind: 'schedule', runTime: new Date('2026-11-28T10:20:30.123Z') });
  });
});

/** Both ways a schedule arrives, so every time rule is checked on each. */
const schedules: [string, (time: unknown) => unknown][] = [
  ['scheduledTime', (time) => ({ scheduledTime: time })],
  ['time', (time) => ({ 'detail-type': 'Scheduled Event', source: 'aws.events', time })],
];

describe.each(schedules)('parseRequest, "%s" of a schedule', (field, event) => {
  it.each([
    ['2026-02-30T00:00:00Z', '2026-03-02T00:00:00.000Z'],
    ['2025-02-29T12:00:00Z', '2025-03-01T12:00:00.000Z'],
    ['2026-04-31T00:00:00Z', '2026-05-01T00:00:00.000Z'],
    // 24:00 is the next day's 00:00, whose run id belongs to the next day's real schedule.
    ['2026-11-27T24:00:00Z', '2026-11-28T00:00:00.000Z'],
    ['2026-11-27T23:60:00Z', '2026-11-28T00:00:00.000Z'],
    ['2026-11-27T23:59:60Z', '2026-11-28T00:00:00.000Z'],
    ['2026-13-01T00:00:00Z', '2027-01-01T00:00:00.000Z'],
    ['2026-11-00T00:00:00Z', '2026-10-31T00:00:00.000Z'],
    ['2025-02-29T23:00:00-01:00', '2025-03-02T00:00:00.000Z'],
  ])('refuses %s, a calendar time that does not exist, instead of rolling it over', (time, rollover) => {
    expect(() => parseRequest(event(time), now)).toThrow(EventError);
    expect(() => parseRequest(event(time), now)).toThrow(`"${field}" names a time that does not exist: "${time}" would roll over to ${rollover}.`);
  });

  it('accepts the last day of February in a leap year', () => {
    expect(parseRequest(event('2024-02-29T23:59:59Z'), now)).toEqual({ kind: 'schedule', runTime: new Date(Date.UTC(2024, 1, 29, 23, 59, 59)) });
  });

  it.each(['0000-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '1999-12-31T23:59:59.999Z', '2000-01-01T00:30:00+01:00'])(
    'refuses %s, before the earliest accepted time',
    (time) => {
      expect(() => parseRequest(event(time), now)).toThrow(EventError);
      expect(() => parseRequest(event(time), now)).toThrow(`"${field}" is before 2000-01-01T00:00:00Z, the earliest accepted time: "${time}"`);
    },
  );

  it('accepts the earliest time itself', () => {
    expect(EARLIEST_SCHEDULE_TIME.toISOString()).toBe('2000-01-01T00:00:00.000Z');
    expect(parseRequest(event('2000-01-01T00:00:00Z'), now)).toEqual({ kind: 'schedule', runTime: EARLIEST_SCHEDULE_TIME });
  });

  it.each([
    ['2026-11-28T11:00:00+01:00', '2026-11-28T10:00:00.000Z'],
    ['2026-11-27T23:30:00-10:30', '2026-11-28T10:00:00.000Z'],
    ['2026-11-28T10:00:00-00:00', '2026-11-28T10:00:00.000Z'],
    ['2026-11-28T10:00:00.5Z', '2026-11-28T10:00:00.500Z'],
    ['2026-11-28T10:00:00.123456789Z', '2026-11-28T10:00:00.123Z'],
  ])('accepts %s, an RFC 3339 time with an offset or a fraction', (time, instant) => {
    expect(parseRequest(event(time), now)).toEqual({ kind: 'schedule', runTime: new Date(instant) });
  });

  it.each([
    // Without a zone, JavaScript reads the time in the function's own zone.
    '2026-11-28T10:00:00',
    '2026-11-28T10:00Z',
    '2026-11-28 10:00:00Z',
    '2026-11-28t10:00:00z',
    '2026-11-28T10:00:00+0100',
    '2026-11-28T10:00:00+01',
    '2026-11-28T10:00:00+24:00',
    '2026-11-28T10:00:00+01:60',
    '2026-11-28T10:00:00.Z',
    '2026-11-28T10:00:00.1234567890Z',
    '+002026-11-28T10:00:00Z',
    '2026-11-28',
    '20261128T100000Z',
    '2026-11-28T10:00:00Z\n',
    ' 2026-11-28T10:00:00Z',
    'Sat, 28 Nov 2026 10:00:00 GMT',
  ])('refuses %j, which is not the strict shape', (time) => {
    expect(() => parseRequest(event(time), now)).toThrow(EventError);
    expect(() => parseRequest(event(time), now)).toThrow(`"${field}" must be an ISO 8601 time such as 2026-01-31T12:00:00Z`);
    expect(() => parseRequest(event(time), now)).toThrow(`got ${JSON.stringify(time)}`);
  });

  it('echoes only the start of a long value, with its length', () => {
    const time = `2026-11-28T10:00:00Z${'9'.repeat(200_000)}`;
    const message = messageOf(() => parseRequest(event(time), now));
    expect(message).toContain(`got "${time.slice(0, 64)}"… (200020 characters)`);
    expect(message.length).toBeLessThan(600);
  });

  it('echoes only the start of a long value that is not a string, with its length', () => {
    const value = { nested: 'x'.repeat(10_000) };
    const message = messageOf(() => parseRequest(event(value), now));
    expect(message).toContain(`got ${JSON.stringify(value).slice(0, 64)}… (10013 characters of JSON)`);
    expect(message.length).toBeLessThan(600);
  });
});

describe('parseRequest, sizes of what an error echoes', () => {
  const manyFields = (base: Record<string, unknown>) => {
    const event: Record<string, unknown> = { ...base };
    for (let i = 0; i < 50_000; i++) event[`field${i}`] = i;
    return event;
  };

  it('names the first ten of 50,000 unknown on-demand fields and counts the rest', () => {
    const message = messageOf(() => parseRequest(manyFields({}), now));
    expect(message).toContain(`Unknown fields ${Array.from({ length: 10 }, (_, i) => `"field${i}"`).join(', ')} and 49990 more in an on-demand event.`);
    expect(message).toContain('fields: label');
    expect(message.length).toBeLessThan(600);
  });

  it('names the first ten of 50,000 extra fields in a Scheduler payload and counts the rest', () => {
    const message = messageOf(() => parseRequest(manyFields({ scheduledTime: '2026-11-28T10:00:00Z' }), now));
    expect(message).toContain(`unexpected: ${Array.from({ length: 10 }, (_, i) => `field${i}`).join(', ')} and 49990 more.`);
    expect(message.length).toBeLessThan(600);
  });

  it('names the first ten of 50,000 extra fields in a scheduled rule event and counts the rest', () => {
    const message = messageOf(() => parseRequest(manyFields({ 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2026-11-28T10:00:00Z' }), now));
    expect(message).toContain(`scheduled rule event: ${Array.from({ length: 10 }, (_, i) => `field${i}`).join(', ')} and 49990 more.`);
    expect(message.length).toBeLessThan(600);
  });

  it('names no more than the start of a long field name', () => {
    const name = 'n'.repeat(200_000);
    for (const base of [{}, { scheduledTime: '2026-11-28T10:00:00Z' }]) {
      const message = messageOf(() => parseRequest({ ...base, [name]: 1 }, now));
      expect(message).toContain('n'.repeat(64));
      expect(message).not.toContain('n'.repeat(65));
      expect(message).toContain('… (200000 characters)');
      expect(message.length).toBeLessThan(600);
    }
  });

  it('keeps a short list whole', () => {
    expect(() => parseRequest({ label: 'x', pageSize: 10, dryRun: true }, now)).toThrow('Unknown fields "pageSize", "dryRun" in an on-demand event.');
    const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, i]));
    const message = messageOf(() => parseRequest(ten, now));
    expect(message).toContain(
      `Unknown fields ${Object.keys(ten)
        .map((name) => `"${name}"`)
        .join(', ')} in an on-demand event.`,
    );
    expect(message).not.toMatch(/and \d+ more/);
  });
});

describe('parseRequest: {"curate": "<runId>"}', () => {
  it.each(['20261128T100000Z', '20261128T101530Z-6bd1a0f2', '20240229T235959Z-local', '20000101T000000Z-a'])('accepts the run id %s', (runId) => {
    expect(parseRequest({ curate: runId }, now)).toEqual({ kind: 'curate', runId });
  });

  it.each([
    [{}, { kind: 'on-demand', runTime: now }],
    [{ label: 'x' }, { kind: 'on-demand', runTime: now, label: 'x' }],
    [{ scheduledTime: '2026-11-28T10:00:00Z' }, { kind: 'schedule', runTime: new Date('2026-11-28T10:00:00Z') }],
    [null, { kind: 'on-demand', runTime: now }],
    [undefined, { kind: 'on-demand', runTime: now }],
  ])('leaves %j to the export events', (event, trigger) => {
    expect(parseRequest(event, now)).toEqual(trigger);
  });

  it.each([
    [[], 'an array'],
    ['curate', 'string'],
  ])('leaves %j to the export events, which refuse it', (event, got) => {
    expect(() => parseRequest(event, now)).toThrow(EventError);
    expect(() => parseRequest(event, now)).toThrow(`The event must be a JSON object, got ${got}.`);
  });

  it.each([
    [{ curate: '2026-11-28T10:00:00Z' }, 'got "2026-11-28T10:00:00Z"'],
    [{ curate: '20261128T100000' }, 'got "20261128T100000"'],
    [{ curate: '20261128T100000Z-' }, 'got "20261128T100000Z-"'],
    [{ curate: '20261128T100000Z-6BD1A0F2' }, 'got "20261128T100000Z-6BD1A0F2"'],
    [{ curate: '20261128T100000Z-123456789' }, 'got "20261128T100000Z-123456789"'],
    [{ curate: '20260230T100000Z' }, 'got "20260230T100000Z"'],
    [{ curate: '20261128T240000Z' }, 'got "20261128T240000Z"'],
    [{ curate: '20261340T250000Z' }, 'got "20261340T250000Z"'],
    [{ curate: '19991231T235959Z' }, 'from 2000 on'],
    [{ curate: 20261128 }, 'got 20261128'],
    [{ curate: '' }, 'got ""'],
    [{ curate: `20261128T100000Z-${'x'.repeat(500)}` }, '… (517 characters)'],
  ])('refuses %j, saying what a run id looks like', (event, shown) => {
    expect(() => parseRequest(event, now)).toThrow(EventError);
    expect(() => parseRequest(event, now)).toThrow(
      '"curate" must be a run id such as 20261128T100000Z (a schedule\'s) or 20261128T101530Z-6bd1a0f2 (an on-demand run\'s)',
    );
    expect(() => parseRequest(event, now)).toThrow(shown);
  });

  it('refuses any other field beside it, naming them', () => {
    expect(() => parseRequest({ curate: '20261128T100000Z', label: 'x', force: true }, now)).toThrow(
      'A curate event carries only "curate"; unexpected: label, force.',
    );
  });

  it('is named in what every refused event says is allowed', () => {
    expect(() => parseRequest({ nope: 1 }, now)).toThrow('to curate a committed run: {"curate": "<runId>"}');
  });
});

describe('parseRequest: the kind of request', () => {
  it('is decided once, by the first of "curate", "status": "continue" and "abandon" the event has', () => {
    const abandon = { runId: '20261128T100000Z', attempt: 'a1', bucket: 'b-1', checkpoint: 'checkpoints/20261128T100000Z/a1.json', sha256: 'ab'.repeat(32) };
    expect(() => parseRequest({ curate: '20261128T100000Z', status: 'continue' }, now)).toThrow('A curate event carries only "curate"; unexpected: status.');
    expect(() => parseRequest({ status: 'continue', abandon }, now)).toThrow('A continuation is exactly the object a run answered with');
    expect(parseRequest({ abandon }, now)).toEqual({ kind: 'abandon', abandon });
  });
});

function messageOf(act: () => unknown): string {
  try {
    act();
  } catch (error) {
    expect(error).toBeInstanceOf(EventError);
    return (error as Error).message;
  }
  throw new Error('expected an EventError');
}

describe('parseRequest: run ids of continuations and abandon events', () => {
  const now = new Date('2026-12-01T00:00:00Z');
  const reference = (runId: string) => ({
    runId,
    attempt: 'abc123',
    bucket: 'thingpark-snapshots',
    checkpoint: `thingpark/checkpoints/${runId}/abc123.json`,
    sha256: 'ab'.repeat(32),
  });
  const continuation = (runId: string) => ({ status: 'continue', ...reference(runId), slice: 1, phase: 'sweep', devices: 0, pages: 0, elapsedMs: 0 });

  it.each(['20261340T250000Z', '20260230T100000Z', '20261128T240000Z'])(
    'refuses %s, a time that does not exist, as EventError before anything runs',
    (runId) => {
      for (const event of [continuation(runId), { abandon: reference(runId) }]) {
        expect(() => parseRequest(event, now)).toThrow(EventError);
        expect(() => parseRequest(event, now)).toThrow(`"runId" must be a run id such as 20261128T100000Z, got "${runId}"`);
      }
    },
  );
});
