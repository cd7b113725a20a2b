import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TokenFault } from '../../tools/stand-ins/token-server.ts';
import { DEMO, exporter, freshPrefix, invokeFailing, invokeOk, objects, reset, useHarness } from './harness.ts';

const STALE_SECRET = 'stale-secret-1b2c3d4e';
const ROTATED_SECRET = 'rotated-secret-9f8e7d6c';
const ROTATED_AGAIN = 'rotated-again-5a4b3c2d';

const h = useHarness();
beforeAll(() => {
  for (const secret of [STALE_SECRET, ROTATED_SECRET, ROTATED_AGAIN]) h.secrets.add(secret);
});

const REJECTED = '{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}';

describe('credentials: token endpoint failures', () => {
  const transient: [string, TokenFault, Record<string, string>][] = [
    ['HTTP 500 with an OAuth error body', { status: 500, body: '{"error":"server_error"}' }, {}],
    ['HTTP 502 HTML from a proxy', { status: 502, headers: { 'content-type': 'text/html' }, body: '<html><h1>502 Bad Gateway</h1></html>' }, {}],
    ['HTTP 503 without a body', { status: 503, body: '' }, {}],
    ['HTTP 429 with Retry-After', { status: 429, headers: { 'retry-after': '1' }, body: '' }, {}],
    ['a dropped connection', { destroy: true }, {}],
    ['no answer within the timeout', { delayMs: 1500 }, { THINGPARK_REQUEST_TIMEOUT_MS: '300' }],
  ];
  it.each(transient)('retries %s, then grants once, without re-reading SSM', async (_name, fault, env) => {
    const sim = await reset(h);
    sim.tokens.fault = ({ attempt }) => (attempt === 1 ? fault : undefined);
    const handler = await exporter(h, freshPrefix(), env);
    const ssmBefore = h.ssm.calls;
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, tokenRequests: 1 });
    expect(sim.tokens.requests).toBe(2);
    expect(sim.tokens.grants).toBe(1);
    expect(h.ssm.calls - ssmBefore).toBe(1);
  });

  it('gives up after THINGPARK_MAX_RETRIES when the token endpoint stays down, before any device request', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h);
    sim.tokens.fault = () => ({ status: 503, body: '' });
    const handler = await exporter(h, prefix, { THINGPARK_MAX_RETRIES: '2' });
    const error = await invokeFailing(h, handler, {});
    // Not RetryBudgetError: the run's budget (RUN_RETRY_BUDGET) was never touched.
    expect(error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR', status: 503 });
    expect(error.message).toMatch(/Gave up after 2 retries.*token endpoint 127\.0\.0\.1:\d+ answered HTTP 503/);
    expect(sim.tokens.requests).toBe(3);
    expect(sim.stats.requests).toBe(0);
    expect(await objects(h, prefix)).toEqual({});
  });

  it('does not retry a grant the token endpoint refuses for another reason (HTTP 400 invalid_request)', async () => {
    const sim = await reset(h);
    sim.tokens.fault = () => ({ status: 400, body: '{"error":"invalid_request"}' });
    const handler = await exporter(h, freshPrefix());
    const ssmBefore = h.ssm.calls;
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'PlatformError', status: 400 });
    expect(error.message).toContain('invalid_request');
    expect(sim.tokens.requests).toBe(1);
    expect(h.ssm.calls - ssmBefore).toBe(1);
    expect(sim.stats.requests).toBe(0);
  });
});

describe('credentials: rejected client', () => {
  it('re-reads SSM once past the cache, then fails with ClientRejectedError naming both parameters, without looping', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h);
    h.ssm.put(DEMO.clientSecretParam, STALE_SECRET, 'SecureString');
    const handler = await exporter(h, prefix, { THINGPARK_CONCURRENCY: '8' });
    const ssmBefore = h.ssm.calls;

    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'ClientRejectedError', code: 'CLIENT_REJECTED' });
    expect(error.message).toContain(DEMO.clientIdParam);
    expect(error.message).toContain(DEMO.clientSecretParam);
    expect(h.ssm.calls - ssmBefore).toBe(2); // the cached read, then one fresh read
    expect(sim.tokens.requests).toBe(2); // one grant attempt per read
    expect(sim.tokens.grants).toBe(0);
    expect(sim.stats.requests).toBe(0);

    // A warm retry of the invocation costs the same, bounded: no loop across invocations either.
    const again = await invokeFailing(h, handler, {});
    expect(again.name).toBe('ClientRejectedError');
    expect(sim.tokens.requests).toBe(4);
    expect(h.ssm.calls - ssmBefore).toBe(3);
    expect(sim.stats.requests).toBe(0);
    expect(await objects(h, prefix)).toEqual({});
  });

  it("treats Keycloak's HTTP 400 unauthorized_client like a rejected client", async () => {
    const sim = await reset(h);
    sim.tokens.fault = () => ({ status: 400, body: REJECTED });
    const handler = await exporter(h, freshPrefix());
    const ssmBefore = h.ssm.calls;
    const error = await invokeFailing(h, handler, {});
    expect(error.name).toBe('ClientRejectedError');
    expect(sim.tokens.requests).toBe(2);
    expect(h.ssm.calls - ssmBefore).toBe(2);
  });

  it('picks up a secret rotated on the platform and in SSM on the next warm run, through one re-read', async () => {
    const sim = await reset(h, { fleet: 300 });
    const handler = await exporter(h, freshPrefix());
    try {
      const first = await invokeOk(h, handler, {});
      expect(first.tokenRequests).toBe(1);
      const ssmBefore = h.ssm.calls;
      // The administrator rotates the secret (revoking tokens), and updates SSM.
      sim.tokens.rotateSecret(ROTATED_SECRET, { revoke: true });
      h.ssm.put(DEMO.clientSecretParam, ROTATED_SECRET, 'SecureString');
      const requestsBefore = sim.tokens.requests;
      const grantsBefore = sim.tokens.grants;

      const second = await invokeOk(h, handler, {});
      expect(second).toMatchObject({ status: 'committed', devices: 300 });
      expect(sim.stats.unauthorized).toBeGreaterThan(0); // the revoked token, once
      expect(h.ssm.calls - ssmBefore).toBe(1); // the cache was bypassed exactly once
      expect(sim.tokens.requests - requestsBefore).toBe(2); // stale secret refused, new one granted
      expect(sim.tokens.grants - grantsBefore).toBe(1);
    } finally {
      sim.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
    }
  });

  it('keeps using a still-valid token after a rotation, and re-reads SSM when it next renews', async () => {
    const sim = await reset(h, { fleet: 300 });
    // Trusted for 5 s (whole-second expiry), renewed at half that: 2.5 s after the grant.
    // Room for the first two runs of a cold, busy process before it, and little to wait after.
    sim.tokens.lifetimeSeconds = 6;
    const handler = await exporter(h, freshPrefix());
    try {
      await invokeOk(h, handler, {});
      sim.tokens.rotateSecret(ROTATED_AGAIN);
      h.ssm.put(DEMO.clientSecretParam, ROTATED_AGAIN, 'SecureString');
      const ssmBefore = h.ssm.calls;
      const requestsBefore = sim.tokens.requests;

      const reuse = await invokeOk(h, handler, {});
      expect(reuse.tokenRequests).toBe(0);
      expect(sim.tokens.requests).toBe(requestsBefore);

      await sleep(2600); // past the renewal point
      const renewed = await invokeOk(h, handler, {});
      expect(renewed.tokenRequests).toBe(1);
      expect(sim.tokens.requests - requestsBefore).toBe(2);
      expect(h.ssm.calls - ssmBefore).toBe(1);
      expect(sim.stats.unauthorized).toBe(0);
    } finally {
      sim.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
    }
  });
});

describe('credentials: SSM', () => {
  /**
   * A run under a fresh prefix after `breakSsm`: it must fail with CredentialsError naming
   * `named` (and not `unnamed`) before any token or device request, publishing nothing.
   */
  async function failsOnCredentials(breakSsm: () => void, named: string[], unnamed: string[] = []) {
    const prefix = freshPrefix();
    const sim = await reset(h);
    breakSsm();
    const error = await invokeFailing(h, await exporter(h, prefix), {});
    expect(error).toMatchObject({ name: 'CredentialsError', code: 'CREDENTIALS_UNAVAILABLE' });
    for (const name of named) expect(error.message).toContain(name);
    for (const name of unnamed) expect(error.message).not.toContain(name);
    expect(sim.tokens.requests).toBe(0);
    expect(sim.stats.requests).toBe(0);
    expect(await objects(h, prefix)).toEqual({});
  }

  it('fails with CredentialsError naming a missing parameter, before any token or device request', async () => {
    await failsOnCredentials(() => h.ssm.remove(DEMO.clientSecretParam), [DEMO.clientSecretParam], [DEMO.clientIdParam]);
  });

  it('names both parameters when both are missing', async () => {
    await failsOnCredentials(() => {
      h.ssm.remove(DEMO.clientSecretParam);
      h.ssm.remove(DEMO.clientIdParam);
    }, [DEMO.clientSecretParam, DEMO.clientIdParam]);
  });

  it('rides out a brief SSM outage (the SDK retries)', async () => {
    await reset(h);
    h.ssm.failNext(2, 500);
    const handler = await exporter(h, freshPrefix());
    const failedBefore = h.ssm.failed;
    const ssmBefore = h.ssm.calls;
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250 });
    // The outage happened (two calls refused), and the third call read the credentials.
    expect(h.ssm.failed - failedBefore).toBe(2);
    expect(h.ssm.calls - ssmBefore).toBe(1);
  });

  it('fails with CredentialsError when SSM stays unavailable, before any token or device request', async () => {
    await failsOnCredentials(() => h.ssm.failNext(100, 500), [DEMO.clientIdParam, DEMO.clientSecretParam]);
  });
});

describe('credentials: HTTP Basic client authentication (THINGPARK_TOKEN_AUTH=client_secret_basic)', () => {
  const basic = useHarness({ token: { authMethod: 'client_secret_basic' } });
  beforeAll(() => {
    basic.secrets.add(STALE_SECRET);
    basic.secrets.add(ROTATED_SECRET);
  });

  it('re-reads SSM once when the server answers 401 with a WWW-Authenticate challenge, and recovers a rotated secret', async () => {
    const sim = await reset(basic);
    const handler = await exporter(basic, freshPrefix(), { THINGPARK_TOKEN_AUTH: 'client_secret_basic' });
    await invokeOk(basic, handler, {});
    sim.tokens.rotateSecret(ROTATED_SECRET, { revoke: true });
    basic.ssm.put(DEMO.clientSecretParam, ROTATED_SECRET, 'SecureString');
    const ssmBefore = basic.ssm.calls;
    const requestsBefore = sim.tokens.requests;
    const summary = await invokeOk(basic, handler, {});
    expect(summary.status).toBe('committed');
    expect(basic.ssm.calls - ssmBefore).toBe(1);
    expect(sim.tokens.requests - requestsBefore).toBe(2);
  });

  it('fails with ClientRejectedError after one re-read when the secret is wrong', async () => {
    const sim = await reset(basic);
    sim.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
    basic.ssm.put(DEMO.clientSecretParam, STALE_SECRET, 'SecureString');
    const handler = await exporter(basic, freshPrefix(), { THINGPARK_TOKEN_AUTH: 'client_secret_basic' });
    const ssmBefore = basic.ssm.calls;
    const error = await invokeFailing(basic, handler, {});
    expect(error.name).toBe('ClientRejectedError');
    expect(basic.ssm.calls - ssmBefore).toBe(2);
    expect(sim.tokens.requests).toBe(2);
    expect(sim.stats.requests).toBe(0);
  });
});
