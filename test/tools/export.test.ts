import { devNull } from 'node:os';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';
import { ROOT, runTool } from './run-tool.ts';

/** `npm run export` as a user types it. */
const npmExport = (env: Record<string, string>) => runTool('npm', ['run', '--silent', 'export'], { cwd: ROOT, env });

/**
 * Every variable the export needs, and no AWS setup: no file and no instance role to find
 * one in, so that this machine's own setup stays out of it.
 */
const WITHOUT_AWS = {
  THINGPARK_BASE_URL: 'https://community.thingpark.io',
  THINGPARK_CLIENT_ID_PARAM: '/thingpark-exporter/client-id',
  THINGPARK_CLIENT_SECRET_PARAM: '/thingpark-exporter/client-secret',
  SNAPSHOT_BUCKET: 'my-snapshot-bucket',
  AWS_CONFIG_FILE: devNull,
  AWS_SHARED_CREDENTIALS_FILE: devNull,
  AWS_EC2_METADATA_DISABLED: 'true',
};

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

  it('refuses to start without an AWS region or credentials, naming each and how to set it', async () => {
    const run = await npmExport(WITHOUT_AWS);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('npm run export runs a real export and cannot start (npm start is the local demo):');
    expect(run.stderr).toContain('  - no AWS region (the SDK: "Region is missing"): set AWS_REGION to the region of the bucket and the SSM parameters');
    expect(run.stderr).toContain('  - no AWS credentials (the SDK: "Could not load credentials from any providers"): set AWS_PROFILE');
    expect(run.stdout).toBe('');
  });

  it('names a profile that is not there, and takes a region given', async () => {
    const run = await npmExport({ ...WITHOUT_AWS, AWS_REGION: 'eu-west-1', AWS_PROFILE: 'no-such-profile' });
    expect(run.code).toBe(2);
    expect(run.stderr).not.toContain('no AWS region');
    expect(run.stderr).toContain('  - no AWS credentials from AWS_PROFILE=no-such-profile (the SDK: "');
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

    it("an S3 failure names the service, the operation, the object and the SDK's code", async () => {
      const run = await npmExport({ ...standIns.env, SNAPSHOT_BUCKET: 'no-such-bucket' });
      expect(run.code).toBe(1);
      expect(run.stdout + run.stderr).toMatch(
        /"error":"S3 PutObject s3:\/\/no-such-bucket\/thingpark\/attempts\/\w+\.json at 127\.0\.0\.1:\d+ failed \(NoSuchBucket, HTTP 404\): The specified bucket does not exist"/,
      );
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
