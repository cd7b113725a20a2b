import { beforeAll, describe, expect, it } from 'vitest';
import type { Context } from 'aws-lambda';
import type { SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { putDirect } from './s3-proxy.ts';
import { DEMO, bucketText, describeError, exporter, freshPrefix, invoke, lambdaContext, occurrences, reset, useHarness } from './harness.ts';

const STALE_SECRET = 'stale-secret-0a1b2c3d';
const ROTATED_SECRET = 'rotated-secret-4e5f6a7b';

const h = useHarness();
beforeAll(() => {
  h.secrets.add(STALE_SECRET);
  h.secrets.add(ROTATED_SECRET);
});

interface Scenario {
  name: string;
  simulator?: Partial<SimulatorOptions>;
  env?: Record<string, string>;
  /** Runs after the reset and cold start, before the invocation; `warmUp` invokes once first. */
  arrange?: (prefix: string, warmUp: () => Promise<void>) => void | Promise<void>;
  event?: unknown;
  context?: () => Context;
  /** What the scenario must end with: an error name, or a summary status. */
  expected: string;
  /** Invoke twice (a redelivery); the second outcome is the one checked. */
  twice?: boolean;
}

const page = (index: number, fault: NonNullable<ReturnType<NonNullable<SimulatorOptions['fault']>>>) =>
  ({ fault: ({ pageIndex }) => (pageIndex === index ? fault : undefined) }) satisfies Partial<SimulatorOptions>;
const once = (index: number, fault: NonNullable<ReturnType<NonNullable<SimulatorOptions['fault']>>>) =>
  ({ fault: ({ pageIndex, attempt }) => (pageIndex === index && attempt === 1 ? fault : undefined) }) satisfies Partial<SimulatorOptions>;

/** One of each fault this suite plays, run back to back with debug logging. */
const SCENARIOS: Scenario[] = [
  { name: 'page timeout', simulator: once(1, { delayMs: 1000 }), env: { THINGPARK_REQUEST_TIMEOUT_MS: '300' }, expected: 'committed' },
  { name: 'dropped connection', simulator: once(1, { destroy: true }), expected: 'committed' },
  { name: 'HTTP 500 then a page', simulator: once(1, { status: 500, body: '{"code":500}' }), expected: 'committed' },
  { name: '429 Retry-After', simulator: once(1, { status: 429, headers: { 'retry-after': '0' }, body: '{}' }), expected: 'committed' },
  { name: 'HTTP 404', simulator: page(1, { status: 404, body: '{"code":404,"message":"Not found"}' }), expected: 'PlatformError' },
  { name: 'page kept failing', simulator: page(1, { status: 500, body: '{}' }), env: { THINGPARK_MAX_RETRIES: '1' }, expected: 'PlatformError' },
  {
    name: 'retry budget spent',
    simulator: { fault: ({ attempt }) => (attempt === 1 ? { status: 502, body: '' } : undefined) },
    env: { RUN_RETRY_BUDGET: '1', THINGPARK_CONCURRENCY: '1' },
    expected: 'RetryBudgetError',
  },
  { name: '401 for a fresh token', simulator: page(1, { status: 401, body: '{}' }), expected: 'PlatformError' },
  {
    name: 'token endpoint 503 then a grant',
    arrange: () => {
      h.platform.tokens.fault = ({ attempt }) => (attempt === 1 ? { status: 503, body: '' } : undefined);
    },
    expected: 'committed',
  },
  {
    name: 'token endpoint down',
    arrange: () => {
      h.platform.tokens.fault = () => ({ status: 500, body: '{"error":"server_error"}' });
    },
    env: { THINGPARK_MAX_RETRIES: '1' },
    expected: 'PlatformError',
  },
  {
    name: 'wrong secret in SSM',
    arrange: () => h.ssm.put(DEMO.clientSecretParam, STALE_SECRET, 'SecureString'),
    expected: 'ClientRejectedError',
  },
  { name: 'missing SSM parameter', arrange: () => h.ssm.remove(DEMO.clientSecretParam), expected: 'CredentialsError' },
  { name: 'SSM down', arrange: () => h.ssm.failNext(100, 500), expected: 'CredentialsError' },
  { name: 'non-JSON page', simulator: page(2, { status: 200, body: 'not json' }), expected: 'MalformedPageError' },
  { name: 'page without briefs', simulator: page(2, { status: 200, body: '{"more":true}' }), expected: 'MalformedPageError' },
  {
    name: 'HTML 200 from a proxy',
    simulator: page(2, { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Login required</body></html>' }),
    expected: 'MalformedPageError',
  },
  {
    name: 'HTML 502 from a proxy',
    simulator: page(2, { status: 502, headers: { 'content-type': 'text/html' }, body: '<html><body>Bad gateway</body></html>' }),
    env: { THINGPARK_MAX_RETRIES: '0' },
    expected: 'PlatformError',
  },
  {
    name: 'deadline',
    simulator: { fleet: 2000, ...page(3, { delayMs: 3000 }) },
    env: { RUN_DEADLINE_MARGIN_SECONDS: '1' },
    context: () => lambdaContext(1300),
    expected: 'DeadlineError',
  },
  {
    name: 'S3 failure on a data file',
    arrange: (prefix) => {
      h.proxy.rule = ({ key }) =>
        key.startsWith(`${prefix}devices/`) && /\/part-00000-\w+\.ndjson\.gz$/.test(key) ? { status: 500, code: 'InternalError' } : undefined;
    },
    expected: 'InternalError',
  },
  {
    name: 'S3 failure on the manifest',
    arrange: (prefix) => {
      h.proxy.rule = ({ key, method }) => (method === 'PUT' && key.startsWith(`${prefix}manifests/`) ? { status: 503, code: 'SlowDown' } : undefined);
    },
    expected: 'SlowDown',
  },
  {
    name: 'pointer race lost',
    arrange: (prefix) => {
      h.proxy.rule = async ({ key, method, condition }) => {
        if (method === 'PUT' && key === `${prefix}latest.json` && condition) {
          h.proxy.rule = undefined;
          await putDirect(
            h.proxy,
            DEMO.bucket,
            key,
            JSON.stringify({ runId: 'z', runTime: '2999-01-01T00:00:00.000Z', manifestKey: 'x', devices: 0, finishedAt: '' }),
          );
        }
        return undefined;
      };
    },
    event: { scheduledTime: '2024-03-01T00:00:00Z' },
    expected: 'committed',
  },
  {
    name: 'rotated secret (revoked tokens), SSM updated, on a warm context',
    arrange: async (_prefix, warmUp) => {
      await warmUp();
      h.platform.tokens.rotateSecret(ROTATED_SECRET, { revoke: true });
      h.ssm.put(DEMO.clientSecretParam, ROTATED_SECRET, 'SecureString');
    },
    expected: 'committed',
  },
  { name: 'schedule delivered twice', event: { scheduledTime: '2024-03-02T00:00:00Z' }, twice: true, expected: 'already-committed' },
  { name: 'unknown event field', event: { lable: 'x' }, expected: 'EventError' },
  { name: 'http:// to a remote host', env: { THINGPARK_BASE_URL: 'http://thingpark.example.com' }, expected: 'ConfigError' },
];

describe('secrets', () => {
  it('no client secret and no token the platform saw appear in any output, error, summary, manifest or data of every fault scenario', async () => {
    const seen: string[] = [];
    for (const scenario of SCENARIOS) {
      const prefix = freshPrefix();
      await reset(h, { fleet: 300, ...scenario.simulator });
      const handler = await exporter(h, prefix, scenario.env);
      try {
        await scenario.arrange?.(prefix, async () => {
          await invoke(h, handler, {});
        });
        if (scenario.twice) await invoke(h, handler, scenario.event ?? {}, scenario.context?.());
        const outcome = await invoke(h, handler, scenario.event ?? {}, scenario.context?.());
        const result = outcome.summary?.status ?? outcome.error?.name ?? 'nothing';
        seen.push(`${scenario.name}: ${result}`);
        expect(result, `${scenario.name}: ${describeError(outcome.error).slice(0, 500)}`).toBe(scenario.expected);
      } finally {
        h.platform.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
      }
    }
    expect(seen).toHaveLength(SCENARIOS.length);

    const haystack = `${h.journal.join('\n')}\n${await bucketText(h)}`;
    const tokens = [...h.platform.stats.tokens];
    // The search is not vacuous: tokens were presented, logs were written, errors were thrown.
    expect(tokens.length).toBeGreaterThanOrEqual(5);
    expect(occurrences(haystack, ['"Run failed"'])).toBeGreaterThanOrEqual(10);
    expect(occurrences(haystack, ['"Run finished"'])).toBeGreaterThanOrEqual(5);
    expect(occurrences(haystack, ['"level":"DEBUG"'])).toBeGreaterThan(0);
    expect({ secrets: occurrences(haystack, h.secrets), tokens: occurrences(haystack, tokens) }).toEqual({ secrets: 0, tokens: 0 });
  });

  it('does not quote a non-200 HTML error page that reflects the token, only its type and length', async () => {
    const sim = await reset(h, {
      fault: ({ pageIndex, bearer }) =>
        pageIndex === 1
          ? { status: 502, headers: { 'content-type': 'text/html' }, body: `<html>Upstream said: Authorization: Bearer ${bearer}</html>` }
          : undefined,
    });
    const handler = await exporter(h, freshPrefix(), { THINGPARK_MAX_RETRIES: '0' });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.name).toBe('PlatformError');
    expect(outcome.error?.message).toMatch(/page 1: HTTP 502 \(text\/html, \d+ characters, not quoted\)/);
    expect(outcome.error?.message).not.toContain('Bearer');
    const text = `${outcome.output}\n${describeError(outcome.error)}`;
    expect(occurrences(text, sim.stats.tokens)).toBe(0);
  });

  it("masks a token that a reflected JSON page places across the excerpt's cut, whitespace first", async () => {
    // 368 blanks collapse to one in the excerpt, so the token straddling character 400 of
    // the body would show its start if the body were cut before it is masked. JSON, and no
    // "Bearer" before it: an HTML page is not quoted, and the excerpt stops at "Bearer".
    const sim = await reset(h, {
      fault: ({ pageIndex, bearer }) => (pageIndex === 1 ? { status: 200, body: `{"pad":"${' '.repeat(368)}","echo":"${bearer} end"}` } : undefined),
    });
    const handler = await exporter(h, freshPrefix());
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.name).toBe('MalformedPageError');
    expect(outcome.error?.message).toContain(JSON.stringify('"echo":"*** end"}').slice(1, -1));
    const text = `${outcome.output}\n${describeError(outcome.error)}`;
    expect(
      occurrences(
        text,
        [...sim.stats.tokens].map((token) => token.slice(0, 8)),
      ),
    ).toBe(0);
  });

  it('masks a token that a proxy reflects into a 200 HTML page', async () => {
    const sim = await reset(h, {
      fault: ({ pageIndex, bearer }) =>
        pageIndex === 1 ? { status: 200, headers: { 'content-type': 'text/html' }, body: `<html>Authorization: Bearer ${bearer}</html>` } : undefined,
    });
    const handler = await exporter(h, freshPrefix());
    const outcome = await invoke(h, handler, {});
    expect(outcome.error?.name).toBe('MalformedPageError');
    const text = `${outcome.output}\n${describeError(outcome.error)}`;
    expect(occurrences(text, sim.stats.tokens)).toBe(0);
  });
});
