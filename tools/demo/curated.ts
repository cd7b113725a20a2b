/**
 * What `npm start` shows of curation: between its two runs the simulated fleet changes as a
 * day would change it, and after them the curated tables are queried with DuckDB over the
 * copy the demo keeps in .demo/: the fleet now (devices_current) and what changed
 * (device_changes). Kept apart from main.ts, which runs the exports.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import type { Brief } from '../stand-ins/fleet.ts';
import type { Platform } from '../stand-ins/simulator.ts';

export interface FleetChanges {
  removed: number;
  added: number;
  /** Devices of both runs whose health changed. */
  changed: number;
  /** Devices whose last uplink is older than a day at the second run. */
  silent: number;
}

const MINUTE = 60_000;

/**
 * Every device heard from within the last hour, as a fleet that reports hourly is: the
 * simulator's uplink times are fixed in the past, which would make the whole fleet silent.
 */
export function hearFleet(platform: Platform, now = Date.now()): void {
  platform.options.revise = (brief: Brief) => ({ ...brief, lastUpTimestamp: now - (indexOf(brief) % 60) * MINUTE });
}

/**
 * Deletes a few devices from the middle of the list and adds as many at its end (the fleet
 * keeps its size, which the demo's own check counts on), flips the health of every
 * twentieth device, and silences every fourth for 30 hours, as a gateway outage would: the
 * changes the second run's curation is to find. No more devices are deleted than the
 * export looks up one by one (one per page of its sweep), so that it confirms each
 * removal with the platform.
 */
export function changeFleet(platform: Platform, size: number, pages: number, now = Date.now()): FleetChanges {
  const count = Math.max(1, Math.min(Math.round(size * 0.005), pages));
  const at = Math.floor(size / 3);
  const live = platform.fleet();
  live.remove(at, count);
  live.insert(live.size, count);
  const flips = (i: number) => i % 20 === 7;
  const outage = (i: number) => i < size && i % 4 === 1;
  platform.options.revise = (brief: Brief) => {
    const i = indexOf(brief);
    return {
      ...brief,
      lastUpTimestamp: now - (outage(i) ? 30 * 60 : i % 60) * MINUTE,
      ...(flips(i) ? { healthState: brief.healthState === 'ACTIVE' ? 'BATTERY_LOW' : 'ACTIVE' } : {}),
    };
  };
  const kept = (i: number) => i < at || i >= at + count;
  let changed = 0;
  let silent = 0;
  for (let i = 0; i < size; i += 1) {
    if (flips(i) && kept(i)) changed += 1;
    if (outage(i) && kept(i)) silent += 1;
  }
  return { removed: count, added: count, changed, silent };
}

/** A generated device's index, from its name (7.3 briefs have no `ref` to derive it from). */
function indexOf(brief: Brief): number {
  return Number(String(brief.name).replace(/^sensor-/, ''));
}

/**
 * Prints, and runs, the DuckDB queries an analyst runs over the curated tables, here over
 * the local copy (`s3://<bucket>/` read as `<dir>/`); returns what is not as expected.
 */
export async function showCuratedTables(options: {
  dir: string;
  prefix: string;
  bucket: string;
  runId: string;
  devices: number;
  expected: FleetChanges;
}): Promise<string[]> {
  const { dir, prefix, bucket, runId, devices, expected } = options;
  const current = [
    `SET VARIABLE current = (SELECT list_transform(string_split(trim(content, chr(10)), chr(10)), f -> replace(f, 's3://${bucket}/', '${dir}/')) FROM read_text('${dir}/${prefix}curated/devices_current/symlink.txt'))`,
    "SELECT health_state, count(*)::INTEGER AS devices, count(DISTINCT run_id)::INTEGER AS runs FROM read_parquet(getvariable('current')) GROUP BY 1 ORDER BY 1",
  ];
  const changes = `read_parquet('${dir}/${prefix}curated/device_changes/dt=*/run=${runId}/*.parquet', hive_partitioning = false)`;
  const whatChanged = [
    `SELECT change, count(*)::INTEGER AS devices FROM ${changes} GROUP BY 1 ORDER BY 1`,
    `SELECT change, ref, name, health_state_before, health_state_after, changed_fields::VARCHAR AS changed_fields FROM ${changes} QUALIFY row_number() OVER (PARTITION BY change ORDER BY ref) <= 2 ORDER BY change, ref`,
  ];
  const connection = await (await DuckDBInstance.create(':memory:')).connect();
  const run = async (statements: string[]) => {
    let rows: Record<string, unknown>[] = [];
    for (const sql of statements) {
      console.log(`DuckDB: ${sql}`);
      rows = (await connection.runAndReadAll(sql)).getRowObjectsJS();
    }
    console.table(rows);
    return rows;
  };
  console.log('\nThe fleet now, from the curated devices_current (the newest curated run, switched whole):');
  const byHealth = (await run(current)) as { devices: number; runs: number }[];
  console.log('What changed since the run before, from device_changes:');
  const counts = Object.fromEntries(((await run(whatChanged.slice(0, 1))) as { change: string; devices: number }[]).map((row) => [row.change, row.devices]));
  await run(whatChanged.slice(1));
  connection.closeSync();

  const problems: string[] = [];
  const total = byHealth.reduce((sum, row) => sum + row.devices, 0);
  if (total !== devices || byHealth.some((row) => row.runs !== 1))
    problems.push(`expected devices_current to hold the newest run's ${devices} devices, got ${total}`);
  for (const change of ['added', 'removed', 'changed'] as const) {
    if ((counts[change] ?? 0) !== expected[change]) problems.push(`expected ${expected[change]} devices ${change}, device_changes has ${counts[change] ?? 0}`);
  }
  return problems;
}
