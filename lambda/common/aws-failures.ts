import { systemCode } from './redact.ts';

/** What the middleware reads of an SDK call: its input (bucket and key, parameter names). */
interface CallArguments {
  input: object;
}
interface CallContext {
  commandName?: string;
  endpointV2?: { url: URL };
}

/** What the SDK leaves on a failed call: the status it was answered with, and how often it was tried. */
interface Metadata {
  httpStatusCode?: number;
  attempts?: number;
}

/** The step and name a client's middleware stack needs to place the middleware outermost. */
export const NAMING_STEP = { step: 'initialize', name: 'nameAwsFailures' } as const;

/**
 * An SDK middleware, outermost (after the SDK's own retries), that makes every failure say
 * what it was: the service and operation, what it was about (the bucket and key, the
 * parameter names), the host, the SDK's code and, for an answer, its HTTP status, and how
 * many attempts were made. The SDK's own message says none of it: S3's "Access Denied" or
 * Node's "connect ECONNREFUSED 10.0.0.1:443" or "self-signed certificate" could be any
 * call. The error is kept (its name and `$metadata` are what callers test, and a 404 is
 * read as "absent"), only its message gains the context.
 */
export function nameAwsFailures(service: string) {
  return <T>(next: (args: CallArguments) => Promise<T>, context: CallContext) =>
    async (args: CallArguments): Promise<T> => {
      try {
        return await next(args);
      } catch (error) {
        if (error instanceof Error) {
          error.message = `${service} ${callOf(args, context)} failed (${codeOf(error)}): ${error.message}`;
          failureCodes.set(error, failureCode(service, error));
        }
        throw error;
      }
    };
}

// Beside the error, not on it: its own fields (`code`, `name`, `$metadata`) are the SDK's and Node's.
const failureCodes = new WeakMap<Error, string>();

/**
 * The code a run that an AWS call failed is logged with, naming the service: `S3_TIMEOUT`
 * or `SSM_TIMEOUT` (no answer in time), `S3_NO_ANSWER` (no connection, or it broke),
 * `S3_ERROR` (an answer refusing the call; its own code is in the message).
 */
export function awsFailureCode(error: unknown): string | undefined {
  return error instanceof Error ? failureCodes.get(error) : undefined;
}

function failureCode(service: string, error: Error): string {
  const prefix = service.toUpperCase();
  if ((error as { $metadata?: Metadata }).$metadata?.httpStatusCode !== undefined) return `${prefix}_ERROR`;
  const timedOut = error.name === 'TimeoutError' || systemCode(error) === 'ETIMEDOUT';
  return `${prefix}_${timedOut ? 'TIMEOUT' : 'NO_ANSWER'}`;
}

/** The operation, what it was about, and where it went: `GetObject s3://bucket/key at host`. */
function callOf(args: CallArguments, context: CallContext): string {
  const operation = (context.commandName ?? 'call').replace(/Command$/, '');
  const { Bucket, Key, Prefix, Names, Name } = args.input as Record<string, unknown>;
  let target = '';
  if (typeof Bucket === 'string') target = ` s3://${Bucket}/${typeof Key === 'string' ? Key : typeof Prefix === 'string' ? Prefix : ''}`;
  else if (Array.isArray(Names)) target = ` ${Names.filter((name) => typeof name === 'string').join(', ')}`;
  else if (typeof Name === 'string') target = ` ${Name}`;
  const host = context.endpointV2?.url.host;
  return `${operation}${target}${host ? ` at ${host}` : ''}`;
}

/**
 * The SDK's code for the failure: the service's error code (NoSuchKey, AccessDenied) with
 * the HTTP status for an answer; for none, the system code (ECONNREFUSED, CERT_HAS_EXPIRED)
 * or "timeout". Then the attempts, when the SDK retried.
 */
function codeOf(error: Error): string {
  const { httpStatusCode, attempts } = (error as { $metadata?: Metadata }).$metadata ?? {};
  const code =
    httpStatusCode !== undefined
      ? `${error.name}, HTTP ${httpStatusCode}`
      : (systemCode(error) ?? (error.name === 'TimeoutError' ? 'timeout' : /^[A-Za-z][\w$]{0,39}$/.test(error.name) ? error.name : 'no answer'));
  return attempts !== undefined && attempts > 1 ? `${code}, ${attempts} attempts` : code;
}
