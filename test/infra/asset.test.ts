import { copyFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import lambdaLocal from 'lambda-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';
import { repeated } from '../support/collections.ts';
import { currentKeys, queryObjects } from '../support/curated.ts';
import { captureOutput } from '../support/lambda.ts';
import { getJson, runRows, testS3 } from '../../tools/inspect/snapshot.ts';
import { simulatedBrief } from '../../tools/stand-ins/fleet.ts';
import { DEMO, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';

/**
 * The artifact that would be deployed is the artifact tested: the stack is synthesized,
 * the function's bundle that CDK staged is loaded by lambda-local, and it runs a real
 * export against the local stand-ins with the environment the template gives it.
 */
describe('the bundled Lambda asset', () => {
  let outdir: string;
  let bundle: string;
  let templateEnv: Record<string, unknown>;
  let standIns: StandIns;

  beforeAll(async () => {
    outdir = await mkdtemp(join(tmpdir(), 'cdk-asset-'));
    const app = new App({ outdir });
    const stack = new ExporterStack(app, 'AssetUnderTest', { settings: settingsFromContext(app) });
    const template = Template.fromStack(stack);
    app.synth();
    const functions = template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: { THINGPARK_CLIENT_ID_PARAM: DEMO.clientIdParam } } },
    });
    const [exporter] = Object.values(functions) as { Properties: { Environment: { Variables: Record<string, unknown> } } }[];
    templateEnv = exporter?.Properties.Environment.Variables ?? {};
    const bundles = [];
    for (const entry of await readdir(outdir)) {
      if (!entry.startsWith('asset.')) continue;
      const file = join(outdir, entry, 'index.mjs');
      if (await stat(file).catch(() => undefined)) bundles.push(file);
    }
    expect(bundles).toHaveLength(1);
    bundle = bundles[0] as string;
    standIns = await startStandIns({ simulator: { fleet: 3000 } });
    // lambda-local's own START/END lines are not the function's: kept off the test output.
    // lambda-local types its winston logger as any.
    (lambdaLocal.getLogger() as { silent: boolean }).silent = true;
  }, 180_000);

  afterAll(async () => {
    await standIns?.stop();
    if (outdir) await rm(outdir, { recursive: true, force: true });
  });

  /** The template's own settings, except what must point at the stand-ins instead of AWS. */
  const environment = (overrides: Record<string, string> = {}): Record<string, string> => ({
    ...(Object.fromEntries(Object.entries(templateEnv).filter(([, value]) => typeof value === 'string')) as Record<string, string>),
    ...standIns.env,
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'WARN',
    ...overrides,
  });

  /**
   * The bundle's bytes under a name of their own. lambda-local keeps a loaded module (and so
   * its configuration and its cached token) as a warm context does: a test that needs a
   * cold start, or settings of its own, runs its own copy, whatever ran before it.
   */
  const coldBundle = async (name: string): Promise<string> => {
    const copy = join(dirname(bundle), `${name}.mjs`);
    await copyFile(bundle, copy);
    return copy;
  };

  // verboseLevel 3 leaves stdout unmuted, so that captureOutput sees the function's log lines.
  const execute = (event: unknown, env: Record<string, string>, lambdaPath = bundle, verboseLevel = 0, timeoutMs = 120_000) =>
    lambdaLocal.execute({ event, lambdaPath, esm: true, environment: env, timeoutMs, verboseLevel });

  /**
   * A failing invocation of the bundle: the error record the runtime makes of what it threw
   * (as Lambda writes it to the dead-letter queue: errorType, errorMessage, stackTrace) and
   * the "Run failed" line it logged.
   */
  const failure = async (event: unknown, env: Record<string, string>, lambdaPath = bundle) => {
    const { error, output } = await captureOutput(() => execute(event, env, lambdaPath, 3));
    const logged = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.message === 'Run failed');
    return { error: error as { errorType?: string; errorMessage?: string }, logged };
  };

  it('completes a real export from the synthesized bundle', async () => {
    const env = environment();
    expect(env.SNAPSHOT_PREFIX ?? 'thingpark/').toBe('thingpark/');

    const summary = (await execute({ scheduledTime: '2026-11-28T06:00:00Z' }, env, await coldBundle('exported'))) as {
      bucket: string;
      status: string;
      devices: number;
      manifestKey: string;
      dataKeys: string[];
      tokenRequests: number;
    };

    expect(summary).toMatchObject({ status: 'committed', devices: 3000, tokenRequests: 1, paging: 'cursor' });
    const s3 = testS3(standIns.s3Url);
    const rows = await runRows(s3, summary);
    expect(new Set(rows.map((row) => row.EUI)).size).toBe(3000);
    expect(await getJson(s3, DEMO.bucket, 'thingpark/latest.json')).toMatchObject({ manifestKey: summary.manifestKey });
  });

  it('curates a committed run from the synthesized bundle: Parquet that DuckDB reads, and the current table', async () => {
    // A prefix of its own: the export test's pointer and runs are not this test's business.
    const env = environment({ SNAPSHOT_PREFIX: 'curating/' });
    const curating = await coldBundle('curating');
    const exported = (await execute({ scheduledTime: '2026-11-28T07:00:00Z' }, env, curating)) as {
      runId: string;
      devices: number;
      curation: { status: string };
    };
    // lambda-local gives the invocation 120 s, under the 300 s kept for curating inline.
    expect(exported.curation).toMatchObject({ status: 'skipped' });

    const curated = (await execute({ curate: exported.runId }, env, curating)) as {
      status: string;
      devices: number;
      current: string;
      snapshotFiles: { key: string }[];
    };
    expect(curated).toMatchObject({ status: 'curated', devices: 3000, current: 'switched' });
    const s3 = testS3(standIns.s3Url);
    expect(await currentKeys(s3, DEMO.bucket, 'curating/')).toEqual(curated.snapshotFiles.map(({ key }) => key));
    const [counts] = await queryObjects(
      s3,
      DEMO.bucket,
      curated.snapshotFiles.map(({ key }) => key),
      'SELECT count(*)::INTEGER AS devices, count(DISTINCT eui)::INTEGER AS euis, any_value(run_id) AS run FROM read_parquet({files})',
    );
    expect(counts).toEqual({ devices: 3000, euis: 3000, run: exported.runId });
  });

  it('continues a run that does not fit one invocation: invoked again with each answer, the bundle commits it', async () => {
    standIns.platform.reset({ fleet: 3000, latencyMs: 80 });
    // A cold start of its own, with the settings below.
    const continued = await coldBundle('continued');
    try {
      // Invocations of 4 s (the first one's module load included) less the two margins of 1 s: 30
      // pages of 100, one at a time at 80 ms each, take several.
      const env = environment({
        SNAPSHOT_PREFIX: 'continued/',
        THINGPARK_PAGE_SIZE: '100',
        THINGPARK_CONCURRENCY: '1',
        THINGPARK_MAX_CONCURRENCY: '1',
        RUN_DEADLINE_MARGIN_SECONDS: '1',
        RUN_CHECKPOINT_MARGIN_SECONDS: '1',
      });
      const answers: { status: string; runId?: string; checkpoint?: string }[] = [];
      let event: unknown = { scheduledTime: '2026-11-28T08:00:00Z' };
      for (let i = 0; i < 20; i += 1) {
        const answer = (await execute(event, env, continued, 0, 4000)) as (typeof answers)[number];
        answers.push(answer);
        if (answer.status !== 'continue') break;
        event = answer;
      }
      expect(answers.length).toBeGreaterThanOrEqual(2);
      for (const answer of answers.slice(0, -1)) {
        expect(answer).toMatchObject({ status: 'continue', runId: '20261128T080000Z' });
        expect(answer.checkpoint).toMatch(/^continued\/checkpoints\/20261128T080000Z\/[a-z0-9]+\.json$/);
      }
      const summary = answers.at(-1) as unknown as { status: string; bucket: string; devices: number; dataKeys: string[] };
      expect(summary).toMatchObject({ status: 'committed', devices: 3000 });
      const rows = await runRows(testS3(standIns.s3Url), summary);
      expect(rows).toHaveLength(3000);
      expect(repeated(rows.map((row) => row.EUI))).toEqual([]);
    } finally {
      standIns.platform.reset({ fleet: 3000 });
    }
  });

  it('curates a run over several invocations: invoked again with the same event, the bundle goes on until the run is curated', async () => {
    // Briefs with a history of 1,500 numbers each (some 9 KB), as large briefs have: reading the run's
    // devices takes longer than an invocation's time to work.
    const LARGE_FLEET = 10_000;
    const fleet = Array.from({ length: LARGE_FLEET }, (_, i) => ({
      ...simulatedBrief(i),
      history: Array.from({ length: 1500 }, (__, k) => (i * 7919 + k * 104_729) % 100_000),
    }));
    standIns.platform.reset({ fleet });
    const sliced = await coldBundle('sliced');
    try {
      const env = environment({ SNAPSHOT_PREFIX: 'sliced/', RUN_DEADLINE_MARGIN_SECONDS: '1', RUN_CHECKPOINT_MARGIN_SECONDS: '3' });
      const { runId } = (await execute({ scheduledTime: '2026-11-28T09:00:00Z' }, env, sliced)) as { runId: string };
      // Invocations of 6 s less the margins (1 s, and 3 s to complete the files): 2 s each to load and read devices.
      const answers: { status: string; read?: number; event?: unknown }[] = [];
      for (let i = 0; i < 48; i += 1) {
        const answer = (await execute({ curate: runId }, env, sliced, 0, 6000)) as (typeof answers)[number];
        answers.push(answer);
        if (answer.status !== 'curating') break;
      }
      expect(answers.length).toBeGreaterThanOrEqual(2);
      for (const answer of answers.slice(0, -1)) expect(answer).toMatchObject({ status: 'curating', total: LARGE_FLEET, event: { curate: runId } });
      const curated = answers.at(-1) as unknown as { status: string; devices: number; snapshotFiles: { key: string }[] };
      expect(curated).toMatchObject({ status: 'curated', devices: LARGE_FLEET });
      expect(curated.snapshotFiles.length).toBeGreaterThanOrEqual(answers.length - 1);
      const [counts] = await queryObjects(
        testS3(standIns.s3Url),
        DEMO.bucket,
        curated.snapshotFiles.map(({ key }) => key),
        'SELECT count(*)::INTEGER AS devices, count(DISTINCT eui)::INTEGER AS euis FROM read_parquet({files})',
      );
      expect(counts).toEqual({ devices: LARGE_FLEET, euis: LARGE_FLEET });
    } finally {
      standIns.platform.reset({ fleet: 3000 });
    }
  }, 180_000);

  // Minification renames classes unless told not to: the error's name is what operators
  // read as errorType in the logs and in the dead-letter queue's records.
  it("names a bad event's error and code in what it throws and logs", async () => {
    const { error, logged } = await failure({ nope: true }, environment());
    expect(error.errorType).toBe('EventError');
    expect(error.errorMessage).toContain('Unknown field "nope"');
    expect(logged).toMatchObject({ level: 'ERROR', errorType: 'EventError', code: 'EVENT_INVALID' });
  });

  it("names a failing platform's error and code in what it throws and logs", async () => {
    standIns.platform.reset({ fleet: 300, fault: () => ({ status: 500, body: '{"code":500,"message":"down"}' }) });
    try {
      const { error, logged } = await failure({}, environment({ THINGPARK_MAX_RETRIES: '0', SNAPSHOT_PREFIX: 'failing/' }), await coldBundle('failing'));
      expect(error.errorType).toBe('PlatformError');
      expect(error.errorMessage).toContain('HTTP 500');
      expect(logged).toMatchObject({ level: 'ERROR', errorType: 'PlatformError', code: 'PLATFORM_ERROR' });
    } finally {
      standIns.platform.reset({ fleet: 3000 });
    }
  });
});
