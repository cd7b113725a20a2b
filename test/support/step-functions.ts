import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Context } from 'aws-lambda';
import cdkJson from '../../cdk.json' with { type: 'json' };
import { ExporterStack } from '../../infra/exporter-stack.ts';
import { settingsFromContext } from '../../infra/settings.ts';
import { randomUUID } from 'node:crypto';
import { executionArn, run, type ExecutionEvent } from './states-execution.ts';
import { LAMBDA_INVOKE, LIST_EXECUTIONS, load, StatesError } from './states-language.ts';

/** What the function's ARN reads as in the definition the tests run. */
export const FUNCTION_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:thingpark-exporter';
/** The state machine's ARN, as its executions' context object (`$$.StateMachine.Id`) gives it. */
export const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:thingpark-exporter';

/** An execution as ListExecutions lists it (through the AWS SDK integration: PascalCase). */
export interface ListedExecution {
  ExecutionArn: string;
  StateMachineArn: string;
  Name: string;
  Status: 'RUNNING';
  StartDate: string;
}

/** The running execution of the state machine named `name`, as ListExecutions lists it. */
export function listed(name: string, startDate = new Date()): ListedExecution {
  return {
    ExecutionArn: executionArn({ stateMachineArn: STATE_MACHINE_ARN, name }),
    StateMachineArn: STATE_MACHINE_ARN,
    Name: name,
    Status: 'RUNNING',
    StartDate: startDate.toISOString(),
  };
}

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
  /** Each ListExecutions the execution made: the task state, and what it was answered (or the error it met). */
  listings: { state: string; answer?: unknown; error?: string }[];
  /** The execution's ARN (`$$.Execution.Id`). */
  executionArn: string;
}

/**
 * The executions of the state machine that are RUNNING when `self` lists them, most recent
 * first, as ListExecutions answers; or a thrown StatesError, as the AWS SDK integration
 * reports a failed call.
 */
export type Running = (self: ListedExecution) => ListedExecution[];

/** The default: no other execution is running. */
const ONLY_ITSELF: Running = (self) => [self];

/**
 * Runs the definition locally (./states-language.ts: a definition using what it does not
 * implement is refused) as an execution of STATE_MACHINE_ARN named `name` (by default one of
 * its own). Every `lambda:invoke` Task state invokes `invoke` in this process as the
 * optimized integration does (`{ FunctionName, Payload }` in, `{ Payload }` out). A thrown
 * error reaches the state machine as Lambda reports a function error: named by its
 * errorType, with `{ errorType, errorMessage }` as its cause. Retries wait `retryWaitMs`
 * instead of their intervals. Each invocation gets `context(state)`: a fresh request id, and
 * the time it may take. A `sfn:listExecutions` Task state is answered with `running`'s
 * executions (by default this one alone), and must ask for this state machine's RUNNING ones.
 */
export async function execute(
  definition: unknown,
  input: unknown,
  options: { invoke: Invoke; context: (state: string) => Context; retryWaitMs?: number; name?: string; running?: Running },
): Promise<Execution> {
  const identity = { stateMachineArn: STATE_MACHINE_ARN, name: options.name ?? randomUUID() };
  const self = listed(identity.name);
  const invocations: Execution['invocations'] = [];
  const listings: Execution['listings'] = [];
  const list = (state: string, parameters: unknown) => {
    const { StateMachineArn, StatusFilter } = parameters as { StateMachineArn?: unknown; StatusFilter?: unknown };
    if (StateMachineArn !== STATE_MACHINE_ARN || StatusFilter !== 'RUNNING') {
      throw new Error(`The ${state} task lists ${JSON.stringify(parameters)}, not the running executions of the state machine`);
    }
    const record: Execution['listings'][number] = { state };
    listings.push(record);
    try {
      record.answer = { Executions: (options.running ?? ONLY_ITSELF)(self) };
      return record.answer;
    } catch (error) {
      if (error instanceof StatesError) record.error = error.error;
      throw error;
    }
  };
  const task = async (state: string, parameters: unknown, resource: string) => {
    if (resource === LIST_EXECUTIONS) return list(state, parameters);
    if (resource !== LAMBDA_INVOKE) throw new Error(`The ${state} task's resource ${resource} has no runner`);
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
  const result = await run(load(definition), input, { task, retryWaitMs: options.retryWaitMs, identity });
  return { ...result, invocations, listings, executionArn: self.ExecutionArn };
}
