import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { whenAborted } from '../../lambda/common/abort-callbacks.ts';
import { RetryBudget, TransientError, retrying } from '../../lambda/common/retry.ts';
import { AdaptiveWindow } from '../../lambda/platform/adaptive-window.ts';

const listenersOn = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

/**
 * The abort listeners a run keeps on its long-lived signal. In cursor mode a sweep's signal
 * is shared by a request per range, all waiting in the window at once, and by every retry's
 * wait: measured over a 10,000-page run (tools/diagnose/abort-listeners.ts), 67 at once
 * before the waits shared one listener, which made Node warn from the eleventh on.
 */
describe('abort listeners on a long-lived signal', () => {
  it('stay at one however many requests wait in the window or out a retry, over 10,000 pages, and none after', async () => {
    const run = new AbortController();
    const window = new AdaptiveWindow(2, { initial: 2 });
    const retry = retrying({ maxRetries: 2, budget: new RetryBudget(100_000), baseDelayMs: 1, maxDelayMs: 1 });
    let most = 0;
    let sent = 0;
    const throttled = new Set<number>();
    const page = (index: number) =>
      retry(async (signal) => {
        const ticket = await window.acquire(index, signal);
        most = Math.max(most, listenersOn(run.signal));
        sent += 1;
        await new Promise((resolve) => setImmediate(resolve));
        window.succeeded(ticket);
        window.release();
        // Every seventh page is throttled on its first attempt only, so that retries wait on
        // the signal too and none runs out of retries, however the pages interleave.
        if (index % 7 === 0 && !throttled.has(index)) {
          throttled.add(index);
          throw new TransientError(`page ${index}: HTTP 429`, 429, 1);
        }
        return index;
      }, run.signal);
    // 10,000 pages, 64 asked at once: 62 of each batch wait in a window of 2.
    for (let first = 0; first < 10_000; first += 64) {
      const batch = Array.from({ length: Math.min(64, 10_000 - first) }, (_, i) => page(first + i));
      most = Math.max(most, listenersOn(run.signal));
      await Promise.all(batch);
    }
    expect(sent).toBeGreaterThan(10_000);
    expect(most).toBe(1);
    expect(listenersOn(run.signal)).toBe(0);
  });

  it('an abort still reaches every wait, and a wait stopped before it is not called', () => {
    const run = new AbortController();
    const called: number[] = [];
    const stops = [1, 2, 3].map((n) => whenAborted(run.signal, () => called.push(n)));
    expect(listenersOn(run.signal)).toBe(1);
    stops[1]?.();
    run.abort();
    expect(called).toEqual([1, 3]);
    expect(listenersOn(run.signal)).toBe(0);
  });

  it('aborting the run rejects the requests still waiting in the window with its reason', async () => {
    const run = new AbortController();
    const window = new AdaptiveWindow(1, { initial: 1 });
    await window.acquire(0, run.signal);
    const waiting = [1, 2, 3].map((index) => window.acquire(index, run.signal));
    expect(listenersOn(run.signal)).toBe(1);
    run.abort(new Error('deadline'));
    for (const wait of waiting) await expect(wait).rejects.toThrow('deadline');
    expect(listenersOn(run.signal)).toBe(0);
  });
});
