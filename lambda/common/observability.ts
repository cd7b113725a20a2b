import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RunSummary } from '../run/summary.ts';
import { DEFAULTS } from './env.ts';

/** Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE. */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? DEFAULTS.POWERTOOLS_SERVICE_NAME });
export const metrics = new Metrics({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? DEFAULTS.POWERTOOLS_SERVICE_NAME,
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? DEFAULTS.POWERTOOLS_METRICS_NAMESPACE,
});

export function recordRun(summary: RunSummary): void {
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
