import { whenAborted } from '../common/abort-callbacks.ts';
import { IN_FLIGHT_PAGE_BYTES, pagesFitting } from './page-memory.ts';
import { RatePacer } from './rate-pacer.ts';

/**
 * Handed out with each send and given back with its answer: its place in the order of
 * sends, so that one burst of rejections is one signal, and its send time, for latency.
 */
export interface Ticket {
  readonly seq: number;
  /**
   * When the window let it go. The first requests of a run then wait for the token grant
   * too: their round is judged against its own latency, and the next round's lower one
   * becomes the lowest seen.
   */
  readonly sentAt: number;
}

export interface WindowOptions {
  /** Requests allowed on the wire at first (THINGPARK_CONCURRENCY); `max` unless given. */
  initial?: number;
  /** Never fewer than this on the wire, however often the platform pushes back. */
  min?: number;
  pacer?: RatePacer;
  /** Milliseconds, for latency; only differences are used. */
  now?: () => number;
}

interface Waiter {
  priority: number;
  resolve: (ticket: Ticket) => void;
  reject: (reason: unknown) => void;
  /** Stops listening for the signal's abort, once the waiter is admitted. */
  stopListening?: () => void;
}

/**
 * The gate every page request passes on its way to the platform: at most `limit` requests
 * on the wire at once, sent no faster than the pacer's rate (see rate-pacer.ts). The limit
 * starts at `initial` and finds its own level between `min` and `max`, as TCP's congestion
 * window does, with the platform's latency as the delay signal (TCP Vegas). Why: a run
 * is bound by the platform's latency only while its own CPU keeps up, and a window fixed
 * small wastes a generous platform while one fixed large hammers a strict one.
 *
 * - Rounds. The limit is judged once per round trip: a round is over once a request sent
 *   after it began is answered and at least `limit` answers came in it (twice that in the
 *   careful phase).
 * - Used. A round counts only if, on average over it, at least `USED_SHARE` of the limit
 *   was in flight. A window its caller does not fill (the writer lags, as it does once the
 *   run is bound by its own CPU, or the pacer holds sends back) says nothing of the
 *   platform. Before any push-back such a round brings the limit half way back to what was
 *   used, never below `initial`, as TCP treats a window its sender does not fill (RFC
 *   7661): a window wider than its use only lets the pager hold more pages, and would send
 *   a burst that wide should the caller catch up.
 * - Latency holds when the mean latency of a round's answers is at most the lowest latency
 *   seen so far times `1 + LATENCY_TOLERANCE`: more requests in flight then brought more
 *   answers per second, not just longer queues, ours or the platform's.
 * - Slow start. Until a round's latency rises, an unused round brings the limit back, or
 *   the platform first pushes back, a used round whose latency holds doubles the limit: a
 *   run of a hundred pages lasts only a few round trips, and growth by one per round trip
 *   would not get far in it. An unused round at the starting limit ends nothing: a caller
 *   with little to ask yet says nothing of what it asks next. So a caller that fills the
 *   window only now and then still doubles it once, before its first unused round above
 *   the start ends slow start.
 * - Careful phase. After slow start, and near the ceiling (where doubling would pass it),
 *   a used round of twice the limit in answers whose latency holds adds one.
 * - Push-back. On 429/503 the limit halves, once per burst: rejections of requests sent
 *   before the last cut do not cut again; the pacer is cut on the same epochs. From the
 *   first cut on, the limit never grows past what carries the pacer's rate at the round's
 *   latency (Little's law: rate × latency requests in flight, plus one): more would only
 *   wait for the pacer.
 *
 * Waiting requests are admitted lowest priority first, and callers pass the page index:
 * a retried early page goes ahead of later ones, because the ordered output cannot move
 * past it and every page behind it only waits in memory.
 */
export class AdaptiveWindow {
  static readonly RECHECK_MS = 50;
  /**
   * How far a round's mean latency may rise above the lowest seen and still count as
   * holding. Measured (docs/performance.md): rounds at 20 to 300 ms whose latency held came
   * in at 1.08 to 1.35 times the lowest, so half again leaves room for a platform's jitter
   * while a platform that slows down under the load stops the growth.
   */
  static readonly LATENCY_TOLERANCE = 0.5;
  /**
   * How much of the limit must be in flight, on average over a round, for it to count.
   * Measured: a window the pager kept busy was 0.85 to 1 used (an answer's slot stays free
   * while its page is parsed); one held back by the run's CPU, 0.25 to 0.65.
   */
  static readonly USED_SHARE = 0.8;
  readonly max: number;
  readonly min: number;
  readonly pacer: RatePacer;
  readonly #now: () => number;
  #limit: number;
  #reach: number;
  readonly #start: number;
  /** Doubling while this holds (and the double fits under `max`); one at a time after. */
  #slowStart = true;
  #cutFrom = 0;
  #cuts = 0;
  #nextSeq = 0;
  #inFlight = 0;
  #maxInFlight = 0;
  #lowestLatency = Number.POSITIVE_INFINITY;
  /** The largest answer so far, in characters: how many fit in IN_FLIGHT_PAGE_BYTES caps the requests on the wire. */
  #answerBytes = 0;
  /**
   * The round: it began at `start`, when request `from` was the next to go; the answers in
   * it and their total latency; whether one of its own requests is back; and the requests in
   * flight integrated over its time (`busy`, request-milliseconds, counted up to `at`), and
   * the most at once (what was used, should no time have passed).
   */
  #round = { from: 0, answers: 0, latencyMs: 0, back: false, start: 0, at: 0, busy: 0, peak: 0 };
  readonly #waiting: Waiter[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(max: number, options: WindowOptions = {}) {
    this.max = max;
    this.min = Math.min(options.min ?? 1, max);
    this.pacer = options.pacer ?? new RatePacer();
    this.#now = options.now ?? (() => performance.now());
    this.#limit = Math.max(this.min, Math.min(options.initial ?? max, max));
    this.#start = this.#limit;
    this.#reach = this.#limit;
    this.#newRound();
  }

  get limit(): number {
    return this.#limit;
  }

  /**
   * How many requests the caller may have under way (ordered-pages.ts fetches this far
   * ahead, and holds twice that): the limit, or what it was before the platform last
   * pushed back, so that requests sleeping through a Retry-After do not hold the others
   * back from the window. Never above `max`, so what the pager holds is bounded by the
   * ceiling.
   */
  get reach(): number {
    return Math.min(this.#reach, this.#fitting());
  }

  /**
   * Records an answer's size. However far the limit grows, no more requests go on the wire
   * than answers of the largest size so far fit in IN_FLIGHT_PAGE_BYTES: memory is bounded
   * by bytes, whatever the briefs weigh.
   */
  sized(bytes: number): void {
    this.#answerBytes = Math.max(this.#answerBytes, bytes);
  }

  #fitting(): number {
    return this.#answerBytes === 0 ? this.max : pagesFitting(IN_FLIGHT_PAGE_BYTES, this.#answerBytes);
  }

  get cuts(): number {
    return this.#cuts;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The most requests ever on the wire at once: never above `max`. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  /** The lowest latency of an answer so far, in milliseconds (Infinity before the first). */
  get lowestLatency(): number {
    return this.#lowestLatency;
  }

  /**
   * Resolves when this request may be sent, with its ticket; the caller must `release()`
   * once its answer is read. Rejects with the signal's reason if it aborts while waiting.
   */
  acquire(priority: number, signal?: AbortSignal): Promise<Ticket> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Ticket>((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        resolve,
        reject,
      };
      // Stable: equal priorities keep their arrival order.
      let at = this.#waiting.length;
      while (at > 0 && (this.#waiting[at - 1] as Waiter).priority > priority) at -= 1;
      this.#waiting.splice(at, 0, waiter);
      this.pacer.waiting(true);
      if (signal) {
        waiter.stopListening = whenAborted(signal, () => {
          const at = this.#waiting.indexOf(waiter);
          if (at >= 0) this.#waiting.splice(at, 1);
          if (this.#waiting.length === 0) this.#emptied();
          reject(signal.reason);
        });
      }
      this.#dispatch();
    });
  }

  /** The request admitted by `acquire` is over (answered, failed or aborted). */
  release(): void {
    this.#account();
    this.#inFlight -= 1;
    this.#dispatch();
  }

  /** The platform answered the request with this ticket (anything but a push-back). */
  succeeded(ticket: Ticket): void {
    this.pacer.succeeded();
    const latency = this.#now() - ticket.sentAt;
    this.#lowestLatency = Math.min(this.#lowestLatency, latency);
    const round = this.#round;
    round.answers += 1;
    round.latencyMs += latency;
    if (ticket.seq >= round.from) round.back = true;
    const slowStart = this.#slowStart && 2 * this.#limit <= this.max;
    if (!round.back || round.answers < (slowStart ? 1 : 2) * this.#limit) return;
    this.#account();
    const used = round.at > round.start ? round.busy / (round.at - round.start) : round.peak;
    this.#newRound();
    if (used < AdaptiveWindow.USED_SHARE * this.#limit) {
      this.#settle(used);
      return;
    }
    if (this.#limit >= this.max) return;
    const mean = round.latencyMs / round.answers;
    if (mean > this.#lowestLatency * (1 + AdaptiveWindow.LATENCY_TOLERANCE)) {
      this.#slowStart = false;
      return;
    }
    const rate = this.pacer.rate;
    const carried = Number.isFinite(rate) ? Math.ceil((rate * mean) / 1000) + 1 : Number.POSITIVE_INFINITY;
    const next = Math.min(slowStart ? 2 * this.#limit : this.#limit + 1, this.max, carried);
    if (next <= this.#limit) return;
    this.#limit = next;
    this.#reach = Math.max(this.#reach, next);
    this.#dispatch();
  }

  /**
   * A round that did not use the window (see the class): slow start is over, and before
   * any push-back the limit comes half way back to what was used. A window still where it
   * started is left as it is, slow start included: a caller with little to ask yet (a
   * cursor read's plan, each probe waiting on the one before) says nothing of the many
   * ranges it reads next, which would otherwise gain one request per two round trips. After
   * a push-back the pacer is what holds sends back, and requests sleeping through a
   * Retry-After leave the window unused for a reason: the limit is left alone.
   */
  #settle(used: number): void {
    if (this.#cuts > 0 || this.#limit <= this.#start) return;
    this.#slowStart = false;
    const settled = Math.max(this.#start, Math.ceil((this.#limit + used) / 2));
    if (settled >= this.#limit) return;
    this.#limit = settled;
    this.#reach = settled;
  }

  rejected(ticket: Ticket): void {
    this.#newRound();
    if (ticket.seq < this.#cutFrom) return;
    this.#cutFrom = this.#nextSeq;
    this.#cuts += 1;
    this.#limit = Math.max(this.min, Math.floor(this.#limit / 2));
    this.#slowStart = false;
    this.pacer.cut();
  }

  #newRound(): void {
    const now = this.#now();
    this.#round = { from: this.#nextSeq, answers: 0, latencyMs: 0, back: false, start: now, at: now, busy: 0, peak: this.#inFlight };
  }

  /** Counts the requests in flight since the last change into the round's busy time. */
  #account(): void {
    const now = this.#now();
    this.#round.busy += this.#inFlight * (now - this.#round.at);
    this.#round.at = now;
  }

  #dispatch(): void {
    while (this.#waiting.length > 0 && this.#inFlight < Math.min(this.#limit, this.#fitting())) {
      const wait = this.pacer.delay();
      if (wait > 0) {
        // Looked at again at least every RECHECK_MS: while the pacer probes, its rate rises
        // by the millisecond, and a wait computed from a slow early rate (seconds, after a
        // first rejection in a small burst) would stall sends the new rate already allows.
        this.#timer ??= setTimeout(
          () => {
            this.#timer = undefined;
            this.#dispatch();
          },
          Math.ceil(Math.min(wait, AdaptiveWindow.RECHECK_MS)),
        );
        return;
      }
      const waiter = this.#waiting.shift() as Waiter;
      if (this.#waiting.length === 0) this.#emptied();
      waiter.stopListening?.();
      this.#account();
      this.#inFlight += 1;
      this.#maxInFlight = Math.max(this.#maxInFlight, this.#inFlight);
      this.#round.peak = Math.max(this.#round.peak, this.#inFlight);
      this.pacer.sent();
      const ticket: Ticket = { seq: this.#nextSeq, sentAt: this.#now() };
      this.#nextSeq += 1;
      waiter.resolve(ticket);
    }
  }

  /** No request waits any more: no timer to keep, and the pacer's probe stops growing until one does. */
  #emptied(): void {
    this.pacer.waiting(false);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
