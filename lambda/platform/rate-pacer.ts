/**
 * A request rate learned from the platform's rejections, for the window to pace sends by.
 *
 * Why a rate and not only the concurrency window: ThingPark's limiter is NGINX's leaky
 * bucket, a limit on requests per second. Concurrency bounds the rate only at
 * `limit / latency`; at low latency even one request in flight can outrun the bucket, so
 * halving the window cannot stop the rejections, and every rejection costs a retry and,
 * under the fair-use policy, risks suspension. Pacing just under the bucket's rate keeps
 * rejections to about one per probe while sending close to the limit.
 *
 * How (TCP's congestion control, applied to a rate):
 * - Nothing is paced until the platform first pushes back: an unlimited platform costs
 *   nothing.
 * - The first cut starts from what was sent over the last second, and the rate then
 *   doubles for every `PROBE_DOUBLING_MS` during which requests waited to be sent, until
 *   the next cut, like slow start: this early the platform has accepted little more than
 *   its bucket's free burst, which says nothing of its rate, and the rejections of a first
 *   burst often come back before its successes. Only time with requests waiting counts
 *   (the window tells the pacer when its queue fills and empties): a rate doubled through a
 *   lull, while the run's plan waits on its probes and its refused requests sleep through
 *   a Retry-After, lets the requests that wake together go as one burst, which the bucket
 *   refuses, and a cut made then, from the few requests of a lull, left the run at a few a
 *   second. TCP grows no congestion window its sender does not use (RFC 7661).
 * - Every later cut sets the rate to `DECREASE` times the rate the platform accepted over the last second: while the bucket overflows, what it
 *   accepts is its drain rate, so the estimate lands near the limit whatever was sent
 *   before. It never exceeds the current rate, and never falls below `FLOOR` of it: after a
 *   climb, a stall, or while the halved window rather than the platform held the rate
 *   down, the last second under-reports; a cut is a correction, not a restart (a rate far
 *   too high just takes a few cuts, one rejection each). The current rate counts for at
 *   most twice what was sent over the last second (with nothing sent, as the last cut's
 *   rate): a probe that doubled for seconds while the window held the sends down would
 *   otherwise keep the pacer from pacing for dozens of cuts.
 * - Between cuts the rate grows by `GROWTH_PER_SUCCESS` of the cut rate with each accepted
 *   request: back at the limit after about 35 successes, then probing above it slowly
 *   enough that the bucket's burst absorbs the excess for a while. Counting successes, not
 *   seconds, makes a probe cost about one rejection per hundred requests at any limit.
 */
export class RatePacer {
  static readonly DECREASE = 0.9;
  static readonly PROBE_DOUBLING_MS = 250;
  static readonly GROWTH_PER_SUCCESS = 0.003;
  /** Never slower than this: a platform that refuses even this is failing, not limiting. */
  static readonly MIN_RATE = 0.5;
  static readonly ESTIMATE_WINDOW_MS = 1000;
  /** A cut keeps at least this share of the current rate (before DECREASE). */
  static readonly FLOOR = 0.75;

  /** Requests per second at the last cut; Infinity until the first. */
  #base = Number.POSITIVE_INFINITY;
  #cutAt = 0;
  #cuts = 0;
  #successesSinceCut = 0;
  #lastSent = Number.NEGATIVE_INFINITY;
  /** Times of the successes and of the sends within the estimate window, oldest first. */
  readonly #accepted: number[] = [];
  readonly #sent: number[] = [];
  /** Since when requests wait to be sent (undefined: none does). */
  #waitingSince: number | undefined;
  /** Milliseconds requests waited since the last cut, up to `#waitingSince`: what the probe doubles by. */
  #waitedSinceCut = 0;

  constructor(private readonly now: () => number = Date.now) {}

  get cuts(): number {
    return this.#cuts;
  }

  /** The current rate in requests per second (Infinity: not pacing). */
  get rate(): number {
    if (this.#cuts === 0) return Number.POSITIVE_INFINITY;
    if (this.#cuts === 1) return this.#base * 2 ** (this.#waitedMs() / RatePacer.PROBE_DOUBLING_MS);
    return this.#base * (1 + RatePacer.GROWTH_PER_SUCCESS * this.#successesSinceCut);
  }

  /** Milliseconds to wait before the next request may be sent (0: now). */
  delay(): number {
    const rate = this.rate;
    if (rate === Number.POSITIVE_INFINITY) return 0;
    return Math.max(0, this.#lastSent + 1000 / rate - this.now());
  }

  /** A request was sent now. The next is spaced from it: no credit builds up while idle. */
  sent(): void {
    this.#lastSent = this.now();
    this.#remember(this.#sent);
  }

  succeeded(): void {
    this.#successesSinceCut += 1;
    this.#remember(this.#accepted);
  }

  /** Whether requests are waiting to be sent, for the window or for this pacer: told as that changes. */
  waiting(waiting: boolean): void {
    if (waiting) {
      this.#waitingSince ??= this.now();
      return;
    }
    this.#waitedSinceCut = this.#waitedMs();
    this.#waitingSince = undefined;
  }

  /** Milliseconds requests waited since the last cut. */
  #waitedMs(): number {
    if (this.#waitingSince === undefined) return this.#waitedSinceCut;
    return this.#waitedSinceCut + this.now() - Math.max(this.#waitingSince, this.#cutAt);
  }

  /** The platform pushed back: one cut. The caller makes at most one per epoch. */
  cut(): void {
    const perSecond = 1000 / RatePacer.ESTIMATE_WINDOW_MS;
    const accepted = this.#remember(this.#accepted, false) * perSecond;
    const sent = this.#remember(this.#sent, false) * perSecond;
    // A rate the sends never came near (the window, not the pacer, held them down, while
    // the probe kept doubling) says nothing of the platform: a cut starts from at most
    // twice what was sent, as TCP validates an unused congestion window (RFC 7661).
    // With nothing sent or accepted over the last second (answers slower than that), nothing
    // validates what the rate grew to since the last cut, however far (a probe that doubled
    // through minutes of waiting is Infinity): the cut starts from the last cut's rate.
    const used = Math.max(2 * sent, accepted);
    const current = used > 0 ? Math.min(this.rate, used) : Math.min(this.rate, this.#base);
    const estimate = this.#cuts === 0 ? Math.max(accepted, sent) : Math.min(current, Math.max(accepted, RatePacer.FLOOR * current));
    this.#base = Math.max(RatePacer.MIN_RATE, RatePacer.DECREASE * estimate);
    this.#cutAt = this.now();
    this.#waitedSinceCut = 0;
    this.#cuts += 1;
    this.#successesSinceCut = 0;
  }

  /** Records an event now (unless `add` is false), forgets those out of the window, counts. */
  #remember(times: number[], add = true): number {
    const now = this.now();
    if (add) times.push(now);
    let stale = 0;
    while (stale < times.length && (times[stale] as number) <= now - RatePacer.ESTIMATE_WINDOW_MS) stale += 1;
    if (stale > 0) times.splice(0, stale);
    return times.length;
  }
}
