import type { Config } from '../common/config.ts';
import type { Trigger } from '../common/request-types.ts';
import type { RunKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import type { StreamedSnapshot } from './stream-snapshot.ts';

/** The manifest of a run whose snapshot is written: what, when, from where, which files, and its key index. */
export function buildManifest(run: {
  runId: string;
  trigger: Trigger;
  config: Config;
  keys: RunKeys;
  snapshot: StreamedSnapshot;
  startedAt: Date;
  finishedAt: Date;
}): Manifest {
  const { runId, trigger, config, keys, snapshot, startedAt, finishedAt } = run;
  return {
    schemaVersion: 1,
    runId,
    trigger: trigger.kind,
    ...(trigger.kind === 'on-demand' && trigger.label ? { label: trigger.label } : {}),
    runTime: trigger.runTime.toISOString(),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    source: { baseUrl: config.baseUrl.href, pageSize: config.pageSize, ...snapshot.source },
    ...(snapshot.fallback === undefined ? {} : { fallback: snapshot.fallback }),
    counts: snapshot.counts,
    verification: snapshot.verification,
    ...(snapshot.comparedWith === undefined ? {} : { comparedWith: snapshot.comparedWith }),
    bucket: config.bucket,
    tableLocation: keys.tableLocation,
    dataPrefix: keys.dataPrefix,
    files: snapshot.files,
    ...(snapshot.order === undefined ? {} : { order: snapshot.order }),
    bytes: snapshot.files.reduce((sum, file) => sum + file.bytes, 0),
    index: snapshot.index,
  };
}
