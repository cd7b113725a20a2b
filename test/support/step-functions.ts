import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Context } from 'aws-lambda';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';
import { run, type ExecutionEvent } from './states-execution.ts';
import { load, StatesError } from './states-language.ts';

/** What the function's ARN reads as in the definition the tests run. */
export const FUNCTION_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:thingpark-exporter';

/**
 * The exporter stack's state machine definition, as CloudFormation would hand it to Step
 * Functions: the template's DefinitionString (an Fn::Join of text and references) with the
 * function's ARN and the pseudo parameters filled in. Synthesized without bundling.
 */
export function exporterDefinition(context: Record<string, unknown> = {}): unknown {
  const app = new App({ context: { ...cdkJson.context, ...context, 'aws:cdk:bundling-stacks': [] } });
  const stack = new ExporterStack(app, 'DefinitionUnderTest', { env: { account: '123456789012', region: 'eu-west-1' }, settings: settingsFromContext(app) });
  const template = Template.fromStack(stack);
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine')) as { Properties: { DefinitionString: unknown } }[];
  if (machines.length !== 1) throw new Error(`Expected one state machine, found ${machines.length}`);
  const functionId = stack.getLogicalId(stack.function.node.defaultChild as CfnElement);
  return JSON.parse(resolveText(machines[0]?.Properties.DefinitionString, functionId)) as unknown;
}

function resolveText(value: unknown, functionId: string): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => resolveText(part, functionId)).join(join[0]);
  const ref = (value as { Ref?: string }).Ref;
  if (ref === 'AWS::Partition') return 'aws';
  if (ref === 'AWS::Region') return 'eu-west-1';
  if (ref === 'AWS::AccountId') return '123456789012';
  const getAtt = (value as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (getAtt?.[0] === functionId && getAtt[1] === 'Arn') return FUNCTION_ARN;
  throw new Error(`Unexpected reference in the definition: ${JSON.stringify(value)}`);
}

/** An event of the execution's history. */
export type EventLog = ExecutionEvent;

/** The function as the state machine's tasks reach it: an event in, an answer out, or a thrown error. */
export type Invoke = (event: unknown, context: Context) => Promise<unknown>;

export interface Execution {
  /** The execution's output, when it succeeded. */
  output?: unknown;
  /** The execution's failure: the Fail state's error and cause. */
  error?: { name: string; message: string };
  /** Every event of the execution, in order. */
  events: EventLog[];
  /** Each invocation: the task state, the event it was given, and what came of it. */
  invocations: { state: string; event: unknown; answer?: unknown; error?: string }[];
}

/**
 * Runs the definition locally (./states-language.ts: a definition using what it does not
 * implement is refused), every Task state invoking `invoke` in this process as the
 * optimized `lambda:invoke` integration does (`{ FunctionName, Payload }` in, `{ Payload }`
 * out). A thrown error reaches the state machine as Lambda reports a function error: named
 * by its errorType, with `{ errorType, errorMessage }` as its cause. Retries wait
 * `retryWaitMs` instead of their intervals. Each invocation gets `context(state)`: a fresh
 * request id, and the time it may take.
 */
export async function execute(
  definition: unknown,
  input: unknown,
  options: { invoke: Invoke; context: (state: string) => Context; retryWaitMs?: number },
): Promise<Execution> {
  const invocations: Execution['invocations'] = [];
  const task = async (state: string, parameters: unknown) => {
    const { FunctionName, Payload } = parameters as { FunctionName: string; Payload: unknown };
    if (FunctionName !== FUNCTION_ARN) throw new Error(`The ${state} task invokes ${FunctionName}, not the function`);
    const record: Execution['invocations'][number] = { state, event: Payload };
    invocations.push(record);
    try {
      record.answer = await options.invoke(Payload, options.context(state));
      // Lambda answers null for a handler that returns nothing.
      return { Payload: record.answer ?? null, StatusCode: 200 };
    } catch (error) {
      const errorType = error instanceof Error ? error.name : 'Error';
      const errorMessage = error instanceof Error ? error.message : String(error);
      record.error = errorType;
      throw new StatesError(errorType, JSON.stringify({ errorType, errorMessage }));
    }
  };
  const result = await run(load(definition), input, { task, retryWaitMs: options.retryWaitMs });
  return { ...result, invocations };
}
