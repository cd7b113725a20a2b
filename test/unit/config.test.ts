import { describe, expect, it } from 'vitest';
import { loadConfig, MAX_CONCURRENCY_TIMES_PAGE_SIZE } from '../../lambda/common/config.ts';
import { DEFAULTS } from '../../lambda/common/env.ts';
import { ConfigError } from '../../lambda/common/errors.ts';

const minimal = {
  THINGPARK_BASE_URL: 'https://community.thingpark.io/',
  THINGPARK_CLIENT_ID_PARAM: '/tp/id',
  THINGPARK_CLIENT_SECRET_PARAM: '/tp/secret',
  SNAPSHOT_BUCKET: 'bucket',
};

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

function problemsOf(env: Record<string, string>): string[] {
  return errorOf(env).problems;
}

describe('loadConfig', () => {
  it('derives the Keycloak token URL and applies the documented defaults', () => {
    const config = loadConfig(minimal);
    expect(config.tokenUrl.href).toBe('https://community.thingpark.io/users-auth/protocol/openid-connect/token');
    expect(config).toMatchObject({
      tokenAuth: 'client_secret_post',
      prefix: 'thingpark/',
      pageSize: DEFAULTS.THINGPARK_PAGE_SIZE,
      paging: 'auto',
      tokenRenewMarginSeconds: DEFAULTS.TOKEN_RENEW_MARGIN_SECONDS,
    });
    // Learned from the platform unless set: the spec counts pages from 1, older deployments from 0.
    expect(config.firstPageIndex).toBeUndefined();
    expect(loadConfig({ ...minimal, THINGPARK_FIRST_PAGE_INDEX: '0', THINGPARK_PAGING: 'offset' })).toMatchObject({ firstPageIndex: 0, paging: 'offset' });
  });

  it('reads the list in cursor mode or by offset, and nothing else', () => {
    expect(problemsOf({ ...minimal, THINGPARK_PAGING: 'cursors' })).toEqual(['THINGPARK_PAGING must be auto or offset, got "cursors"']);
  });

  it('names every missing variable at once', () => {
    expect(problemsOf({})).toEqual([
      'THINGPARK_BASE_URL is required',
      'THINGPARK_CLIENT_ID_PARAM is required',
      'THINGPARK_CLIENT_SECRET_PARAM is required',
      'SNAPSHOT_BUCKET is required',
    ]);
  });

  it('rejects malformed numbers with the variable, the range and the value', () => {
    expect(problemsOf({ ...minimal, THINGPARK_PAGE_SIZE: '10k', THINGPARK_FIRST_PAGE_INDEX: '2' })).toEqual([
      'THINGPARK_PAGE_SIZE must be an integer from 1 to 100000, got "10k"',
      'THINGPARK_FIRST_PAGE_INDEX must be an integer from 0 to 1 (or unset, to learn it from the platform), got "2"',
    ]);
  });

  it('refuses plain http except to loopback addresses', () => {
    expect(problemsOf({ ...minimal, THINGPARK_BASE_URL: 'http://thingpark.example.com' })).toEqual([
      'THINGPARK_BASE_URL must use https:// (plain http:// is allowed only for loopback addresses)',
      'THINGPARK_TOKEN_URL must use https:// (plain http:// is allowed only for loopback addresses)',
    ]);
    expect(loadConfig({ ...minimal, THINGPARK_BASE_URL: 'http://127.0.0.1:8080' }).baseUrl.port).toBe('8080');
    expect(loadConfig({ ...minimal, THINGPARK_BASE_URL: 'http://localhost:8080' }).baseUrl.hostname).toBe('localhost');
  });

  it.each([
    [
      'THINGPARK_BASE_URL',
      'https://svc:s3cr3t@community.thingpark.io',
      'must not contain a user name or password: remove the "...@" before the host (credentials come from the SSM parameters)',
    ],
    [
      'THINGPARK_TOKEN_URL',
      'https://:s3cr3t@community.thingpark.io/token',
      'must not contain a user name or password: remove the "...@" before the host (credentials come from the SSM parameters)',
    ],
    ['THINGPARK_BASE_URL', 'https://community.thingpark.io/?s3cr3t=1', 'must not have a query string: remove the "?" and everything after it'],
    ['THINGPARK_TOKEN_URL', 'https://community.thingpark.io/token?', 'must not have a query string: remove the "?" and everything after it'],
    ['THINGPARK_BASE_URL', 'https://community.thingpark.io/#s3cr3t', 'must not have a fragment: remove the "#" and everything after it'],
  ])('refuses %s %s, saying what to remove without echoing it', (name, value, problem) => {
    // Userinfo would reach logged fetch errors and every manifest; a query or fragment
    // would swallow the devices path. Problems are logged, so none may repeat the value.
    const error = errorOf({ ...minimal, [name]: value });
    expect(error.problems).toContain(`${name} ${problem}`);
    expect(error.message).not.toContain('s3cr3t');
  });

  it('does not echo a URL with "@" in it even when it does not parse', () => {
    // Without a scheme, "svc:s3cr3t@host" parses with "svc:" as the scheme, so even the
    // scheme may be part of a credential.
    for (const value of ['//svc:s3cr3t@community.thingpark.io', 'svc:s3cr3t@community.thingpark.io']) {
      const error = errorOf({ ...minimal, THINGPARK_TOKEN_URL: value });
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatch(/^THINGPARK_TOKEN_URL must be an (absolute|http\(s\)) URL$/);
      expect(error.message).not.toContain('s3cr3t');
      expect(error.message).not.toContain('svc');
    }
    expect(problemsOf({ ...minimal, THINGPARK_TOKEN_URL: 'community.thingpark.io/token' })).toEqual([
      'THINGPARK_TOKEN_URL must be an absolute URL, got "community.thingpark.io/token"',
    ]);
  });

  it('bounds concurrency times page size, which bounds the pages held in memory', () => {
    expect(problemsOf({ ...minimal, THINGPARK_CONCURRENCY: '64', THINGPARK_PAGE_SIZE: '100000' })).toEqual([
      `THINGPARK_CONCURRENCY x THINGPARK_PAGE_SIZE must be at most ${MAX_CONCURRENCY_TIMES_PAGE_SIZE} to bound the pages held in memory, got 64 x 100000 = 6400000: lower THINGPARK_CONCURRENCY or THINGPARK_PAGE_SIZE`,
    ]);
    // The default concurrency counts too: a page size alone can go over.
    expect(problemsOf({ ...minimal, THINGPARK_PAGE_SIZE: '8001' })).toEqual([
      `THINGPARK_CONCURRENCY x THINGPARK_PAGE_SIZE must be at most ${MAX_CONCURRENCY_TIMES_PAGE_SIZE} to bound the pages held in memory, got 4 x 8001 = 32004: lower THINGPARK_CONCURRENCY or THINGPARK_PAGE_SIZE`,
    ]);
    expect(loadConfig({ ...minimal, THINGPARK_PAGE_SIZE: '8000' })).toMatchObject({ concurrency: 4, pageSize: 8000 });
    expect(loadConfig({ ...minimal, THINGPARK_CONCURRENCY: '16', THINGPARK_PAGE_SIZE: '2000' })).toMatchObject({ concurrency: 16, pageSize: 2000 });
    // A value out of its own range is reported once, not again as a product.
    expect(problemsOf({ ...minimal, THINGPARK_CONCURRENCY: '65', THINGPARK_PAGE_SIZE: '1000' })).toEqual([
      'THINGPARK_CONCURRENCY must be an integer from 1 to 64, got "65"',
    ]);
  });

  it("bounds the window's ceiling times page size; the default ceiling fits the bound, never below the start", () => {
    expect(loadConfig(minimal)).toMatchObject({ concurrency: 4, maxConcurrency: 32 });
    expect(DEFAULTS.THINGPARK_MAX_CONCURRENCY * DEFAULTS.THINGPARK_PAGE_SIZE).toBeLessThanOrEqual(MAX_CONCURRENCY_TIMES_PAGE_SIZE);
    // Larger pages lower the default ceiling to what fits, never below where the window starts.
    expect(loadConfig({ ...minimal, THINGPARK_PAGE_SIZE: '2000' })).toMatchObject({ concurrency: 4, maxConcurrency: 16 });
    expect(loadConfig({ ...minimal, THINGPARK_PAGE_SIZE: '8000' })).toMatchObject({ concurrency: 4, maxConcurrency: 4 });
    expect(loadConfig({ ...minimal, THINGPARK_CONCURRENCY: '16', THINGPARK_PAGE_SIZE: '2000' })).toMatchObject({ concurrency: 16, maxConcurrency: 16 });
    // A ceiling equal to the start: a fixed window, as before the window grew.
    expect(loadConfig({ ...minimal, THINGPARK_CONCURRENCY: '8', THINGPARK_MAX_CONCURRENCY: '8' })).toMatchObject({ concurrency: 8, maxConcurrency: 8 });
    // A ceiling given is checked as given.
    expect(problemsOf({ ...minimal, THINGPARK_MAX_CONCURRENCY: '64' })).toEqual([
      `THINGPARK_MAX_CONCURRENCY x THINGPARK_PAGE_SIZE must be at most ${MAX_CONCURRENCY_TIMES_PAGE_SIZE} to bound the pages held in memory, got 64 x 1000 = 64000: lower THINGPARK_MAX_CONCURRENCY or THINGPARK_PAGE_SIZE`,
    ]);
    expect(problemsOf({ ...minimal, THINGPARK_CONCURRENCY: '8', THINGPARK_MAX_CONCURRENCY: '4' })).toEqual([
      'THINGPARK_CONCURRENCY (where the window starts) must be at most THINGPARK_MAX_CONCURRENCY (its ceiling), got 8 > 4: lower THINGPARK_CONCURRENCY or raise THINGPARK_MAX_CONCURRENCY',
    ]);
    expect(problemsOf({ ...minimal, THINGPARK_MAX_CONCURRENCY: '0' })).toEqual(['THINGPARK_MAX_CONCURRENCY must be an integer from 1 to 64, got "0"']);
  });

  it('rejects a prefix that would write outside a folder', () => {
    expect(problemsOf({ ...minimal, SNAPSHOT_PREFIX: 'exports' })).toHaveLength(1);
    expect(loadConfig({ ...minimal, SNAPSHOT_PREFIX: '' }).prefix).toBe('');
  });
});
