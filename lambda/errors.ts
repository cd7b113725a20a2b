/**
 * One error type per failure an operator can act on. Messages name what to check and
 * never carry a secret, a token or a response body longer than a short excerpt.
 */
export abstract class ExporterError extends Error {
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

/** The environment is missing a variable or one is malformed. */
export class ConfigError extends ExporterError {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
  }
}

/** The invocation event is neither a schedule nor an accepted on-demand request. */
export class EventError extends ExporterError {
  readonly code = 'EVENT_INVALID';
}

/** The SSM parameters holding the client credentials are missing, empty or unreadable. */
export class CredentialsError extends ExporterError {
  readonly code = 'CREDENTIALS_UNAVAILABLE';
}

/** The token endpoint rejected the client even after the credentials were re-read. */
export class ClientRejectedError extends ExporterError {
  readonly code = 'CLIENT_REJECTED';
}

/** The token endpoint or the device API kept failing, or answered with a status we do not retry. */
export class PlatformError extends ExporterError {
  readonly code = 'PLATFORM_ERROR';
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A device page was not the documented `{ briefs: [...], more }` object. */
export class MalformedPageError extends ExporterError {
  readonly code = 'PAGE_MALFORMED';
  constructor(
    readonly pageIndex: number,
    problem: string,
    excerpt: string,
  ) {
    super(`Page ${pageIndex} is malformed: ${problem}. Body starts with: ${JSON.stringify(excerpt)}`);
  }
}

/** The run would not finish before the Lambda's hard timeout, so it stopped itself. */
export class DeadlineError extends ExporterError {
  readonly code = 'DEADLINE_NEAR';
}

/** The run spent its whole retry budget: the platform is too unhealthy to keep pushing. */
export class RetryBudgetError extends ExporterError {
  readonly code = 'RETRY_BUDGET_SPENT';
}
