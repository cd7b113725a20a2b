/**
 * What `npm start` shows of curation: between its two runs the simulated fleet changes as a
 * day would change it, and after them the curated tables are queried with DuckDB over the
 * copy the demo keeps in .demo/: the fleet now (devices_current), what changed
 * (device_changes) and one device's history (device_snapshots). Kept apart from main.ts,
 * which runs the exports.
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
  /** The EUI of a device whose health changed, whose history the demo shows. */
  followed: string;
}

/** The device whose history the demo shows: its health flips between the runs. */
const FOLLOWED = 7;

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
  const flips = (i: number) => i % 20 === FOLLOWED % 20;
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
  return { removed: count, added: count, changed, silent, followed: String(live.brief(FOLLOWED).EUI) };
}

/** A generated device's index, from its name (7.3 briefs have no `ref` to derive it from). */
function indexOf(brief: Brief): number {
  return Number(String(brief.name).replace(/^sensor-/, ''));
}

/** An analyst's question and the DuckDB statements that answer it; the last one's rows are the answer. */
export interface Question {
  title: string;
  statements: string[];
}

/**
 * The analyst's three questions over the curated tables, as docs/analytics.md asks them
 * over a local copy of the bucket: the fleet now, what changed in the newest run, one
 * device's history. `devices_current` lists its files by their `s3://` paths, read here
 * from the copy (a `s3://<bucket>/` prefix becomes `<dir>/`). `device` is the EUI of the
 * device whose history is shown.
 */
export function curatedQuestions(dir: string, prefix: string, device: string): Question[] {
  const root = `${dir}/${prefix}`;
  const changes = `read_parquet('${root}curated/device_changes/*/*/*.parquet', hive_partitioning = false)`;
  const newestRun = `SET VARIABLE run = (SELECT runId FROM read_json_auto('${root}latest.json'))`;
  return [
    {
      title: 'The fleet now, from devices_current (the newest curated run, switched whole)',
      statements: [
        `SET VARIABLE current = (SELECT list_transform(string_split(trim(content, chr(10)), chr(10)), f -> regexp_replace(f, '^s3://[^/]+/', '${dir}/')) FROM read_text('${root}curated/devices_current/symlink.txt'))`,
        "SELECT health_state, count(*)::INTEGER AS devices, count(DISTINCT run_id)::INTEGER AS runs FROM read_parquet(getvariable('current')) GROUP BY 1 ORDER BY 1",
      ],
    },
    {
      title: 'What changed in the newest run, from device_changes',
      statements: [newestRun, `SELECT change, count(*)::INTEGER AS devices FROM ${changes} WHERE run_id = getvariable('run') GROUP BY 1 ORDER BY 1`],
    },
    {
      title: 'Examples of each change',
      statements: [
        newestRun,
        `SELECT change, eui, name, health_state_before, health_state_after, changed_fields::VARCHAR AS changed_fields FROM ${changes} WHERE run_id = getvariable('run') QUALIFY row_number() OVER (PARTITION BY change ORDER BY eui) <= 2 ORDER BY change, eui`,
      ],
    },
    {
      title: `One device's history, from device_snapshots: ${device}`,
      statements: [
        `SELECT run_id, run_time, name, health_state, last_up_timestamp FROM read_parquet('${root}curated/device_snapshots/*/*/*.parquet', hive_partitioning = false) WHERE eui = '${device}' ORDER BY run_time`,
      ],
    },
  ];
}

/** Runs each question's statements in one connection, printing them and the answer; returns the answers. */
export async function askQuestions(questions: readonly Question[]): Promise<Record<string, unknown>[][]> {
  const connection = await (await DuckDBInstance.create(':memory:')).connect();
  const answers: Record<string, unknown>[][] = [];
  try {
    for (const { title, statements } of questions) {
      console.log(`\n${title}:`);
      let rows: Record<string, unknown>[] = [];
      for (const sql of statements) {
        console.log(`DuckDB: ${sql}`);
        rows = (await connection.runAndReadAll(sql)).getRowObjectsJS();
      }
      console.table(rows);
      answers.push(rows);
    }
  } finally {
    connection.closeSync();
  }
  return answers;
}

/**
 * Asks the curated tables the analyst's questions over the local copy, and returns them
 * with what is not as expected: the newest run's devices in devices_current, the changes
 * made between the runs in device_changes, both runs in the device's history.
 */
export async function showCuratedTables(options: {
  dir: string;
  prefix: string;
  devices: number;
  expected: FleetChanges;
}): Promise<{ questions: Question[]; problems: string[] }> {
  const { dir, prefix, devices, expected } = options;
  const device = expected.followed;
  const questions = curatedQuestions(dir, prefix, device);
  const [byHealth, byChange, , history] = (await askQuestions(questions)) as [
    { devices: number; runs: number }[],
    { change: string; devices: number }[],
    unknown[],
    { health_state: string }[],
  ];
  const counts = Object.fromEntries(byChange.map((row) => [row.change, row.devices]));
  const problems: string[] = [];
  const total = byHealth.reduce((sum, row) => sum + row.devices, 0);
  if (total !== devices || byHealth.some((row) => row.runs !== 1))
    problems.push(`expected devices_current to hold the newest run's ${devices} devices, got ${total}`);
  for (const change of ['added', 'removed', 'changed'] as const) {
    if ((counts[change] ?? 0) !== expected[change]) problems.push(`expected ${expected[change]} devices ${change}, device_changes has ${counts[change] ?? 0}`);
  }
  if (history.length !== 2 || history[0]?.health_state === history[1]?.health_state)
    problems.push(`expected device ${device} in both runs with its health changed, got ${history.length} rows`);
  return { questions, problems };
}
