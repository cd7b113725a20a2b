import type { Context } from 'aws-lambda';
import { loadConfig } from './config.ts';
import { ExporterError } from './errors.ts';
import { attemptOf, parseTrigger, runIdOf } from './event.ts';
import { logger, metrics, recordRun } from './observability.ts';
import { exportRun } from './run/export-run.ts';
import type { RunServices } from './run/run-context.ts';
import type { RunSummary } from './run/summary.ts';
import { createServices } from './runtime.ts';
import { attemptId } from './storage/keys.ts';

// Built on the first invocation and kept while the context is warm: the token cache and
// the clients live here. Built lazily so a configuration error fails the invocation with
// its message rather than the whole init phase.
let services: RunServices | undefined;

export async function handler(event: unknown, context: Context): Promise<RunSummary> {
  logger.addContext(context);
  try {
    const trigger = parseTrigger(event, new Date());
    services ??= createServices(loadConfig());
    const runId = runIdOf(trigger, context.awsRequestId);
    logger.appendKeys({ runId });
    const summary = await exportRun(services, trigger, {
      runId,
      attempt: attemptId(attemptOf(context.awsRequestId)),
      remainingMs: () => context.getRemainingTimeInMillis(),
      logger,
    });
    // A replayed schedule exported nothing new: counting it again would double the figures.
    if (summary.status === 'committed') {
      recordRun(summary);
      metrics.publishStoredMetrics();
    }
    logger.info('Run finished', { summary });
    return summary;
  } catch (error) {
    logger.error('Run failed', {
      error: error instanceof Error ? error.message : String(error),
      errorType: error instanceof Error ? error.name : typeof error,
      code: error instanceof ExporterError ? error.code : undefined,
    });
    throw error;
  } finally {
    logger.removeKeys(['runId']);
  }
}
