import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectNoSecretsLeaked, exporter, freshPrefix, invokeFailing, invokeOk, reset, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.stop();
});

/** Nothing was asked of anyone: no SSM read, no token, no device page, no S3 request. */
function touched(ssmBefore: number) {
  return {
    ssm: h.ssm.calls - ssmBefore,
    tokens: h.platform.tokens.requests,
    devices: h.platform.stats.requests,
    s3: h.proxy.log.length,
  };
}
const UNTOUCHED = { ssm: 0, tokens: 0, devices: 0, s3: 0 };

describe('bad events', () => {
  const cases: [string, unknown, string[]][] = [
    ['a misspelt on-demand field', { lable: 'nightly' }, ['Unknown field "lable"', 'fields: label']],
    ['several unknown fields', { label: 'x', pageSize: 10, dryRun: true }, ['Unknown fields "pageSize", "dryRun"', 'fields: label']],
    ['a label of the wrong type', { label: 42 }, ['"label" must be 1 to 64 characters', 'fields: label']],
    ['a label with a path in it', { label: '../../etc' }, ['"label" must be']],
    ['a label over 64 characters', { label: 'a'.repeat(65) }, ['"label" must be']],
    ['a scheduledTime that is not ISO 8601', { scheduledTime: 'yesterday' }, ['"scheduledTime" must be an ISO 8601 time']],
    ['a scheduledTime given as epoch seconds', { scheduledTime: 1790000000 }, ['"scheduledTime" must be an ISO 8601 time']],
    ['a scheduled event with an extra field', { scheduledTime: '2024-01-01T00:00:00Z', label: 'x' }, ['unexpected: label']],
    [
      'a classic scheduled rule event with a bad time',
      { 'detail-type': 'Scheduled Event', source: 'aws.events', time: 'soon' },
      ['"time" must be an ISO 8601 time'],
    ],
    ['an array', [{ label: 'x' }], ['must be a JSON object, got an array', 'fields: label']],
    ['a string', 'export now', ['must be a JSON object, got string']],
  ];

  it.each(cases)('rejects %s before any request, listing what is allowed', async (_name, event, fragments) => {
    await reset(h);
    const handler = await exporter(h, freshPrefix());
    const ssmBefore = h.ssm.calls;
    const error = await invokeFailing(h, handler, event);
    expect(error).toMatchObject({ name: 'EventError', code: 'EVENT_INVALID' });
    for (const fragment of fragments) expect(error.message).toContain(fragment);
    expect(touched(ssmBefore)).toEqual(UNTOUCHED);
  });

  it('accepts the allowed shapes (control: the stand-ins answer when the event is valid)', async () => {
    await reset(h);
    const handler = await exporter(h, freshPrefix());
    await invokeOk(h, handler, {});
    await invokeOk(h, handler, { label: 'Nightly_2024-01.v2' });
    await invokeOk(h, handler, { scheduledTime: '2024-01-01T00:00:00Z' });
    await invokeOk(h, handler, { 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2024-01-02T00:00:00Z', id: 'x', resources: [] });
    expect(h.platform.stats.requests).toBeGreaterThan(0);
  });
});

describe('bad configuration', () => {
  const cases: [string, Record<string, string>, string[]][] = [
    ['an http:// base URL to a remote host', { THINGPARK_BASE_URL: 'http://community.thingpark.io' }, ['THINGPARK_BASE_URL must use https://']],
    [
      'an http:// token URL to a private address',
      { THINGPARK_TOKEN_URL: 'http://10.1.2.3/users-auth/protocol/openid-connect/token' },
      ['THINGPARK_TOKEN_URL must use https://'],
    ],
    ['an http:// host that only looks like loopback', { THINGPARK_BASE_URL: 'http://localhost.example.com' }, ['THINGPARK_BASE_URL must use https://']],
    ['an http:// host under 127.0.0.1 as a name', { THINGPARK_BASE_URL: 'http://127.0.0.1.nip.io' }, ['THINGPARK_BASE_URL must use https://']],
    ['a scheme other than http(s)', { THINGPARK_BASE_URL: 'ftp://127.0.0.1' }, ['THINGPARK_BASE_URL must be an http(s) URL']],
    ['a base URL that is not a URL', { THINGPARK_BASE_URL: 'thingpark.example.com' }, ['THINGPARK_BASE_URL must be an absolute URL']],
    [
      'several bad values at once, all reported',
      { THINGPARK_MAX_RETRIES: '-1', RUN_RETRY_BUDGET: 'lots', THINGPARK_TOKEN_AUTH: 'private_key_jwt' },
      ['THINGPARK_MAX_RETRIES must be an integer', 'RUN_RETRY_BUDGET must be an integer', 'THINGPARK_TOKEN_AUTH must be'],
    ],
  ];

  it.each(cases)('refuses %s before any request', async (_name, env, fragments) => {
    await reset(h);
    const handler = await exporter(h, freshPrefix(), env);
    const ssmBefore = h.ssm.calls;
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'ConfigError', code: 'CONFIG_INVALID' });
    for (const fragment of fragments) expect(error.message).toContain(fragment);
    expect(touched(ssmBefore)).toEqual(UNTOUCHED);
  });

  it('accepts plain http:// to loopback (localhost and 127.0.0.0/8)', async () => {
    await reset(h);
    const port = new URL(h.platform.url).port;
    for (const host of ['localhost', '127.0.0.1']) {
      const handler = await exporter(h, freshPrefix(), { THINGPARK_BASE_URL: `http://${host}:${port}` });
      await invokeOk(h, handler, {});
    }
  });
});

describe('input: secrets', () => {
  it('leaks no secret or token in anything the runs above printed, threw, returned or wrote', async () => {
    await expectNoSecretsLeaked(h);
  });
});
