import { randomBytes } from 'node:crypto';
import { parseRunId } from '../common/run-id.ts';

/**
 * The bucket's layout: every folder and key the function writes or reads, under the
 * configured prefix P. infra/ grants, expires and guards the same folders (FOLDERS,
 * CURATED_FOLDERS), so that the two cannot drift apart.
 *
 *   P devices/dt=YYYY-MM-DD/run=<runId>/part-00000-<attempt>.ndjson.gz   the table location: a run's data files
 *   P manifests/<runId>.json                        one manifest per committed run
 *   P latest.json                                   the pointer to the newest manifest
 *   P indexes/<runId>/<attempt>.keys.gz             the device keys a run exported (its key index)
 *   P attempts/<attempt>.json                       the marker of an attempt not yet known to be over
 *   P checkpoints/<runId>/<attempt>.json            where an invocation of a continued run stopped
 *   P checkpoints/<runId>/<attempt>.seen.gz         the keys of every device written so far
 *   P checkpoints/<runId>/<attempt>.lookups.gz      the verification's lookups not yet made, if any
 *   P curated/device_snapshots/dt=YYYY-MM-DD/run=<runId>/part-00000.parquet   table device_snapshots
 *   P curated/device_changes/dt=YYYY-MM-DD/run=<runId>/part-00000.parquet     table device_changes
 *   P curated/devices_current/symlink.txt           table devices_current: the newest curated run's files
 *   P curated/runs/<runId>.json                     table curated_runs: one record per curated run
 *   P curated/runs/<runId>.<sha256:16>.json         the record of a later commit of the same run id
 *   P curated/state/<runId>.state.gz                what the next run's curation compares itself with
 *   P curated/state/<runId>.progress.json           where a curation that goes on in another invocation stopped
 *
 * Manifests, the pointer, markers, key indexes and checkpoints sit outside the table
 * location, so engines that read the table never mistake them for data; each curated table
 * location holds its table's files and nothing else. A run's date partition is its run id's
 * date (common/run-id.ts).
 *
 * Data file names carry the attempt, which is unique to one invocation: two deliveries of a
 * schedule, or Lambda's retry of an invocation (which reuses its request id), never write to
 * the same key, so an upload that S3 completes after its attempt gave up can never overwrite
 * a committed file. A key index is named by its attempt for the same reason: it is written
 * before the manifest, by whichever attempts get that far, and the manifest names the one
 * that counts. Checkpoints are named by the attempt that saved them: one invocation retried
 * from the same checkpoint never overwrites what another saved. Curated file names carry no
 * attempt: a run's curated files are the same bytes however often it is curated (the raw
 * files and the code decide them), and nothing lists them until the run's record exists.
 * Only a run exported again under its id (a schedule redone after its manifest expired) is
 * curated anew over them, under a record of its own.
 */
export const FOLDERS = {
  table: 'devices/',
  manifests: 'manifests/',
  indexes: 'indexes/',
  markers: 'attempts/',
  checkpoints: 'checkpoints/',
  curated: 'curated/',
} as const;

/** The `latest` pointer's key under P. */
export const POINTER = 'latest.json';

/** The curated folders under P that infra grants and the tables point at; each is a table location but state. */
export const CURATED_FOLDERS = {
  snapshots: `${FOLDERS.curated}device_snapshots/`,
  changes: `${FOLDERS.curated}device_changes/`,
  current: `${FOLDERS.curated}devices_current/`,
  records: `${FOLDERS.curated}runs/`,
  state: `${FOLDERS.curated}state/`,
} as const;

/**
 * What a failed curation removes of its own (its Parquet files, its state), as patterns of
 * keys under P with `*` for any characters: infra grants deletes on exactly these, so never
 * on a curation record nor on the current table's symlink.
 */
export const CURATED_REMOVABLE: readonly string[] = [
  `${CURATED_FOLDERS.snapshots}dt=*/run=*/part-*.parquet`,
  `${CURATED_FOLDERS.changes}dt=*/run=*/part-*.parquet`,
  `${CURATED_FOLDERS.state}*.state.gz`,
  `${CURATED_FOLDERS.state}*.progress.json`,
];

/** The one object of devices_current's location, under P: the list of the newest curated run's files. */
export const CURRENT_SYMLINK = `${CURATED_FOLDERS.current}symlink.txt`;

export interface RunKeys {
  tableLocation: string;
  dataPrefix: string;
  dataKey: (fileIndex: number) => string;
  manifestKey: string;
  latestKey: string;
  markersPrefix: string;
  /** This attempt's marker. */
  markerKey: string;
  /** This run's key indexes, one per attempt that reached its commit. */
  indexPrefix: string;
  indexKey: string;
}

/** The keys of one attempt of a run. */
export function runKeys(prefix: string, runId: string, attempt: string): RunKeys {
  const tableLocation = `${prefix}${FOLDERS.table}`;
  const dataPrefix = `${tableLocation}${partitionOf(runId)}`;
  const indexPrefix = `${prefix}${FOLDERS.indexes}${runId}/`;
  return {
    tableLocation,
    dataPrefix,
    dataKey: (fileIndex) => `${dataPrefix}part-${fileNumber(fileIndex)}-${attempt}.ndjson.gz`,
    manifestKey: manifestKey(prefix, runId),
    latestKey: `${prefix}${POINTER}`,
    markersPrefix: `${prefix}${FOLDERS.markers}`,
    markerKey: markerKey(prefix, attempt),
    indexPrefix,
    indexKey: `${indexPrefix}${attempt}.keys.gz`,
  };
}

/** A committed run's manifest. */
export function manifestKey(prefix: string, runId: string): string {
  return `${manifestsPrefix(prefix)}${runId}.json`;
}

/** The folder of every run's manifest, listed in run id order. */
export function manifestsPrefix(prefix: string): string {
  return `${prefix}${FOLDERS.manifests}`;
}

/** An attempt's marker. */
export function markerKey(prefix: string, attempt: string): string {
  return `${prefix}${FOLDERS.markers}${attempt}.json`;
}

/**
 * A new attempt of the invocation named: its short name (the start of its request id, to
 * find its logs) and random bits, because Lambda's retry of an invocation carries the same
 * request id.
 */
export function newAttempt(invocation: string): string {
  return `${invocation}${randomBytes(4).toString('hex')}`;
}

/** A checkpoint and the key sets it names. */
export interface CheckpointKeys {
  checkpoint: string;
  seen: string;
  lookups: string;
}

/** The folder of every checkpoint of a run. */
export function checkpointsPrefix(prefix: string, runId: string): string {
  return `${prefix}${FOLDERS.checkpoints}${runId}/`;
}

/** The checkpoint the given attempt of a run saved, and its key sets. */
export function checkpointKeys(prefix: string, runId: string, attempt: string): CheckpointKeys {
  const base = `${checkpointsPrefix(prefix, runId)}${attempt}`;
  return { checkpoint: `${base}.json`, seen: `${base}.seen.gz`, lookups: `${base}.lookups.gz` };
}

export interface CuratedKeys {
  snapshotLocation: string;
  snapshotPrefix: string;
  snapshotKey: (part: number) => string;
  changesLocation: string;
  changesPrefix: string;
  changesKey: (part: number) => string;
  currentLocation: string;
  currentKey: string;
  recordsLocation: string;
  recordKey: string;
  /** The record of a later commit of the same run id (a redone schedule), named by its manifest's sha256. */
  recordKeyOfCommit: (manifestHash: string) => string;
  stateKey: string;
  /** Where a curation that goes on in another invocation saves how far it got (curate/curation-progress.ts). */
  progressKey: string;
}

/** Where curating a run writes. */
export function curatedKeys(prefix: string, runId: string): CuratedKeys {
  const partition = partitionOf(runId);
  const snapshotLocation = `${prefix}${CURATED_FOLDERS.snapshots}`;
  const changesLocation = `${prefix}${CURATED_FOLDERS.changes}`;
  const recordsLocation = `${prefix}${CURATED_FOLDERS.records}`;
  const part = (folder: string) => (index: number) => `${folder}part-${fileNumber(index)}.parquet`;
  return {
    snapshotLocation,
    snapshotPrefix: `${snapshotLocation}${partition}`,
    snapshotKey: part(`${snapshotLocation}${partition}`),
    changesLocation,
    changesPrefix: `${changesLocation}${partition}`,
    changesKey: part(`${changesLocation}${partition}`),
    currentLocation: `${prefix}${CURATED_FOLDERS.current}`,
    currentKey: `${prefix}${CURRENT_SYMLINK}`,
    recordsLocation,
    recordKey: `${recordsLocation}${runId}.json`,
    recordKeyOfCommit: (manifestHash) => `${recordsLocation}${runId}.${manifestHash.slice(0, 16)}.json`,
    stateKey: stateKeyOf(prefix, runId),
    progressKey: progressKeyOf(prefix, runId),
  };
}

/** Where a run's curation saves how far it got when it goes on in another invocation; absent once the run is curated. */
export function progressKeyOf(prefix: string, runId: string): string {
  return `${prefix}${CURATED_FOLDERS.state}${runId}.progress.json`;
}

/** A run's comparison state, which the next run's curation reads. */
export function stateKeyOf(prefix: string, runId: string): string {
  return `${prefix}${CURATED_FOLDERS.state}${runId}.state.gz`;
}

const DATA_FILE = /\/part-\d{5}-([a-z0-9]+)\.ndjson\.gz$/;
const INDEX_FILE = /\/([a-z0-9]+)\.keys\.gz$/;

/** The attempt that wrote a data file, from its key; undefined for a key not of this layout. */
export function attemptOfDataKey(key: string): string | undefined {
  return DATA_FILE.exec(key)?.[1];
}

/** The attempt that wrote a key index, from its key; undefined for a key not of this layout. */
export function attemptOfIndexKey(key: string): string | undefined {
  return INDEX_FILE.exec(key)?.[1];
}

/** An attempt's name, as newAttempt makes it: lower-case letters and digits (requests.ts takes 1 to 32). */
export const ATTEMPT = /^[a-z0-9]{1,32}$/;

/** Whether `attempt` is an attempt's name: one that can only name a key of this layout. */
export function isAttempt(attempt: unknown): attempt is string {
  return typeof attempt === 'string' && ATTEMPT.test(attempt);
}

/** The file number and attempt of a data file of the run named, under P; undefined for any other key. */
export function parseDataKey(prefix: string, runId: string, key: string): { fileIndex: number; attempt: string } | undefined {
  const { dataPrefix } = runKeys(prefix, runId, '');
  if (!key.startsWith(dataPrefix)) return undefined;
  const match = /^part-(\d{5})-([a-z0-9]{1,32})\.ndjson\.gz$/.exec(key.slice(dataPrefix.length));
  return match ? { fileIndex: Number(match[1]), attempt: match[2]! } : undefined;
}

/** The run and attempt of a key index under P; undefined for any other key. */
export function parseIndexKey(prefix: string, key: string): { runId: string; attempt: string } | undefined {
  const folder = `${prefix}${FOLDERS.indexes}`;
  if (!key.startsWith(folder)) return undefined;
  const match = /^([^/]+)\/([a-z0-9]{1,32})\.keys\.gz$/.exec(key.slice(folder.length));
  if (!match || !parseRunId(match[1]!)?.exists) return undefined;
  return { runId: match[1]!, attempt: match[2]! };
}

/** The run a manifest's key names; undefined for a key under the manifests' folder that is not a manifest. */
export function runIdOfManifestKey(prefix: string, key: string): string | undefined {
  const folder = manifestsPrefix(prefix);
  return key.startsWith(folder) && key.endsWith('.json') ? key.slice(folder.length, -'.json'.length) : undefined;
}

/** A run's Hive-style partition, shared by the raw and the curated tables: `dt=YYYY-MM-DD/run=<runId>/`. */
function partitionOf(runId: string): string {
  const parsed = parseRunId(runId);
  if (!parsed?.exists) throw new Error(`Not a run id: ${JSON.stringify(runId)}`);
  return `dt=${parsed.date}/run=${runId}/`;
}

function fileNumber(index: number): string {
  return String(index).padStart(5, '0');
}
