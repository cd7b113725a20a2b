import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../lambda/run/summary.ts';
import { exporter, freshPrefix, invokeOk, objects, reset, useHarness } from './harness.ts';

const h = useHarness();

const RUNS = 20;
const FLEET = 1000;

describe('soak', () => {
  it('20 warm invocations with 2 s tokens renewed within and between runs: every run commits, grants bounded, no expired token presented', async () => {
    const prefix = freshPrefix();
    // 10 pages of 100 (+ look-ahead), two at a time, 120 ms each: about 0.7 s a run, so
    // each token (trusted for 1 s of its 2) is renewed during one run or between two.
    const sim = await reset(h, { fleet: FLEET, latencyMs: 120 });
    sim.tokens.lifetimeSeconds = 2;
    const handler = await exporter(h, prefix, { THINGPARK_CONCURRENCY: '2' });
    const ssmBefore = h.ssm.calls;

    const summaries: RunSummary[] = [];
    const started = Date.now();
    for (let i = 0; i < RUNS; i += 1) {
      const scheduledTime = new Date(Date.UTC(2025, 0, 1, 0, i)).toISOString();
      summaries.push(await invokeOk(h, handler, { scheduledTime }));
    }
    const elapsedMs = Date.now() - started;

    expect(summaries.filter((summary) => summary.status !== 'committed' || summary.devices !== FLEET)).toEqual([]);
    // Renewal works: a 2 s token, whole-second expiry, is trusted for 1 s and renewed at its
    // half-life (0.5 s), so grant starts are at least 0.5 s apart ...
    const grants = sim.tokens.grants;
    expect(grants).toBeLessThanOrEqual(Math.floor(elapsedMs / 500) + 1);
    // ... and every token expires within 2 s, so a run that never met a 401 renewed at least that often.
    expect(grants).toBeGreaterThanOrEqual(Math.floor(elapsedMs / 2000));
    expect(sim.stats.unauthorized).toBe(0);
    // Each grant reported by exactly one run; none failed; never one per request.
    expect(summaries.reduce((sum, summary) => sum + summary.tokenRequests, 0)).toBe(grants);
    expect(sim.tokens.requests).toBe(grants);
    const pageRequests = summaries.reduce((sum, summary) => sum + summary.pageRequests, 0);
    expect(grants).toBeLessThan(pageRequests / 5);
    // The credentials were read once for the whole soak (cached 300 s), and nothing was retried.
    expect(h.ssm.calls - ssmBefore).toBe(1);
    expect(summaries.filter((summary) => summary.retries !== 0 || summary.throttled !== 0)).toEqual([]);

    // One manifest per run, and latest at the last one.
    const stored = await objects(h, prefix);
    expect(Object.keys(stored).filter((key) => key.includes('/manifests/'))).toHaveLength(RUNS);
    const latest = JSON.parse(Buffer.from(stored[`${prefix}latest.json`] ?? '', 'base64').toString()) as { runId: string };
    expect(latest.runId).toBe(summaries.at(-1)?.runId);
    // About 0.7 s a run (see above), so renewals stall none: 1.5 s a run on average at most.
    // (The test's own 60 s timeout would end a slower soak before any bound of 60 s could.)
    expect(elapsedMs).toBeLessThan(RUNS * 1500);
  });
});
