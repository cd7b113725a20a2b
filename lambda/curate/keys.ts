/**
 * Where curation writes, under the snapshot prefix P, beside the raw snapshot it reads:
 *   P curated/device_snapshots/dt=YYYY-MM-DD/run=<runId>/part-00000.parquet   table device_snapshots
 *   P curated/device_changes/dt=YYYY-MM-DD/run=<runId>/part-00000.parquet     table device_changes
 *   P curated/devices_current/symlink.txt       table devices_current: the newest curated run's files
 *   P curated/runs/<runId>.json                 table curated_runs: one record per curated run
 *   P curated/state/<runId>.state.gz            what the next run compares itself with
 * Each table location holds its table's files and nothing else. File names carry no
 * attempt: a run's curated files are the same bytes however often it is curated (the raw
 * files and the code decide them), and nothing lists them until the run's record exists.
 */
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
  stateKey: string;
}

/** The folders under P that infra grants and the tables point at; each is a table location but state. */
export const CURATED_FOLDERS = {
  snapshots: 'curated/device_snapshots/',
  changes: 'curated/device_changes/',
  current: 'curated/devices_current/',
  records: 'curated/runs/',
  state: 'curated/state/',
} as const;

export function curatedKeys(prefix: string, runId: string, runTime: Date): CuratedKeys {
  const partition = `dt=${runTime.toISOString().slice(0, 10)}/run=${runId}/`;
  const snapshotLocation = `${prefix}${CURATED_FOLDERS.snapshots}`;
  const changesLocation = `${prefix}${CURATED_FOLDERS.changes}`;
  const currentLocation = `${prefix}${CURATED_FOLDERS.current}`;
  const recordsLocation = `${prefix}${CURATED_FOLDERS.records}`;
  const part = (folder: string) => (index: number) => `${folder}part-${String(index).padStart(5, '0')}.parquet`;
  return {
    snapshotLocation,
    snapshotPrefix: `${snapshotLocation}${partition}`,
    snapshotKey: part(`${snapshotLocation}${partition}`),
    changesLocation,
    changesPrefix: `${changesLocation}${partition}`,
    changesKey: part(`${changesLocation}${partition}`),
    currentLocation,
    currentKey: `${currentLocation}symlink.txt`,
    recordsLocation,
    recordKey: `${recordsLocation}${runId}.json`,
    stateKey: stateKeyOf(prefix, runId),
  };
}

/** A run's comparison state, which the next run reads. */
export function stateKeyOf(prefix: string, runId: string): string {
  return `${prefix}${CURATED_FOLDERS.state}${runId}.state.gz`;
}
