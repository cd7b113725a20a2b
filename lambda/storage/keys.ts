import { randomBytes } from 'node:crypto';

/**
 * Where a run's objects live, under the configured prefix P:
 *   P devices/dt=YYYY-MM-DD/run=<runId>/part-00000-<attempt>.ndjson.gz   the table location
 *   P manifests/<runId>.json                                    one manifest per committed run
 *   P latest.json                                               pointer to the newest manifest
 *   P attempts/<attempt>.json                                   an attempt not yet known to be over
 * Manifests, the pointer and attempt markers sit outside the table location, so engines
 * that read the table never mistake them for data. Data file names carry the attempt, which
 * is unique to one invocation: two deliveries of a schedule, or Lambda's retry of an
 * invocation (which reuses its request id), never write to the same key, so an upload that
 * S3 completes after its attempt gave up can never overwrite a committed file.
 */
export interface RunKeys {
  tableLocation: string;
  dataPrefix: string;
  dataKey(fileIndex: number): string;
  manifestKey: string;
  latestKey: string;
  attemptsPrefix: string;
  markerKey: string;
}

export function runKeys(prefix: string, runId: string, runTime: Date, attempt: string): RunKeys {
  const tableLocation = `${prefix}devices/`;
  const dataPrefix = `${tableLocation}dt=${runTime.toISOString().slice(0, 10)}/run=${runId}/`;
  const attemptsPrefix = `${prefix}attempts/`;
  return {
    tableLocation,
    dataPrefix,
    dataKey: (fileIndex) => `${dataPrefix}part-${String(fileIndex).padStart(5, '0')}-${attempt}.ndjson.gz`,
    manifestKey: `${prefix}manifests/${runId}.json`,
    latestKey: `${prefix}latest.json`,
    attemptsPrefix,
    markerKey: `${attemptsPrefix}${attempt}.json`,
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

/** The attempt that wrote a data file, from its key; undefined for a key not of this layout. */
export function attemptOfDataKey(key: string): string | undefined {
  return DATA_FILE.exec(key)?.[1];
}
