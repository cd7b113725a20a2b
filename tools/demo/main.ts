/**
 * `npm start`: a real export, end to end, on this machine.
 *
 * By default it starts the local stand-ins (ThingPark simulator with its Keycloak-path
 * token server, an SSM endpoint, s3rver), runs the real handler twice in one process, so
 * the second, warm invocation reuses the first one's token, downloads the newest snapshot
 * and queries it with DuckDB. With THINGPARK_BASE_URL set it starts nothing and runs the
 * same handler against the platform and the AWS account the environment points at.
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Context } from 'aws-lambda';
import { duckdbQuery } from '../../test/support/duckdb.ts';
import { downloadFiles, getJson, testS3 } from '../../test/support/snapshot.ts';
import { startStandIns, type StandIns } from '../../test/support/standins.ts';
import { S3Client } from '@aws-sdk/client-s3';

const real = Boolean(process.env.THINGPARK_BASE_URL);
const fleet = Number(process.env.DEMO_DEVICES ?? 10_000);
const outDir = resolve('.demo');

function context(requestId: string): Context {
  const deadline = Date.now() + 900_000;
  return {
    awsRequestId: requestId,
    functionName: 'thingpark-exporter-local',
    getRemainingTimeInMillis: () => deadline - Date.now(),
  } as Context;
}

function line(label: string, value: unknown): void {
  console.log(`  ${label.padEnd(16)} ${String(value)}`);
}

let standIns: StandIns | undefined;
let failed = false;
try {
  if (!real) {
    standIns = await startStandIns({ simulator: { fleet } });
    Object.assign(process.env, standIns.env, {
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    });
    console.log(`Local stand-ins on 127.0.0.1: ThingPark simulator with ${fleet} devices at ${standIns.platform.url}, SSM at ${standIns.ssm.url}, S3 at ${standIns.s3Url}`);
  } else {
    console.log(`Exporting from ${process.env.THINGPARK_BASE_URL} to s3://${process.env.SNAPSHOT_BUCKET}`);
  }
  const { handler } = await import('../../lambda/handler.ts');

  const summaries = [];
  for (const [i, label] of ['demo-cold', 'demo-warm'].entries()) {
    const summary = await handler({ label }, context(`demo${i}000-local`));
    summaries.push(summary);
    console.log(`\nRun ${i + 1} (${i === 0 ? 'cold' : 'warm'}): ${summary.status}`);
    line('run id', summary.runId);
    line('devices', summary.devices);
    line('pages', `${summary.pages} (${summary.pageRequests} requests, ${summary.wastedRequests} fetched past the end)`);
    line('duplicates', summary.duplicates);
    line('token grants', summary.tokenRequests);
    line('bytes (gzip)', summary.bytes);
    line('duration', `${summary.durationMs} ms`);
    line('manifest', `s3://${summary.bucket}/${summary.manifestKey}`);
    for (const key of summary.dataKeys) line('data', `s3://${summary.bucket}/${key}`);
  }

  const s3 = standIns ? testS3(standIns.s3Url) : new S3Client({});
  const latest = summaries[1] as (typeof summaries)[number];
  const pointer = await getJson<{ runId: string; manifestKey: string }>(s3, latest.bucket, latest.latestKey);
  const manifest = await getJson<{ files: { key: string }[] }>(s3, latest.bucket, pointer.manifestKey);
  await rm(outDir, { recursive: true, force: true });
  const paths = await downloadFiles(s3, latest.bucket, manifest.files.map(({ key }) => key), outDir);
  const glob = join(outDir, '**', '*.ndjson.gz');
  console.log(`\nThe latest pointer names run ${pointer.runId}; its files are downloaded under ${outDir}`);
  console.log(`DuckDB: SELECT healthState, count(*) FROM read_json_auto('${glob}') GROUP BY 1`);
  const byHealth = await duckdbQuery(
    `SELECT healthState, count(*)::INTEGER AS devices FROM read_json_auto('${glob}') GROUP BY 1 ORDER BY 2 DESC, 1`,
  );
  console.table(byHealth);
  const [totals] = await duckdbQuery(
    `SELECT count(*)::INTEGER AS "rows", count(DISTINCT coalesce(ref, EUI))::INTEGER AS "distinct" FROM read_json_auto('${glob}')`,
  );
  console.log(`Snapshot rows: ${totals?.rows} in ${paths.length} file(s), distinct devices: ${totals?.distinct}`);

  const grants = summaries.reduce((sum, summary) => sum + summary.tokenRequests, 0);
  console.log(`Token grants over both invocations: ${grants}${standIns ? ` (the token server counted ${standIns.platform.tokens.grants})` : ''}`);
  if (standIns) {
    // The demo is also a check: it fails loudly if the export is not what it must be.
    const problems = [];
    if (grants !== 1 || standIns.platform.tokens.grants !== 1) problems.push(`expected exactly 1 token grant, got ${grants}`);
    if (totals?.rows !== fleet || totals?.distinct !== fleet) problems.push(`expected ${fleet} devices once each, got ${totals?.rows} rows, ${totals?.distinct} distinct`);
    if (problems.length > 0) {
      failed = true;
      console.error(`\nDemo check failed: ${problems.join('; ')}`);
    } else {
      console.log(`\nOK: ${fleet} simulated devices exported, each exactly once; one token grant served both invocations.`);
    }
  }
} catch (error) {
  failed = true;
  console.error(`\nExport failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
} finally {
  await standIns?.stop();
}
process.exit(failed ? 1 : 0);
