import { describe, expect, it } from 'vitest';
import { loadCurationSettings } from '../../lambda/curate/settings.ts';
import { ConfigError, EventError } from '../../lambda/common/errors.ts';
import { curateRequest, parseTrigger } from '../../lambda/event.ts';

describe('curateRequest: {"curate": "<runId>"}', () => {
  it.each(['20261128T100000Z', '20261128T101530Z-6bd1a0f2', '20240229T235959Z-local', '20000101T000000Z-a'])('accepts the run id %s', (runId) => {
    expect(curateRequest({ curate: runId })).toBe(runId);
  });

  it.each([{}, { label: 'x' }, { scheduledTime: '2026-11-28T10:00:00Z' }, null, undefined, [], 'curate'])('leaves %j to the export events', (event) => {
    expect(curateRequest(event)).toBeUndefined();
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
    expect(() => curateRequest(event)).toThrow(EventError);
    expect(() => curateRequest(event)).toThrow(
      '"curate" must be a run id such as 20261128T100000Z (a schedule\'s) or 20261128T101530Z-6bd1a0f2 (an on-demand run\'s)',
    );
    expect(() => curateRequest(event)).toThrow(shown);
  });

  it('refuses any other field beside it, naming them', () => {
    expect(() => curateRequest({ curate: '20261128T100000Z', label: 'x', force: true })).toThrow(
      'A curate event carries only "curate"; unexpected: label, force.',
    );
  });

  it('is named in what every refused event says is allowed', () => {
    expect(() => parseTrigger({ nope: 1 }, new Date())).toThrow('to curate a committed run: {"curate": "<runId>"}');
  });
});

describe('loadCurationSettings', () => {
  it('compares configuration and state by default, and curates inline with 300 s left', () => {
    expect(loadCurationSettings({})).toEqual({
      changeFields: ['healthState', 'name', 'model', 'networkSubscription', 'appServersRoutingProfile', 'alarmLevel'],
      inlineMinRemainingSeconds: 300,
    });
    expect(loadCurationSettings({ CURATE_CHANGE_FIELDS: ' healthState , nwAddress,customerData ', CURATE_INLINE_MIN_REMAINING_SECONDS: '900' })).toEqual({
      changeFields: ['healthState', 'nwAddress', 'customerData'],
      inlineMinRemainingSeconds: 900,
    });
  });

  it.each([
    [
      { CURATE_CHANGE_FIELDS: 'healthState,lastUpTimestamp,lastRSSI' },
      'CURATE_CHANGE_FIELDS must not name telemetry, which changes with every uplink: remove lastUpTimestamp, lastRSSI',
    ],
    [{ CURATE_CHANGE_FIELDS: 'model.commercialName' }, 'CURATE_CHANGE_FIELDS must be a comma-separated list of top-level brief field names'],
    [{ CURATE_CHANGE_FIELDS: 'name,,healthState' }, 'CURATE_CHANGE_FIELDS must be a comma-separated list'],
    [{ CURATE_CHANGE_FIELDS: 'name,name' }, 'CURATE_CHANGE_FIELDS names a field twice'],
    [{ CURATE_INLINE_MIN_REMAINING_SECONDS: '901' }, 'CURATE_INLINE_MIN_REMAINING_SECONDS must be an integer from 0 to 900'],
    [{ CURATE_INLINE_MIN_REMAINING_SECONDS: 'soon' }, 'CURATE_INLINE_MIN_REMAINING_SECONDS must be an integer from 0 to 900'],
  ])('refuses %j', (env, message) => {
    expect(() => loadCurationSettings(env)).toThrow(ConfigError);
    expect(() => loadCurationSettings(env)).toThrow(message);
  });
});
