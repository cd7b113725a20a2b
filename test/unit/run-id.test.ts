import { describe, expect, it } from 'vitest';
import { invocationOf, parseRunId, runIdOf, stampOf, stampOfRunId } from '../../lambda/common/run-id.ts';
import { repeated } from '../support/collections.ts';

const now = new Date('2026-11-28T10:15:30.123Z');
const onDemand = (runTime: Date) => ({ kind: 'on-demand' as const, runTime });

describe('runIdOf', () => {
  it('gives a redelivered schedule the same id, whatever the invocation', () => {
    const trigger = { kind: 'schedule' as const, runTime: new Date('2026-11-28T10:00:00Z') };
    expect(runIdOf(trigger, invocationOf('aaaa'))).toBe('20261128T100000Z');
    expect(runIdOf(trigger, invocationOf('bbbb'))).toBe('20261128T100000Z');
  });

  it('gives on-demand runs distinct, time-ordered ids', () => {
    expect(runIdOf(onDemand(now), invocationOf('6bd1a0f2-1b5e-4b51-9d9c-2f1d0d5ad2e1'))).toBe('20261128T101530Z-6bd1a0f2');

    // Invocations deliberately in the reverse of time order, so only the time can order the ids.
    const requests = ['ffee0011-2233-4455-6677-8899aabbccdd', '6bd1a0f2-1b5e-4b51-9d9c-2f1d0d5ad2e1', '0a9c3e11-77d2-4c0e-a5d4-1f0c9e2b7a60'];
    const times = ['2026-11-28T10:15:30.123Z', '2026-11-28T10:15:31Z', '2026-11-28T11:00:00Z', '2026-12-01T00:00:00Z', '2027-01-01T00:00:00Z'];
    const idsAt = times.map((time) => requests.map((request) => runIdOf(onDemand(new Date(time)), invocationOf(request))));

    // Operators starting runs in the same second still get their own ids.
    expect(idsAt[0]).toHaveLength(requests.length);
    expect(repeated(idsAt[0] ?? [])).toEqual([]);
    expect(repeated(idsAt.flat())).toEqual([]);
    // Ids are compared as strings, the order S3 lists keys in.
    let previous: string[] = [];
    for (const ids of idsAt) {
      for (const earlier of previous) {
        for (const later of ids) expect(earlier < later, `${earlier} sorts before ${later}`).toBe(true);
      }
      previous = ids;
    }
  });
});

describe('invocationOf', () => {
  it('is the start of the request id, key-safe', () => {
    expect(invocationOf('6bd1a0f2-1b5e-4b51-9d9c-2f1d0d5ad2e1')).toBe('6bd1a0f2');
    expect(invocationOf('AB-cd_EF.12345')).toBe('abcdef12');
    expect(invocationOf('--')).toBe('local');
  });
});

describe('parseRunId', () => {
  it('reads back the time, and the date its keys are filed under', () => {
    expect(parseRunId('20261128T100000Z')).toEqual({ time: new Date('2026-11-28T10:00:00Z'), exists: true, date: '2026-11-28' });
    expect(parseRunId('20261128T101530Z-6bd1a0f2')).toEqual({ time: new Date('2026-11-28T10:15:30Z'), exists: true, date: '2026-11-28' });
    expect(parseRunId(runIdOf(onDemand(now), invocationOf('local')))?.date).toBe(now.toISOString().slice(0, 10));
  });

  it.each(['20261340T250000Z', '20260230T100000Z', '20261128T240000Z', '20261128T235960Z'])('says %s names a time that does not exist', (runId) => {
    expect(parseRunId(runId)?.exists).toBe(false);
  });

  it.each(['2026-11-28T10:00:00Z', '20261128T100000', '20261128T100000Z-', '20261128T100000Z-6BD1A0F2', '20261128T100000Z-123456789', ''])(
    'is undefined for %j, not of the form',
    (value) => {
      expect(parseRunId(value)).toBeUndefined();
    },
  );
});

describe('stamps', () => {
  it('are the second a run id names, in the form that sorts as the time does', () => {
    expect(stampOf(now)).toBe('20261128T101530Z');
    expect(stampOfRunId('20261128T101530Z-6bd1a0f2')).toBe('20261128T101530Z');
    expect(stampOfRunId('20261128T101530Z')).toBe(stampOf(now));
  });
});
