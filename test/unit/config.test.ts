import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig } from '../../lambda/config.ts';
import { ConfigError } from '../../lambda/errors.ts';

const minimal = {
  THINGPARK_BASE_URL: 'https://community.thingpark.io/',
  THINGPARK_CLIENT_ID_PARAM: '/tp/id',
  THINGPARK_CLIENT_SECRET_PARAM: '/tp/secret',
  SNAPSHOT_BUCKET: 'bucket',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('derives the Keycloak token URL and applies the documented defaults', () => {
    const config = loadConfig(minimal);
    expect(config.tokenUrl.href).toBe('https://community.thingpark.io/users-auth/protocol/openid-connect/token');
    expect(config).toMatchObject({
      tokenAuth: 'client_secret_post',
      prefix: 'thingpark/',
      pageSize: DEFAULTS.THINGPARK_PAGE_SIZE,
      firstPageIndex: 0,
      tokenRenewMarginSeconds: DEFAULTS.TOKEN_RENEW_MARGIN_SECONDS,
    });
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
      'THINGPARK_FIRST_PAGE_INDEX must be an integer from 0 to 1, got "2"',
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

  it('rejects a prefix that would write outside a folder', () => {
    expect(problemsOf({ ...minimal, SNAPSHOT_PREFIX: 'exports' })).toHaveLength(1);
    expect(loadConfig({ ...minimal, SNAPSHOT_PREFIX: '' }).prefix).toBe('');
  });
});
