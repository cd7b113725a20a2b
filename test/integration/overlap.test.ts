import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeError, exporter, freshPrefix, objects, reset, useHarness, type Harness } from '../faults/harness.ts';
import { captureOutput, lambdaContext } from '../support/lambda.ts';
import { StatesError } from '../support/states-language.ts';
import { execute, exporterDefinition, listed, type Execution, type Invoke, type Running } from '../support/step-functions.ts';

/**
 * A schedule that fires while another execution of the stack's state machine runs: the
 * state machine, run locally (test/support/states-language.ts) against the real handler and
 * the stand-ins, its ListExecutions answered with the executions each test says are running.
 */
const h: Harness = useHarness();

const SCHEDULE = { scheduledTime: '2024-05-01T10:00:00Z' };
const RUN_ID = '20240501T100000Z';
/** An execution started an hour before, still running (a run longer than the schedule period). */
const OLDER = listed('older-run', new Date('2024-05-01T09:00:00Z'));

let definition: ReturnType<typeof exporterDefinition>;
beforeAll(() => {
  definition = exporterDefinition();
});

type Handler = Awaited<ReturnType<typeof exporter>>;

/** The handler as a task invokes it, what it printed kept in the harness's journal. */
function invoking(handler: Handler): Invoke {
  return async (event, context) => {
    const { result, error, output } = await captureOutput(() => handler(event as never, context));
    h.journal.push(output, describeError(error));
    if (error !== undefined) throw error instanceof Error ? error : new Error(inspect(error));
    return result;
  };
}

async function runMachine(handler: Handler, input: unknown, options: { running?: Running; name?: string } = {}): Promise<Execution> {
  return execute(definition, input, { invoke: invoking(handler), context: () => lambdaContext(), ...options });
}

/** The states the execution entered, in order. */
const path = (execution: Execution) => execution.events.flatMap((event) => (event.type === 'StateEntered' ? [event.state.name] : []));

/** A fresh prefix, a fleet of 300 and the function cold-started on them. */
async function setUp() {
  const prefix = freshPrefix();
  await reset(h, { fleet: 300 });
  return { prefix, handler: await exporter(h, prefix) };
}

describe('a scheduled execution while an older one runs', () => {
  it('ends at once, succeeded, naming the running execution and why it did not run, without invoking the function', async () => {
    const { prefix, handler } = await setUp();
    const execution = await runMachine(handler, SCHEDULE, { running: (self) => [self, OLDER] });

    expect(execution.error).toBeUndefined();
    expect(execution.output).toEqual({
      status: 'skipped',
      reason: expect.stringContaining('An older execution of this state machine is running (runningExecution)') as string,
      scheduledTime: SCHEDULE.scheduledTime,
      runningExecution: OLDER.ExecutionArn,
    });
    expect(path(execution)).toEqual(['Scheduled?', 'RunningExecutions', 'OlderRunning?', 'SkipSchedule', 'Skipped']);
    // At once: one listing, no invocation, no retry, no request to the platform, nothing written.
    expect(execution.listings).toHaveLength(1);
    expect(execution.invocations).toEqual([]);
    expect(execution.events.filter(({ type }) => type === 'StateRetried')).toEqual([]);
    expect(h.platform.stats.requests).toBe(0);
    expect(await objects(h, prefix)).toEqual({});
  });

  it('of two started together, runs the one both take for the oldest and skips the other', async () => {
    const { handler } = await setUp();
    // The same list for both, most recent first: "b", then "a".
    const together: Running = () => [listed('b'), listed('a')];
    const [a, b] = await Promise.all([
      runMachine(handler, SCHEDULE, { name: 'a', running: together }),
      runMachine(handler, SCHEDULE, { name: 'b', running: together }),
    ]);

    expect(a.output).toMatchObject({ status: 'committed', runId: RUN_ID, devices: 300 });
    expect(b.output).toMatchObject({ status: 'skipped', runningExecution: a.executionArn });
    expect(b.invocations).toEqual([]);
  });
});

describe('a scheduled execution that finds only itself running', () => {
  it('runs as before, with the execution’s own input as the first event', async () => {
    const { handler } = await setUp();
    const execution = await runMachine(handler, SCHEDULE, { running: (self) => [self] });

    expect(execution.output).toMatchObject({ status: 'committed', runId: RUN_ID, devices: 300 });
    expect(path(execution).slice(0, 5)).toEqual(['Scheduled?', 'RunningExecutions', 'OlderRunning?', 'Proceed', 'Export']);
    expect(execution.invocations[0]?.event).toEqual(SCHEDULE);
  });

  it('runs when the listing does not show it yet (nothing listed), and when the listing fails', async () => {
    const { handler } = await setUp();
    const unlisted = await runMachine(handler, SCHEDULE, { running: () => [] });
    expect(unlisted.output).toMatchObject({ status: 'committed', runId: RUN_ID });

    const failing = await runMachine(
      handler,
      { scheduledTime: '2024-05-01T11:00:00Z' },
      {
        running: () => {
          throw new StatesError('Sfn.AccessDeniedException', 'not authorized to perform: states:ListExecutions');
        },
      },
    );
    expect(failing.listings.map(({ error }) => error)).toEqual(['Sfn.AccessDeniedException']);
    expect(failing.output).toMatchObject({ status: 'committed', runId: '20240501T110000Z' });
    expect(failing.invocations[0]?.event).toEqual({ scheduledTime: '2024-05-01T11:00:00Z' });
  });
});

describe('an execution started by hand while an older one runs', () => {
  it.each([
    ['{}', {}],
    ['a label', { label: 'by-hand' }],
  ])('goes straight to Export with %s, without listing the running executions', async (_, input) => {
    const { handler } = await setUp();
    const execution = await runMachine(handler, input, { running: (self) => [self, OLDER] });

    expect(execution.listings).toEqual([]);
    expect(path(execution).slice(0, 2)).toEqual(['Scheduled?', 'Export']);
    expect(execution.output).toMatchObject({ status: 'committed', devices: 300 });
  });
});
