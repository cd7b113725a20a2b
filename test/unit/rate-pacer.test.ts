import { describe, expect, it } from 'vitest';
import { RatePacer } from '../../lambda/platform/rate-pacer.ts';

/** A pacer on a clock the test moves by hand. */
function pacerAt(start = 0) {
  const clock = { now: start };
  const pacer = new RatePacer(() => clock.now);
  return { clock, pacer };
}

/**
 * A client as fast as the pacer lets it (each send costs `costMs`, answers come back after
 * `latencyMs`, at most `concurrency` in flight) against NGINX's leaky bucket, in virtual
 * time; one cut per epoch, as AdaptiveWindow makes them. With `retryAfterMs`, a rejected
 * request sleeps that long and is sent again (before any new one); with `gate`, the first
 * `gate` requests must all be accepted before any other is sent, as a range plan waits on
 * its probes.
 */
function againstLeakyBucket(options: {
  perSecond: number;
  burst: number;
  latencyMs: number;
  seconds: number;
  concurrency?: number;
  costMs?: number;
  retryAfterMs?: number;
  gate?: number;
}) {
  const { perSecond, burst, latencyMs, seconds, concurrency = 8, costMs = 2, retryAfterMs, gate = 0 } = options;
  const { clock, pacer } = pacerAt();
  const answers: { at: number; ok: boolean; epoch: number; gated: boolean }[] = [];
  const sleeping: { at: number; gated: boolean }[] = [];
  const bucket = { level: 0, at: 0 };
  let epoch = 0;
  let inFlight = 0;
  let accepted = 0;
  let rejected = 0;
  let free = 0;
  let gateSent = 0;
  let gateAccepted = 0;
  while (clock.now < seconds * 1000) {
    while (answers.length > 0 && (answers[0] as { at: number }).at <= clock.now) {
      const answer = answers.shift() as { ok: boolean; epoch: number; gated: boolean };
      inFlight -= 1;
      if (answer.ok) {
        pacer.succeeded();
        if (answer.gated) gateAccepted += 1;
        continue;
      }
      if (retryAfterMs !== undefined) sleeping.push({ at: clock.now + retryAfterMs, gated: answer.gated });
      if (answer.epoch === epoch) {
        epoch += 1;
        pacer.cut();
      }
    }
    const awake = sleeping.findIndex((request) => request.at <= clock.now);
    const fresh = gateSent < gate || gateAccepted === gate;
    pacer.waiting(awake >= 0 || fresh);
    const wait = Math.max(pacer.delay(), free - clock.now);
    if (inFlight < concurrency && wait <= 0 && (awake >= 0 || fresh)) {
      const gated = awake >= 0 ? (sleeping.splice(awake, 1)[0] as { gated: boolean }).gated : gateSent < gate;
      if (awake < 0 && gated) gateSent += 1;
      pacer.sent();
      inFlight += 1;
      free = clock.now + costMs;
      bucket.level = Math.max(0, bucket.level - ((clock.now - bucket.at) / 1000) * perSecond);
      bucket.at = clock.now;
      const ok = bucket.level <= burst;
      if (ok) bucket.level += 1;
      if (ok) accepted += 1;
      else rejected += 1;
      answers.push({ at: clock.now + latencyMs, ok, epoch, gated });
      continue;
    }
    const sendable = inFlight < concurrency && (awake >= 0 || fresh);
    const next = Math.min(
      answers[0]?.at ?? Number.POSITIVE_INFINITY,
      sendable ? clock.now + wait : Number.POSITIVE_INFINITY,
      ...sleeping.map((request) => request.at),
    );
    clock.now = Math.max(clock.now + 0.01, next);
  }
  return { share: accepted / seconds / perSecond, rejectedShare: rejected / (accepted + rejected), cuts: pacer.cuts };
}

describe('RatePacer', () => {
  it('does not pace until the platform first pushes back', () => {
    const { clock, pacer } = pacerAt();
    for (let i = 0; i < 1000; i += 1) {
      expect(pacer.delay()).toBe(0);
      pacer.sent();
      pacer.succeeded();
      clock.now += 0.1;
    }
    expect(pacer.rate).toBe(Number.POSITIVE_INFINITY);
    expect(pacer.cuts).toBe(0);
  });

  it('starts from what was sent over the last second, then doubles every 250 ms that requests wait, until the next cut', () => {
    const { clock, pacer } = pacerAt(10_000);
    // A first burst of 8 requests; the rejection arrives before any success.
    for (let i = 0; i < 8; i += 1) pacer.sent();
    pacer.waiting(true);
    pacer.cut();
    expect(pacer.rate).toBeCloseTo(0.9 * 8);
    clock.now += 250;
    expect(pacer.rate).toBeCloseTo(0.9 * 8 * 2);
    clock.now += 500;
    expect(pacer.rate).toBeCloseTo(0.9 * 8 * 8);
  });

  it('does not double through a lull: requests woken together after a Retry-After go at the rate of before', () => {
    const { clock, pacer } = pacerAt(10_000);
    // A plan's first probes, 7 at once: 3 accepted, the rejection arrives before the successes.
    for (let i = 0; i < 7; i += 1) pacer.sent();
    pacer.cut();
    for (let i = 0; i < 3; i += 1) pacer.succeeded();
    // For a second nothing waits to be sent: the plan waits on its refused probes, which
    // sleep through a Retry-After of 1 s.
    clock.now += 1000;
    expect(pacer.rate).toBeCloseTo(0.9 * 7);
    // They wake together, and go one 1 / rate after the other, the rate growing only while they wait.
    pacer.waiting(true);
    pacer.sent();
    expect(pacer.delay()).toBeCloseTo(1000 / (0.9 * 7));
    clock.now += 100;
    expect(pacer.rate).toBeCloseTo(0.9 * 7 * 2 ** (100 / 250));
    pacer.waiting(false);
    clock.now += 1000;
    expect(pacer.rate).toBeCloseTo(0.9 * 7 * 2 ** (100 / 250));
  });

  it('cuts to 0.9 × the accepted rate of the last second, within [75 %, 100 %] of the rate in use', () => {
    const { clock, pacer } = pacerAt(10_000);
    pacer.waiting(true); // a busy run: requests always wait to be sent
    const acceptFiftyInOneSecond = () => {
      for (let i = 0; i < 50; i += 1) {
        clock.now += 20;
        pacer.sent();
        pacer.succeeded();
      }
    };
    pacer.sent();
    pacer.cut(); // rate 0.9, doubling every 250 ms
    clock.now += 1000;
    acceptFiftyInOneSecond(); // meanwhile the platform accepted 50 (its bucket drains 50/s)
    expect(pacer.rate).toBeCloseTo(0.9 * 2 ** 8); // the probe's rate by now: 230 requests/s
    pacer.cut();
    // The climb's last second under-reports: a cut keeps at least 75 % of the rate in use,
    // which is at most twice the 50/s sent, not the 230/s the probe allowed.
    expect(pacer.rate).toBeCloseTo(0.9 * 0.75 * 2 * 50);
    // Saturated at 50/s, a few more cuts (one rejection each) land at 0.9 × 50.
    let cuts = 0;
    while (pacer.rate > 0.9 * 50 + 1e-9 && cuts < 10) {
      acceptFiftyInOneSecond();
      pacer.cut();
      cuts += 1;
    }
    expect(pacer.rate).toBeCloseTo(0.9 * 50);
    expect(cuts).toBeLessThanOrEqual(2);
  });

  it('starts a cut from what was sent, not from a probe that doubled while the window held sends down', () => {
    const { clock, pacer } = pacerAt(10_000);
    pacer.waiting(true); // held back by the window
    for (let i = 0; i < 8; i += 1) pacer.sent();
    pacer.cut(); // 7.2/s, doubling every 250 ms: 470,000/s after 4 s
    // For 4 s the window, not the pacer, holds the sends to 20/s, all accepted ...
    for (let i = 0; i < 80; i += 1) {
      clock.now += 50;
      pacer.sent();
      pacer.succeeded();
    }
    expect(pacer.rate).toBeGreaterThan(100_000);
    // ... then the platform rejects: the pacer takes over at once, at most twice that rate.
    pacer.cut();
    expect(pacer.rate).toBeLessThanOrEqual(0.9 * 2 * 20);
    expect(pacer.rate).toBeGreaterThanOrEqual(0.9 * 20);
  });

  it('cuts from the last cut when nothing was sent over the last second, however far the probe grew', () => {
    const { clock, pacer } = pacerAt(10_000);
    for (let i = 0; i < 8; i += 1) pacer.sent();
    pacer.cut(); // 7.2/s, doubling every 250 ms that requests wait
    // A window held at one request, each answered after more than a second: requests wait
    // for minutes, the probe doubles past any number, and nothing is sent in the last second.
    pacer.waiting(true);
    clock.now += 300_000;
    expect(pacer.rate).toBe(Number.POSITIVE_INFINITY);
    pacer.cut();
    // Nothing in the last second validates the probe: the cut starts from the last one's rate.
    expect(pacer.rate).toBeCloseTo(0.9 * 0.75 * 0.9 * 8);
    pacer.sent();
    expect(pacer.delay()).toBeGreaterThan(0);
  });

  it('never raises the rate on a cut, however much was accepted', () => {
    const { clock, pacer } = pacerAt(10_000);
    pacer.sent();
    pacer.cut();
    pacer.cut(); // additive phase at 0.9 × 0.9 × 0.75... of a tiny rate: MIN_RATE
    clock.now += 10;
    for (let i = 0; i < 500; i += 1) pacer.succeeded();
    const current = pacer.rate;
    pacer.cut();
    expect(pacer.rate).toBeCloseTo(Math.max(RatePacer.MIN_RATE, 0.9 * current));
  });

  it('grows additively, by a fixed share of the cut rate per accepted request', () => {
    const { clock, pacer } = pacerAt(10_000);
    pacer.sent();
    pacer.cut();
    clock.now += 5000;
    for (let i = 0; i < 100; i += 1) pacer.succeeded();
    pacer.cut(); // second cut: additive from here
    const base = pacer.rate;
    for (let i = 0; i < 100; i += 1) pacer.succeeded();
    expect(pacer.rate).toBeCloseTo(base * (1 + 100 * RatePacer.GROWTH_PER_SUCCESS));
    // Time alone does not grow it.
    clock.now += 60_000;
    expect(pacer.rate).toBeCloseTo(base * (1 + 100 * RatePacer.GROWTH_PER_SUCCESS));
  });

  it('spaces sends by 1 / rate and builds no credit while idle', () => {
    const { clock, pacer } = pacerAt(10_000);
    for (let i = 0; i < 10; i += 1) pacer.succeeded();
    pacer.cut(); // first cut: 0.9 × 10 = 9/s, doubling
    pacer.cut(); // second: additive, 0.9 × min(9, max(10, 6.75)) = 8.1/s
    expect(pacer.rate).toBeCloseTo(8.1);
    pacer.sent();
    expect(pacer.delay()).toBeCloseTo(1000 / 8.1);
    clock.now += 60_000;
    expect(pacer.delay()).toBe(0);
    pacer.sent();
    expect(pacer.delay()).toBeCloseTo(1000 / 8.1);
  });

  it('never paces slower than MIN_RATE', () => {
    const { pacer } = pacerAt(10_000);
    pacer.cut();
    expect(pacer.rate).toBe(RatePacer.MIN_RATE);
  });

  it("holds a leaky bucket at ≥ 90 % when a plan's first probes are refused and retried after a Retry-After", () => {
    const result = againstLeakyBucket({ perSecond: 20, burst: 2, latencyMs: 0, seconds: 30, gate: 7, retryAfterMs: 1000 });
    expect(result.share).toBeGreaterThanOrEqual(0.9);
    expect(result.rejectedShare).toBeLessThanOrEqual(0.05);
  });

  it.each([
    { perSecond: 20, burst: 2, latencyMs: 0 },
    { perSecond: 50, burst: 5, latencyMs: 0 },
    { perSecond: 50, burst: 5, latencyMs: 50 },
    { perSecond: 20, burst: 20, latencyMs: 50 },
    { perSecond: 100, burst: 10, latencyMs: 0 },
  ])('holds a leaky bucket of $perSecond/s (burst $burst, latency $latencyMs ms) at ≥ 90 % with ≤ 5 % rejected', (limit) => {
    const result = againstLeakyBucket({ ...limit, seconds: 60 });
    expect(result.share).toBeGreaterThanOrEqual(0.9);
    expect(result.rejectedShare).toBeLessThanOrEqual(0.05);
    expect(result.cuts).toBeGreaterThan(1);
  });
});
