import { format } from 'node:util';
import type { Context } from 'aws-lambda';
import { vi } from 'vitest';
import { VARIABLE_FAMILIES, VARIABLE_NAMES } from '../../lambda/common/env.ts';

type Handler = typeof import('../../lambda/handler.ts').handler;

/** Every variable the exporter reads by name: the registry of lambda/common/env.ts. */
export const EXPORTER_VARIABLES: ReadonlySet<string> = new Set(VARIABLE_NAMES);

/**
 * Families read by others: Powertools reads more of its own than the registry lists, and the
 * AWS SDK reads AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.
 */
export const FOREIGN_PREFIXES = ['POWERTOOLS_', 'AWS_ENDPOINT_URL'];

/**
 * Whether a cold start clears this variable: every one the exporter reads, those of the
 * families read by others, and any other name of the exporter's own families (a misspelt
 * one would be warned about by every later cold start).
 */
export function isExporterVariable(name: string): boolean {
  const upper = name.toUpperCase();
  return EXPORTER_VARIABLES.has(name) || [...FOREIGN_PREFIXES, ...VARIABLE_FAMILIES].some((prefix) => upper.startsWith(prefix));
}

/**
 * A cold start: every variable the exporter reads deleted (whatever an earlier cold start,
 * or the shell, left there), then `env` applied (undefined deletes), then lambda/handler.ts
 * imported afresh, so its module-scope state (config, clients, token cache) is new. Calls
 * to the returned handler share that state, as warm invocations do. Metrics are off unless
 * `env` turns them on, so nothing is flushed to the test output.
 */
export async function coldStart(env: Record<string, string | undefined>): Promise<Handler> {
  for (const name of Object.keys(process.env)) {
    if (isExporterVariable(name)) delete process.env[name];
  }
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  vi.resetModules();
  const { handler } = await import('../../lambda/handler.ts');
  return handler;
}

let requests = 0;

/** A Lambda context with `remainingMs` left before the (simulated) timeout. */
export function lambdaContext(remainingMs = 900_000): Context {
  requests += 1;
  const deadline = Date.now() + remainingMs;
  return {
    awsRequestId: `${requests.toString(16).padStart(8, '0')}-test-request`,
    functionName: 'thingpark-exporter',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:000000000000:function:thingpark-exporter',
    memoryLimitInMB: '1024',
    logGroupName: '/aws/lambda/thingpark-exporter',
    logStreamName: 'test',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug'] as const;

/** Everything written to stdout and stderr, or printed through console, while `fn` runs, to search for secrets. */
export async function captureOutput<T>(fn: () => Promise<T>): Promise<{ result?: T; error?: unknown; output: string }> {
  const chunks: string[] = [];
  const streams = [process.stdout, process.stderr];
  const originals = streams.map((stream) => stream.write.bind(stream));
  // Under vitest, console is the runner's own and never reaches process.stdout: a line
  // printed with console.log would otherwise escape the output searched for secrets.
  const printed = CONSOLE_METHODS.map((name) =>
    vi.spyOn(console, name).mockImplementation((...args: unknown[]) => {
      chunks.push(`${format(...args)}\n`);
    }),
  );
  for (const stream of streams) {
    stream.write = (chunk: string | Uint8Array, ...rest: unknown[]) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    };
  }
  try {
    const result = await fn();
    return { result, output: chunks.join('') };
  } catch (error) {
    return { error, output: chunks.join('') };
  } finally {
    streams.forEach((stream, i) => {
      stream.write = originals[i] as typeof stream.write;
    });
    for (const spy of printed) spy.mockRestore();
  }
}
