import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { place, select, type Path } from './json-path.ts';
import {
  StatesError,
  type ChoiceState,
  type FailState,
  type Machine,
  type PassState,
  type Retrier,
  type Rule,
  type TaskState,
  type Template,
} from './states-language.ts';

/** An event of an execution's history, named as Step Functions names its own. */
export type ExecutionEvent =
  | { type: 'ExecutionStarted'; input: unknown }
  | { type: 'StateEntered'; state: { name: string; type: string; input: unknown } }
  | { type: 'StateExited'; state: { name: string; type: string; output: unknown } }
  | { type: 'StateRetried'; state: { name: string; type: string }; Error: string; Cause?: string; attempt: number; delaySeconds: number }
  | { type: 'StateCaught'; state: { name: string; type: string }; Error: string; Cause?: string; next: string }
  | { type: 'ExecutionSucceeded'; output: unknown }
  | { type: 'ExecutionFailed' | 'ExecutionTimedOut'; Error: string; Cause?: string };

/**
 * Runs a Task's resource: its answer, or a thrown StatesError for the state's Retry and Catch
 * to see. Anything else thrown is a fault of the caller and ends the run with it.
 */
export type TaskRunner = (state: string, parameters: unknown, resource: string) => Promise<unknown>;

/** Which execution this is, as its context object (`$$`) says: of which state machine, under which name. */
export interface ExecutionIdentity {
  stateMachineArn: string;
  name: string;
}

export interface RunOptions {
  task: TaskRunner;
  /** How long a retry waits, instead of the delay its retrier asks for (which its event records). */
  retryWaitMs?: number;
  /** By default, an execution with a name of its own of a state machine of this account and region. */
  identity?: ExecutionIdentity;
}

const DEFAULT_STATE_MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:machine';

/** An execution's ARN, as Step Functions makes it from its state machine's and its name. */
export const executionArn = ({ stateMachineArn, name }: ExecutionIdentity) => `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;

/** The context object of an execution: the fields of CONTEXT_FIELDS (./states-language.ts). */
function contextObject(identity: ExecutionIdentity, input: unknown, startTime: Date) {
  return {
    Execution: { Id: executionArn(identity), Input: input, Name: identity.name, StartTime: startTime.toISOString() },
    StateMachine: { Id: identity.stateMachineArn, Name: identity.stateMachineArn.split(':').at(-1) },
  };
}

export type RunResult = ({ output: unknown; error?: undefined } | { output?: undefined; error: { name: string; message: string } }) & {
  events: ExecutionEvent[];
};

/** A States.Runtime failure: it ends the execution, past every Retry and Catch. */
class RuntimeFailure extends Error {}

const copy = (value: unknown): unknown => (value === undefined ? null : JSON.parse(JSON.stringify(value)));

function selected(data: unknown, path: Path | null, what: string, context: unknown): unknown {
  if (path === null) return {};
  const found = select(data, path, context);
  if (!found.found) throw new RuntimeFailure(`The ${what} '${path.text}' matched nothing in ${JSON.stringify(path.context ? context : data)}`);
  return found.value;
}

function render(shape: Template, data: unknown, what: string, context: unknown): unknown {
  if ('path' in shape) return selected(data, shape.path, `${what} path`, context);
  if ('value' in shape) return shape.value;
  return Object.fromEntries(shape.fields.map(([key, inner]) => [key, render(inner, data, what, context)]));
}

function combined(input: unknown, result: unknown, path: Path | null): unknown {
  if (path === null) return input;
  const placed = place(input, path, result);
  if (!placed) throw new RuntimeFailure(`The ResultPath '${path.text}' cannot be placed in ${JSON.stringify(input)}`);
  return placed.placed;
}

/** What Retry and Catch see of an error, and Catch places at its ResultPath. */
const errorOutput = (error: StatesError) => ({ Error: error.error, ...(error.cause === undefined ? {} : { Cause: error.cause }) });

const matches = (errors: string[], name: string) => errors.includes(name) || errors.includes('States.ALL');

function timed(work: Promise<unknown>, seconds: number | undefined): Promise<unknown> {
  if (seconds === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StatesError('States.Timeout')), seconds * 1000);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const delayOf = (retrier: Retrier, attempt: number) => Math.min(retrier.interval * retrier.backoff ** attempt, retrier.maxDelay ?? Number.POSITIVE_INFINITY);

class Execution {
  readonly events: ExecutionEvent[] = [];
  stopped = false;
  constructor(
    private readonly machine: Machine,
    private readonly options: RunOptions,
    /** The context object (`$$`). */
    private readonly context: unknown,
  ) {}

  /** The task's answer, after its retries: or the error no retrier (any more) retries. */
  private async attempt(name: string, state: TaskState, parameters: unknown): Promise<unknown> {
    const attempts = state.retry.map(() => 0);
    for (;;) {
      try {
        return copy(await timed(this.options.task(name, copy(parameters), state.resource), state.timeoutSeconds));
      } catch (error) {
        if (!(error instanceof StatesError)) throw error;
        const index = state.retry.findIndex((retrier) => matches(retrier.errors, error.error));
        const retrier = state.retry[index];
        const made = attempts[index] ?? 0;
        if (!retrier || made >= retrier.maxAttempts || this.stopped) throw error;
        attempts[index] = made + 1;
        const retried = { state: { name, type: 'Task' }, ...errorOutput(error), attempt: made + 1, delaySeconds: delayOf(retrier, made) };
        this.events.push({ type: 'StateRetried', ...retried });
        await sleep(this.options.retryWaitMs ?? 0);
      }
    }
  }

  private async task(name: string, state: TaskState, input: unknown): Promise<{ output: unknown; next?: string }> {
    const effective = selected(input, state.inputPath, 'InputPath', this.context);
    const parameters = state.parameters ? render(state.parameters, effective, 'Parameters', this.context) : effective;
    try {
      const result = await this.attempt(name, state, parameters);
      const kept = state.resultSelector ? render(state.resultSelector, result, 'ResultSelector', this.context) : result;
      return { output: selected(combined(input, kept, state.resultPath), state.outputPath, 'OutputPath', this.context), next: state.next };
    } catch (error) {
      const catcher = error instanceof StatesError ? state.catch.find(({ errors }) => matches(errors, error.error)) : undefined;
      if (!catcher || !(error instanceof StatesError)) throw error;
      const output = errorOutput(error);
      this.events.push({ type: 'StateCaught', state: { name, type: 'Task' }, ...output, next: catcher.next });
      return { output: combined(input, output, catcher.resultPath), next: catcher.next };
    }
  }

  /** A Pass state's output: its result (its Parameters, or its effective input) placed at its ResultPath. */
  private pass(state: PassState, input: unknown): unknown {
    const effective = selected(input, state.inputPath, 'InputPath', this.context);
    const result = state.parameters ? render(state.parameters, effective, 'Parameters', this.context) : effective;
    return selected(combined(input, result, state.resultPath), state.outputPath, 'OutputPath', this.context);
  }

  private holds(rule: Rule, data: unknown): boolean {
    if ('and' in rule) return rule.and.every((inner) => this.holds(inner, data));
    if ('or' in rule) return rule.or.some((inner) => this.holds(inner, data));
    if ('not' in rule) return !this.holds(rule.not, data);
    const found = select(data, rule.variable, this.context);
    if ('isPresent' in rule) return found.found === rule.isPresent;
    const value = selected(data, rule.variable, 'Variable', this.context);
    // A string comparison holds only between strings.
    if ('stringEqualsPath' in rule) return typeof value === 'string' && value === selected(data, rule.stringEqualsPath, 'StringEqualsPath', this.context);
    return value === rule.stringEquals;
  }

  private choose(name: string, state: ChoiceState, input: unknown): string {
    const next = state.choices.find(({ rule }) => this.holds(rule, input))?.next ?? state.default;
    if (next === undefined) throw new StatesError('States.NoChoiceMatched', `No choice rule matched in state ${name}`);
    return next;
  }

  private failure(state: FailState, input: unknown): StatesError {
    const text = (field: string | Path, what: string): string => {
      if (typeof field === 'string') return field;
      const value = selected(input, field, what, this.context);
      if (typeof value !== 'string') throw new RuntimeFailure(`The ${what} selected ${JSON.stringify(value)}, not a string`);
      return value;
    };
    return new StatesError(text(state.error, 'ErrorPath'), state.cause === undefined ? undefined : text(state.cause, 'CausePath'));
  }

  /** The execution's output; a thrown StatesError or RuntimeFailure is its failure. */
  async states(input: unknown): Promise<unknown> {
    let name = this.machine.startAt;
    let data = input;
    for (;;) {
      if (this.stopped) throw new StatesError('States.Timeout');
      const state = this.machine.states.get(name);
      if (!state) throw new RuntimeFailure(`No state ${name}`);
      this.events.push({ type: 'StateEntered', state: { name, type: state.type, input: data } });
      if (state.type === 'Fail') throw this.failure(state, data);
      let next: string | undefined;
      if (state.type === 'Task') ({ output: data, next } = await this.task(name, state, data));
      if (state.type === 'Pass') ({ output: data, next } = { output: this.pass(state, data), next: state.next });
      if (state.type === 'Choice') next = this.choose(name, state, data);
      this.events.push({ type: 'StateExited', state: { name, type: state.type, output: data } });
      if (next === undefined) return data;
      name = next;
    }
  }
}

function timeLimit(seconds: number | undefined, execution: Execution): { limit: Promise<never>; clear: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    if (seconds === undefined) return;
    timer = setTimeout(() => {
      execution.stopped = true;
      reject(new StatesError('States.Timeout', `The execution took more than ${seconds} seconds`));
    }, seconds * 1000);
  });
  return { limit, clear: () => clearTimeout(timer) };
}

/**
 * Runs `machine` on `input`: its output, or its error (name and cause), and its events. A
 * task failure no Retry retries and no Catch catches fails the execution with it.
 */
export async function run(machine: Machine, input: unknown, options: RunOptions): Promise<RunResult> {
  const identity = options.identity ?? { stateMachineArn: DEFAULT_STATE_MACHINE, name: randomUUID() };
  const execution = new Execution(machine, options, contextObject(identity, copy(input), new Date()));
  const { events } = execution;
  events.push({ type: 'ExecutionStarted', input });
  const { limit, clear } = timeLimit(machine.timeoutSeconds, execution);
  try {
    const output = await Promise.race([execution.states(copy(input)), limit]);
    events.push({ type: 'ExecutionSucceeded', output });
    return { output, events };
  } catch (error) {
    if (!(error instanceof StatesError) && !(error instanceof RuntimeFailure)) throw error;
    const failure = error instanceof StatesError ? errorOutput(error) : { Error: 'States.Runtime', Cause: error.message };
    events.push({ type: execution.stopped ? 'ExecutionTimedOut' : 'ExecutionFailed', ...failure });
    return { error: { name: failure.Error, message: failure.Cause ?? '' }, events };
  } finally {
    clear();
  }
}
