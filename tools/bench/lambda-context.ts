import type { Context } from 'aws-lambda';

/** What the handler reads of a Lambda context, with the 15 minutes a deployed invocation has unless told otherwise. */
export function benchContext(seconds = 900): Context {
  const deadline = Date.now() + seconds * 1000;
  return {
    awsRequestId: `bench${Date.now().toString(16)}`,
    functionName: 'thingpark-exporter-bench',
    getRemainingTimeInMillis: () => deadline - Date.now(),
  } as Context;
}
