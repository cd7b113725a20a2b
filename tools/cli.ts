/**
 * What the command-line tools share (`npm start`, `npm run export`, `npm run bench`): a
 * quiet start, the same word on misspelt variables as the function's, a Lambda context for
 * running the handler in this process, and a run's summary as lines.
 */
import type { Context } from 'aws-lambda';
import { unknownVariables } from '../lambda/common/env.ts';
import type { RunSummary } from '../lambda/run/summary.ts';

/**
 * The AWS SDK prints nine lines on Node 20 to say that its releases from 2027 need Node 22.
 * The tools run on Node 20 by design (README, "Node.js versions"); the SDK reads this
 * variable when it builds its first client, so it is set before any is built.
 */
export function quietAwsSdk(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

/**
 * Each variable of ours that nothing reads, said once in plain words with the closest known
 * name; then removed, as it would be ignored anyway, so that the handler's cold start in
 * this process does not say it again as a log line.
 */
export function reportUnknownVariables(): void {
  for (const { name, message } of unknownVariables()) {
    console.warn(`Warning: ${message}`);
    delete process.env[name];
  }
}

/** A Lambda context for the handler run in this process, with the function's 15 minutes. */
export function localContext(requestId: string, functionName: string): Context {
  const deadline = Date.now() + 900_000;
  return {
    awsRequestId: requestId,
    functionName,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  } as Context;
}

/** A run's summary, one figure a line; `where` follows each s3:// path (e.g. "(local)"). */
export function printSummary(summary: RunSummary, where = ''): void {
  const line = (label: string, value: unknown) => console.log(`  ${label.padEnd(16)} ${String(value)}`);
  line('run id', summary.runId);
  line('devices', summary.devices);
  line('pages', `${summary.pages} (${summary.pageRequests} requests, ${summary.wastedRequests} fetched past the end)`);
  line('duplicates', summary.duplicates);
  line('retries', `${summary.retries} (${summary.throttled} throttled)`);
  line('token grants', summary.tokenRequests);
  line('bytes (gzip)', summary.bytes);
  line('duration', `${summary.durationMs} ms`);
  line('manifest', `s3://${summary.bucket}/${summary.manifestKey}${where}`);
  for (const key of summary.dataKeys) line('data', `s3://${summary.bucket}/${key}${where}`);
}

/**
 * The closing line of a run the handler failed: the function has already logged the error
 * ("Run failed", its one line per failure), so it is not printed a second time here.
 */
export function handlerFailed(what: string): void {
  console.error(`\n${what} failed: the "Run failed" line above says why.`);
}
