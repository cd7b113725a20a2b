/**
 * `npm start`: the local demo, a real export end to end with the function's own handler,
 * against stand-ins on 127.0.0.1: a ThingPark simulator with its Keycloak-path token
 * server, an SSM endpoint and s3rver. Nothing leaves this machine and nothing of the shell's
 * AWS setup is used; `npm run export` is the real export, and never starts a stand-in.
 *
 * It runs the handler twice in one process, so the second, warm invocation reuses the first
 * one's token, keeps everything the local S3 held under .demo/ in the bucket's own key
 * layout (both runs' data, their manifests, the latest pointer, the curated tables), queries
 * it with DuckDB, writes those queries to .demo/query.mjs (the raw snapshots, then the fleet
 * now, what changed and one device's history from the curated tables), and checks that
 * every device is there once.
 */
import { rm, writeFile } from 'node:fs/promises';
import { devNull } from 'node:os';
import { relative, resolve } from 'node:path';
import { loadConfig } from '../../lambda/common/config.ts';
import type { VariableName } from '../../lambda/common/env.ts';
import { ConfigError } from '../../lambda/common/errors.ts';
import { duckdbQuery } from '../inspect/duckdb.ts';
import { downloadFiles, getJson, listKeys, testS3 } from '../inspect/snapshot.ts';
import { startStandIns, type StandIns } from '../stand-ins/standins.ts';
import { handlerFailed, localContext, printSummary, quietAwsSdk, reportUnknownVariables } from '../cli.ts';
import type { CuratedRunSummary } from '../../lambda/handler.ts';
import { changeFleet, hearFleet, showCuratedTables, type FleetChanges, type Question } from './curated.ts';
import { printSignals } from './signals.ts';

const fleet = Number(process.env.DEMO_DEVICES ?? 10_000);
const outDir = resolve('.demo');
// As the printed SQL and .demo/query.mjs name the files: from where the demo was started.
const shownDir = relative(process.cwd(), outDir);

/**
 * The variables that point the exporter at a platform and an account. The stand-ins set all
 * but the token URL, auth method and prefix; a shell's value of those would send the demo's
 * credentials to a real token endpoint, or file its output elsewhere.
 */
const TARGET_VARIABLES: readonly VariableName[] = [
  'THINGPARK_BASE_URL',
  'THINGPARK_TOKEN_URL',
  'THINGPARK_TOKEN_AUTH',
  'THINGPARK_CLIENT_ID_PARAM',
  'THINGPARK_CLIENT_SECRET_PARAM',
  'SNAPSHOT_BUCKET',
  'SNAPSHOT_PREFIX',
];

/**
 * Nothing of the shell's AWS setup: with AWS_PROFILE set the SDK prefers the profile to the
 * stand-ins' static keys (an unknown profile fails the run, a real one sends real keys to
 * the local S3), and a config file's default profile can still set a region or an endpoint.
 * So every AWS_ variable goes and the SDK reads no file; the stand-ins' own are set after.
 */
function withoutShellAws(): void {
  for (const name of Object.keys(process.env)) {
    if (name.toUpperCase().startsWith('AWS_')) delete process.env[name];
  }
  Object.assign(process.env, { AWS_CONFIG_FILE: devNull, AWS_SHARED_CREDENTIALS_FILE: devNull, AWS_EC2_METADATA_DISABLED: 'true' });
}

withoutShellAws();
quietAwsSdk();
reportUnknownVariables();
const ignored = TARGET_VARIABLES.filter((name) => process.env[name] !== undefined);
for (const name of ignored) delete process.env[name];

let standIns: StandIns | undefined;
let failed = false;
// Where a failure came from: the handler has logged its own ("Run failed"), the rest has not.
let inHandler = false;
// The s3:// paths printed name the local S3, which is gone once the demo ends: said at the end.
let printedPaths = false;
try {
  standIns = await startStandIns({ simulator: { fleet } });
  Object.assign(process.env, standIns.env, {
    POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
  });
  // The shell's tuning variables still apply: checked before anything is printed.
  const config = loadConfig();
  console.log(
    'Local demo, nothing leaves this machine: stand-ins on 127.0.0.1 with stand-in credentials; ' +
      "this shell's AWS profile, credentials files and region are not used (npm run export is the real export).",
  );
  if (ignored.length > 0) console.log(`Ignored here, as they name a real platform or bucket: ${ignored.join(', ')}.`);
  console.log(`  ThingPark simulator with ${fleet} devices at ${standIns.platform.url}, SSM at ${standIns.ssm.url}, S3 at ${standIns.s3Url}`);
  const { handler } = await import('../../lambda/handler.ts');

  const summaries = [];
  let changes: FleetChanges = { removed: 0, added: 0, changed: 0, silent: 0, followed: '' };
  let verdicts: ReturnType<typeof printSignals> = [];
  hearFleet(standIns.platform);
  for (const [i, label] of ['demo-cold', 'demo-warm'].entries()) {
    // Between the runs the fleet changes, for the second run's curation to find.
    if (i === 1) changes = changeFleet(standIns.platform, fleet, Math.ceil(fleet / config.pageSize));
    inHandler = true;
    const summary = await handler({ label }, localContext(`demo${i}000-local`, 'thingpark-exporter-local'));
    inHandler = false;
    summaries.push(summary);
    console.log(`\nRun ${i + 1} (${i === 0 ? 'cold' : 'warm'}): ${summary.status}`);
    printSummary(summary);
    printedPaths = true;
    verdicts = printSignals(summary.curation);
  }

  // Everything the local S3 holds, under the same keys: the stand-in goes when the demo
  // ends, and two runs with their manifests and pointer are what one can compare.
  const s3 = testS3(standIns.s3Url);
  const latest = summaries[1] as (typeof summaries)[number];
  const pointer = await getJson<{ runId: string; manifestKey: string }>(s3, latest.bucket, latest.latestKey);
  const keys = await listKeys(s3, latest.bucket);
  await rm(outDir, { recursive: true, force: true });
  await downloadFiles(s3, latest.bucket, keys, outDir);
  const count = (part: string) => keys.filter((key) => key.startsWith(`${config.prefix}${part}`)).length;
  console.log(`\nEverything the local S3 held is under ${shownDir}/, in the bucket's own key layout:`);
  console.log(`  ${shownDir}/${latest.latestKey}`.padEnd(48) + ` the pointer: run ${pointer.runId}`);
  console.log(`  ${shownDir}/${config.prefix}manifests/`.padEnd(48) + ` ${count('manifests/')} manifests`);
  console.log(`  ${shownDir}/${config.prefix}devices/`.padEnd(48) + ` ${count('devices/')} data files`);

  // The SQL shown is the SQL run, and .demo/query.mjs runs it again.
  const data = `${shownDir}/${config.prefix}devices/dt=*/run=*/*.ndjson.gz`;
  const byRun = `SELECT exportRunId, healthState, count(*)::INTEGER AS devices FROM read_json_auto('${data}') GROUP BY ALL ORDER BY ALL`;
  const newest =
    `SELECT count(*)::INTEGER AS "rows", count(DISTINCT EUI)::INTEGER AS "distinct" FROM read_json_auto('${data}') ` +
    `WHERE exportRunId = (SELECT runId FROM read_json_auto('${shownDir}/${latest.latestKey}'))`;
  console.log(`\nDuckDB: ${byRun}`);
  const rows = await duckdbQuery(byRun);
  console.table(rows);
  console.log(`DuckDB: ${newest}`);
  // Both columns are cast to INTEGER, which DuckDB hands back as JS numbers.
  const [totals] = (await duckdbQuery(newest)) as { rows: number; distinct: number }[];
  console.table([totals]);
  const runs = new Set(rows.map((row) => row.exportRunId)).size;
  const curated = await showCuratedTables({ dir: shownDir, prefix: config.prefix, devices: fleet, expected: changes });

  // The raw snapshot's queries, then the curated tables': the fleet now, what changed, one device's history.
  const questions: Question[] = [
    { title: 'Devices per run and health, from the raw snapshots', statements: [byRun] },
    { title: "The newest run's rows and distinct devices, from the raw snapshot", statements: [newest] },
    ...curated.questions,
  ];
  const script = [
    "// Written by npm start: the demo's queries over what it kept. From where it ran: node .demo/query.mjs",
    "import { DuckDBInstance } from '@duckdb/node-api';",
    '',
    "const connection = await (await DuckDBInstance.create(':memory:')).connect();",
    `const questions = ${JSON.stringify(questions, null, 2)};`,
    'for (const { title, statements } of questions) {',
    '  console.log(`\n${title}:`);',
    '  let rows = [];',
    '  for (const sql of statements) {',
    '    console.log(sql);',
    '    rows = (await connection.runAndReadAll(sql)).getRowObjectsJS();',
    '  }',
    '  console.table(rows);',
    '}',
    '',
  ].join('\n');
  await writeFile(resolve(outDir, 'query.mjs'), script);
  console.log(`\nTo query it yourself with DuckDB from Node (@duckdb/node-api), from this directory: node ${shownDir}/query.mjs, which is`);
  console.log(script.trimEnd().replace(/^/gm, '  | '));

  // The demo is also a check: it fails loudly if the export is not what it must be.
  const grants = summaries.reduce((sum, summary) => sum + summary.tokenRequests, 0);
  const problems = [];
  if (grants !== 1 || standIns.platform.tokens.grants !== 1) problems.push(`expected exactly 1 token grant, got ${grants}`);
  if (totals?.rows !== fleet || totals?.distinct !== fleet)
    problems.push(`expected ${fleet} devices once each in the newest run, got ${totals?.rows} rows, ${totals?.distinct} distinct`);
  if (runs !== 2 || count('manifests/') !== 2) problems.push(`expected 2 runs and 2 manifests under ${shownDir}/, got ${runs} and ${count('manifests/')}`);
  problems.push(...curated.problems);
  // The outage silences a quarter of the fleet: past the silent-share alarm's 20 %, and nothing else.
  const fired = verdicts.filter((verdict) => verdict.fired).map((verdict) => verdict.alarm);
  const silent = (summaries[1] as CuratedRunSummary).curation;
  if (!('signals' in silent) || silent.signals?.silent_devices !== changes.silent) problems.push(`expected ${changes.silent} silent devices in the second run`);
  if (fired.join() !== 'silent share') problems.push(`expected only the silent-share alarm to fire on the second run, got ${fired.join(', ') || 'none'}`);
  if (problems.length > 0) {
    failed = true;
    console.error(`\nDemo check failed: ${problems.join('; ')}`);
  } else {
    console.log(`\nOK: ${fleet} simulated devices exported, each exactly once; one token grant served both invocations.`);
  }
} catch (error) {
  failed = true;
  if (inHandler) {
    handlerFailed('The demo');
  } else if (error instanceof ConfigError) {
    console.error('The demo cannot start:');
    for (const problem of error.problems) console.error(`  - ${problem}`);
  } else {
    console.error(`\nThe demo failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
} finally {
  await standIns?.stop();
}
if (printedPaths && standIns) {
  console.log(
    `The s3://${standIns.env.SNAPSHOT_BUCKET}/ paths above were in the local S3 stand-in, gone now that the demo has stopped; ${shownDir}/ keeps what it held.`,
  );
}
process.exit(failed ? 1 : 0);
