import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { ExporterError } from '../common/errors.ts';
import type { CurateServices } from '../common/services.ts';
import { curateRun, type CurationPause, type CurationSummary } from './curate-run.ts';
import { addFleetMetrics } from './fleet-metrics.ts';
import type { CurationSettings } from './settings.ts';

/** What became of the curation an export's invocation tried after its commit. */
export type CurationOutcome =
  | (Pick<CurationSummary, 'status' | 'devices' | 'added' | 'removed' | 'changed' | 'removalsConfirmed' | 'signals' | 'current' | 'recordKey' | 'elapsedMs'> & {
      comparison: CurationSummary['comparison'];
      previousRunId?: string;
      supersedes?: string;
    })
  | Omit<CurationPause, 'runId'>
  | { status: 'skipped'; reason: string; event: { curate: string } }
  | { status: 'failed'; error: string; errorType: string; code?: string; event: { curate: string } };

/**
 * `{"curate": "<runId>"}`: curates the run (or finishes its switch), or goes on with it and
 * answers `"status": "curating"` when it needs another invocation; fails like a run when it cannot.
 */
export async function curateOnRequest(
  services: CurateServices,
  settings: CurationSettings,
  request: { runId: string; remainingMs: () => number; logger: Logger },
): Promise<CurationSummary | CurationPause> {
  const { runId, logger } = request;
  logger.appendKeys({ runId });
  const summary = await curateRun(services, settings, request);
  if (summary.status === 'curating') {
    logger.info('Curation goes on in another invocation; the same event goes on with it', { summary });
    return summary;
  }
  if (summary.status === 'curated') recordCuration(services, summary);
  logger.info('Curation finished', { summary });
  return summary;
}

/**
 * Curates the run an export just committed (or found committed), in the same invocation,
 * when at least CURATE_INLINE_MIN_REMAINING_SECONDS are left; otherwise, or when curation
 * fails, the export's summary says so with the event that curates it alone. The export is
 * committed either way: a failed curation does not fail the invocation (a retry would only
 * replay the export), it is logged ("Curation failed"), counted (`curationFailed`, which
 * raises an alarm) and leaves every curated table as it was.
 */
export async function curateAfterExport<Summary extends { runId: string }>(
  services: CurateServices,
  settings: CurationSettings,
  summary: Summary,
  options: { remainingMs: () => number; logger: Logger },
): Promise<Summary & { curation: CurationOutcome }> {
  const { logger } = options;
  const event = { curate: summary.runId };
  const remainingSeconds = Math.floor(options.remainingMs() / 1000);
  if (remainingSeconds < settings.inlineMinRemainingSeconds) {
    const reason = `${remainingSeconds} s left, under CURATE_INLINE_MIN_REMAINING_SECONDS (${settings.inlineMinRemainingSeconds} s)`;
    logger.warn('Curation skipped: not enough time left in this invocation; curate the run with the event given', { runId: summary.runId, reason, event });
    publish(services, (m) => m.addMetric('curationSkipped', MetricUnit.Count, 1));
    return { ...summary, curation: { status: 'skipped', reason, event } };
  }
  try {
    const curated = await curateRun(services, settings, { runId: summary.runId, remainingMs: options.remainingMs, logger });
    if (curated.status === 'curating') {
      const { runId, ...pause } = curated;
      logger.info('Curation goes on in an invocation of its own; curate the run with the event given', { runId, ...pause });
      return { ...summary, curation: pause };
    }
    if (curated.status === 'curated') recordCuration(services, curated);
    const { status, devices, added, removed, changed, removalsConfirmed, signals, current, recordKey, elapsedMs, comparison, previousRunId, supersedes } =
      curated;
    return {
      ...summary,
      curation: {
        status,
        devices,
        added,
        removed,
        changed,
        removalsConfirmed,
        signals,
        current,
        recordKey,
        elapsedMs,
        comparison,
        ...(previousRunId ? { previousRunId } : {}),
        ...(supersedes ? { supersedes } : {}),
      },
    };
  } catch (error) {
    const failure = {
      error: error instanceof Error ? error.message : String(error),
      errorType: error instanceof Error ? error.name : typeof error,
      ...(error instanceof ExporterError ? { code: error.code } : {}),
    };
    logger.error('Curation failed', { runId: summary.runId, ...failure, event });
    publish(services, (m) => m.addMetric('curationFailed', MetricUnit.Count, 1));
    return { ...summary, curation: { status: 'failed', ...failure, event } };
  }
}

/** A curated run's figures: its changes and fleet signals per run on the dashboard and alarms, and that curation succeeded. */
function recordCuration(services: CurateServices, summary: CurationSummary): void {
  publish(services, (m) => {
    m.addMetric('curationSucceeded', MetricUnit.Count, 1);
    m.addMetric('devicesAdded', MetricUnit.Count, summary.added);
    m.addMetric('devicesRemoved', MetricUnit.Count, summary.removed);
    m.addMetric('devicesChanged', MetricUnit.Count, summary.changed);
    m.addMetric('curationDurationMs', MetricUnit.Milliseconds, summary.durationMs);
    if (summary.signals) addFleetMetrics(m, summary.signals);
  });
}

function publish({ metrics }: CurateServices, add: (m: Metrics) => void): void {
  add(metrics);
  metrics.publishStoredMetrics();
}
