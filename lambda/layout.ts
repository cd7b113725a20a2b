/**
 * Where a run's objects live, under the configured prefix P:
 *   P devices/dt=YYYY-MM-DD/run=<runId>/part-00000.ndjson.gz   the table location (data)
 *   P manifests/<runId>.json                                    one manifest per committed run
 *   P latest.json                                               pointer to the newest manifest
 * Manifests and the pointer sit outside the table location, so engines that read the
 * table never mistake them for data.
 */
export interface RunKeys {
  tableLocation: string;
  dataPrefix: string;
  dataKey(fileIndex: number): string;
  manifestKey: string;
  latestKey: string;
}

export function runKeys(prefix: string, runId: string, runTime: Date): RunKeys {
  const tableLocation = `${prefix}devices/`;
  const dataPrefix = `${tableLocation}dt=${runTime.toISOString().slice(0, 10)}/run=${runId}/`;
  return {
    tableLocation,
    dataPrefix,
    dataKey: (fileIndex) => `${dataPrefix}part-${String(fileIndex).padStart(5, '0')}.ndjson.gz`,
    manifestKey: `${prefix}manifests/${runId}.json`,
    latestKey: `${prefix}latest.json`,
  };
}
