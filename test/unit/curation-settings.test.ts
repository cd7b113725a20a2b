import { describe, expect, it } from 'vitest';
import { loadCurationSettings } from '../../lambda/curate/settings.ts';
import { ConfigError } from '../../lambda/common/errors.ts';

describe('loadCurationSettings', () => {
  it('compares configuration and state by default, curates inline with 300 s left, and calls a device silent after 24 hours', () => {
    expect(loadCurationSettings({})).toEqual({
      changeFields: ['healthState', 'name', 'model', 'networkSubscription', 'appServersRoutingProfile', 'alarmLevel'],
      inlineMinRemainingSeconds: 300,
      silentAfterHours: 24,
    });
    expect(
      loadCurationSettings({
        CURATE_CHANGE_FIELDS: ' healthState , nwAddress,customerData ',
        CURATE_INLINE_MIN_REMAINING_SECONDS: '900',
        CURATE_SILENT_AFTER_HOURS: '168',
      }),
    ).toEqual({
      changeFields: ['healthState', 'nwAddress', 'customerData'],
      inlineMinRemainingSeconds: 900,
      silentAfterHours: 168,
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
    [{ CURATE_SILENT_AFTER_HOURS: '0' }, 'CURATE_SILENT_AFTER_HOURS must be an integer from 1 to 8760'],
  ])('refuses %j', (env, message) => {
    expect(() => loadCurationSettings(env)).toThrow(ConfigError);
    expect(() => loadCurationSettings(env)).toThrow(message);
  });
});
