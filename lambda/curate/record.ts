import type { FleetSignals } from './fleet-signals.ts';
import type { ParquetFile } from './parquet-files.ts';

/**
 * How a run was compared: with the committed run before it; not at all, there being none
 * (`first-run`).
 */
export type Comparison = 'compared' | 'first-run';

/**
 * What curating a run wrote, and its changes: `P curated/runs/<runId>.json`, one line of
 * JSON (the `curated_runs` table), written once, last, so that its presence says the
 * run's curated files are complete. Created only if absent (If-None-Match), as a manifest is.
 * A later commit of the same run id (a schedule redone after its manifest expired) is
 * curated anew under `curated/runs/<runId>.<sha256:16>.json`, the start of its manifest's sha256.
 */
export interface CurationRecord {
  schemaVersion: 1;
  runId: string;
  runTime: string;
  curatedAt: string;
  /** Time spent curating, from reading the manifest to writing this record. */
  durationMs: number;
  /** Rows of device_snapshots: every device of the raw snapshot. */
  devices: number;
  /** Devices with neither ref nor EUI: in device_snapshots, but no change can be told for them. */
  unkeyed: number;
  comparison: Comparison;
  previousRunId?: string;
  previousRunTime?: string;
  /** Where the previous run's values came from: its curated state, or its raw files. */
  comparedFrom?: 'state' | 'raw';
  changeFields: string[];
  added: number;
  removed: number;
  changed: number;
  /**
   * Whether the export checked every device missing from this run against the platform
   * and found it gone (see docs/analytics.md): the `confirmed` of each removed row.
   */
  removalsConfirmed: boolean;
  /** What the run says about the fleet's health; absent from records written before signals were. */
  signals?: FleetSignals;
  snapshotFiles: ParquetFile[];
  changeFiles: ParquetFile[];
  stateKey: string;
  /**
   * The sha256 (hex) of the manifest curated (record-lookup.ts): which commit of the run this
   * record is of. Absent from records written before it was kept.
   */
  manifestHash?: string;
}
