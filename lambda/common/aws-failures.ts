import { systemCode } from './redact.ts';

/** What the middleware reads of an SDK call: its input (bucket and key) and where it went. */
interface CallArguments {
  input: object;
}
interface CallContext {
  commandName?: string;
  endpointV2?: { url: URL };
}

/** The step and name a client's middleware stack needs to place the middleware outermost. */
export const NAMING_STEP = { step: 'initialize', name: 'nameNetworkFailures' } as const;

/**
 * An SDK middleware, outermost (after the SDK's own retries), that makes a failure with no
 * HTTP answer say what it was: the service and operation, the bucket and key, the host, and
 * the system code. The SDK's own message for it is Node's ("connect ECONNREFUSED
 * 10.0.0.1:443", "self-signed certificate"), which says neither what was being done nor,
 * for TLS, where. The error is kept (its name and `$metadata` are what callers test), only
 * its message gains the context. A failure S3 or SSM answered is left as it is: its name
 * (NoSuchKey, AccessDenied, ...) already says what happened.
 */
export function nameNetworkFailures(service: string) {
  return <T>(next: (args: CallArguments) => Promise<T>, context: CallContext) =>
    async (args: CallArguments): Promise<T> => {
      try {
        return await next(args);
      } catch (error) {
        if (error instanceof Error && answeredNothing(error)) {
          const code = systemCode(error) ?? (error.name === 'TimeoutError' ? 'timeout' : undefined);
          if (code !== undefined) {
            const operation = (context.commandName ?? 'call').replace(/Command$/, '');
            const { Bucket, Key } = args.input as { Bucket?: unknown; Key?: unknown };
            const target = typeof Bucket === 'string' ? ` s3://${Bucket}/${typeof Key === 'string' ? Key : ''}` : '';
            const host = context.endpointV2?.url.host;
            error.message = `${service} ${operation}${target}${host ? ` at ${host}` : ''} failed (${code}): ${error.message}`;
          }
        }
        throw error;
      }
    };
}

function answeredNothing(error: Error): boolean {
  const { $metadata } = error as { $metadata?: { httpStatusCode?: number } };
  return $metadata?.httpStatusCode === undefined;
}
