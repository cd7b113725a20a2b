import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CURATED_RUN_TABLE, RUN_TABLE, namedQueries } from '../../infra/curation.ts';
import { ROOT, TSX, runTool } from './run-tool.ts';

/**
 * Every recipe the docs show, run as written against what `npm start` keeps in .demo/, from
 * the folder it ran in. A recipe is a fenced block whose info string names how it runs:
 * `sql duckdb` (DuckDB over the local copy: its last statement must return rows), `sql athena`
 * (Athena SQL, run in DuckDB over the same files with the Glue tables as views, as the
 * stack declares them: it must bind and run), `sh demo` (shell commands reading .demo/).
 */
const DOCS = ['README.md', ...(await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];

interface Recipe {
  where: string;
  kind: string;
  text: string;
}

async function recipes(): Promise<{ recipes: Recipe[]; untagged: string[] }> {
  const found: Recipe[] = [];
  const untagged: string[] = [];
  for (const doc of DOCS) {
    const text = await readFile(join(ROOT, doc), 'utf8');
    for (const match of text.matchAll(/^ *```(\w*)( [\w ]+)?\n([\s\S]*?)^ *```$/gm)) {
      const line = text.slice(0, match.index).split('\n').length;
      const [lang, tag] = [match[1] as string, (match[2] ?? '').trim()];
      if (tag) found.push({ where: `${doc}:${line}`, kind: `${lang} ${tag}`, text: match[3] as string });
      else if (lang === 'sql') untagged.push(`${doc}:${line}`);
    }
  }
  return { recipes: found, untagged };
}

/** A block's statements: its `--` comments dropped, split where a line ends with `;`. */
function statements(block: string): string[] {
  const code = block
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n');
  return code
    .split(/;\s*$/m)
    .map((sql) => sql.trim())
    .filter(Boolean);
}

/** Athena's functions the docs use, by their DuckDB equivalents. */
const ATHENA_FUNCTIONS = [
  'CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)',
  'CREATE MACRO date_format(d, f) AS strftime(d, f)',
  'CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)',
];

/** A table over one-line JSON objects as the stack declares it: each column read from the key its SerDe mapping names. */
async function jsonView(connection: DuckDBConnection, name: string, glob: string, table: typeof RUN_TABLE): Promise<void> {
  const source = `read_json_auto('${glob}', union_by_name = true)`;
  const present = new Set(
    (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJS().map((row) => (row.column_name as string).toLowerCase()),
  );
  const columns = table.columns.map(({ name: column }) => {
    const key = table.serdeParameters[`mapping.${column}`] ?? column;
    return present.has(key) ? `"${key}" AS ${column}` : `NULL AS ${column}`;
  });
  await connection.run(`CREATE VIEW thingpark.${name} AS SELECT ${columns.join(', ')} FROM ${source}`);
}

/** The Glue database as views over .demo/ (paths relative to the folder it is in). */
async function athenaInDuckdb(connection: DuckDBConnection, dir: string): Promise<void> {
  const root = '.demo/thingpark/';
  const daily = (folder: string, read: string) =>
    `${read}('${root}${folder}', hive_partitioning = true, hive_types = {'dt': VARCHAR}${read === 'read_json_auto' ? ', filename = true' : ''})`;
  const symlinked = (await readFile(join(dir, root, 'curated/devices_current/symlink.txt'), 'utf8'))
    .trim()
    .split('\n')
    .map((path) => `'${path.replace(/^s3:\/\/[^/]+\//, '.demo/')}'`);
  for (const sql of [
    ...ATHENA_FUNCTIONS,
    'CREATE SCHEMA thingpark',
    `CREATE VIEW thingpark.devices AS SELECT * EXCLUDE (run, filename), 's3://bucket/' || replace(filename, '.demo/', '') AS "$path" FROM ${daily('devices/*/*/*.ndjson.gz', 'read_json_auto')}`,
    `CREATE VIEW thingpark.device_snapshots AS SELECT * EXCLUDE (run) FROM ${daily('curated/device_snapshots/*/*/*.parquet', 'read_parquet')}`,
    `CREATE VIEW thingpark.device_changes AS SELECT * EXCLUDE (run) FROM ${daily('curated/device_changes/*/*/*.parquet', 'read_parquet')}`,
    `CREATE VIEW thingpark.devices_current AS SELECT * FROM read_parquet([${symlinked.join(', ')}])`,
  ])
    await connection.run(sql);
  await jsonView(connection, 'runs', `${root}manifests/*.json`, RUN_TABLE);
  await jsonView(connection, 'curated_runs', `${root}curated/runs/*.json`, CURATED_RUN_TABLE);
}

describe("the docs' recipes, against the demo's .demo/", () => {
  let dir: string;
  const cwd = process.cwd();
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'recipes-test-'));
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const demo = await runTool(TSX, [join(ROOT, 'tools/demo/main.ts')], { cwd: dir, env: { DEMO_DEVICES: '300' } });
    expect(demo.code, demo.stdout + demo.stderr).toBe(0);
    // DuckDB reads relative paths from the process's directory: the recipes' own, `.demo/...`.
    process.chdir(dir);
  }, 120_000);
  afterAll(async () => {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  });

  it('tags every SQL block with how it runs, and finds the recipes of each kind', async () => {
    const { recipes: found, untagged } = await recipes();
    expect(untagged).toEqual([]);
    const kinds = new Set(found.map((recipe) => recipe.kind));
    expect([...kinds].sort()).toEqual(['sh demo', 'sql athena', 'sql duckdb']);
  });

  it('runs every DuckDB recipe as written over .demo/, each answering with rows', async () => {
    const duckdb = (await recipes()).recipes.filter((recipe) => recipe.kind === 'sql duckdb');
    expect(duckdb.length).toBeGreaterThanOrEqual(6);
    for (const recipe of duckdb) {
      const connection = await (await DuckDBInstance.create(':memory:')).connect();
      let rows: unknown[] = [];
      for (const sql of statements(recipe.text)) {
        rows = await connection.runAndReadAll(sql).then(
          (reader) => reader.getRowObjectsJS(),
          (error: Error) => expect.fail(`${recipe.where}: ${error.message}\n${sql}`),
        );
      }
      connection.closeSync();
      expect(rows.length, recipe.where).toBeGreaterThan(0);
    }
  });

  it('runs every Athena recipe and saved query over the tables as the stack declares them', async () => {
    const athena = (await recipes()).recipes.filter((recipe) => recipe.kind === 'sql athena');
    const saved = Object.entries(namedQueries('thingpark')).map(([name, { sql }]) => ({ where: `saved query "${name}"`, kind: 'sql athena', text: sql }));
    expect(athena.length).toBeGreaterThanOrEqual(4);
    const connection = await (await DuckDBInstance.create(':memory:')).connect();
    await athenaInDuckdb(connection, dir);
    const answers: Record<string, number> = {};
    for (const recipe of [...athena, ...saved]) {
      for (const sql of statements(recipe.text)) {
        const rows = await connection.runAndReadAll(sql).then(
          (reader) => reader.getRowObjectsJS(),
          (error: Error) => expect.fail(`${recipe.where}: ${error.message}\n${sql}`),
        );
        answers[recipe.where] = rows.length;
      }
    }
    connection.closeSync();
    // The saved queries answer from the demo's two runs: its fleet, its changes, its runs.
    expect(answers).toMatchObject({
      'saved query "Fleet by health now"': 4,
      'saved query "Runs of the last day"': 2,
    });
    expect(answers['saved query "Health changes over the last 7 days"']).toBeGreaterThan(0);
  });

  it('runs every shell recipe reading .demo/ as written, each printing what it reads', async () => {
    const shell = (await recipes()).recipes.filter((recipe) => recipe.kind === 'sh demo');
    expect(shell.length).toBeGreaterThan(0);
    for (const recipe of shell) {
      for (const line of recipe.text.split('\n').filter((text) => text.trim() && !text.trim().startsWith('#'))) {
        const { stdout } = await promisify(execFile)('bash', ['-c', line], { cwd: dir });
        expect(stdout.trim(), `${recipe.where}: ${line}`).not.toBe('');
      }
    }
  });
});
