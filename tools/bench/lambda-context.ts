import type { Context } from 'aws-lambda';

/** What the handler reads of a Lambda context, with the 15 minutes a deployed invocation has. */
export function benchContext(): Context {
  const deadline = Date.now() + 900_000;
  return {
    awsRequestId: `bench${Date.now().toString(16)}`,
    functionName: 'thingpark-exporter-bench',
    getRemainingTimeInMillis: () => deadline - Date.now(),
  } as Context;
}
