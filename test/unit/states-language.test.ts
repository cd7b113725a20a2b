import { describe, expect, it } from 'vitest';
import { run, type TaskRunner } from '../support/states-execution.ts';
import { CONTEXT_FIELDS, LAMBDA_INVOKE, LIST_EXECUTIONS, load, StatesError } from '../support/states-language.ts';

const FUNCTION = 'arn:aws:lambda:eu-west-1:123456789012:function:f';

/** A Task state invoking the function with the state's input as its payload, unless `fields` say otherwise. */
const invoke = (fields: Record<string, unknown> = {}) => ({
  Type: 'Task',
  Resource: LAMBDA_INVOKE,
  Parameters: { FunctionName: FUNCTION, 'Payload.$': '$' },
  ...fields,
});
const definition = (States: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ StartAt: Object.keys(States)[0], States, ...extra });

/** A task answering `{ Payload: answer(payload) }`, or throwing what `answer` throws; every call kept. */
function recording(answer: (payload: unknown, state: string) => unknown = (payload) => payload) {
  const calls: { state: string; parameters: unknown }[] = [];
  const task: TaskRunner = async (state, parameters) => {
    calls.push({ state, parameters });
    return { Payload: answer((parameters as { Payload: unknown }).Payload, state), StatusCode: 200 };
  };
  return { calls, task };
}

const failing = (error: string, cause?: string) => () => {
  throw new StatesError(error, cause);
};

describe('a Task state', () => {
  it('shapes its payload with InputPath and Parameters, and its output with ResultSelector, ResultPath and OutputPath', async () => {
    const machine = load(
      definition({
        Work: invoke({
          InputPath: '$.job',
          Parameters: { FunctionName: FUNCTION, Payload: { fixed: 'f', nested: { 'id.$': '$.id' }, 'whole.$': '$' } },
          ResultSelector: { 'status.$': '$.Payload.status', 'all.$': '$.Payload', constant: 'kept' },
          ResultPath: '$.job.result',
          OutputPath: '$.job',
          End: true,
        }),
      }),
    );
    const { calls, task } = recording(() => ({ status: 'done', rows: 3 }));
    const result = await run(machine, { job: { id: 'a1' }, other: true }, { task });

    expect(calls).toEqual([{ state: 'Work', parameters: { FunctionName: FUNCTION, Payload: { fixed: 'f', nested: { id: 'a1' }, whole: { id: 'a1' } } } }]);
    expect(result.output).toEqual({ id: 'a1', result: { status: 'done', all: { status: 'done', rows: 3 }, constant: 'kept' } });
  });

  it('replaces its input with the result by default, and keeps its input with a null ResultPath', async () => {
    const { task } = recording(() => 'answer');
    const replaced = await run(load(definition({ Work: invoke({ End: true }) })), { a: 1 }, { task });
    expect(replaced.output).toEqual({ Payload: 'answer', StatusCode: 200 });
    const kept = await run(load(definition({ Work: invoke({ ResultPath: null, End: true }) })), { a: 1 }, { task });
    expect(kept.output).toEqual({ a: 1 });
  });

  it('fails the execution as States.Runtime when a path selects nothing, past its Catch', async () => {
    const machine = load(
      definition({
        Work: invoke({ OutputPath: '$.missing', Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true }),
        Caught: { Type: 'Succeed' },
      }),
    );
    const result = await run(machine, {}, recording());
    expect(result.error?.name).toBe('States.Runtime');
    expect(result.error?.message).toContain("'$.missing'");
  });

  it('fails with States.Timeout when its task outlasts TimeoutSeconds', async () => {
    const machine = load(definition({ Work: invoke({ TimeoutSeconds: 1, End: true }) }));
    const result = await run(machine, {}, { task: () => new Promise((resolve) => setTimeout(resolve, 1500)) });
    expect(result.error).toEqual({ name: 'States.Timeout', message: '' });
  });

  it('lets an error that is not a StatesError (a fault of the caller) out of the run', async () => {
    const machine = load(definition({ Work: invoke({ Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true }), Caught: { Type: 'Succeed' } }));
    await expect(run(machine, {}, { task: () => Promise.reject(new TypeError('broken harness')) })).rejects.toThrow('broken harness');
  });
});

describe('Retry and Catch', () => {
  const retrying = (Catch?: unknown[]) =>
    load(
      definition({
        Work: invoke({
          Retry: [
            { ErrorEquals: ['Busy'], IntervalSeconds: 2, MaxAttempts: 4, BackoffRate: 3, MaxDelaySeconds: 10 },
            { ErrorEquals: ['Refused'], MaxAttempts: 0 },
            { ErrorEquals: ['States.ALL'], MaxAttempts: 2 },
          ],
          ...(Catch ? { Catch } : {}),
          End: true,
        }),
        Recover: { Type: 'Succeed' },
      }),
    );

  it('retries with the first retrier that matches, each with its own count, delays growing by BackoffRate up to MaxDelaySeconds', async () => {
    const errors = ['Busy', 'Other', 'Busy', 'Busy', 'Other', 'Busy'];
    const { calls, task } = recording(() => {
      const next = errors.shift();
      if (next) throw new StatesError(next, `cause of ${next}`);
      return 'ok';
    });
    const result = await run(retrying(), { n: 1 }, { task });
    expect(result.output).toEqual({ Payload: 'ok', StatusCode: 200 });
    expect(calls).toHaveLength(7);
    const retried = result.events.flatMap((event) => (event.type === 'StateRetried' ? [[event.Error, event.attempt, event.delaySeconds]] : []));
    // Busy: 2, 6, 18 capped at 10, then 10; States.ALL: 1 (its defaults: 1 second, rate 2), then 2.
    expect(retried).toEqual([
      ['Busy', 1, 2],
      ['Other', 1, 1],
      ['Busy', 2, 6],
      ['Busy', 3, 10],
      ['Other', 2, 2],
      ['Busy', 4, 10],
    ]);
  });

  it('does not fall through to a later retrier once the matching one is exhausted', async () => {
    const { calls, task } = recording(failing('Refused', 'no'));
    const result = await run(retrying(), {}, { task });
    expect(calls).toHaveLength(1);
    expect(result.error).toEqual({ name: 'Refused', message: 'no' });
    expect(result.events.at(-1)).toEqual({ type: 'ExecutionFailed', Error: 'Refused', Cause: 'no' });
  });

  it('catches an error once its retries are exhausted, placing { Error, Cause } at the catcher ResultPath on the state input', async () => {
    const { calls, task } = recording(failing('Broken', 'it broke'));
    const result = await run(
      retrying([
        { ErrorEquals: ['Unrelated'], Next: 'Work' },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'Recover' },
      ]),
      { job: 'j' },
      { task, retryWaitMs: 1 },
    );
    expect(calls).toHaveLength(3);
    expect(result.output).toEqual({ job: 'j', failure: { Error: 'Broken', Cause: 'it broke' } });
    expect(result.events.filter(({ type }) => type === 'StateRetried')).toHaveLength(2);
    expect(result.events.find(({ type }) => type === 'StateCaught')).toMatchObject({ Error: 'Broken', next: 'Recover' });
  });

  it('replaces the input with the error output when the catcher has no ResultPath', async () => {
    const result = await run(retrying([{ ErrorEquals: ['Refused'], Next: 'Recover' }]), { job: 'j' }, recording(failing('Refused')));
    expect(result.output).toEqual({ Error: 'Refused' });
  });
});

describe('a Choice state', () => {
  const machine = load(
    definition({
      Decide: {
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.status', IsPresent: true },
              { Variable: '$.status', StringEquals: 'continue' },
            ],
            Next: 'Again',
          },
          {
            Or: [
              { Variable: '$.nothing', IsPresent: false },
              { Variable: '$.kind', StringEquals: 'a' },
            ],
            Next: 'Other',
          },
        ],
        Default: 'Fallback',
      },
      Again: { Type: 'Fail', Error: 'Again' },
      Other: { Type: 'Fail', Error: 'Other' },
      Fallback: { Type: 'Succeed' },
    }),
  );
  const target = async (input: unknown) => {
    const result = await run(machine, input, recording());
    return result.error?.name ?? 'Fallback';
  };

  it('takes the first rule that holds, And and Or stopping at the first that decides', async () => {
    expect(await target({ status: 'continue', nothing: 1 })).toBe('Again');
    // No status: the And stops at IsPresent, before StringEquals would fail on the missing field.
    expect(await target({ nothing: 1, kind: 'a' })).toBe('Other');
    expect(await target({ status: 'done' })).toBe('Other');
    expect(await target({ status: 7, nothing: 1, kind: 'a' })).toBe('Other');
  });

  it('takes its Default when no rule holds', async () => {
    expect(await target({ status: 'done', nothing: 1, kind: 'b' })).toBe('Fallback');
  });

  it('fails with States.NoChoiceMatched without a Default, and as States.Runtime comparing a missing field', async () => {
    const bare = load(definition({ Decide: { Type: 'Choice', Choices: [{ Variable: '$.x', StringEquals: 'y', Next: 'Done' }] }, Done: { Type: 'Succeed' } }));
    expect((await run(bare, { x: 'z' }, recording())).error?.name).toBe('States.NoChoiceMatched');
    expect((await run(bare, {}, recording())).error?.name).toBe('States.Runtime');
    expect((await run(bare, { x: 'y' }, recording())).output).toEqual({ x: 'y' });
  });

  it('compares with StringEqualsPath a string with another, in the data or in the context object, and Not turns a rule over', async () => {
    const comparing = load(
      definition({
        Decide: {
          Type: 'Choice',
          Choices: [
            { Variable: '$.a', StringEqualsPath: '$.b', Next: 'Same' },
            { Not: { Variable: '$.list[0]', StringEqualsPath: '$$.Execution.Name' }, Next: 'Other' },
          ],
          Default: 'Mine',
        },
        Same: { Type: 'Fail', Error: 'Same' },
        Other: { Type: 'Fail', Error: 'Other' },
        Mine: { Type: 'Succeed' },
      }),
    );
    const target = async (input: unknown) => {
      const result = await run(comparing, input, { identity: { stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:m', name: 'me' }, ...recording() });
      return result.error?.name ?? 'Mine';
    };
    expect(await target({ a: 'x', b: 'x', list: ['me'] })).toBe('Same');
    expect(await target({ a: 'x', b: 'y', list: ['me'] })).toBe('Mine');
    expect(await target({ a: 'x', b: 'y', list: ['someone else'] })).toBe('Other');
    // Only strings are equal as strings: a number is not, even the same one.
    expect(await target({ a: 1, b: 1, list: ['me'] })).toBe('Mine');
    // A missing field compared fails the execution, under Not as anywhere.
    expect(await target({ a: 'x', b: 'y', list: [] })).toBe('States.Runtime');
    expect(await target({ a: 'x', list: ['me'] })).toBe('States.Runtime');
  });

  it('finds a field past the end of an array not present', async () => {
    const present = load(
      definition({
        Decide: { Type: 'Choice', Choices: [{ Variable: '$.list[0].a', IsPresent: true, Next: 'Yes' }], Default: 'No' },
        Yes: { Type: 'Fail', Error: 'Yes' },
        No: { Type: 'Fail', Error: 'No' },
      }),
    );
    expect((await run(present, { list: [{ a: 1 }] }, recording())).error?.name).toBe('Yes');
    expect((await run(present, { list: [] }, recording())).error?.name).toBe('No');
  });
});

describe('a Task state on ListExecutions', () => {
  const listing = (fields: Record<string, unknown> = {}) => ({
    Type: 'Task',
    Resource: LIST_EXECUTIONS,
    Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', StatusFilter: 'RUNNING' },
    ...fields,
  });

  it('hands the runner its resource and its parameters, and keeps what ResultSelector selects of the answer', async () => {
    const calls: unknown[][] = [];
    const machine = load(definition({ List: listing({ ResultSelector: { 'oldest.$': '$.Executions[-1:]' }, ResultPath: '$.running', End: true }) }));
    const result = await run(
      machine,
      { scheduledTime: 't' },
      {
        identity: { stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:m', name: 'e' },
        task: async (...call) => {
          calls.push(call);
          return { Executions: [{ ExecutionArn: 'newer' }, { ExecutionArn: 'older' }] };
        },
      },
    );
    expect(calls).toEqual([['List', { StateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:m', StatusFilter: 'RUNNING' }, LIST_EXECUTIONS]]);
    expect(result.output).toEqual({ scheduledTime: 't', running: { oldest: [{ ExecutionArn: 'older' }] } });
  });

  it('gives a lambda:invoke task its resource too', async () => {
    const resources: string[] = [];
    await run(load(definition({ Work: invoke({ End: true }) })), {}, { task: async (_state, _parameters, resource) => resources.push(resource) });
    expect(resources).toEqual([LAMBDA_INVOKE]);
  });
});

describe('the context object ($$)', () => {
  const identity = { stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:m', name: 'run-1' };
  const echo = (Parameters: Record<string, unknown>) =>
    load(definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, Payload: Parameters }, OutputPath: '$.Payload', End: true }) }));

  it('gives the execution its id, name, input and start, and its state machine its id and name, as Step Functions does', async () => {
    const machine = echo({
      'id.$': '$$.Execution.Id',
      'name.$': '$$.Execution.Name',
      'input.$': '$$.Execution.Input',
      'time.$': '$$.Execution.StartTime',
      'machine.$': '$$.StateMachine.Id',
      'machineName.$': '$$.StateMachine.Name',
    });
    const before = Date.now();
    const { output } = await run(machine, { scheduledTime: 't' }, { identity, ...recording() });
    expect(output).toMatchObject({
      id: 'arn:aws:states:eu-west-1:123456789012:execution:m:run-1',
      name: 'run-1',
      input: { scheduledTime: 't' },
      machine: identity.stateMachineArn,
      machineName: 'm',
    });
    const time = Date.parse((output as { time: string }).time);
    expect(time).toBeGreaterThanOrEqual(before - 1);
    expect(time).toBeLessThanOrEqual(Date.now());
  });

  it('keeps the input the execution started with, whatever the states do to their data', async () => {
    const machine = load(
      definition({
        Change: invoke({ ResultPath: '$.changed', Next: 'Back' }),
        Back: { Type: 'Pass', InputPath: '$$.Execution.Input', End: true },
      }),
    );
    const result = await run(
      machine,
      { a: 1 },
      recording(() => 'x'),
    );
    expect(result.events.find((event) => event.type === 'StateEntered' && event.state.name === 'Back')).toMatchObject({
      state: { input: { a: 1, changed: { Payload: 'x' } } },
    });
    expect(result.output).toEqual({ a: 1 });
  });

  it('names an execution of its own when not told which, of a state machine of this account', async () => {
    const machine = echo({ 'id.$': '$$.Execution.Id' });
    const first = (await run(machine, {}, recording())).output as { id: string };
    const second = (await run(machine, {}, recording())).output as { id: string };
    expect(first.id).toMatch(/^arn:aws:states:eu-west-1:123456789012:execution:machine:[0-9a-f-]{36}$/);
    expect(second.id).not.toBe(first.id);
  });

  it('fills in exactly the fields it lets a definition read', async () => {
    const paths = Object.fromEntries([...CONTEXT_FIELDS].flatMap(([group, fields]) => fields.map((field) => [`${group}.${field}.$`, `$$.${group}.${field}`])));
    const { output } = await run(echo(paths), {}, { identity, ...recording() });
    expect(Object.keys(output as object).sort()).toEqual([...CONTEXT_FIELDS].flatMap(([group, fields]) => fields.map((field) => `${group}.${field}`)).sort());
  });
});

describe('paths with indexes and slices', () => {
  const select = (ResultSelector: Record<string, unknown>) => load(definition({ Work: invoke({ ResultSelector, End: true }) }));
  const answering = (payload: unknown) => recording(() => payload);

  it('selects an element by its index, and a slice from an index to the end as a list', async () => {
    const machine = select({ 'first.$': '$.Payload[0].a', 'last.$': '$.Payload[-1:]', 'lastTwo.$': '$.Payload[-2:]', 'rest.$': '$.Payload[1:]' });
    const { output } = await run(machine, {}, answering([{ a: 1 }, { a: 2 }, { a: 3 }]));
    expect(output).toEqual({ first: 1, last: [{ a: 3 }], lastTwo: [{ a: 2 }, { a: 3 }], rest: [{ a: 2 }, { a: 3 }] });
  });

  it('selects an empty list from an empty array, and fails as States.Runtime on an index past the end', async () => {
    expect((await run(select({ 'last.$': '$.Payload[-1:]' }), {}, answering([]))).output).toEqual({ last: [] });
    const past = await run(select({ 'first.$': '$.Payload[0]' }), {}, answering([]));
    expect(past.error?.name).toBe('States.Runtime');
    expect(past.error?.message).toContain("'$.Payload[0]'");
  });

  it('does not walk an index into an object, or a field into an array', async () => {
    expect((await run(select({ 'x.$': '$.Payload[0]' }), {}, answering({ 0: 'no' }))).error?.name).toBe('States.Runtime');
    expect((await run(select({ 'x.$': '$.Payload.length' }), {}, answering([1]))).error?.name).toBe('States.Runtime');
  });
});

describe('a Pass state', () => {
  it('places its Parameters, rendered from its effective input and the context object, at its ResultPath, then applies OutputPath', async () => {
    const machine = load(
      definition({
        Shape: {
          Type: 'Pass',
          InputPath: '$.job',
          Parameters: { fixed: 'f', 'id.$': '$.id', 'execution.$': '$$.Execution.Name' },
          ResultPath: '$.shaped',
          OutputPath: '$.shaped',
          End: true,
        },
      }),
    );
    const result = await run(
      machine,
      { job: { id: 'a1' } },
      { identity: { stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:m', name: 'n' }, ...recording() },
    );
    expect(result.output).toEqual({ fixed: 'f', id: 'a1', execution: 'n' });
  });

  it('passes its effective input on without Parameters, and goes on to its Next', async () => {
    const machine = load(definition({ Keep: { Type: 'Pass', InputPath: '$.job', Next: 'Done' }, Done: { Type: 'Succeed' } }));
    const result = await run(machine, { job: { id: 'a1' }, other: 1 }, recording());
    expect(result.output).toEqual({ id: 'a1' });
    expect(result.events.map((event) => (event.type === 'StateEntered' ? event.state.name : event.type))).toEqual([
      'ExecutionStarted',
      'Keep',
      'StateExited',
      'Done',
      'StateExited',
      'ExecutionSucceeded',
    ]);
  });
});

describe('Fail and Succeed', () => {
  it('fails with a fixed Error and Cause, or with the ones ErrorPath and CausePath select', async () => {
    const fixed = load(definition({ Stop: { Type: 'Fail', Error: 'Stopped', Cause: 'because' } }));
    expect((await run(fixed, {}, recording())).error).toEqual({ name: 'Stopped', message: 'because' });
    const selected = load(definition({ Stop: { Type: 'Fail', ErrorPath: '$.f.Error', CausePath: '$.f.Cause' } }));
    expect((await run(selected, { f: { Error: 'E', Cause: 'C' } }, recording())).error).toEqual({ name: 'E', message: 'C' });
    expect((await run(selected, { f: { Error: 1, Cause: 'C' } }, recording())).error?.name).toBe('States.Runtime');
  });

  it('succeeds with its input as the output', async () => {
    const result = await run(load(definition({ Done: { Type: 'Succeed' } })), { a: [1] }, recording());
    expect(result.output).toEqual({ a: [1] });
    expect(result.events.map(({ type }) => type)).toEqual(['ExecutionStarted', 'StateEntered', 'StateExited', 'ExecutionSucceeded']);
  });

  it('times the execution out at the definition TimeoutSeconds', async () => {
    const machine = load(definition({ Work: invoke({ End: true }) }, { TimeoutSeconds: 1 }));
    const result = await run(machine, {}, { task: () => new Promise((resolve) => setTimeout(resolve, 1500)) });
    expect(result.error?.name).toBe('States.Timeout');
    expect(result.events.at(-1)?.type).toBe('ExecutionTimedOut');
  });
});

describe('what the interpreter does not implement', () => {
  const refusals: [string, unknown, string][] = [
    ['a field', definition({ Work: invoke({ HeartbeatSeconds: 10, End: true }) }), 'unsupported field "HeartbeatSeconds" in state Work'],
    ['a state type', definition({ Pause: { Type: 'Wait', Seconds: 1, End: true } }), 'unsupported state type "Wait" in state Pause'],
    [
      'a choice operator',
      definition({ C: { Type: 'Choice', Choices: [{ Variable: '$.n', NumericEquals: 1, Next: 'C' }] } }),
      'unsupported choice operator "NumericEquals" in state C',
    ],
    [
      'Not over a list',
      definition({ C: { Type: 'Choice', Choices: [{ Not: [{ Variable: '$.n', IsPresent: true }], Next: 'C' }] } }),
      'unsupported choice rule that is not an object in state C',
    ],
    [
      'a path comparison of another kind',
      definition({ C: { Type: 'Choice', Choices: [{ Variable: '$.n', StringLessThanPath: '$.m', Next: 'C' }] } }),
      'unsupported choice operator "StringLessThanPath" in state C',
    ],
    ['a wildcard', definition({ Work: invoke({ OutputPath: '$.a[*]', End: true }) }), 'unsupported OutputPath "$.a[*]" in state Work'],
    ['a negative index', definition({ Work: invoke({ OutputPath: '$.a[-1]', End: true }) }), 'unsupported OutputPath "$.a[-1]" in state Work'],
    [
      'a slice where one node is selected',
      definition({ Work: invoke({ OutputPath: '$.a[-1:]', End: true }) }),
      'unsupported OutputPath "$.a[-1:]" in state Work',
    ],
    [
      'a step after a slice',
      definition({ Work: invoke({ ResultSelector: { 'x.$': '$.a[-1:].b' }, End: true }) }),
      'unsupported path "$.a[-1:].b" for "x.$" in state Work',
    ],
    ['a slice with an end', definition({ Work: invoke({ ResultSelector: { 'x.$': '$.a[0:2]' }, End: true }) }), 'unsupported path "$.a[0:2]"'],
    [
      'a field of the context object it does not fill in',
      definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, 'Payload.$': '$$.Task.Token' }, End: true }) }),
      'unsupported path "$$.Task.Token" for "Payload.$" in state Work',
    ],
    [
      'the whole context object',
      definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, 'Payload.$': '$$' }, End: true }) }),
      'unsupported path "$$" for "Payload.$" in state Work',
    ],
    ['the context object as a ResultPath', definition({ Work: invoke({ ResultPath: '$$.Execution.Id', End: true }) }), 'unsupported ResultPath'],
    ['an index in a ResultPath', definition({ Work: invoke({ ResultPath: '$.a[0]', End: true }) }), 'unsupported ResultPath "$.a[0]" in state Work'],
    [
      'the context object in a Fail state',
      definition({ Stop: { Type: 'Fail', ErrorPath: '$$.Execution.Name' } }),
      'unsupported ErrorPath "$$.Execution.Name" in state Stop',
    ],
    ['a Pass state with a Result', definition({ P: { Type: 'Pass', Result: { a: 1 }, End: true } }), 'unsupported field "Result" in state P'],
    ['a Pass state without Next or End', definition({ P: { Type: 'Pass' } }), 'unsupported Pass without exactly one of Next and End in state P'],
    [
      'another ListExecutions parameter',
      definition({ List: { Type: 'Task', Resource: LIST_EXECUTIONS, Parameters: { StateMachineArn: 'arn', MaxResults: 1000 }, End: true } }),
      'unsupported field "MaxResults" in the Parameters of state List',
    ],
    [
      'ListExecutions without its state machine',
      definition({ List: { Type: 'Task', Resource: LIST_EXECUTIONS, Parameters: { StatusFilter: 'RUNNING' }, End: true } }),
      `unsupported ${LIST_EXECUTIONS} without StateMachineArn in state List`,
    ],
    [
      'a parameter given twice',
      definition({ List: { Type: 'Task', Resource: LIST_EXECUTIONS, Parameters: { StateMachineArn: 'arn', 'StateMachineArn.$': '$.arn' }, End: true } }),
      'unsupported both StateMachineArn and StateMachineArn.$ in state List',
    ],
    ['another AWS SDK action', definition({ Work: invoke({ Resource: 'arn:aws:states:::aws-sdk:sfn:describeExecution', End: true }) }), 'unsupported Resource'],
    [
      'an intrinsic function',
      definition({ Work: invoke({ ResultSelector: { 'n.$': 'States.Format($.a)' }, End: true }) }),
      'unsupported path "States.Format($.a)" for "n.$" in state Work',
    ],
    [
      'an array in a payload',
      definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, Payload: { list: [{ 'a.$': '$' }] } }, End: true }) }),
      'unsupported array in a payload template in state Work',
    ],
    ['another resource', definition({ Work: invoke({ Resource: 'arn:aws:states:::sqs:sendMessage', End: true }) }), 'unsupported Resource'],
    [
      'another invoke parameter',
      definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, Qualifier: '1' }, End: true }) }),
      'unsupported field "Qualifier"',
    ],
    [
      'a reserved error name',
      definition({ Work: invoke({ Retry: [{ ErrorEquals: ['States.TaskFailed'] }], End: true }) }),
      'unsupported error name States.TaskFailed in state Work',
    ],
    [
      'States.ALL before another rule',
      definition({ Work: invoke({ Retry: [{ ErrorEquals: ['States.ALL'] }, { ErrorEquals: ['E'] }], End: true }) }),
      'in state Work',
    ],
    [
      'jitter',
      definition({ Work: invoke({ Retry: [{ ErrorEquals: ['E'], JitterStrategy: 'FULL' }], End: true }) }),
      'unsupported field "JitterStrategy" in state Work',
    ],
    ['a transition to nowhere', definition({ Work: invoke({ Next: 'Nowhere' }) }), 'unknown state "Nowhere"'],
    ['a Fail state naming no error', definition({ Stop: { Type: 'Fail', Cause: 'why' } }), 'in state Stop'],
    [
      'a field of the definition',
      definition({ Done: { Type: 'Succeed' } }, { QueryLanguage: 'JSONata' }),
      'unsupported field "QueryLanguage" in the definition',
    ],
  ];
  it.each(refusals)('refuses %s when the definition is loaded', (_, refused, message) => {
    expect(() => load(refused)).toThrow(message);
    expect(() => load(refused)).toThrow(/^unsupported /);
  });
});
