import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../lambda/common/config.ts';
import { coldStart, EXPORTER_VARIABLES, FOREIGN_PREFIXES, isExporterVariable } from '../support/lambda.ts';

const REQUIRED = {
  THINGPARK_BASE_URL: 'https://community.thingpark.io',
  THINGPARK_CLIENT_ID_PARAM: '/tp/id',
  THINGPARK_CLIENT_SECRET_PARAM: '/tp/secret',
  SNAPSHOT_BUCKET: 'bucket',
};

/** A config with its URLs as text, to compare by value. */
const plain = ({ baseUrl, tokenUrl, ...rest }: Config) => ({ ...rest, baseUrl: baseUrl.href, tokenUrl: tokenUrl.href });

const original = { ...process.env };
afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in original)) delete process.env[name];
  Object.assign(process.env, original);
});

describe('coldStart', () => {
  it("leaves nothing of one cold start's environment, nor of the shell's, to the next", async () => {
    const first: Record<string, string> = {
      ...Object.fromEntries([...EXPORTER_VARIABLES].map((name) => [name, `first-${name}`])),
      POWERTOOLS_LOG_LEVEL: 'DEBUG',
      POWERTOOLS_SERVICE_NAME: 'first-service',
      POWERTOOLS_METRICS_DISABLED: 'false',
      CURATE_INLNE_MIN_REMAINING_SECONDS: '0',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:2',
    };
    await coldStart(first);
    for (const [name, value] of Object.entries(first)) expect(process.env[name], name).toBe(value);
    // Set outside any cold start, as an exported shell variable would be.
    process.env.THINGPARK_CONCURRENCY = '64';
    process.env.CURATE_CHANGE_FIELDS = 'name';
    process.env.AWS_ENDPOINT_URL_SSM = 'http://127.0.0.1:3';

    await coldStart(REQUIRED);
    const left = Object.keys(process.env).filter(isExporterVariable).sort();
    expect(left).toEqual([...Object.keys(REQUIRED), 'POWERTOOLS_METRICS_DISABLED'].sort());
    expect(process.env.POWERTOOLS_METRICS_DISABLED).toBe('true');
    // So the second cold start's configuration is the defaults, not the first one's values.
    expect(plain(loadConfig(process.env))).toEqual(plain(loadConfig(REQUIRED)));
  });

  it("clears every variable the exporter's code reads, and reads each through the registry or by a name it lists", async () => {
    const lambda = fileURLToPath(new URL('../../lambda/', import.meta.url));
    const byName: string[] = [];
    const byVariableName: string[] = [];
    for (const file of await readdir(lambda, { recursive: true })) {
      if (!file.endsWith('.ts')) continue;
      const source = await readFile(join(lambda, file), 'utf8');
      // env.NAME, env['NAME'] and process.env.NAME, whatever the object is called.
      byName.push(
        ...[...source.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]+)|\[['"]([A-Z][A-Z0-9_]+)['"]\])/g)].map(([, dotted, quoted]) => (dotted ?? quoted) as string),
      );
      // env[name]: a name held in a variable, which only the registry's readers may look up.
      if (/\benv\[(?!['"])/.test(source)) byVariableName.push(file);
    }
    expect(byVariableName).toEqual([join('common', 'env.ts')]);
    expect(byName).toContain('POWERTOOLS_SERVICE_NAME');
    const listed = (name: string) => EXPORTER_VARIABLES.has(name) || FOREIGN_PREFIXES.some((prefix) => name.startsWith(prefix));
    expect([...new Set(byName)].filter((name) => !listed(name))).toEqual([]);
    expect([...EXPORTER_VARIABLES].filter((name) => !isExporterVariable(name))).toEqual([]);
    expect(EXPORTER_VARIABLES).toContain('CURATE_INLINE_MIN_REMAINING_SECONDS');
  });
});
