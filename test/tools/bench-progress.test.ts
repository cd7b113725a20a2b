import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress, duration, estimateSeconds, repeatsOf } from '../../tools/bench/progress.ts';

describe("the benchmark's progress", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('prints what it is doing every 10 s, with the time spent and the time left, until stopped', () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => void lines.push(line));
    const progress = new Progress(120);
    progress.step('1000k @ 100 ms: baseline 1/1');
    vi.advanceTimersByTime(9_999);
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lines).toEqual(['  ... 1000k @ 100 ms: baseline 1/1 for 10 s; 10 s in, about 2 min to go']);
    vi.advanceTimersByTime(20_000);
    progress.step('1000k @ 100 ms: floor 1/1');
    vi.advanceTimersByTime(10_000);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('  ... 1000k @ 100 ms: floor 1/1 for 10 s; 40 s in, about 80 s to go');
    vi.advanceTimersByTime(90_000);
    expect(lines.at(-1)).toContain('taking longer than estimated');
    const printed = lines.length;
    progress.stop();
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(printed);
  });

  it('estimates more for more devices, latency, a rate limit and repeated runs', () => {
    const base = { fleet: 100_000, latencyMs: 0, pageSize: 1000 };
    const estimate = (c: Parameters<typeof estimateSeconds>[0]) => estimateSeconds(c, 4, false);
    expect(estimate({ ...base, fleet: 1_000_000 })).toBeGreaterThan(estimate(base));
    expect(estimate({ ...base, latencyMs: 100 })).toBeGreaterThan(estimate(base));
    // A rate-limited case takes at least its pages at the limit, once for each approach run.
    const limited = { ...base, pageSize: 100, rateLimit: { perSecond: 50 } };
    expect(repeatsOf(limited)).toBe(1);
    expect(estimate(limited)).toBeGreaterThan(2 * (1000 / 50));
    expect(repeatsOf(base)).toBe(3);
    expect(estimateSeconds(base, 4, true)).toBeLessThan(estimate(base));
    expect([duration(42), duration(89.6), duration(600)]).toEqual(['42 s', '90 s', '10 min']);
  });
});
