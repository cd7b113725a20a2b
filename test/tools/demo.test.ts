import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duckdbQuery } from '../../tools/inspect/duckdb.ts';
import { ROOT, TSX, runTool, type ToolRun } from './run-tool.ts';

const DEVICES = 300;

/**
 * `npm start` in a directory of its own, so that its .demo/ is this test's; node_modules is
 * linked in, as the repository has it, for the query file the demo writes there.
 */
describe('npm start: the local demo', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'demo-test-'));
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const demo = (env: Record<string, string>): Promise<ToolRun> =>
    runTool(TSX, [join(ROOT, 'tools/demo/main.ts')], { cwd: dir, env: { DEMO_DEVICES: String(DEVICES), ...env } });

  it('ignores an AWS profile that does not exist, says so, and prints only its own lines', async () => {
    const run = await demo({ AWS_PROFILE: 'no-such-profile', AWS_REGION: 'ap-southeast-7' });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain("this shell's AWS profile, credentials files and region are not used");
    expect(run.stdout).toContain(`OK: ${DEVICES} simulated devices exported, each exactly once`);
    expect(run.stderr).toBe('');
    // None of: the profile's failure, the SDK's notices, oidc-provider's, a function log line.
    expect(run.stdout).not.toMatch(/CredentialsProviderError|Multiple credential sources|NodeVersionSupportWarning|oidc-provider|"level"/);
  });

  it('ignores a real profile with its own keys and region: nothing of them reaches the local S3', async () => {
    const aws = join(dir, 'aws');
    await mkdir(aws, { recursive: true });
    const secret = 'wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY1';
    await writeFile(join(aws, 'credentials'), `[my-profile]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = ${secret}\n`);
    await writeFile(join(aws, 'config'), '[profile my-profile]\nregion = us-east-2\nendpoint_url = http://127.0.0.1:9\n');
    const run = await demo({ AWS_PROFILE: 'my-profile', AWS_SHARED_CREDENTIALS_FILE: join(aws, 'credentials'), AWS_CONFIG_FILE: join(aws, 'config') });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout + run.stderr).not.toMatch(/InvalidAccessKeyId|Multiple credential sources|AKIAIOSFODNN7EXAMPLE/);
    expect(run.stdout + run.stderr).not.toContain(secret);
  });

  it("keeps both runs, their manifests and the pointer under .demo/ in the bucket's layout, with the query to read them", async () => {
    const run = await demo({});
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const runIds = [...run.stdout.matchAll(/^ {2}run id +(\S+)$/gm)].map((match) => match[1] as string);
    expect(runIds).toHaveLength(2);
    const [first, second] = runIds as [string, string];

    const prefix = join(dir, '.demo', 'thingpark');
    expect(JSON.parse(await readFile(join(prefix, 'latest.json'), 'utf8'))).toMatchObject({ runId: second, devices: DEVICES });
    expect((await readdir(join(prefix, 'manifests'))).sort()).toEqual([`${first}.json`, `${second}.json`]);
    const [day] = await readdir(join(prefix, 'devices'));
    expect((await readdir(join(prefix, 'devices', day as string))).sort()).toEqual([`run=${first}`, `run=${second}`]);
    const perRun = await duckdbQuery(
      `SELECT exportRunId, count(*)::INTEGER AS devices FROM read_json_auto('${prefix}/devices/dt=*/run=*/*.ndjson.gz') GROUP BY 1 ORDER BY 1`,
    );
    expect(perRun).toEqual([
      { exportRunId: first, devices: DEVICES },
      { exportRunId: second, devices: DEVICES },
    ]);

    // The SQL printed is the SQL run, its column named as the table shows it.
    expect(run.stdout).toContain(
      "DuckDB: SELECT exportRunId, healthState, count(*)::INTEGER AS devices FROM read_json_auto('.demo/thingpark/devices/dt=*/run=*/*.ndjson.gz')",
    );
    expect(run.stdout).toMatch(/│ exportRunId\s+│ healthState\s+│ devices │/);
    expect(run.stdout).toContain('node .demo/query.mjs');
    expect(run.stdout).toContain('paths above were in the local S3 stand-in, gone now that the demo has stopped; .demo/ keeps what it held');

    // Each run's fleet signals, and the alarms they would raise at the stack's defaults: the
    // second run's outage silences every fourth device (75 of 300, the one removed was not one).
    const [firstRun = '', secondRun = ''] = run.stdout.split(/^Run 2 /m);
    expect(firstRun).toMatch(/^ {2}silent > 24 h +0 \(0 %\)$/m);
    expect(firstRun).toMatch(/^ {2}mass removal +no data \(a first run has no run before\): quiet$/m);
    expect(firstRun).toMatch(/^ {2}silent share +quiet: 0 % of the fleet silent, alarm above 20 %$/m);
    expect(secondRun).toMatch(/^ {2}silent > 24 h +75 \(25 %\)$/m);
    expect(secondRun).toMatch(/^ {2}changes +1 \(0\.3333 %\) added, 1 \(0\.3333 %\) removed, 15 \(5 %\) changed$/m);
    expect(secondRun).toMatch(/^ {2}mass removal +quiet: 0\.3333 % of the previous run's devices removed, alarm above 10 %$/m);
    expect(secondRun).toMatch(/^ {2}health drop +quiet: \+2 points ACTIVE share since the run before, alarm below -10 points$/m);
    expect(secondRun).toMatch(/^ {2}silent share +WOULD FIRE: 25 % of the fleet silent, alarm above 20 %$/m);

    // The query file it wrote runs as printed, from where the demo ran.
    const { stdout } = await promisify(execFile)(process.execPath, ['.demo/query.mjs'], { cwd: dir });
    expect(stdout).toContain(first);
    expect(stdout).toContain(second);
    expect(stdout).toMatch(new RegExp(`│ ${DEVICES}\\s+│ ${DEVICES}\\s+│`));
    // And the analyst's three questions, from the curated tables.
    expect(stdout).toContain('The fleet now, from devices_current');
    expect(stdout).toContain("read_text('.demo/thingpark/curated/devices_current/symlink.txt')");
    expect(stdout).toContain('What changed in the newest run, from device_changes');
    expect(stdout).toMatch(/│ 'changed'\s+│ \d+/);
    expect(stdout).toMatch(/One device's history, from device_snapshots: 70B3D50000000007/);
    expect(stdout.match(/│ '\w+-demo\d+'\s+│ [^│]+│ 'sensor-7'\s+│ '(ACTIVE|BATTERY_LOW)'/g)).toHaveLength(2);
  });
});
