import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { exporter, freshPrefix, invoke, objects, reset, useHarness } from './harness.ts';

const h = useHarness();

/**
 * An endpoint that accepts connections and never answers: a frozen service, as a hung load
 * balancer or a stopped process behind a live port plays it.
 */
async function frozenEndpoint(): Promise<{ url: string; host: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// Short timeouts through the documented variables, so that each case takes about a second.
const QUICK = {
  THINGPARK_REQUEST_TIMEOUT_MS: '300',
  THINGPARK_MAX_RETRIES: '1',
  RUN_AWS_CONNECT_TIMEOUT_MS: '300',
  RUN_AWS_REQUEST_TIMEOUT_MS: '300',
};

/**
 * The bounds of docs/failure-behaviour.md#frozen-endpoints at these settings. A platform
 * request: (1 + 1 retry) x 300 ms, plus one wait of at most 250 ms. A token request: the
 * same, with openid-client's timeout in whole seconds (1 s). An S3 or SSM call: the SDK's 3
 * attempts x 300 ms plus its waits (at most 100 + 200 ms). Each with 3 s of slack for the
 * invocation's own work (the cleanup of what the run wrote) on a busy shared machine, where
 * 1.5 s was once not enough; without the timeouts the run does not end at all.
 */
const BOUND_MS = { platform: 2 * 300 + 250, token: 2 * 1000 + 250, aws: 3 * 300 + 300 };
const SLACK_MS = 3000;

describe('a frozen endpoint fails the run within its bound, named, and publishes nothing', () => {
  let frozen: Awaited<ReturnType<typeof frozenEndpoint>> | undefined;
  afterEach(async () => {
    await frozen?.close();
    frozen = undefined;
  });

  /** A run with the quick timeouts and `env`, under a prefix of its own. */
  async function run(env: Record<string, string>) {
    const prefix = freshPrefix();
    const handler = await exporter(h, prefix, { ...QUICK, ...env });
    return { prefix, outcome: await invoke(h, handler, {}) };
  }

  /**
   * The run failed with `error` within `boundMs`, and left nothing under its prefix that
   * looks like a snapshot: no manifest, no pointer, no data file.
   */
  async function expectStopped({ prefix, outcome }: Awaited<ReturnType<typeof run>>, boundMs: number, error: Record<string, unknown>) {
    expect(outcome.error).toMatchObject(error);
    expect(outcome.ms).toBeLessThan(boundMs + SLACK_MS);
    const left = Object.keys(await objects(h, prefix));
    expect(left.filter((key) => /manifests\/|latest\.json$|devices\//.test(key))).toEqual([]);
  }

  it("S3: the operation, the object, the host and the timeout, after the SDK's 3 attempts", async () => {
    await reset(h);
    frozen = await frozenEndpoint();
    const result = await run({ AWS_ENDPOINT_URL_S3: frozen.url });
    await expectStopped(result, BOUND_MS.aws, {
      message: expect.stringMatching(
        new RegExp(`^S3 GetObject s3://thingpark-snapshots/${result.prefix}manifests/\\S+\\.json at ${frozen.host} failed \\(ETIMEDOUT, 3 attempts\\): `),
      ),
    });
    expect(frozen.connections()).toBe(3);
    // Stopped at S3, before the platform was asked for anything (a token, a page). The
    // simulator's set of tokens seen lasts across resets, so earlier tests' would count.
    expect(h.platform.tokens.grants).toBe(0);
    expect(h.platform.stats.requests).toBe(0);
    // The log line an operator searches for names the service in its code.
    expect(result.outcome.output).toMatch(/"message":"Run failed".*"code":"S3_TIMEOUT"|"code":"S3_TIMEOUT".*"message":"Run failed"/);
  });

  it('SSM: the operation, the parameters, the host and the timeout, under the credentials it was reading', async () => {
    await reset(h);
    frozen = await frozenEndpoint();
    await expectStopped(await run({ AWS_ENDPOINT_URL_SSM: frozen.url }), BOUND_MS.aws, {
      name: 'CredentialsError',
      code: 'CREDENTIALS_UNAVAILABLE',
      message: expect.stringContaining(
        `SSM GetParameters /thingpark-exporter/client-id, /thingpark-exporter/client-secret at ${frozen.host} failed (ETIMEDOUT, 3 attempts)`,
      ),
    });
  });

  it('the token endpoint: its host and the timeout, after THINGPARK_MAX_RETRIES', async () => {
    await reset(h);
    frozen = await frozenEndpoint();
    await expectStopped(await run({ THINGPARK_TOKEN_URL: `${frozen.url}/token` }), BOUND_MS.token, {
      name: 'PlatformError',
      code: 'PLATFORM_ERROR',
      message: `Gave up after 1 retry (THINGPARK_MAX_RETRIES); last failure: token endpoint ${frozen.host} did not answer in time (OAUTH_TIMEOUT)`,
    });
    // Two attempts of the first grant; a page request queued behind it may start one more before the run stops.
    expect(frozen.connections()).toBeGreaterThanOrEqual(2);
  });

  it('the device API, frozen after two pages were written: the page, its host and the timeout', async () => {
    await reset(h, { fault: ({ pageIndex }) => (pageIndex !== undefined && pageIndex >= 2 ? { status: 200, delayMs: 60_000 } : undefined) });
    await expectStopped(await run({ THINGPARK_CONCURRENCY: '1', THINGPARK_MAX_CONCURRENCY: '1' }), BOUND_MS.platform, {
      name: 'PlatformError',
      code: 'PLATFORM_ERROR',
      message: `Gave up after 1 retry (THINGPARK_MAX_RETRIES); last failure: page 2 from ${new URL(h.platform.url).host} timed out after 300 ms`,
    });
  });

  it('the device API, frozen from the start', async () => {
    await reset(h);
    frozen = await frozenEndpoint();
    const result = await run({
      THINGPARK_BASE_URL: frozen.url,
      THINGPARK_TOKEN_URL: `${h.platform.url}/users-auth/protocol/openid-connect/token`,
      THINGPARK_CONCURRENCY: '1',
    });
    await expectStopped(result, BOUND_MS.platform, {
      message: `Gave up after 1 retry (THINGPARK_MAX_RETRIES); last failure: page 0 from ${frozen.host} timed out after 300 ms`,
    });
    expect(frozen.connections()).toBeGreaterThanOrEqual(1);
  });
});
