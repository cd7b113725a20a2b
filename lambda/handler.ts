import type { Context } from 'aws-lambda';
import { loadConfig, unknownVariables } from './config.ts';
import { ExporterError } from './errors.ts';
import { curateAfterExport, curateOnRequest, type CuratedRunSummary } from './curate/invoke.ts';
import type { CurationSummary } from './curate/curate-run.ts';
import { curationSettings } from './curate/settings.ts';
import { attemptOf, curateRequest, parseTrigger, runIdOf } from './event.ts';
import { logger, metrics, recordRun } from './observability.ts';
import { exportRun } from './run/export-run.ts';
import type { RunServices } from './run/run-context.ts';
import { createServices } from './runtime.ts';
import { attemptId } from './storage/keys.ts';

// Built on the first invocation and kept while the context is warm: the token cache and
// the clients live here. Built lazily so a configuration error fails the invocation with
// its message rather than the whole init phase.
let services: RunServices | undefined;

/** `{"curate": "<runId>"}` curates a committed run; any other accepted event exports, then curates. */
export function handler(event: { curate: string }, context: Context): Promise<CurationSummary>;
export function handler(event: unknown, context: Context): Promise<CuratedRunSummary>;
export async function handler(event: unknown, context: Context): Promise<CuratedRunSummary | CurationSummary> {
  logger.addContext(context);
  try {
    // Until the context is configured: a misspelt variable is otherwise ignored without a
    // word, its default used (or, for a required one, reported as missing with no hint why).
    if (services === undefined) {
      for (const { message, name, suggestion } of unknownVariables()) logger.warn(message, { variable: name, suggestion });
    }
    const curate = curateRequest(event);
    const trigger = curate === undefined ? parseTrigger(event, new Date()) : undefined;
    services ??= createServices(loadConfig(), logger);
    const curation = curationSettings();
    if (trigger === undefined) {
      return await curateOnRequest(services, curation, { runId: curate as string, remainingMs: () => context.getRemainingTimeInMillis(), logger });
    }
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
    return await curateAfterExport(services, curation, summary, { remainingMs: () => context.getRemainingTimeInMillis(), logger });
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
