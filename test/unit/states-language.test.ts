import { describe, expect, it } from 'vitest';
import { run, type TaskRunner } from '../support/states-execution.ts';
import { LAMBDA_INVOKE, load, StatesError } from '../support/states-language.ts';

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
      'Not',
      definition({ C: { Type: 'Choice', Choices: [{ Not: { Variable: '$.n', IsPresent: true }, Next: 'C' }] } }),
      'unsupported choice operator "Not" in state C',
    ],
    ['a path with an index', definition({ Work: invoke({ OutputPath: '$.a[0]', End: true }) }), 'unsupported OutputPath "$.a[0]" in state Work'],
    [
      'the context object',
      definition({ Work: invoke({ Parameters: { FunctionName: FUNCTION, 'Payload.$': '$$.Execution.Id' }, End: true }) }),
      'in state Work',
    ],
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
