import { describe, expect, it, vi } from 'vitest';
import { RetryBudget, TransientError, parseRetryAfter, retrying } from '../../lambda/common/retry.ts';
import { arrivals, exporter, freshPrefix, invokeFailing, invokeOk, objects, reset, useHarness } from './harness.ts';

const h = useHarness();

const json = (status: number) => JSON.stringify({ code: status, message: 'Simulated' });

/**
 * A run under a fresh prefix whose page 1 always answers HTTP `status`: it must fail and
 * publish nothing. Its error, and the simulator to count what was asked of it.
 */
async function pageOneAlwaysFails(status: number, env: Record<string, string> = {}) {
  const prefix = freshPrefix();
  const sim = await reset(h, { fault: ({ pageIndex }) => (pageIndex === 1 ? { status, body: json(status) } : undefined) });
  const error = await invokeFailing(h, await exporter(h, prefix, env), {});
  expect(await objects(h, prefix)).toEqual({});
  return { error, sim };
}

/**
 * The waits before each of `retries` retries of a call that fails with a transient error
 * without Retry-After until its last attempt, with Math.random fixed at `random`; on fake
 * timers, so the waits are exact and cost no time. One random draw per retry.
 */
async function backoffWaits(random: number, retries: number): Promise<number[]> {
  vi.useFakeTimers();
  const draws = vi.spyOn(Math, 'random').mockReturnValue(random);
  try {
    const times: number[] = [];
    const retry = retrying({ maxRetries: retries, budget: new RetryBudget(retries) });
    const result = retry(async () => {
      times.push(Date.now());
      if (times.length <= retries) throw new TransientError('HTTP 503', 503);
      return 'page';
    });
    await vi.runAllTimersAsync();
    await expect(result).resolves.toBe('page');
    expect(draws).toHaveBeenCalledTimes(retries);
    return times.slice(1).map((time, i) => time - (times[i] as number));
  } finally {
    draws.mockRestore();
    vi.useRealTimers();
  }
}

describe('retries', () => {
  it('retries a page that times out, without waiting for its slow answer', async () => {
    const seen = arrivals();
    const sim = await reset(h, {
      fault: ({ pageIndex, attempt }) => {
        seen.mark(pageIndex, attempt);
        return pageIndex === 1 && attempt === 1 ? { delayMs: 2000 } : undefined;
      },
    });
    const handler = await exporter(h, freshPrefix(), { THINGPARK_REQUEST_TIMEOUT_MS: '300' });
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 1 });
    expect(sim.stats.byPage.get(1)).toBe(2);
    // 300 ms timeout + at most 250 ms of backoff; waiting for the slow answer would take 2 s.
    expect(seen.gap(1, 1, 2)).toBeGreaterThanOrEqual(200);
    expect(seen.gap(1, 1, 2)).toBeLessThan(1200);
  });

  it('retries a page whose connection drops without an answer', async () => {
    const sim = await reset(h, { fault: ({ pageIndex, attempt }) => (pageIndex === 2 && attempt === 1 ? { destroy: true } : undefined) });
    const handler = await exporter(h, freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 1 });
    expect(sim.stats.byPage.get(2)).toBe(2);
  });

  it.each([500, 502, 504])('retries HTTP %i until the page comes', async (status) => {
    const sim = await reset(h, { fault: ({ pageIndex, attempt }) => (pageIndex === 1 && attempt <= 2 ? { status, body: json(status) } : undefined) });
    const handler = await exporter(h, freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 2, throttled: 0 });
    expect(sim.stats.byPage.get(1)).toBe(3);
  });

  it.each([429, 503])('honours HTTP %i with Retry-After in seconds', async (status) => {
    const seen = arrivals();
    const sim = await reset(h, {
      fault: ({ pageIndex, attempt }) => {
        seen.mark(pageIndex, attempt);
        return pageIndex === 1 && attempt === 1 ? { status, headers: { 'retry-after': '1' }, body: json(status) } : undefined;
      },
    });
    const handler = await exporter(h, freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 1, throttled: 1 });
    expect(sim.stats.byPage.get(1)).toBe(2);
    expect(seen.gap(1, 1, 2)).toBeGreaterThanOrEqual(950);
    expect(seen.gap(1, 1, 2)).toBeLessThan(1700);
  });

  it('honours HTTP 503 with Retry-After as an HTTP date', async () => {
    const seen = arrivals();
    await reset(h, {
      fault: ({ pageIndex, attempt }) => {
        seen.mark(pageIndex, attempt);
        if (pageIndex !== 1 || attempt !== 1) return undefined;
        // Whole seconds: the date is 1 to 2 s ahead of now.
        return { status: 503, headers: { 'retry-after': new Date(Date.now() + 2000).toUTCString() }, body: json(503) };
      },
    });
    const handler = await exporter(h, freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 1, throttled: 1 });
    expect(seen.gap(1, 1, 2)).toBeGreaterThanOrEqual(950);
    expect(seen.gap(1, 1, 2)).toBeLessThan(2700);
  });

  it('reads Retry-After in both forms, a past date as no wait', () => {
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('retries HTTP 429 and 503 without Retry-After after a bounded backoff', async () => {
    const seen = arrivals();
    const statuses = new Map([
      [1, 429],
      [2, 503],
    ]);
    const sim = await reset(h, {
      fault: ({ pageIndex, attempt }) => {
        seen.mark(pageIndex, attempt);
        const status = statuses.get(pageIndex);
        return status && attempt === 1 ? { status, body: json(status) } : undefined;
      },
    });
    const handler = await exporter(h, freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ status: 'committed', devices: 250, retries: 2, throttled: 2 });
    expect(sim.stats.byPage.get(1)).toBe(2);
    expect(sim.stats.byPage.get(2)).toBe(2);
    // Not parked: the backoff (and any pacing after a rejection) stays within seconds.
    expect(seen.gap(1, 1, 2)).toBeLessThan(5000);
    expect(seen.gap(2, 1, 2)).toBeLessThan(5000);
  });

  it('backs off exponentially with full jitter when the server gives no Retry-After', async () => {
    // The exporter's defaults: 250 ms base, doubling, capped at 20 s; the wait before retry n
    // is random × min(20 s, 250 ms × 2^(n-1)). The cap bites from retry 8 (250 × 2^7 = 32 s).
    const ceilings = [250, 500, 1000, 2000, 4000, 8000, 16_000, 20_000, 20_000];
    expect(await backoffWaits(0.5, ceilings.length)).toEqual([125, 250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    // Random near 1: each wait comes within a millisecond of its ceiling, never over it.
    const high = await backoffWaits(0.999_999, ceilings.length);
    high.forEach((wait, i) => {
      expect(wait, `retry ${i + 1}`).toBeGreaterThanOrEqual((ceilings[i] as number) - 1);
      expect(wait, `retry ${i + 1}`).toBeLessThanOrEqual(ceilings[i] as number);
    });
    // Random 0: full jitter reaches down to no wait at all.
    expect(await backoffWaits(0, ceilings.length)).toEqual(ceilings.map(() => 0));
  });

  it('caps a Retry-After longer than the configured maximum', async () => {
    const calls: number[] = [];
    const retry = retrying({ maxRetries: 1, budget: new RetryBudget(5), maxRetryAfterMs: 200 });
    const started = Date.now();
    const value = await retry(async () => {
      calls.push(Date.now() - started);
      if (calls.length === 1) throw new TransientError('HTTP 429', 429, 3_600_000);
      return 'page';
    });
    expect(value).toBe('page');
    expect(calls[1]).toBeGreaterThanOrEqual(190);
    expect(calls[1]).toBeLessThan(1000);
  });

  it('caps Retry-After at 60 s by default', async () => {
    vi.useFakeTimers();
    try {
      let calls = 0;
      const retry = retrying({ maxRetries: 1, budget: new RetryBudget(5) });
      const result = retry(async () => {
        calls += 1;
        if (calls === 1) throw new TransientError('HTTP 503', 503, 3_600_000);
        return 'page';
      });
      await vi.advanceTimersByTimeAsync(59_900);
      expect(calls).toBe(1);
      await vi.advanceTimersByTimeAsync(200);
      expect(calls).toBe(2);
      await expect(result).resolves.toBe('page');
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops waiting for Retry-After as soon as the caller aborts', async () => {
    const retry = retrying({ maxRetries: 3, budget: new RetryBudget(5) });
    const controller = new AbortController();
    const reason = new Error('deadline');
    setTimeout(() => controller.abort(reason), 100);
    const started = Date.now();
    await expect(
      retry(async () => {
        throw new TransientError('HTTP 429', 429, 30_000);
      }, controller.signal),
    ).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('gives up on a page after THINGPARK_MAX_RETRIES retries, naming the page', async () => {
    const { error, sim } = await pageOneAlwaysFails(500, { THINGPARK_MAX_RETRIES: '2' });
    expect(error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR', status: 500 });
    expect(error.message).toMatch(/Gave up after 2 retries \(THINGPARK_MAX_RETRIES\).*page 1: HTTP 500/);
    expect(sim.stats.byPage.get(1)).toBe(3);
  });

  it('makes one request per page when THINGPARK_MAX_RETRIES is 0', async () => {
    const { error, sim } = await pageOneAlwaysFails(502, { THINGPARK_MAX_RETRIES: '0' });
    // The handler's modules are loaded afresh per cold start: compare names, not classes.
    expect(error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR', status: 502 });
    expect(error.message).toContain('page 1: HTTP 502');
    expect(sim.stats.byPage.get(1)).toBe(1);
  });

  it('stops the run with RetryBudgetError once RUN_RETRY_BUDGET is spent', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h, { fleet: 1000, fault: ({ attempt }) => (attempt === 1 ? { status: 500, body: json(500) } : undefined) });
    // One page at a time, and the window kept at one: a window grown by the pages that got
    // through would have sent pages past page 3 before its failure spent the budget.
    const handler = await exporter(h, prefix, {
      RUN_RETRY_BUDGET: '3',
      THINGPARK_MAX_RETRIES: '5',
      THINGPARK_CONCURRENCY: '1',
      THINGPARK_MAX_CONCURRENCY: '1',
    });
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'RetryBudgetError', code: 'RETRY_BUDGET_SPENT' });
    expect(error.message).toContain('RUN_RETRY_BUDGET');
    expect(error.message).toContain('page 3: HTTP 500');
    // Pages 0-2 retried once each (3 retries), page 3 failed once and was not retried.
    expect([...sim.stats.byPage.entries()]).toEqual([
      [0, 2],
      [1, 2],
      [2, 2],
      [3, 1],
    ]);
    expect(sim.stats.requests).toBe(7);
    expect(await objects(h, prefix)).toEqual({});
  });

  it.each([400, 403, 404, 422])('does not retry HTTP %i: one request for that page, and the run fails', async (status) => {
    const { error, sim } = await pageOneAlwaysFails(status);
    expect(error).toMatchObject({ name: 'PlatformError', status });
    expect(error.message).toContain(`page 1: HTTP ${status}`);
    expect(sim.stats.byPage.get(1)).toBe(1);
  });

  it('re-grants once on a 401 and fails if a fresh token is refused too', async () => {
    const { error, sim } = await pageOneAlwaysFails(401, { THINGPARK_CONCURRENCY: '1' });
    expect(error).toMatchObject({ name: 'PlatformError', status: 401 });
    expect(error.message).toContain('page 1');
    expect(sim.stats.byPage.get(1)).toBe(2);
    expect(sim.tokens.grants).toBe(2);
  });
});
