import { describe, expect, it } from 'vitest';
import { curationDeadlineError } from '../../lambda/curate/curate-run.ts';

const RUN = '20261207T120000Z';
const stop = (read: number, total: number, elapsedMs: number) => curationDeadlineError(RUN, 20, { read, total, elapsedMs });

describe('a curation stopped at its deadline', () => {
  it('is a DeadlineError, retried, saying how far it got, its pace, and that the same event goes on with it', () => {
    const error = stop(400_000, 1_000_000, 300_000);
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    expect(error.message).toBe(
      `Stopped curating run ${RUN} 20 s before the Lambda timeout (RUN_DEADLINE_MARGIN_SECONDS), after 300 s with 400000 of its 1000000 devices read; ` +
        'nothing of it is visible and devices_current is as it was. At that pace its devices alone take about 750 s to curate. ' +
        `Curate it in an invocation of its own: {"curate": "${RUN}"}; a run that needs more than one goes on over several, from the progress each saves.`,
    );
  });

  it('gives no pace when it read nothing (stuck, not slow) or everything (its files were being written)', () => {
    for (const total of [1_000_000, 0]) expect(stop(0, total, 878_000).message).not.toContain('At that pace');
    const read = stop(1_000_000, 1_000_000, 878_000);
    expect(read.message).toContain('with every one of its 1000000 devices read and its files still being written');
    expect(read.message).not.toContain('At that pace');
  });
});
