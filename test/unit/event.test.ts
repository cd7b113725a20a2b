import { describe, expect, it } from 'vitest';
import { EventError } from '../../lambda/errors.ts';
import { parseTrigger, runIdOf } from '../../lambda/event.ts';

const now = new Date('2026-11-28T10:15:30.123Z');

describe('parseTrigger', () => {
  it('takes the scheduled time from an EventBridge Scheduler payload', () => {
    expect(parseTrigger({ scheduledTime: '2026-11-28T10:00:00Z' }, now)).toEqual({
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
    expect(parseTrigger(event, now)).toEqual({ kind: 'schedule', runTime: new Date('2026-11-28T09:00:00Z') });
  });

  it('accepts an empty or labelled on-demand event', () => {
    expect(parseTrigger({}, now)).toEqual({ kind: 'on-demand', runTime: now });
    expect(parseTrigger({ label: 'after-rotation' }, now)).toEqual({ kind: 'on-demand', runTime: now, label: 'after-rotation' });
  });

  it.each([
    [{ lable: 'typo' }, /Unknown field "lable".*fields: label/],
    [{ label: 'has spaces' }, /"label" must be/],
    [{ scheduledTime: 'yesterday' }, /"scheduledTime" must be an ISO 8601 time/],
    [{ scheduledTime: '2026-11-28T10:00:00Z', force: true }, /unexpected: force/],
    [[], /must be a JSON object, got an array/],
    ['run', /must be a JSON object, got string/],
  ])('rejects %j with a message that says what is allowed', (event, message) => {
    expect(() => parseTrigger(event, now)).toThrow(EventError);
    expect(() => parseTrigger(event, now)).toThrow(message);
  });

  it.each([
    [{ scheduledTime: '2062-01-01T00:00:00Z' }, 'scheduledTime', '2062-01-01T00:00:00Z'],
    [{ 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2026-11-28T10:20:31Z' }, 'time', '2026-11-28T10:20:31Z'],
  ])('refuses a schedule time in the future, which would hold the latest pointer for every later run: %j', (event, field, value) => {
    expect(() => parseTrigger(event, now)).toThrow(EventError);
    expect(() => parseTrigger(event, now)).toThrow(
      `"${field}" is in the future: "${value}", now is 2026-11-28T10:15:30.123Z. A run's time orders the "latest" pointer`,
    );
  });

  it('accepts past schedule times and a few minutes of clock skew', () => {
    // Redeliveries and redos of old schedules are legitimate, however old.
    expect(parseTrigger({ scheduledTime: '2020-01-01T00:00:00Z' }, now).runTime).toEqual(new Date('2020-01-01T00:00:00Z'));
    expect(parseTrigger({ scheduledTime: '2026-11-28T10:20:30.123Z' }, now).runTime).toEqual(new Date('2026-11-28T10:20:30.123Z'));
  });
});

describe('runIdOf', () => {
  it('gives a redelivered schedule the same id, whatever the request', () => {
    const trigger = parseTrigger({ scheduledTime: '2026-11-28T10:00:00Z' }, now);
    expect(runIdOf(trigger, 'aaaa')).toBe('20261128T100000Z');
    expect(runIdOf(trigger, 'bbbb')).toBe('20261128T100000Z');
  });

  it('gives on-demand runs distinct, time-ordered ids', () => {
    const trigger = parseTrigger({}, now);
    expect(runIdOf(trigger, '6bd1a0f2-1b5e-4b51-9d9c-2f1d0d5ad2e1')).toBe('20261128T101530Z-6bd1a0f2');
  });
});
