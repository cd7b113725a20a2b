/**
 * Where a run's objects live, under the configured prefix P:
 *   P devices/dt=YYYY-MM-DD/run=<runId>/part-00000-<attempt>.ndjson.gz   the table location
 *   P manifests/<runId>.json                                    one manifest per committed run
 *   P latest.json                                               pointer to the newest manifest
 * Manifests and the pointer sit outside the table location, so engines that read the
 * table never mistake them for data. File names carry the attempt (the invocation's request
 * id): two deliveries of one schedule never write to the same key, so the attempt that
 * loses the race to commit can remove its own files without touching the winner's.
 */
export interface RunKeys {
  tableLocation: string;
  dataPrefix: string;
  dataKey(fileIndex: number): string;
  manifestKey: string;
  latestKey: string;
}

export function runKeys(prefix: string, runId: string, runTime: Date, attempt: string): RunKeys {
  const tableLocation = `${prefix}devices/`;
  const dataPrefix = `${tableLocation}dt=${runTime.toISOString().slice(0, 10)}/run=${runId}/`;
  return {
    tableLocation,
    dataPrefix,
    dataKey: (fileIndex) => `${dataPrefix}part-${String(fileIndex).padStart(5, '0')}-${attempt}.ndjson.gz`,
    manifestKey: `${prefix}manifests/${runId}.json`,
    latestKey: `${prefix}latest.json`,
  };
}
