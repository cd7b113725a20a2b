import { describe, expect, it } from 'vitest';
import { getJson } from '../../tools/inspect/snapshot.ts';
import { DEMO, exporter, freshPrefix, invokeFailing, invokeOk, reset, useHarness } from './harness.ts';

const h = useHarness();

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
    const committed = { status: 'committed', devices: 250 };
    const onDemand = await invokeOk(h, handler, {});
    expect(onDemand).toMatchObject({ ...committed, trigger: 'on-demand' });
    expect(onDemand.label).toBeUndefined();
    expect(await invokeOk(h, handler, { label: 'Nightly_2024-01.v2' })).toMatchObject({ ...committed, trigger: 'on-demand', label: 'Nightly_2024-01.v2' });
    expect(await invokeOk(h, handler, { scheduledTime: '2024-01-01T00:00:00Z' })).toMatchObject({
      ...committed,
      trigger: 'schedule',
      runId: '20240101T000000Z',
    });
    const classic = { 'detail-type': 'Scheduled Event', source: 'aws.events', time: '2024-01-02T00:00:00Z', id: 'x', resources: [] };
    expect(await invokeOk(h, handler, classic)).toMatchObject({ ...committed, trigger: 'schedule', runId: '20240102T000000Z' });
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
    const port = new URL(h.platform.url).port;
    for (const host of ['localhost', '127.0.0.1']) {
      const sim = await reset(h);
      const handler = await exporter(h, freshPrefix(), { THINGPARK_BASE_URL: `http://${host}:${port}` });
      const summary = await invokeOk(h, handler, {});
      expect(summary, host).toMatchObject({ status: 'committed', devices: 250, tokenRequests: 1 });
      // The pages came from the platform, through the URL given, and the manifest says so.
      // A request the plan no longer needed is aborted and counted as wasted: it may or may
      // not have reached the platform by then, so those are all the counts can tell apart.
      expect(sim.stats.requests, host).toBeGreaterThanOrEqual(summary.pageRequests - summary.wastedRequests);
      expect(sim.stats.requests, host).toBeLessThanOrEqual(summary.pageRequests);
      expect(sim.tokens.grants, host).toBe(1);
      const manifest = await getJson<{ source: { baseUrl: string } }>(h.proxy.direct, DEMO.bucket, summary.manifestKey);
      expect(manifest.source.baseUrl).toBe(`http://${host}:${port}/`);
    }
  });
});
