import { afterEach, describe, expect, it, vi } from 'vitest';
import { RetryBudget, TransientError, retrying, type RetryNotice } from '../../lambda/common/retry.ts';
import { systemCode } from '../../lambda/common/redact.ts';
import { closestVariable, unknownVariables } from '../../lambda/common/env.ts';
import { exporter, freshPrefix, invoke, invokeFailing, reset, useHarness } from './harness.ts';
import { closedPort } from '../../tools/stand-ins/standins.ts';

const h = useHarness();

type LogLine = Record<string, unknown> & { level: string; message: string };

/** The function's log lines (Powertools JSON, one a line) in captured output. */
function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{"level"'))
    .map((line) => JSON.parse(line) as LogLine);
}

const retryLines = (output: string) => logLines(output).filter((line) => line.message === 'Retrying after a transient failure');

describe('a failure names the operation, the host and the cause', () => {
  it('an unreachable token endpoint: its host and ECONNREFUSED, one WARN per retry, one "Run failed" line', async () => {
    await reset(h);
    const port = await closedPort();
    const handler = await exporter(h, freshPrefix(), { THINGPARK_BASE_URL: `http://127.0.0.1:${port}`, THINGPARK_MAX_RETRIES: '2' });
    const outcome = await invoke(h, handler, {});
    expect(outcome.error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR' });
    expect(outcome.error?.message).toBe(
      `Gave up after 2 retries (THINGPARK_MAX_RETRIES); last failure: token endpoint 127.0.0.1:${port} unreachable: fetch failed (ECONNREFUSED)`,
    );
    const retries = retryLines(outcome.output);
    expect(retries.map(({ level, retry, failure }) => ({ level, retry, failure }))).toEqual(
      [1, 2].map((retry) => ({
        level: 'WARN',
        retry,
        failure: `token endpoint 127.0.0.1:${port} unreachable: fetch failed (ECONNREFUSED)`,
      })),
    );
    // The failure is logged once, as "Run failed"; no other line repeats it.
    const failed = logLines(outcome.output).filter((line) => line.level === 'ERROR');
    expect(failed).toEqual([expect.objectContaining({ message: 'Run failed', error: outcome.error?.message, code: 'PLATFORM_ERROR' })]);
    expect(outcome.output.split('Gave up after').length - 1).toBe(1);
  });

  it('an unreachable device API (the token endpoint answering): the page, its host and ECONNREFUSED', async () => {
    await reset(h);
    const port = await closedPort();
    const handler = await exporter(h, freshPrefix(), {
      THINGPARK_BASE_URL: `http://127.0.0.1:${port}`,
      THINGPARK_TOKEN_URL: `${h.platform.url}/users-auth/protocol/openid-connect/token`,
      THINGPARK_MAX_RETRIES: '1',
      THINGPARK_CONCURRENCY: '1',
    });
    const error = await invokeFailing(h, handler, {});
    expect(error.message).toBe(`Gave up after 1 retry (THINGPARK_MAX_RETRIES); last failure: page 0 from 127.0.0.1:${port}: fetch failed (ECONNREFUSED)`);
  });

  it('an unreachable S3: the operation, the object, the host, ECONNREFUSED and the attempts', async () => {
    await reset(h);
    const port = await closedPort();
    const prefix = freshPrefix();
    const handler = await exporter(h, prefix, { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` });
    const error = await invokeFailing(h, handler, {});
    expect(error.message).toMatch(
      new RegExp(
        `^S3 GetObject s3://thingpark-snapshots/${prefix}manifests/\\S+\\.json at 127\\.0\\.0\\.1:${port} failed \\(ECONNREFUSED, 3 attempts\\): connect ECONNREFUSED`,
      ),
    );
  });

  it('an unreachable SSM: the operation, the parameters, the host and ECONNREFUSED, under the credentials it was reading', async () => {
    await reset(h);
    const port = await closedPort();
    const handler = await exporter(h, freshPrefix(), { AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${port}` });
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'CredentialsError', code: 'CREDENTIALS_UNAVAILABLE' });
    expect(error.message).toContain('Could not read SSM parameters /thingpark-exporter/client-id and /thingpark-exporter/client-secret');
    expect(error.message).toContain(
      `SSM GetParameters /thingpark-exporter/client-id, /thingpark-exporter/client-secret at 127.0.0.1:${port} failed (ECONNREFUSED, 3 attempts)`,
    );
  });

  it('finds the code wherever undici, TLS or a multi-address connect left it, and only a code', () => {
    const tls = new TypeError('fetch failed', { cause: Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }) });
    const nested = new TypeError('fetch failed', {
      cause: new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_CONNECT_TIMEOUT' }) }),
    });
    const everyAddress = new TypeError('fetch failed', { cause: new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]) });
    expect([tls, nested, everyAddress].map(systemCode)).toEqual(['CERT_HAS_EXPIRED', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED']);
    expect(systemCode(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'not a code: Bearer abc' }) }))).toBeUndefined();
  });
});

describe('retries are logged as they happen', () => {
  it('logs one WARN per retry, token and page, each with its wait', async () => {
    const sim = await reset(h, {
      fault: ({ pageIndex, attempt }) => (pageIndex === 1 && attempt <= 2 ? { status: 503, body: '{"code":503,"message":"busy"}' } : undefined),
    });
    sim.tokens.fault = ({ attempt }) => (attempt === 1 ? { status: 502, body: '' } : undefined);
    const handler = await exporter(h, freshPrefix());
    const outcome = await invoke(h, handler, {});
    expect(outcome.summary).toMatchObject({ status: 'committed', retries: 2 });
    const retries = retryLines(outcome.output);
    expect(retries.map(({ level, failure, retry, maxRetries }) => ({ level, failure, retry, maxRetries }))).toEqual([
      { level: 'WARN', failure: expect.stringMatching(/^token endpoint 127\.0\.0\.1:\d+ answered HTTP 502$/) as unknown, retry: 1, maxRetries: 5 },
      { level: 'WARN', failure: 'page 1: HTTP 503 {"code":503,"message":"busy"}', retry: 1, maxRetries: 5 },
      { level: 'WARN', failure: 'page 1: HTTP 503 {"code":503,"message":"busy"}', retry: 2, maxRetries: 5 },
    ]);
    for (const { waitMs } of retries) expect(waitMs).toEqual(expect.any(Number));
  });

  it('tells onRetry the wait it then waits, once per retry', async () => {
    vi.useFakeTimers();
    try {
      const notices: (RetryNotice & { at: number })[] = [];
      const attempts: number[] = [];
      const retry = retrying({ maxRetries: 3, budget: new RetryBudget(3), onRetry: (notice) => notices.push({ ...notice, at: Date.now() }) });
      const result = retry(async () => {
        attempts.push(Date.now());
        if (attempts.length <= 3) throw new TransientError(`HTTP 503 #${attempts.length}`, 503, attempts.length === 2 ? 1500 : undefined);
        return 'page';
      });
      await vi.runAllTimersAsync();
      await expect(result).resolves.toBe('page');
      expect(notices.map(({ failure, retry, status }) => ({ failure, retry, status }))).toEqual(
        [1, 2, 3].map((n) => ({ failure: `HTTP 503 #${n}`, retry: n, status: 503 })),
      );
      expect(notices[1]?.waitMs).toBe(1500);
      notices.forEach((notice, i) => expect((attempts[i + 1] as number) - notice.at).toBe(notice.waitMs));
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('unknown variables of ours', () => {
  afterEach(() => {
    delete process.env.THINGPARK_CONCURENCY;
  });

  it('are warned about once per cold start with the variable meant, and the run goes on', async () => {
    await reset(h);
    const handler = await exporter(h, freshPrefix(), { THINGPARK_CONCURENCY: '8' });
    const cold = await invoke(h, handler, {});
    expect(cold.summary).toMatchObject({ status: 'committed', devices: 250 });
    // Only this variable's line: a CI runner may hold other names of these families.
    expect(logLines(cold.output).filter(({ variable }) => variable === 'THINGPARK_CONCURENCY')).toEqual([
      expect.objectContaining({
        level: 'WARN',
        message: 'THINGPARK_CONCURENCY is not a variable the exporter reads, so it is ignored: did you mean THINGPARK_CONCURRENCY?',
        variable: 'THINGPARK_CONCURENCY',
        suggestion: 'THINGPARK_CONCURRENCY',
      }),
    ]);
    // Once per cold start: the warm invocation says nothing more.
    const warm = await invoke(h, handler, {});
    expect(warm.summary?.status).toBe('committed');
    expect(warm.output).not.toContain('THINGPARK_CONCURENCY');
  });

  it('are found by family and matched to the nearest name; other variables are left alone', () => {
    const found = unknownVariables({
      THINGPARK_BASEURL: 'https://x.example',
      thingpark_page_size: '100',
      SNAPSHOT_BUCKETS: 'b',
      RUN_DEADLINE_MARGIN: '5',
      TOKEN_FILE: '/tmp/t',
      THINGPARK_BASE_URL: 'https://x.example',
      PATH: '/usr/bin',
      AWS_REGION: 'eu-west-1',
    });
    expect(found.map(({ name, suggestion }) => [name, suggestion])).toEqual([
      ['RUN_DEADLINE_MARGIN', 'RUN_DEADLINE_MARGIN_SECONDS'],
      ['SNAPSHOT_BUCKETS', 'SNAPSHOT_BUCKET'],
      ['THINGPARK_BASEURL', 'THINGPARK_BASE_URL'],
      ['TOKEN_FILE', undefined],
      ['thingpark_page_size', 'THINGPARK_PAGE_SIZE'],
    ]);
    expect(found.find(({ name }) => name === 'TOKEN_FILE')?.message).toBe('TOKEN_FILE is not a variable the exporter reads, so it is ignored');
    expect(closestVariable('THINGPARK_CLIENT_PARAM')).toBe('THINGPARK_CLIENT_ID_PARAM');
  });
});
