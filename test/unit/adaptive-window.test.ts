import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RatePacer } from '../../lambda/platform/rate-pacer.ts';
import { AdaptiveWindow, type Ticket, type WindowOptions } from '../../lambda/platform/adaptive-window.ts';

/** A window on the fake clock (vi.useFakeTimers moves Date.now). */
function windowOf(max: number, options: WindowOptions = {}): AdaptiveWindow {
  return new AdaptiveWindow(max, { now: () => Date.now(), ...options });
}

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

/**
 * A platform behind the window, on the fake clock, and a caller that keeps `backlog`
 * requests under way (waiting at the window or on the wire), as the pager does while it
 * has work: each is answered `latency(inFlight)` ms after it was admitted, `inFlight`
 * counted as it was sent; one for which `refuse` says so is answered 429. Every limit the
 * window takes is recorded with its time and the number of answers so far.
 */
function platform(window: AdaptiveWindow, options: { latency: (inFlight: number) => number; backlog?: number; refuse?: (ticket: Ticket) => boolean }) {
  const { latency, refuse = () => false } = options;
  let backlog = options.backlog ?? window.max + 1;
  const start = Date.now();
  // `at`: milliseconds since the platform started.
  const steps = [{ limit: window.limit, at: 0, answers: 0 }];
  let answers = 0;
  let priority = 0;
  let underWay = 0;
  const send = (): void => {
    underWay += 1;
    void window.acquire((priority += 1)).then((ticket) => {
      setTimeout(() => {
        if (refuse(ticket)) window.rejected(ticket);
        else window.succeeded(ticket);
        answers += 1;
        if (window.limit !== steps.at(-1)?.limit) steps.push({ limit: window.limit, at: Date.now() - start, answers });
        window.release();
        underWay -= 1;
        fill();
      }, latency(window.inFlight));
    });
  };
  const fill = (): void => {
    while (underWay < backlog) send();
  };
  fill();
  return {
    /** Every limit taken, in order. */
    limits: () => steps.map((step) => step.limit),
    steps,
    /** From now on the caller keeps this many under way (0: stops). */
    keep: (requests: number) => {
      backlog = requests;
      fill();
    },
  };
}

/**
 * `callers` callers, each sending one request after the other through the window with its
 * pacer, `workMs` of their own work between requests (parsing, writing) and answers after
 * `latencyMs`, against NGINX's leaky bucket of `perSecond` (burst 2), for `seconds` on the
 * fake clock. Every rejection goes back to the window, as the pager gives it.
 */
async function demandAgainstBucket(options: { perSecond: number; workMs: number; latencyMs: number; seconds: number; callers: number }) {
  const { perSecond, workMs, latencyMs, seconds, callers } = options;
  const pacer = new RatePacer(() => Date.now());
  const window = windowOf(8, { pacer });
  const bucket = { level: 0, at: Date.now() };
  const end = Date.now() + seconds * 1000;
  let accepted = 0;
  let rejected = 0;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const caller = async (priority: number) => {
    while (Date.now() < end) {
      const ticket = await window.acquire(priority);
      bucket.level = Math.max(0, bucket.level - ((Date.now() - bucket.at) / 1000) * perSecond);
      bucket.at = Date.now();
      const ok = bucket.level <= 2;
      if (ok) bucket.level += 1;
      if (latencyMs > 0) await sleep(latencyMs);
      if (ok) {
        accepted += 1;
        window.succeeded(ticket);
      } else {
        rejected += 1;
        window.rejected(ticket);
      }
      window.release();
      await sleep(workMs);
    }
  };
  const running = Array.from({ length: callers }, (_, priority) => caller(priority));
  await vi.advanceTimersByTimeAsync(seconds * 1000 + 1000);
  await Promise.all(running);
  return { share: accepted / seconds / perSecond, rejectedShare: rejected / (accepted + rejected) };
}

const settle = () => vi.advanceTimersByTimeAsync(0);

/** A window of 8 with its pacer, eight requests admitted at once and the first refused: the pacer's first cut. */
async function firstCut() {
  const pacer = new RatePacer(() => Date.now());
  const window = windowOf(8, { pacer });
  const queued = queue(window);
  for (let i = 0; i < 8; i += 1) void queued.request(i);
  await settle();
  window.rejected(queued.tickets.get(0) as Ticket);
  return { pacer, window, ...queued };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('AdaptiveWindow', () => {
  it('never has more than its limit in flight; each release admits the next', async () => {
    const window = windowOf(3);
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
    const window = windowOf(1);
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
    const window = windowOf(8);
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

  it('does not shrink below its minimum', async () => {
    const window = windowOf(4, { min: 2 });
    const { tickets, request } = queue(window);
    for (let i = 0; i < 5; i += 1) {
      void request(i);
      await vi.advanceTimersByTimeAsync(60_000);
      window.rejected(tickets.get(i) as Ticket);
      window.release();
    }
    expect(window.cuts).toBe(5);
    expect(window.limit).toBe(2);
  });

  it('does not grow past where it starts when that is its ceiling', async () => {
    const window = windowOf(4);
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(10_000);
    sim.keep(0);
    expect(sim.limits()).toEqual([4]);
    expect(window.maxInFlight).toBe(4);
  });

  it('doubles each round trip while latency holds, up to its ceiling', async () => {
    const window = windowOf(32, { initial: 4 });
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(10_000);
    sim.keep(0);
    // One round trip at 4, one at 8, one at 16: slow start, as a run of a hundred pages needs.
    expect(sim.limits()).toEqual([4, 8, 16, 32]);
    expect(sim.steps.map((step) => step.at)).toEqual([0, 100, 200, 300]);
    expect(window.limit).toBe(32);
    expect(window.reach).toBe(32);
    expect(window.maxInFlight).toBe(32);
    expect(window.lowestLatency).toBe(100);
  });

  it('grows by one per two round trips near the ceiling, where doubling would pass it, and never past it', async () => {
    const window = windowOf(24, { initial: 4 });
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(20_000);
    sim.keep(0);
    // 16 doubled would be 32: from 16 on, one at a time, each after at least twice the limit in answers.
    expect(sim.limits()).toEqual([4, 8, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    for (let i = 3; i < sim.steps.length; i += 1) {
      const [before, after] = [sim.steps[i - 1], sim.steps[i]] as [(typeof sim.steps)[0], (typeof sim.steps)[0]];
      expect(after.answers - before.answers).toBeGreaterThanOrEqual(2 * before.limit);
    }
    expect(window.maxInFlight).toBe(24);
  });

  it('grows through jitter that stays within the tolerance', async () => {
    const window = windowOf(32, { initial: 4 });
    let turn = 0;
    // 100 ms and 140 ms in turn: a mean of 120 ms, within 1.5 x the lowest.
    const sim = platform(window, { latency: () => ((turn += 1) % 2 === 0 ? 100 : 140) });
    await vi.advanceTimersByTimeAsync(30_000);
    sim.keep(0);
    expect(window.limit).toBe(32);
  });

  it('stops growing in the first round trip whose latency rises, and stays there', async () => {
    const window = windowOf(32, { initial: 4 });
    // A client or platform that answers 8 at once in 100 ms, and more only by queueing them:
    // past 8 in flight the latency triples.
    const sim = platform(window, { latency: (inFlight) => (inFlight <= 8 ? 100 : 300) });
    await vi.advanceTimersByTimeAsync(30_000);
    sim.keep(0);
    // The round at 16 showed the rise: no further growth, in slow start or after it.
    expect(sim.limits()).toEqual([4, 8, 16]);
    expect(window.maxInFlight).toBe(16);
  });

  it('stops growing at once when latency rises early, even far below the ceiling', async () => {
    const window = windowOf(32, { initial: 4 });
    const sim = platform(window, { latency: (inFlight) => 100 * Math.max(1, inFlight / 4) });
    await vi.advanceTimersByTimeAsync(30_000);
    sim.keep(0);
    expect(sim.limits()).toEqual([4, 8]);
  });

  it('grows only while its requests fill it: a window the caller does not use says nothing', async () => {
    const window = windowOf(32, { initial: 4 });
    // The caller never has more than 3 requests to send (the writer lags, say).
    const sim = platform(window, { latency: () => 100, backlog: 3 });
    await vi.advanceTimersByTimeAsync(10_000);
    sim.keep(0);
    expect(sim.limits()).toEqual([4]);
    expect(window.reach).toBe(4);
  });

  it('still doubles once its caller has many requests to send after rounds with few, as a cursor read after its plan', async () => {
    const window = windowOf(32, { initial: 4 });
    // The plan: probes one pair after another, two under way, for six round trips.
    const sim = platform(window, { latency: () => 300, backlog: 2 });
    await vi.advanceTimersByTimeAsync(1_800);
    expect(window.limit).toBe(4);
    // Then the ranges, each with a request to send: one round trip at 4, one at 8, one at 16.
    sim.keep(33);
    await vi.advanceTimersByTimeAsync(1_000);
    sim.keep(0);
    expect(sim.limits()).toEqual([4, 8, 16, 32]);
    expect(sim.steps.slice(1).map((step) => step.at)).toEqual([2_100, 2_400, 2_700]);
  });

  it('comes back toward what its caller uses once the caller uses less, never below where it started', async () => {
    const window = windowOf(32, { initial: 4 });
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(window.limit).toBe(32);
    // The caller now keeps only 6 under way (its CPU is spent, say): half way back each round.
    sim.keep(6);
    await vi.advanceTimersByTimeAsync(10_000);
    const after = sim.limits().slice(sim.limits().lastIndexOf(32) + 1);
    expect(after.slice(0, 4)).toEqual([19, 13, 10, 8]);
    // Then about what is used (6 of 7 or 8 in flight), and the pager's reach with it.
    expect(window.limit).toBeGreaterThanOrEqual(7);
    expect(window.limit).toBeLessThanOrEqual(8);
    expect(window.reach).toBe(window.limit);
    // A caller that uses nothing at all does not take it below where it started.
    sim.keep(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(window.limit).toBe(4);
    sim.keep(0);
  });

  it('halves on 429/503 and regrows afterwards one at a time, never doubling again', async () => {
    const window = windowOf(32, { initial: 4 });
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(350);
    expect(window.limit).toBe(32);
    // One request (the first in line: priority 0) is refused: the window halves, once.
    const { request, tickets } = queue(window);
    void request(0);
    await vi.advanceTimersByTimeAsync(100);
    window.rejected(tickets.get(0) as Ticket);
    window.release();
    expect(window.limit).toBe(16);
    expect(window.cuts).toBe(1);
    // The pager keeps fetching as far ahead as before the cut.
    expect(window.reach).toBe(32);
    await vi.advanceTimersByTimeAsync(30_000);
    sim.keep(0);
    const after = sim.steps.slice(sim.steps.findIndex((step) => step.limit === 16 && step.at > 350));
    // 16, 17, 18, ... back to the ceiling: by one, each after at least twice the limit in answers.
    expect(after.map((step) => step.limit)).toEqual(Array.from({ length: 17 }, (_, i) => 16 + i));
    for (let i = 1; i < after.length; i += 1) {
      const [before, next] = [after[i - 1], after[i]] as [(typeof after)[0], (typeof after)[0]];
      expect(next.answers - before.answers).toBeGreaterThanOrEqual(2 * before.limit);
    }
  });

  it('grows no further than carries the pacer rate at the latency seen', async () => {
    // A pacer that paces at 100 requests/s, as one does after a push-back: at 100 ms,
    // 10 requests in flight carry it.
    class Paced extends RatePacer {
      override get rate(): number {
        return 100;
      }
    }
    const window = windowOf(32, { initial: 4, pacer: new Paced(() => Date.now()) });
    const sim = platform(window, { latency: () => 100 });
    await vi.advanceTimersByTimeAsync(20_000);
    sim.keep(0);
    // 100/s x 0.1 s = 10, plus one; the pacer, not the window, is the bound there.
    expect(sim.limits()).toEqual([4, 8, 11]);
    expect(window.maxInFlight).toBeLessThanOrEqual(11);
  });

  it('admits no faster than the pacer once the platform has pushed back', async () => {
    const { pacer, window, admitted, tickets, request } = await firstCut();
    // Unpaced until then: the whole window at once.
    expect(admitted).toHaveLength(8);
    window.rejected(tickets.get(1) as Ticket); // same epoch: one cut
    for (let i = 0; i < 8; i += 1) window.release();
    // Sent after the cut (once the pacer lets it) and refused: a second cut, additive phase.
    void request(8);
    await vi.advanceTimersByTimeAsync(150);
    expect(admitted).toHaveLength(9);
    window.rejected(tickets.get(8) as Ticket);
    window.release();
    // The window passed both rejections on: the pacer is cut twice and paces at a finite rate.
    expect(pacer.cuts).toBe(2);
    const rate = pacer.rate;
    expect(rate).toBeLessThan(Number.POSITIVE_INFINITY);
    for (let i = 9; i < 40; i += 1) void request(i);
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
    const window = windowOf(4, { pacer });
    const { admitted, tickets, request } = queue(window);
    void request(0);
    await settle();
    // The first request of a run is rejected: the pacer starts from ~1 request/s ...
    window.rejected(tickets.get(0) as Ticket);
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
    const window = windowOf(1);
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
  it('tells the pacer when requests wait: its probe grows only while they do', async () => {
    const { pacer, window, admitted, request } = await firstCut();
    for (let i = 0; i < 8; i += 1) window.release();
    const probe = pacer.rate;
    // A second in which nothing waits (the run's plan waits on requests sleeping through a Retry-After).
    await vi.advanceTimersByTimeAsync(1000);
    expect(pacer.rate).toBeCloseTo(probe);
    // Two requests wake together: the second waits for the pacer, and the probe grows meanwhile.
    void request(8);
    void request(9);
    await vi.advanceTimersByTimeAsync(100);
    expect(admitted).toHaveLength(9);
    expect(pacer.rate).toBeGreaterThan(probe * 1.2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(admitted).toHaveLength(10);
    const grown = pacer.rate;
    await vi.advanceTimersByTimeAsync(1000);
    expect(pacer.rate).toBe(grown);
  });

  it('tells the pacer nothing waits when the last waiting request is aborted', async () => {
    const { pacer, window, request } = await firstCut();
    for (let i = 0; i < 8; i += 1) window.release();
    // A look-ahead request waits for the pacer, then its range ends and it is aborted.
    const lookAhead = new AbortController();
    const aborted = request(8, lookAhead.signal).catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(10);
    lookAhead.abort(new Error('range ended'));
    await expect(aborted).resolves.toMatchObject({ message: 'range ended' });
    const probe = pacer.rate;
    await vi.advanceTimersByTimeAsync(1000);
    expect(pacer.rate).toBe(probe);
  });

  it.each([
    { callers: 1, workMs: 45, latencyMs: 0 },
    { callers: 1, workMs: 25, latencyMs: 0 },
    { callers: 2, workMs: 30, latencyMs: 50 },
    { callers: 4, workMs: 140, latencyMs: 20 },
  ])(
    'paces a run whose own work holds it a little above a 20/s limit ($callers callers, $workMs ms of work, $latencyMs ms latency): ≤ 5 % rejected',
    async (demand) => {
      const result = await demandAgainstBucket({ ...demand, perSecond: 20, seconds: 60 });
      expect(result.rejectedShare).toBeLessThanOrEqual(0.05);
      expect(result.share).toBeGreaterThanOrEqual(0.9);
    },
  );
});
