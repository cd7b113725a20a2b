import { describe, expect, it } from 'vitest';
import { curationDeadlineError } from '../../lambda/curate/curate-run.ts';

const RUN = '20261207T120000Z';
/** The budget of a curation with an invocation to itself (900 s, the 20 s margin aside, a second of start-up), and of one inline after an export. */
const WHOLE = 879_000;
const INLINE = 300_000;
const stop = (read: number, total: number, elapsedMs: number, budgetMs: number) => curationDeadlineError(RUN, 20, { read, total, elapsedMs, budgetMs });

describe('a curation stopped at its deadline', () => {
  it('is a DeadlineError, retried, when it had only what an export left: curated alone, it may fit', () => {
    const error = stop(400_000, 1_000_000, 300_000, INLINE);
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    expect(error.message).toBe(
      `Stopped curating run ${RUN} 20 s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS), after 300 s with 400000 of its 1000000 devices read; ` +
        'nothing of it is visible and devices_current is as it was. At that pace its devices alone take about 750 s to curate. ' +
        `Curate it in an invocation of its own: {"curate": "${RUN}"}. A run that takes longer than an invocation's 900 s curates only with more CPU: ` +
        "raise the function's memory (functionMemoryMb), which Lambda raises its CPU with.",
    );
    // However slow its pace: the time before its first device weighs on a short budget.
    expect(stop(1000, 1_000_000, 290_000, INLINE).name).toBe('DeadlineError');
  });

  it('is a RunLimitError, not retried, when it had an invocation to itself and read devices: the same CPU would fail again', () => {
    const error = stop(600_000, 1_000_000, 870_000, WHOLE);
    expect(error).toMatchObject({ name: 'RunLimitError', code: 'CURATION_TIME_LIMIT' });
    expect(error.message).toContain('after 870 s with 600000 of its 1000000 devices read');
    expect(error.message).toContain(
      "At that pace its devices alone take about 1450 s to curate. It had an invocation to itself: at this CPU the run needs more than an invocation's 900 s. " +
        `Raise the function's memory (functionMemoryMb), which Lambda raises its CPU with, then curate it: {"curate": "${RUN}"}.`,
    );
    // Nearly or wholly read makes no difference: the change rows and the record were still to come.
    expect(stop(990_000, 1_000_000, 878_000, WHOLE).name).toBe('RunLimitError');
    const read = stop(1_000_000, 1_000_000, 878_000, WHOLE);
    expect(read.name).toBe('RunLimitError');
    expect(read.message).toContain('with every one of its 1000000 devices read and its files still being written');
    expect(read.message).not.toContain('At that pace');
  });

  it('is a DeadlineError when it read nothing in a whole invocation: stuck, not slow', () => {
    for (const total of [1_000_000, 0]) {
      const error = stop(0, total, 878_000, WHOLE);
      expect(error.name).toBe('DeadlineError');
      expect(error.message).not.toContain('At that pace');
    }
  });

  it('counts as a whole invocation a budget up to a minute short of 900 s less the margin, and no shorter', () => {
    expect(stop(500_000, 1_000_000, 800_000, 820_000).name).toBe('RunLimitError');
    expect(stop(500_000, 1_000_000, 800_000, 819_999).name).toBe('DeadlineError');
  });
});
