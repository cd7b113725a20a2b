import { describe, expect, it } from 'vitest';
import { curationDeadlineError } from '../../lambda/curate/curate-run.ts';

const RUN = '20261207T120000Z';
const stop = (read: number, total: number, elapsedMs: number) => curationDeadlineError(RUN, 20, { read, total, elapsedMs });

describe('a curation stopped at its deadline', () => {
  it('is a DeadlineError, retried, when at its pace the run fits an invocation: it only lacked the time this one had left', () => {
    const error = stop(400_000, 1_000_000, 300_000);
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    expect(error.message).toBe(
      `Stopped curating run ${RUN} 20 s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS), after 300 s with 400000 of its 1000000 devices read; ` +
        'nothing of it is visible and devices_current is as it was. At that pace the whole run takes about 750 s to curate. ' +
        `Curate it in an invocation of its own: {"curate": "${RUN}"}. A run that takes longer than an invocation's 900 s curates only with more CPU: ` +
        "raise the function's memory (functionMemoryMb), which Lambda raises its CPU with.",
    );
  });

  it('is a RunLimitError, not retried, when at its pace the run needs more than any invocation gives', () => {
    const error = stop(600_000, 1_000_000, 870_000);
    expect(error).toMatchObject({ name: 'RunLimitError', code: 'CURATION_TIME_LIMIT' });
    expect(error.message).toContain('after 870 s with 600000 of its 1000000 devices read');
    expect(error.message).toContain(
      `At that pace the whole run takes about 1450 s to curate, more than an invocation's 900 s: raise the function's memory (functionMemoryMb), which Lambda raises its CPU with, then curate it: {"curate": "${RUN}"}.`,
    );
  });

  it('stays a DeadlineError when it cannot tell the pace: nothing read yet, or every device read and the files still being written', () => {
    for (const [read, total] of [
      [0, 1_000_000],
      [1_000_000, 1_000_000],
      [0, 0],
    ] as const) {
      const error = stop(read, total, 880_000);
      expect(error.name).toBe('DeadlineError');
      expect(error.message).not.toContain('At that pace');
    }
    expect(stop(1_000_000, 1_000_000, 880_000).message).toContain('with every one of its 1000000 devices read and its files still being written');
  });

  it('is a DeadlineError at exactly an invocation, and a RunLimitError past it', () => {
    expect(stop(500_000, 1_000_000, 450_000).name).toBe('DeadlineError');
    expect(stop(500_000, 1_000_000, 450_600).name).toBe('RunLimitError');
  });
});
