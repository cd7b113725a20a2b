import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { duckdbQuery } from '../../tools/inspect/duckdb.ts';
import { simulatedBrief, type Brief } from '../../tools/stand-ins/fleet.ts';
import { repeated } from '../support/collections.ts';
import { OFFSET_ENV, OFFSET_PLATFORM } from '../support/paging.ts';
import { captureOutput, coldStart, lambdaContext } from '../support/lambda.ts';
import { downloadFiles, getJson, listKeys, runRows, testS3, type RunFiles } from '../../tools/inspect/snapshot.ts';
import { DEMO, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';
import type { SimulatorOptions } from '../../tools/stand-ins/simulator.ts';

let standIns: StandIns;

beforeAll(async () => {
  standIns = await startStandIns();
});
afterAll(async () => {
  await standIns.stop();
});

/** The simulator at its defaults overlaid with `options`, counters cleared. */
function platform(options: Partial<SimulatorOptions>) {
  return standIns.platform.reset({ ...OFFSET_PLATFORM, ...options });
}

let coldStarts = 0;

/**
 * A cold start with the stand-ins' environment, every tunable at its default unless given,
 * under a snapshot prefix of its own unless given: a run compares itself with the previous
 * run under its prefix, which would make one test's requests depend on the test before.
 */
async function exporter(env: Record<string, string> = {}) {
  coldStarts += 1;
  return coldStart({
    ...standIns.env,
    ...OFFSET_ENV,
    POWERTOOLS_LOG_LEVEL: 'WARN',
    THINGPARK_PAGE_SIZE: '100',
    SNAPSHOT_PREFIX: `export-${coldStarts}/`,
    ...env,
  });
}

/** Every row of a run, read back from the stand-in S3. */
const rowsOf = (run: RunFiles) => runRows(testS3(standIns.s3Url), run);

function withoutRun({ exportRunId: _run, ...brief }: Record<string, unknown>): Brief {
  return brief;
}

describe('warm token reuse', () => {
  it('makes one grant for two invocations of a warm context', async () => {
    const sim = platform({ fleet: 1200 });
    const handler = await exporter();
    const first = await handler({}, lambdaContext());
    const second = await handler({}, lambdaContext());
    expect(first.tokenRequests).toBe(1);
    expect(second.tokenRequests).toBe(0);
    expect(sim.tokens.grants).toBe(1);
    expect(sim.stats.unauthorized).toBe(0);
  });

  it('shares one grant in flight between concurrent first requests', async () => {
    const sim = platform({ fleet: 3000, latencyMs: 20 });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '8' });
    const summary = await handler({}, lambdaContext());
    expect(sim.stats.maxInFlight).toBeGreaterThan(1);
    expect(summary.tokenRequests).toBe(1);
    expect(sim.tokens.grants).toBe(1);
  });

  it('renews a token near expiry, and never presents an expired one', async () => {
    const sim = platform({ fleet: 300 });
    sim.tokens.lifetimeSeconds = 2;
    const handler = await exporter();
    await handler({}, lambdaContext());
    // The margin (60 s) is longer than the lifetime: renewal comes at half-life, 1 s.
    await sleep(1200);
    const second = await handler({}, lambdaContext());
    expect(second.tokenRequests).toBe(1);
    expect(sim.tokens.grants).toBe(2);
    expect(sim.stats.unauthorized).toBe(0);
  });

  it('does not grant per request when a token lives shorter than the margin', async () => {
    const sim = platform({ fleet: 8000, latencyMs: 40 });
    sim.tokens.lifetimeSeconds = 3;
    const handler = await exporter({ THINGPARK_CONCURRENCY: '1', THINGPARK_MAX_CONCURRENCY: '1' });
    const started = Date.now();
    const summary = await handler({}, lambdaContext());
    const seconds = (Date.now() - started) / 1000;
    // 3 s stated, 2 s sure (whole-second expiry), renewed at half of that: one grant a second.
    expect(seconds).toBeGreaterThan(3);
    expect(summary.tokenRequests).toBeGreaterThan(1);
    expect(summary.tokenRequests).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(summary.tokenRequests).toBeLessThan(summary.pageRequests / 10);
    expect(sim.stats.unauthorized).toBe(0);
  });

  it('drops a token the platform refuses and retries the request once with a new one', async () => {
    const sim = platform({ fleet: 800 });
    const handler = await exporter();
    await handler({}, lambdaContext());
    sim.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
    const summary = await handler({}, lambdaContext());
    expect(sim.stats.unauthorized).toBeGreaterThan(0);
    expect(summary.tokenRequests).toBe(1);
    expect(summary.devices).toBe(800);
  });
});

describe('paging variants', () => {
  const cases: [string, Partial<SimulatorOptions>, Record<string, string>, number][] = [
    ['base 0, default first index 0', { fleet: 1050, pageIndexBase: 0 }, {}, 0],
    // Asking a 1-based server for page 0 returns page 1 twice: harmless once de-duplicated.
    ['base 1, first index 0', { fleet: 1050, pageIndexBase: 1 }, {}, 100],
    ['base 1, first index 1', { fleet: 1050, pageIndexBase: 1 }, { THINGPARK_FIRST_PAGE_INDEX: '1' }, 0],
    ['fleet an exact multiple of the page size', { fleet: 1000 }, {}, 0],
    ['count present', { fleet: 777, includeCount: true }, {}, 0],
    ['server caps the page size below what we ask', { fleet: 1234, maxPageSize: 30 }, {}, 0],
  ];
  it.each(cases)('%s: every device exactly once', async (_name, options, env, duplicates) => {
    const sim = platform(options);
    const handler = await exporter(env);
    const summary = await handler({}, lambdaContext());
    const size = sim.options.fleet as number;
    expect(summary.devices).toBe(size);
    expect(summary.duplicates).toBe(duplicates);
    const refs = (await rowsOf(summary)).map((row) => row.ref);
    expect(refs).toHaveLength(size);
    expect(repeated(refs)).toEqual([]);
  });

  it('an empty fleet commits an empty snapshot', async () => {
    platform({ fleet: 0 });
    const handler = await exporter();
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 0, pages: 1 });
    expect(await rowsOf(summary)).toEqual([]);
  });

  it('keeps a device repeated across pages once, and devices known only by EUI', async () => {
    const fleet = [
      ...Array.from({ length: 150 }, (_, i) => simulatedBrief(i)),
      simulatedBrief(3), // the fleet shifted while paging: device 3 shows up again
      { EUI: '70b3d5ffff000001', name: 'no ref' },
      { EUI: '70B3D5FFFF000001', name: 'no ref, same EUI' },
      { name: 'neither ref nor EUI' },
    ];
    platform({ fleet });
    const handler = await exporter();
    const summary = await handler({}, lambdaContext());
    expect(summary.devices).toBe(152);
    expect(summary.duplicates).toBe(2);
    expect(summary.unkeyed).toBe(1);
  });

  it('tells refs apart exactly as written: a numeric ref equals its decimal string, nothing else does', async () => {
    const fleet = [
      { ref: '123', name: 'a' },
      { ref: 123, name: 'a, ref sent as a number' },
      { ref: '0123', name: 'b: leading zero, another ref' },
      { ref: '123.0', name: 'c' },
      { ref: '-123', name: 'd' },
      { ref: -123, name: 'd, as a number' },
      { ref: '123456789012345678901', name: 'e: beyond 2^53' },
      { ref: '123456789012345678902', name: 'f: differs from e in the last digit' },
      { ref: '70B3D5FFFF000009', name: 'g' },
      { EUI: '70b3d5ffff000009', name: "h: no ref, its EUI equals g's ref" },
    ];
    platform({ fleet });
    const handler = await exporter();
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ devices: 8, duplicates: 2, unkeyed: 0 });
    const names = (await rowsOf(summary)).map((row) => row.name);
    expect(names).toEqual([
      'a',
      'b: leading zero, another ref',
      'c',
      'd',
      'e: beyond 2^53',
      'f: differs from e in the last digit',
      'g',
      "h: no ref, its EUI equals g's ref",
    ]);
  });
});

describe('the snapshot', () => {
  it('holds exactly the fleet, each device once, every field intact and traceable to its run', async () => {
    platform({ fleet: 2500, pageIndexBase: 0 });
    const handler = await exporter({ SNAPSHOT_FILE_MAX_BYTES: String(256 * 1024) });
    const summary = await handler({}, lambdaContext());
    const rows = await rowsOf(summary);
    expect(summary.dataKeys.length).toBeGreaterThan(1);
    expect(rows.map(withoutRun)).toEqual(Array.from({ length: 2500 }, (_, i) => simulatedBrief(i)));
    expect(new Set(rows.map((row) => row.exportRunId))).toEqual(new Set([summary.runId]));
  });

  it('writes data, then the manifest, then the pointer, and the manifest describes the data', async () => {
    platform({ fleet: 1500 });
    // A prefix of its own: the first run there, so the pointer moves to it.
    const handler = await exporter({ SNAPSHOT_FILE_MAX_BYTES: String(200 * 1024), SNAPSHOT_PREFIX: 'ordered/' });
    const before = standIns.s3Events.length;
    const summary = await handler({ scheduledTime: '2026-11-27T06:00:00Z' }, lambdaContext());
    expect(summary.pointerMoved).toBe(true);
    const created = standIns.s3Events
      .slice(before)
      .filter(({ event }) => event.startsWith('ObjectCreated'))
      .map(({ key }) => key);
    // Curation follows the commit in the same invocation: all it writes comes after the pointer.
    const curated = created.filter((key) => key.startsWith('ordered/curated/'));
    expect(curated.length).toBeGreaterThan(0);
    expect(created.indexOf(curated[0] as string)).toBeGreaterThan(created.indexOf(summary.latestKey));
    const order = created.filter((key) => !key.startsWith('ordered/curated/'));
    // The attempt's marker comes before any data, and is gone once the run is committed.
    expect(order[0]).toMatch(/^ordered\/attempts\/[a-z0-9]+\.json$/);
    expect(order.slice(1, -3).sort()).toEqual([...summary.dataKeys].sort());
    // The key index the next run compares with: after the data, before the manifest that commits both.
    expect(order.at(-3)).toMatch(/^ordered\/indexes\/20261127T060000Z\/[a-z0-9]+\.keys\.gz$/);
    expect(order.slice(-2)).toEqual([summary.manifestKey, summary.latestKey]);
    expect(await listKeys(testS3(standIns.s3Url), DEMO.bucket, 'ordered/attempts/')).toEqual([]);
    expect(summary.dataKeys.filter((key) => !key.startsWith('ordered/devices/dt=2026-11-27/run=20261127T060000Z/'))).toEqual([]);

    const s3 = testS3(standIns.s3Url);
    const manifest = await getJson<{ runId: string; bucket: string; files: { key: string; bytes: number; devices: number }[]; counts: { devices: number } }>(
      s3,
      DEMO.bucket,
      summary.manifestKey,
    );
    expect(manifest.runId).toBe('20261127T060000Z');
    expect(await getJson(s3, DEMO.bucket, summary.latestKey)).toMatchObject({ runId: '20261127T060000Z', manifestKey: summary.manifestKey });
    expect(manifest.counts.devices).toBe(1500);
    expect(manifest.files.reduce((sum, file) => sum + file.devices, 0)).toBe(1500);
    expect(manifest.bucket).toBe(DEMO.bucket);
    for (const file of manifest.files) expect(await runRows(s3, { ...manifest, files: [file] }), file.key).toHaveLength(file.devices);
    expect(await runRows(s3, manifest)).toHaveLength(1500);
    const { ContentLength } = await s3.send(new (await import('@aws-sdk/client-s3')).HeadObjectCommand({ Bucket: DEMO.bucket, Key: manifest.files[0]?.key }));
    expect(ContentLength).toBe(manifest.files[0]?.bytes);
    const manifests = await listKeys(s3, DEMO.bucket, 'ordered/manifests/');
    expect(manifests).toContain(summary.manifestKey);
  });

  it('is read by DuckDB straight from the downloaded files', async () => {
    platform({ fleet: 1800 });
    const handler = await exporter();
    const summary = await handler({}, lambdaContext());
    const directory = await mkdtemp(join(tmpdir(), 'snapshot-'));
    try {
      await downloadFiles(testS3(standIns.s3Url), DEMO.bucket, summary.dataKeys, directory);
      const [row] = await duckdbQuery(
        `SELECT count(*)::INTEGER AS n, count(DISTINCT ref)::INTEGER AS refs, min(exportRunId) AS run,
                sum(CASE WHEN healthState = 'ACTIVE' THEN 1 ELSE 0 END)::INTEGER AS active
         FROM read_json_auto('${directory}/**/*.ndjson.gz')`,
      );
      expect(row).toEqual({ n: 1800, refs: 1800, run: summary.runId, active: 900 });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('secrets', () => {
  it('never writes the client secret or a token to the logs', async () => {
    const sim = platform({ fleet: 500 });
    sim.tokens.lifetimeSeconds = 1;
    const handler = await exporter({ POWERTOOLS_LOG_LEVEL: 'DEBUG' });
    const { output, error } = await captureOutput(async () => {
      await handler({}, lambdaContext());
      await sleep(600);
      await handler({ label: 'second' }, lambdaContext());
    });
    expect(error).toBeUndefined();
    expect(output).toContain('Run finished');
    expect(sim.stats.tokens.size).toBeGreaterThan(0);
    for (const secret of [DEMO.clientSecret, ...sim.stats.tokens]) expect(output).not.toContain(secret);
  });
});
