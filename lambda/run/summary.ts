import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { Fallback, Paging } from '../common/paging.ts';
import type { Trigger } from '../common/request-types.ts';
import type { RunKeys } from '../storage/layout.ts';
import type { Manifest, RunCounts, Verification } from '../storage/manifest.ts';

/** The handler's answer: what the run did and where its snapshot is. */
export type RunSummary = {
  runId: string;
  status: 'committed' | 'already-committed';
  trigger: Trigger['kind'];
  label?: string;
  runTime: string;
} & RunCounts & {
    paging: Paging;
    fallback?: Fallback;
    verification: Verification;
    comparedWith?: string;
    bucket: string;
    manifestKey: string;
    latestKey: string;
    pointerMoved: boolean;
    dataKeys: string[];
    bytes: number;
    durationMs: number;
  };

/** The counts a manifest written before key indexes leaves out: no verification took place. */
const UNVERIFIED = { recovered: 0, removed: 0, unresolved: 0, verificationRequests: 0 };
/** What manifests written before cursor paging leave out: they paged by offset, in no ranges. */
const BEFORE_CURSORS = { ranges: 0 };

/**
 * A run's summary from its manifest. `tokenRequests` is this invocation's: a replayed
 * run made none, whatever the committed run's manifest says.
 */
export function summaryOf(
  manifest: Manifest,
  outcome: { status: RunSummary['status']; keys: Pick<RunKeys, 'manifestKey' | 'latestKey'>; pointerMoved: boolean; tokenRequests: number; startedAt: Date },
): RunSummary {
  return {
    runId: manifest.runId,
    status: outcome.status,
    trigger: manifest.trigger,
    ...(manifest.label ? { label: manifest.label } : {}),
    runTime: manifest.runTime,
    ...UNVERIFIED,
    ...BEFORE_CURSORS,
    ...manifest.counts,
    tokenRequests: outcome.tokenRequests,
    paging: manifest.source.paging ?? 'offset',
    ...(manifest.fallback === undefined ? {} : { fallback: manifest.fallback }),
    verification: manifest.verification ?? 'no-previous-index',
    ...(manifest.comparedWith === undefined ? {} : { comparedWith: manifest.comparedWith }),
    bucket: manifest.bucket,
    manifestKey: outcome.keys.manifestKey,
    latestKey: outcome.keys.latestKey,
    pointerMoved: outcome.pointerMoved,
    dataKeys: manifest.files.map((file) => file.key),
    bytes: manifest.bytes,
    durationMs: Date.now() - outcome.startedAt.getTime(),
  };
}

/** A committed run's figures, each under its summary's name, added to the metrics the invocation publishes. */
export function recordRun(metrics: Metrics, summary: RunSummary): void {
  metrics.addMetric('exportSucceeded', MetricUnit.Count, 1);
  metrics.addMetric('devices', MetricUnit.Count, summary.devices);
  metrics.addMetric('pages', MetricUnit.Count, summary.pages);
  metrics.addMetric('pageRequests', MetricUnit.Count, summary.pageRequests);
  metrics.addMetric('duplicates', MetricUnit.Count, summary.duplicates);
  metrics.addMetric('throttled', MetricUnit.Count, summary.throttled);
  metrics.addMetric('tokenRequests', MetricUnit.Count, summary.tokenRequests);
  metrics.addMetric('recovered', MetricUnit.Count, summary.recovered);
  metrics.addMetric('removed', MetricUnit.Count, summary.removed);
  metrics.addMetric('unresolved', MetricUnit.Count, summary.unresolved);
  metrics.addMetric('verificationRequests', MetricUnit.Count, summary.verificationRequests);
  metrics.addMetric('durationMs', MetricUnit.Milliseconds, summary.durationMs);
}
