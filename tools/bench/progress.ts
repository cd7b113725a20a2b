/**
 * How long the benchmark will take, and a line every 10 s while it runs: a full run takes
 * about twenty minutes, and a single approach of the largest case minutes on its own, which
 * otherwise passed without a word.
 */

/** What the estimate needs of a case (main.ts's Case). */
export interface CaseShape {
  fleet: number;
  latencyMs: number;
  pageSize: number;
  rateLimit?: { perSecond: number };
}

/**
 * How many times each approach runs in a case: a shared 2-core host is noisy, so small
 * cases run three times and report the median; the million-device and rate-limited cases,
 * minutes long, run once.
 */
export function repeatsOf(c: CaseShape): number {
  return c.fleet <= 100_000 && !c.rateLimit ? 3 : 1;
}

/**
 * A rough duration of a case in seconds, from the rates BENCHMARKS.md measured on a shared
 * 2-core machine: the exporter about 50,000 devices/s of CPU and `concurrency` pages in
 * flight (its window's usual width); the baseline about 35,000 devices/s, one page at a
 * time, and about seven times the limit's pace when rate-limited (it waits a second per
 * refusal); the floor about 100,000 devices/s. Plus the stand-ins' start (rendering the
 * pages, about 80,000 devices/s) and the comparison of the outputs. Within a factor of two
 * of what it took there, which is what an announcement needs.
 */
export function estimateSeconds(c: CaseShape, concurrency: number, exporterOnly: boolean): number {
  const pages = Math.ceil(c.fleet / c.pageSize);
  const waitingS = (pages * c.latencyMs) / 1000;
  const limitS = c.rateLimit ? pages / c.rateLimit.perSecond : 0;
  const exporter = 1 + c.fleet / 50_000 + waitingS / concurrency + limitS;
  const baseline = 1 + c.fleet / 35_000 + waitingS + 7 * limitS;
  const floor = c.rateLimit ? 0 : 1 + c.fleet / 100_000 + waitingS / concurrency;
  const compare = exporterOnly ? 0 : c.fleet / 20_000;
  return 2 + c.fleet / 80_000 + repeatsOf(c) * (exporter + (exporterOnly ? 0 : baseline + floor)) + compare;
}

/** The bundle sizes and import times of the cold-start table, in seconds. */
export const COLD_START_ESTIMATE_S = 30;

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s <= 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/**
 * Prints, every 10 s, what the benchmark is doing and for how long it has been at it, on a
 * line of its own (the stand-ins run in this process, so its timers keep time).
 */
export class Progress {
  readonly #started = Date.now();
  readonly #timer: NodeJS.Timeout;
  #step = 'starting';
  #stepStarted = Date.now();

  constructor(readonly expectedS: number) {
    this.#timer = setInterval(() => this.#report(), 10_000);
    this.#timer.unref();
  }

  /** What is being measured now, e.g. "1000k @ 100 ms: baseline 1/1". */
  step(step: string): void {
    this.#step = step;
    this.#stepStarted = Date.now();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #report(): void {
    const elapsedS = (Date.now() - this.#started) / 1000;
    const stepS = (Date.now() - this.#stepStarted) / 1000;
    const left = this.expectedS - elapsedS;
    console.log(
      `  ... ${this.#step} for ${duration(stepS)}; ${duration(elapsedS)} in, ` + (left > 0 ? `about ${duration(left)} to go` : 'taking longer than estimated'),
    );
  }
}
