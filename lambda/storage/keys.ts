import { randomBytes } from 'node:crypto';

/**
 * Where a run's objects live, under the configured prefix P:
 *   P devices/dt=YYYY-MM-DD/run=<runId>/part-00000-<attempt>.ndjson.gz   the table location
 *   P manifests/<runId>.json                                    one manifest per committed run
 *   P latest.json                                               pointer to the newest manifest
 *   P attempts/<attempt>.json                                   an attempt not yet known to be over
 *   P indexes/<runId>/<attempt>.keys.gz                         the device keys a run exported
 * Manifests, the pointer, attempt markers and key indexes sit outside the table location, so
 * engines that read the table never mistake them for data. Data file names carry the
 * attempt, which is unique to one invocation: two deliveries of a schedule, or Lambda's
 * retry of an invocation (which reuses its request id), never write to the same key, so an
 * upload that S3 completes after its attempt gave up can never overwrite a committed file.
 * A key index is named by its attempt for the same reason: it is written before the
 * manifest, by whichever attempts get that far, and the manifest names the one that counts.
 */
export interface RunKeys {
  tableLocation: string;
  dataPrefix: string;
  dataKey: (fileIndex: number) => string;
  manifestKey: string;
  latestKey: string;
  attemptsPrefix: string;
  markerKey: string;
  /** This run's key indexes, one per attempt that reached its commit. */
  indexPrefix: string;
  indexKey: string;
}

export function runKeys(prefix: string, runId: string, runTime: Date, attempt: string): RunKeys {
  const tableLocation = `${prefix}devices/`;
  const dataPrefix = `${tableLocation}dt=${runTime.toISOString().slice(0, 10)}/run=${runId}/`;
  const attemptsPrefix = `${prefix}attempts/`;
  const indexPrefix = `${prefix}indexes/${runId}/`;
  return {
    tableLocation,
    dataPrefix,
    dataKey: (fileIndex) => `${dataPrefix}part-${String(fileIndex).padStart(5, '0')}-${attempt}.ndjson.gz`,
    manifestKey: `${prefix}manifests/${runId}.json`,
    latestKey: `${prefix}latest.json`,
    attemptsPrefix,
    markerKey: `${attemptsPrefix}${attempt}.json`,
    indexPrefix,
    indexKey: `${indexPrefix}${attempt}.keys.gz`,
  };
}

/**
 * One invocation's name in keys: its short name (the start of its request id, to find its
 * logs) and random bits, because Lambda's retry of an invocation carries the same request id.
 */
export function attemptId(invocation: string): string {
  return `${invocation}${randomBytes(4).toString('hex')}`;
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
