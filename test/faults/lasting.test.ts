import { createServer, type Server } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from '../../tools/stand-ins/standins.ts';
import { exporter, freshPrefix, invoke, reset, useHarness } from './harness.ts';

const h = useHarness();

/**
 * A certificate for 127.0.0.1 that nothing trusts, made for this test only (openssl req
 * -x509, P-256, 100 years): the exporter must refuse it, every time.
 */
const UNTRUSTED = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUMlG2nnATjXvqqJr
6re4BL8zYvknVIQ122KWhvqbpvGhRANCAAR9vEt0WiXpJQv4iP+GipyxDEJLyIWz
rH1DKDqMo2pvFMGaJChAomg57YL9Kvj+vP7WXgrd+of6zEDQgbirtHy5
-----END PRIVATE KEY-----
`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIUMhvLzZ75NZeoVd8eI9TjG86IA0UwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNjIxMzcxNloYDzIxMjYxMTEy
MjEzNzE2WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAR9vEt0WiXpJQv4iP+GipyxDEJLyIWzrH1DKDqMo2pvFMGaJChAomg5
7YL9Kvj+vP7WXgrd+of6zEDQgbirtHy5o2QwYjAdBgNVHQ4EFgQU2qEklj5+Ymx7
+ARICxbIOe258lwwHwYDVR0jBBgwFoAU2qEklj5+Ymx7+ARICxbIOe258lwwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC
IHIonHrPM9nyWbGoSNb/MGuaE7SMhAzAxk5ANdnEnFLCAiEAnV23UicYZuhtD8Z0
4u4b3oS/z8iUfSvOtmqpeBXy35E=
-----END CERTIFICATE-----
`,
};

type LogLine = { level: string; message: string };
const retryLines = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{"level"'))
    .map((line) => JSON.parse(line) as LogLine)
    .filter((line) => line.message === 'Retrying after a transient failure');

const TOKEN_PATH = '/users-auth/protocol/openid-connect/token';

describe('a failure that cannot heal fails at once, with its cause', () => {
  let tls: Server;
  let tlsUrl: string;
  beforeAll(async () => {
    tls = createServer(UNTRUSTED, (_request, response) => response.end('{}'));
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    tlsUrl = `https://127.0.0.1:${(tls.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    tls.closeAllConnections();
    await new Promise<void>((resolve) => tls.close(() => resolve()));
  });

  it('a token endpoint on a port fetch refuses (9): one try, "bad port", no retry', async () => {
    await reset(h);
    const handler = await exporter(h, freshPrefix(), { THINGPARK_BASE_URL: 'http://127.0.0.1:9' });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR' });
    expect(outcome.error?.message).toBe(
      'The token endpoint 127.0.0.1:9 cannot be reached, so the grant is not retried: bad port: fetch refuses to connect to this port',
    );
    expect(retryLines(outcome.output)).toEqual([]);
  });

  it('a device API on a port fetch refuses: one try, "bad port", no retry', async () => {
    await reset(h);
    const handler = await exporter(h, freshPrefix(), {
      THINGPARK_BASE_URL: 'http://127.0.0.1:9',
      THINGPARK_TOKEN_URL: `${h.platform.url}${TOKEN_PATH}`,
      THINGPARK_CONCURRENCY: '1',
    });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.message).toBe(
      'The device API request for page 0 to 127.0.0.1:9 cannot succeed, so it is not retried: bad port: fetch refuses to connect to this port',
    );
    expect(retryLines(outcome.output)).toEqual([]);
  });

  it('a token endpoint whose certificate is not trusted: one connection, the TLS code and words, no retry', async () => {
    await reset(h);
    let connections = 0;
    const count = () => (connections += 1);
    tls.on('secureConnection', count).on('tlsClientError', count);
    try {
      const handler = await exporter(h, freshPrefix(), { THINGPARK_TOKEN_URL: `${tlsUrl}${TOKEN_PATH}` });
      const outcome = await invoke(h, handler, {});
      expect(outcome.error?.message).toBe(
        `The token endpoint ${new URL(tlsUrl).host} cannot be reached, so the grant is not retried: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate`,
      );
      expect(retryLines(outcome.output)).toEqual([]);
      expect(connections).toBe(1);
    } finally {
      tls.off('secureConnection', count).off('tlsClientError', count);
    }
  });

  it('a device API whose certificate is not trusted: the page, the TLS code and words, no retry', async () => {
    await reset(h);
    const handler = await exporter(h, freshPrefix(), {
      THINGPARK_BASE_URL: tlsUrl,
      THINGPARK_TOKEN_URL: `${h.platform.url}${TOKEN_PATH}`,
      THINGPARK_CONCURRENCY: '1',
    });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.message).toBe(
      `The device API request for page 0 to ${new URL(tlsUrl).host} cannot succeed, so it is not retried: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate`,
    );
    expect(retryLines(outcome.output)).toEqual([]);
  });

  it('a refused connection may be a server restarting: still retried, THINGPARK_MAX_RETRIES times', async () => {
    await reset(h);
    const port = await closedPort();
    const handler = await exporter(h, freshPrefix(), {
      THINGPARK_BASE_URL: `http://127.0.0.1:${port}`,
      THINGPARK_TOKEN_URL: `${h.platform.url}${TOKEN_PATH}`,
      THINGPARK_MAX_RETRIES: '2',
      THINGPARK_CONCURRENCY: '1',
    });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.message).toBe(
      `Gave up after 2 retries (THINGPARK_MAX_RETRIES); last failure: page 0 from 127.0.0.1:${port}: fetch failed (ECONNREFUSED)`,
    );
    expect(retryLines(outcome.output)).toHaveLength(2);
  });
});
