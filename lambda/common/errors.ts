/**
 * One error type per failure an operator can act on, each with a stable code. Messages
 * name what to check and never carry a secret, a token or a response body longer than a
 * short excerpt.
 *
 * Names are written out rather than taken from `constructor.name`: the deployed bundle is
 * minified, and the name is what the "Run failed" log line and the dead-letter queue's
 * records show as `errorType`.
 */
export const ErrorCode = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  EVENT_INVALID: 'EVENT_INVALID',
  CREDENTIALS_UNAVAILABLE: 'CREDENTIALS_UNAVAILABLE',
  CLIENT_REJECTED: 'CLIENT_REJECTED',
  PLATFORM_ERROR: 'PLATFORM_ERROR',
  PAGE_MALFORMED: 'PAGE_MALFORMED',
  DEVICE_ID_INVALID: 'DEVICE_ID_INVALID',
  OFFSET_LIMIT: 'OFFSET_LIMIT',
  LIST_ENDED_EARLY: 'LIST_ENDED_EARLY',
  DEADLINE_NEAR: 'DEADLINE_NEAR',
  RETRY_BUDGET_SPENT: 'RETRY_BUDGET_SPENT',
  COMMIT_UNCERTAIN: 'COMMIT_UNCERTAIN',
  COMMIT_REFUSED: 'COMMIT_REFUSED',
  POINTER_CONTENDED: 'POINTER_CONTENDED',
  DATA_NOT_DELETED: 'DATA_NOT_DELETED',
  WRITER_CLOSED: 'WRITER_CLOSED',
  RUN_FILES_GONE: 'RUN_FILES_GONE',
  RUN_PAGE_LIMIT: 'RUN_PAGE_LIMIT',
  RUN_SLICE_LIMIT: 'RUN_SLICE_LIMIT',
  RUN_TIME_LIMIT: 'RUN_TIME_LIMIT',
  CURATION_INVOCATION_LIMIT: 'CURATION_INVOCATION_LIMIT',
  RUN_NOT_COMMITTED: 'RUN_NOT_COMMITTED',
  RAW_DAMAGED: 'RAW_DAMAGED',
  PROGRESS_DAMAGED: 'PROGRESS_DAMAGED',
  CURRENT_CONTENDED: 'CURRENT_CONTENDED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export abstract class ExporterError extends Error {
  abstract override readonly name: string;
  abstract readonly code: ErrorCode;
}

/** The environment is missing a variable or one is malformed. */
export class ConfigError extends ExporterError {
  override readonly name = 'ConfigError';
  readonly code = ErrorCode.CONFIG_INVALID;
  constructor(readonly problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
  }
}

/** A failure an operator acts on from its name, code and message alone. */
function plainError<C extends ErrorCode>(name: string, code: C) {
  return class extends ExporterError {
    override readonly name = name;
    readonly code = code;
  };
}

/** The invocation event is neither a schedule nor an accepted on-demand request. */
export class EventError extends plainError('EventError', ErrorCode.EVENT_INVALID) {}

/** The SSM parameters holding the client credentials are missing, empty or unreadable. */
export class CredentialsError extends plainError('CredentialsError', ErrorCode.CREDENTIALS_UNAVAILABLE) {}

/** The token endpoint rejected the client even after the credentials were re-read. */
export class ClientRejectedError extends plainError('ClientRejectedError', ErrorCode.CLIENT_REJECTED) {}

/** The token endpoint or the device API kept failing, or answered with a status we do not retry. */
export class PlatformError extends ExporterError {
  override readonly name = 'PlatformError';
  readonly code = ErrorCode.PLATFORM_ERROR;
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A device page was not the documented `{ briefs: [...], more, count, now }` object. */
export class MalformedPageError extends ExporterError {
  override readonly name = 'MalformedPageError';
  readonly code = ErrorCode.PAGE_MALFORMED;
  constructor(
    /** How messages name the page: `page 3`, or a cursor sweep's `page 2 of range 70B3D5`. */
    readonly page: string,
    problem: string,
    excerpt: string,
    /** The page's index, for an offset page. */
    readonly pageIndex?: number,
  ) {
    super(`${page.charAt(0).toUpperCase()}${page.slice(1)} is malformed: ${problem}. Body starts with: ${JSON.stringify(excerpt)}`);
  }
}

/**
 * A device to look up has a key the single-device route cannot address (the previous
 * run's key index or a checkpoint holds a key no device of the platform has): refused
 * before any request, so that no other route is called with the token.
 */
export class DeviceIdError extends plainError('DeviceIdError', ErrorCode.DEVICE_ID_INVALID) {}

/**
 * Offset paging did not reach every device the platform counted, so the run is not
 * committed. The code says how: the platform refused a page past its offset limit
 * (`OFFSET_LIMIT`), or the list ended short of its count (`LIST_ENDED_EARLY`).
 */
export class ListIncompleteError extends ExporterError {
  override readonly name = 'ListIncompleteError';
  constructor(
    readonly code: typeof ErrorCode.OFFSET_LIMIT | typeof ErrorCode.LIST_ENDED_EARLY,
    message: string,
  ) {
    super(message);
  }
}

/** The run would not finish before the Lambda's hard timeout, so it stopped itself. */
export class DeadlineError extends plainError('DeadlineError', ErrorCode.DEADLINE_NEAR) {}

/**
 * A run reached one of its ceilings, so that a platform that never ends its list (a page
 * repeated forever, `more` always true) cannot keep it, and the reserved slot, for the
 * state machine's 24 hours. The code says which: more pages than the platform's count
 * allows (`RUN_PAGE_LIMIT`), more invocations (`RUN_SLICE_LIMIT`), or more time since the
 * run's first invocation started (`RUN_TIME_LIMIT`). Nothing is committed. Or a committed
 * run's curation took more invocations than one curation may (`CURATION_INVOCATION_LIMIT`):
 * nothing of it is visible, what it wrote is removed, and trying again with the same CPU
 * would only fail again.
 */
export class RunLimitError extends ExporterError {
  override readonly name = 'RunLimitError';
  constructor(
    readonly code:
      typeof ErrorCode.RUN_PAGE_LIMIT | typeof ErrorCode.RUN_SLICE_LIMIT | typeof ErrorCode.RUN_TIME_LIMIT | typeof ErrorCode.CURATION_INVOCATION_LIMIT,
    message: string,
  ) {
    super(message);
  }
}

/** The run spent its whole retry budget: the platform is too unhealthy to keep pushing. */
export class RetryBudgetError extends plainError('RetryBudgetError', ErrorCode.RETRY_BUDGET_SPENT) {}

/**
 * Publishing a run went wrong in S3. The code says how, and so what an operator does:
 * - COMMIT_UNCERTAIN: S3 could not be read to tell whether the manifest landed; the data
 *   files were kept, and the next delivery of the run settles it;
 * - COMMIT_REFUSED: S3 refused the manifest as existing, yet it is not there;
 * - POINTER_CONTENDED: `latest` kept changing under concurrent writers; the run is
 *   committed, only the pointer was left as it was;
 * - DATA_NOT_DELETED: S3 refused to delete data files (the message lists them);
 * - WRITER_CLOSED: data was written after the run's writer was closed or discarded;
 * - RUN_FILES_GONE: just before its commit, a continued run's earlier files were no longer
 *   all there (an abandon removed them meanwhile): nothing was committed.
 */
export class StorageError extends ExporterError {
  override readonly name = 'StorageError';
  constructor(
    readonly code:
      | typeof ErrorCode.COMMIT_UNCERTAIN
      | typeof ErrorCode.COMMIT_REFUSED
      | typeof ErrorCode.POINTER_CONTENDED
      | typeof ErrorCode.DATA_NOT_DELETED
      | typeof ErrorCode.WRITER_CLOSED
      | typeof ErrorCode.RUN_FILES_GONE,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Curating a committed run went wrong; nothing it wrote is visible (the current table is
 * as it was). The code says what an operator does:
 * - RUN_NOT_COMMITTED: the run has no manifest (never committed, or expired): check the id;
 * - RAW_DAMAGED: a raw data file the manifest lists is missing, is not complete gzip NDJSON,
 *   or does not hold what the manifest says (the message names the file and line); the raw
 *   files are the record, so they are not repaired: restore the object's previous version;
 * - PROGRESS_DAMAGED: a curation that went on over several invocations found the state it
 *   saved so far gone or shorter than its progress says; what it saved is removed, and the
 *   next attempt starts over;
 * - CURRENT_CONTENDED: the current table kept changing under concurrent curations; the run
 *   is curated, only the switch was left undone (curating it again finishes it).
 */
export class CurationError extends ExporterError {
  override readonly name = 'CurationError';
  constructor(
    readonly code: typeof ErrorCode.RUN_NOT_COMMITTED | typeof ErrorCode.RAW_DAMAGED | typeof ErrorCode.PROGRESS_DAMAGED | typeof ErrorCode.CURRENT_CONTENDED,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
