import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import lambdaLocal from 'lambda-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';
import { getJson, readRows, testS3 } from '../support/snapshot.ts';
import { DEMO, startStandIns, type StandIns } from '../support/standins.ts';

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
  }, 180_000);

  afterAll(async () => {
    await standIns?.stop();
    if (outdir) await rm(outdir, { recursive: true, force: true });
  });

  it('completes a real export from the synthesized bundle', async () => {
    // The template's own settings, except what must point at the stand-ins instead of AWS.
    const environment = Object.fromEntries(
      Object.entries(templateEnv).filter(([, value]) => typeof value === 'string'),
    ) as Record<string, string>;
    Object.assign(environment, standIns.env, { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'WARN' });
    expect(environment.SNAPSHOT_PREFIX ?? 'thingpark/').toBe('thingpark/');

    const summary = (await lambdaLocal.execute({
      event: { scheduledTime: '2026-11-28T06:00:00Z' },
      lambdaPath: bundle,
      esm: true,
      environment,
      timeoutMs: 120_000,
      verboseLevel: 0,
    })) as { status: string; devices: number; manifestKey: string; dataKeys: string[]; tokenRequests: number };

    expect(summary).toMatchObject({ status: 'committed', devices: 3000, tokenRequests: 1 });
    const s3 = testS3(standIns.s3Url);
    const rows = [];
    for (const key of summary.dataKeys) rows.push(...(await readRows(s3, DEMO.bucket, key)));
    expect(new Set(rows.map((row) => row.ref)).size).toBe(3000);
    expect(await getJson(s3, DEMO.bucket, 'thingpark/latest.json')).toMatchObject({ manifestKey: summary.manifestKey });
  });
});
