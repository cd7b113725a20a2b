import { describe, expect, it } from 'vitest';
import { AdaptiveWindow } from '../../lambda/platform/adaptive-window.ts';
import { HELD_PAGE_BYTES, HeldPages, IN_FLIGHT_PAGE_BYTES, pagesFitting } from '../../lambda/platform/page-memory.ts';

const MiB = 1024 * 1024;
const ticks = async (n = 5) => {
  for (let i = 0; i < n; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

describe('pages in memory, by bytes', () => {
  it('fits at least one page in a budget, however large the page', () => {
    expect(pagesFitting(32 * MiB, 600 * 1024)).toBe(54);
    expect(pagesFitting(32 * MiB, 20 * MiB)).toBe(1);
    expect(pagesFitting(32 * MiB, 0)).toBe(32 * MiB);
  });

  it('keeps no more requests on the wire than the largest answer so far fits in IN_FLIGHT_PAGE_BYTES', async () => {
    const window = new AdaptiveWindow(8);
    const admitted: number[] = [];
    const take = (priority: number) => void window.acquire(priority).then(() => admitted.push(priority));
    for (let i = 0; i < 8; i += 1) take(i);
    await ticks();
    expect(admitted).toHaveLength(8);
    // Answers of a third of the budget: three fit, so the next requests wait until fewer than three are on the wire.
    window.sized(Math.floor(IN_FLIGHT_PAGE_BYTES / 3));
    expect(window.reach).toBe(3);
    for (let i = 8; i < 12; i += 1) take(i);
    for (let i = 0; i < 5; i += 1) window.release();
    await ticks();
    expect(admitted).toHaveLength(8);
    window.release();
    await ticks();
    expect(admitted).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(window.inFlight).toBe(3);
  });

  it('lets a reader ask for more only while the pages held are under the budget', async () => {
    const held = new HeldPages(10 * MiB);
    const signal = new AbortController().signal;
    await held.room(signal);
    held.add(6 * MiB);
    held.add(6 * MiB);
    let resumed = false;
    const waiting = held.room(signal).then(() => (resumed = true));
    await ticks();
    expect(resumed).toBe(false);
    held.remove(6 * MiB);
    await waiting;
    expect(held.bytes).toBe(6 * MiB);
  });

  it('stops waiting for room when the read is stopped', async () => {
    const held = new HeldPages(HELD_PAGE_BYTES);
    held.add(HELD_PAGE_BYTES);
    const stop = new AbortController();
    const waiting = held.room(stop.signal);
    stop.abort(new Error('paused'));
    await expect(waiting).rejects.toThrow('paused');
  });
});
