import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';
import { ROOT, runTool } from './run-tool.ts';

/** `npm run export` as a user types it. */
const npmExport = (env: Record<string, string>) => runTool('npm', ['run', '--silent', 'export'], { cwd: ROOT, env });

describe('npm run export: the real export', () => {
  it('refuses to start without its configuration, naming each missing variable and the one a typo meant', async () => {
    const run = await npmExport({
      THINGPARK_BASEURL: 'https://community.thingpark.io',
      SNAPSHOT_BUCKET: 'my-snapshot-bucket',
      CURATE_INLNE_MIN_REMAINING_SECONDS: '0',
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('THINGPARK_BASEURL is not a variable the exporter reads, so it is ignored: did you mean THINGPARK_BASE_URL?');
    expect(run.stderr).toContain(
      'CURATE_INLNE_MIN_REMAINING_SECONDS is not a variable the exporter reads, so it is ignored: did you mean CURATE_INLINE_MIN_REMAINING_SECONDS?',
    );
    expect(run.stderr).toContain('npm run export runs a real export and cannot start (npm start is the local demo):');
    for (const name of ['THINGPARK_BASE_URL', 'THINGPARK_CLIENT_ID_PARAM', 'THINGPARK_CLIENT_SECRET_PARAM']) {
      expect(run.stderr).toContain(`  - ${name} is required`);
    }
    expect(run.stderr).not.toContain('SNAPSHOT_BUCKET is required');
    // Nothing started, nothing announced: the check comes before any other line.
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toMatch(/stand-in|127\.0\.0\.1|Exporting from|s3:\/\//);
  });

  it('cannot start a stand-in: none of their code is reachable from it', async () => {
    const { metafile } = await build({
      entryPoints: [join(ROOT, 'tools/export/main.ts')],
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'silent',
    });
    const files = Object.keys(metafile.inputs).map((file) => relative(ROOT, join(ROOT, file)));
    expect(files).toContain('lambda/handler.ts');
    expect(files.filter((file) => file.startsWith('test/') || file.startsWith('tools/demo') || file.startsWith('tools/bench'))).toEqual([]);
    const packages = Object.values(metafile.outputs).flatMap(({ imports }) => imports.map(({ path }) => path));
    expect(packages.filter((path) => /s3rver|oidc-provider|duckdb/.test(path))).toEqual([]);
  });

  describe('against a platform and account it is pointed at', () => {
    let standIns: StandIns;
    beforeAll(async () => {
      standIns = await startStandIns({ simulator: { fleet: 200 } });
    });
    afterAll(async () => {
      await standIns.stop();
    });

    it("runs one export with the function's handler and prints where it is", async () => {
      const run = await npmExport(standIns.env);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toContain(
        `Exporting from ${standIns.platform.url} to s3://thingpark-snapshots/thingpark/ (AWS credentials and region: AWS_REGION=eu-west-1)`,
      );
      expect(run.stdout).toMatch(/Run committed:\n {2}run id +\S+-\w{8}\n {2}devices +200\n/);
      expect(run.stdout).toMatch(/manifest +s3:\/\/thingpark-snapshots\/thingpark\/manifests\/\S+\.json/);
      expect(standIns.platform.tokens.grants).toBe(1);
    });

    it('on an unreachable platform: the host and the cause, a line per retry, the failure once, a typo warned about once', async () => {
      const port = await closedPort();
      const run = await npmExport({ ...standIns.env, THINGPARK_BASE_URL: `http://127.0.0.1:${port}`, THINGPARK_MAX_RETRIES: '1', THINGPARK_CONCURENCY: '8' });
      expect(run.code).toBe(1);
      const output = run.stdout + run.stderr;
      expect(output.split('did you mean THINGPARK_CONCURRENCY?').length - 1).toBe(1);
      const failure = `token endpoint 127.0.0.1:${port} unreachable: fetch failed (ECONNREFUSED)`;
      const lines = output.split('\n');
      expect(lines.filter((line) => line.includes('"Retrying after a transient failure"'))).toEqual([
        expect.stringMatching(new RegExp(`"level":"WARN".*"failure":"${failure.replace(/[.()]/g, '\\$&')}","retry":1,"maxRetries":1,"waitMs":\\d+`)),
      ]);
      expect(lines.filter((line) => line.includes('Gave up after'))).toEqual([expect.stringContaining(`"message":"Run failed"`)]);
      expect(output).toContain(`"error":"Gave up after 1 retry (THINGPARK_MAX_RETRIES); last failure: ${failure}"`);
      expect(run.stderr).toContain('The export failed: the "Run failed" line above says why.');
    });
  });
});
