import type { Context } from 'aws-lambda';
import { loadConfig, unknownVariables } from './common/config.ts';
import { ExporterError } from './common/errors.ts';
import { curateAfterExport, curateOnRequest, type CuratedRunSummary } from './curate/invoke.ts';
import type { CurationSummary } from './curate/curate-run.ts';
import { curationSettings } from './curate/settings.ts';
import { invocationOf, runIdOf } from './common/run-id.ts';
import { abandonRequest, continuationRequest, curateRequest, parseTrigger, type Trigger } from './event.ts';
import { logger, metrics, recordRun } from './common/observability.ts';
import { abandonRun, type AbandonRequest, type AbandonSummary } from './run/abandon.ts';
import type { Continuation } from './run/checkpoint.ts';
import { exportRun, resumeRun } from './run/export-run.ts';
import type { RunServices } from './run/run-context.ts';
import { createServices } from './runtime.ts';
import { newAttempt } from './storage/layout.ts';

// Built on the first invocation and kept while the context is warm: the token cache and
// the clients live here. Built lazily so a configuration error fails the invocation with
// its message rather than the whole init phase.
let services: RunServices | undefined;

/** Every answer the function gives, by event. */
export type HandlerAnswer = CuratedRunSummary | Continuation | CurationSummary | AbandonSummary;

/**
 * `{"curate": "<runId>"}` curates a committed run; `{"abandon": {...}}` gives up a continued
 * run (run/abandon.ts); any other accepted event exports, then curates. An export that does
 * not fit its invocation answers with a Continuation instead (`"status": "continue"`), and
 * the function invoked with exactly that object goes on with the run: so does a schedule's
 * or an operator's, whichever started it. Callers that may meet a run that long take the
 * answer as a HandlerAnswer.
 */
export function handler(event: { curate: string }, context: Context): Promise<CurationSummary>;
export function handler(event: { abandon: AbandonRequest }, context: Context): Promise<AbandonSummary>;
export function handler(event: Continuation, context: Context): Promise<CuratedRunSummary | Continuation>;
export function handler(event: unknown, context: Context): Promise<CuratedRunSummary>;
export async function handler(event: unknown, context: Context): Promise<HandlerAnswer> {
  logger.addContext(context);
  try {
    // Until the context is configured: a misspelt variable is otherwise ignored without a
    // word, its default used (or, for a required one, reported as missing with no hint why).
    if (services === undefined) {
      for (const { message, name, suggestion } of unknownVariables()) logger.warn(message, { variable: name, suggestion });
    }
    const curate = curateRequest(event);
    const resume = continuationRequest(event);
    const abandon = abandonRequest(event);
    const trigger = curate === undefined && resume === undefined && abandon === undefined ? parseTrigger(event, new Date()) : undefined;
    services ??= createServices(loadConfig(), logger);
    if (abandon) {
      logger.appendKeys({ runId: abandon.runId });
      return await abandonRun(services, abandon, logger);
    }
    const curation = curationSettings();
    if (curate !== undefined) {
      return await curateOnRequest(services, curation, { runId: curate, remainingMs: () => context.getRemainingTimeInMillis(), logger });
    }
    const invocation = invocationOf(context.awsRequestId);
    const run = { attempt: newAttempt(invocation), remainingMs: () => context.getRemainingTimeInMillis(), logger };
    const runId = resume?.runId ?? runIdOf(trigger as Trigger, invocation);
    logger.appendKeys({ runId });
    const summary = resume ? await resumeRun(services, resume, run) : await exportRun(services, trigger as Trigger, { ...run, runId });
    // A replayed schedule exported nothing new: counting it again would double the figures.
    if (summary.status === 'committed') {
      recordRun(summary);
      metrics.publishStoredMetrics();
    }
    // A run that goes on in another invocation has nothing committed to curate yet.
    if (summary.status === 'continue') return summary;
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
