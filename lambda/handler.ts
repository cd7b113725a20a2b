import type { Context } from 'aws-lambda';
import { loadConfig } from './common/config.ts';
import { unknownVariables } from './common/env.ts';
import { awsFailureCode } from './common/aws-failures.ts';
import { ExporterError } from './common/errors.ts';
import { curateAfterExport, curateOnRequest, type CurationOutcome } from './curate/invoke.ts';
import type { CurationPause, CurationSummary } from './curate/curate-run.ts';
import type { CurationSettings } from './curate/settings.ts';
import { logger } from './common/logger.ts';
import type { AbandonRequest, Continuation } from './common/request-types.ts';
import { invocationOf, runIdOf } from './common/run-id.ts';
import { parseRequest } from './requests.ts';
import { abandonRun, type AbandonSummary } from './run/abandon.ts';
import { exportRun, resumeRun, type ExportAnswer } from './run/export-run.ts';
import { recordRun, type RunSummary } from './run/summary.ts';
import { createServices, type Services } from './services.ts';
import { newAttempt } from './storage/layout.ts';

// Built on the first invocation and kept while the context is warm: the token cache, the
// clients and the metrics live here. Built lazily so a configuration error fails the
// invocation with its message rather than the whole init phase.
let services: Services | undefined;

/** An export's summary with what became of its curation. */
export type CuratedRunSummary = RunSummary & { curation: CurationOutcome };

/** Every answer the function gives, by event. */
export type HandlerAnswer = CuratedRunSummary | Continuation | CurationSummary | CurationPause | AbandonSummary;

/**
 * `{"curate": "<runId>"}` curates a committed run; `{"abandon": {...}}` gives up a continued
 * run (run/abandon.ts); any other accepted event exports, then curates. An export that does
 * not fit its invocation answers with a Continuation instead (`"status": "continue"`), and
 * the function invoked with exactly that object goes on with the run: so does a schedule's
 * or an operator's, whichever started it. A curation that does not fit answers
 * `"status": "curating"`, and the same `{"curate": "<runId>"}` goes on with it. Callers that
 * may meet a run that long take the answer as a HandlerAnswer.
 */
export function handler(event: { curate: string }, context: Context): Promise<CurationSummary | CurationPause>;
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
    const request = parseRequest(event, new Date());
    services ??= createServices(loadConfig(), logger);
    const remainingMs = () => context.getRemainingTimeInMillis();
    const invocation = invocationOf(context.awsRequestId);
    switch (request.kind) {
      case 'abandon':
        logger.appendKeys({ runId: request.abandon.runId });
        return await abandonRun(services, request.abandon, logger);
      case 'curate':
        return await curateOnRequest(services, services.curation(), { runId: request.runId, remainingMs, logger });
      case 'continuation': {
        const curation = services.curation();
        logger.appendKeys({ runId: request.continuation.runId });
        const answer = await resumeRun(services, request.continuation, { attempt: newAttempt(invocation), remainingMs, logger });
        return await afterExport(services, curation, answer, remainingMs);
      }
      case 'schedule':
      case 'on-demand': {
        const curation = services.curation();
        const runId = runIdOf(request, invocation);
        logger.appendKeys({ runId });
        const answer = await exportRun(services, request, { runId, attempt: newAttempt(invocation), remainingMs, logger });
        return await afterExport(services, curation, answer, remainingMs);
      }
    }
  } catch (error) {
    logger.error('Run failed', {
      error: error instanceof Error ? error.message : String(error),
      errorType: error instanceof Error ? error.name : typeof error,
      code: error instanceof ExporterError ? error.code : awsFailureCode(error),
    });
    throw error;
  } finally {
    logger.removeKeys(['runId']);
  }
}

/** What an export invocation answers: a committed run counted and curated, or the continuation as it is. */
async function afterExport(services: Services, curation: CurationSettings, answer: ExportAnswer, remainingMs: () => number): Promise<HandlerAnswer> {
  // A replayed schedule exported nothing new: counting it again would double the figures.
  if (answer.status === 'committed') {
    recordRun(services.metrics, answer);
    services.metrics.publishStoredMetrics();
  }
  // A run that goes on in another invocation has nothing committed to curate yet.
  if (answer.status === 'continue') return answer;
  logger.info('Run finished', { summary: answer });
  if (answer.status === 'already-committed') return handedOver(answer);
  return await curateAfterExport(services, curation, answer, { remainingMs, logger });
}

/**
 * A run found committed is not curated inline: it may be that its own invocation died
 * curating it (out of memory or time, after the commit), and the state machine's retry of
 * that invocation would only die the same way, then fail the execution. Answered as a
 * skipped curation instead, the state machine curates the run in its Curate step, an
 * invocation of its own (which answers `already-curated` if it was curated after all).
 */
function handedOver(answer: RunSummary): CuratedRunSummary {
  const event = { curate: answer.runId };
  const reason = 'the run was already committed (by this schedule or continuation before): it is curated by its own invocation';
  logger.info('Curation handed over: the run was committed before, curate it with the event given', { runId: answer.runId, event });
  return { ...answer, curation: { status: 'skipped', reason, event } };
}
