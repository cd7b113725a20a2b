import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RatePacer } from '../../lambda/platform/rate-pacer.ts';
import { AdaptiveWindow, type Ticket } from '../../lambda/platform/adaptive-window.ts';

/** Requests queued at the window; `admitted` lists their priorities in admission order. */
function queue(window: AdaptiveWindow) {
  const admitted: number[] = [];
  const tickets = new Map<number, Ticket>();
  const request = (priority: number, signal?: AbortSignal) =>
    window.acquire(priority, signal).then((ticket) => {
      admitted.push(priority);
      tickets.set(priority, ticket);
      return ticket;
    });
  return { admitted, tickets, request };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('AdaptiveWindow', () => {
  it('never has more than its limit in flight; each release admits the next', async () => {
    const window = new AdaptiveWindow(3);
    const { admitted, request } = queue(window);
    for (let i = 0; i < 10; i += 1) void request(i);
    await settle();
    expect(admitted).toEqual([0, 1, 2]);
    expect(window.inFlight).toBe(3);
    for (let i = 3; i < 10; i += 1) {
      window.release();
      await settle();
      expect(admitted).toHaveLength(i + 1);
      expect(window.inFlight).toBe(3);
    }
    expect(window.maxInFlight).toBe(3);
  });

  it('admits the lowest priority (page index) first, arrivals in order among equals', async () => {
    const window = new AdaptiveWindow(1);
    const { admitted, request } = queue(window);
    void request(5);
    await settle();
    for (const priority of [9, 7, 8, 7, 6]) void request(priority);
    // A retried early page arrives last and still goes first.
    void request(2);
    for (let i = 0; i < 6; i += 1) {
      window.release();
      await settle();
    }
    expect(admitted).toEqual([5, 2, 6, 7, 7, 8, 9]);
  });

  it('halves on a rejection, once per burst: tickets from before the cut do not cut again', async () => {
    const window = new AdaptiveWindow(8);
    const { tickets, request } = queue(window);
    for (let i = 0; i < 8; i += 1) void request(i);
    await settle();
    // All eight were sent before any answer: eight 429s are one signal.
    for (let i = 0; i < 8; i += 1) window.rejected(tickets.get(i) as Ticket);
    expect(window.limit).toBe(4);
    expect(window.cuts).toBe(1);
    // A request sent after the cut and refused again is a new signal.
    for (let i = 0; i < 8; i += 1) window.release();
    vi.advanceTimersByTime(60_000);
    void request(100);
    await vi.advanceTimersByTimeAsync(60_000);
    window.rejected(tickets.get(100) as Ticket);
    expect(window.limit).toBe(2);
    expect(window.cuts).toBe(2);
  });

  it('does not shrink below its minimum', () => {
    const window = new AdaptiveWindow(4, 2);
    for (let i = 0; i < 5; i += 1) window.rejected(i);
    expect(window.limit).toBe(2);
  });

  it('grows back by one after twice its limit in consecutive successes, up to max', () => {
    const window = new AdaptiveWindow(8);
    window.rejected(0); // 4
    window.rejected(1); // 2
    expect(window.limit).toBe(2);
    const successesToReach = (limit: number) => {
      let count = 0;
      while (window.limit < limit) {
        window.succeeded();
        count += 1;
      }
      return count;
    };
    expect(successesToReach(3)).toBe(4);
    expect(successesToReach(4)).toBe(6);
    // A rejection in between resets the count: growth needs consecutive successes.
    for (let i = 0; i < 7; i += 1) window.succeeded();
    window.rejected(2); // 2
    expect(window.limit).toBe(2);
    expect(successesToReach(8)).toBe(4 + 6 + 8 + 10 + 12 + 14);
    for (let i = 0; i < 100; i += 1) window.succeeded();
    expect(window.limit).toBe(8);
  });

  it('admits no faster than the pacer once the platform has pushed back', async () => {
    const pacer = new RatePacer(() => Date.now());
    const window = new AdaptiveWindow(8, 1, pacer);
    const { admitted, request } = queue(window);
    // Unpaced: the whole window at once.
    for (let i = 0; i < 8; i += 1) void request(i);
    await settle();
    expect(admitted).toHaveLength(8);
    window.rejected(0);
    window.rejected(0); // same epoch: one cut
    for (let i = 0; i < 8; i += 1) window.release();
    window.rejected(1); // second cut: additive phase
    // The window passed both rejections on: the pacer is cut twice and paces at a finite rate.
    expect(pacer.cuts).toBe(2);
    const rate = pacer.rate;
    expect(rate).toBeLessThan(Number.POSITIVE_INFINITY);
    for (let i = 8; i < 40; i += 1) void request(i);
    const started = admitted.length;
    const times: number[] = [];
    for (let step = 0; step < 2000 && admitted.length < started + 10; step += 1) {
      const before = admitted.length;
      await vi.advanceTimersByTimeAsync(5);
      if (admitted.length > before) {
        times.push(Date.now());
        window.release();
      }
    }
    expect(admitted.length - started).toBeGreaterThanOrEqual(10);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // One request per 1 / rate (to the 5 ms steps of this test), never two at once.
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(Math.floor(1000 / rate / 5) * 5);
  });

  it('follows the pacer as its rate rises: a wait set at a slow early rate does not stall sends', async () => {
    const pacer = new RatePacer(() => Date.now());
    const window = new AdaptiveWindow(4, 1, pacer);
    const { admitted, request } = queue(window);
    void request(0);
    await settle();
    // The first request of a run is rejected: the pacer starts from ~1 request/s ...
    window.rejected(0);
    window.release();
    void request(1);
    await settle();
    expect(admitted).toEqual([0]);
    const first = pacer.delay();
    expect(first).toBeGreaterThan(1000);
    // ... and doubles every 250 ms, so the next send is due long before that first wait.
    await vi.advanceTimersByTimeAsync(500);
    expect(admitted).toEqual([0, 1]);
  });

  it('rejects a waiting request whose signal aborts, and admits the others', async () => {
    const window = new AdaptiveWindow(1);
    const { admitted, request } = queue(window);
    void request(0);
    await settle();
    const controller = new AbortController();
    const aborted = request(1, controller.signal);
    void request(2);
    controller.abort(new Error('page no longer needed'));
    await expect(aborted).rejects.toThrow('page no longer needed');
    window.release();
    await settle();
    expect(admitted).toEqual([0, 2]);
    expect(window.inFlight).toBe(1);
    await expect(window.acquire(3, controller.signal)).rejects.toThrow('page no longer needed');
  });
});
