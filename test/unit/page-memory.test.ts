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
    const held = new HeldPages(10 * MiB, 10 * MiB); // the waiting budget as large: this is the total's
    const signal = new AbortController().signal;
    await held.ask(signal, () => Promise.resolve({ bytes: 6 * MiB }));
    await held.ask(signal, () => Promise.resolve({ bytes: 6 * MiB }));
    let asked = false;
    const waiting = held.ask(signal, () => {
      asked = true;
      return Promise.resolve({ bytes: 6 * MiB });
    });
    await ticks();
    expect(asked).toBe(false);
    held.remove(6 * MiB);
    await waiting;
    expect(held.bytes).toBe(12 * MiB);
  });

  it('counts a page from the moment it is asked for, as the largest answer so far, so readers asking at once do not all find room', async () => {
    const held = new HeldPages(10 * MiB);
    const signal = new AbortController().signal;
    held.remove((await held.ask(signal, () => Promise.resolve({ bytes: 4 * MiB }))).bytes);
    const answers: ((page: { bytes: number }) => void)[] = [];
    const pending = () => new Promise<{ bytes: number }>((resolve) => answers.push(resolve));
    const readers = Array.from({ length: 5 }, () => held.ask(signal, pending));
    await ticks();
    // 4 MiB each until they arrive: three fit under 10 MiB, the others wait.
    expect(answers).toHaveLength(3);
    expect(held.bytes).toBe(12 * MiB);
    for (const answer of answers.splice(0)) answer({ bytes: 1 * MiB });
    await ticks();
    held.remove(3 * MiB);
    await ticks();
    expect(answers).toHaveLength(2);
    for (const answer of answers) answer({ bytes: 1 * MiB });
    await Promise.all(readers);
    expect(held.bytes).toBe(2 * MiB);
  });

  it('asks for two pages before any answer has arrived, not for every reader at once, whatever the pages weigh', async () => {
    const held = new HeldPages(36 * MiB);
    const signal = new AbortController().signal;
    const answers: ((page: { bytes: number }) => void)[] = [];
    const pending = () => new Promise<{ bytes: number }>((resolve) => answers.push(resolve));
    // Sixteen ranges resuming at once, pages of 20 MiB: before any arrives, only two are asked for.
    const readers = Array.from({ length: 16 }, () => held.ask(signal, pending));
    await ticks();
    expect(answers).toHaveLength(2);
    // The first answer says what a page weighs, and room is counted by it from then on: with
    // the second still out (18 MiB), one more of 20 MiB is asked for.
    answers[0]?.({ bytes: 20 * MiB });
    await ticks();
    held.remove(20 * MiB);
    await ticks();
    expect(answers).toHaveLength(3);
    for (let answered = 1; answered < 16; answered += 1) {
      answers[answered]?.({ bytes: 20 * MiB });
      await ticks();
      held.remove(20 * MiB);
      await ticks();
      expect(held.bytes).toBeLessThanOrEqual(36 * MiB + 20 * MiB);
    }
    await Promise.all(readers);
    expect(answers).toHaveLength(16);
    expect(held.bytes).toBe(0);
  });

  it('stops asking while the pages arrived and not yet taken fill their own budget, whatever room the total has', async () => {
    const held = new HeldPages(48 * MiB, 16 * MiB);
    const signal = new AbortController().signal;
    for (let i = 0; i < 4; i += 1) await held.ask(signal, () => Promise.resolve({ bytes: 4 * MiB }));
    let asked = false;
    const waiting = held.ask(signal, () => {
      asked = true;
      return Promise.resolve({ bytes: 4 * MiB });
    });
    await ticks();
    // 16 MiB waiting for the writer: a writer that lags lets no more pile up, though 48 MiB would allow it.
    expect(asked).toBe(false);
    held.remove(4 * MiB);
    await waiting;
    expect(held.bytes).toBe(16 * MiB);
  });

  it('asks at once for a page its reader cannot do without, room or not', async () => {
    const held = new HeldPages(10 * MiB);
    await held.askNow(() => Promise.resolve({ bytes: 12 * MiB }));
    await held.askNow(() => Promise.resolve({ bytes: 1 * MiB }));
    expect(held.bytes).toBe(13 * MiB);
  });

  it('lets go of a page asked for whose request failed', async () => {
    const held = new HeldPages(10 * MiB);
    const signal = new AbortController().signal;
    held.remove((await held.ask(signal, () => Promise.resolve({ bytes: 6 * MiB }))).bytes);
    await expect(held.ask(signal, () => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    expect(held.bytes).toBe(0);
  });

  it('stops waiting for room when the read is stopped', async () => {
    const held = new HeldPages(HELD_PAGE_BYTES);
    await held.askNow(() => Promise.resolve({ bytes: HELD_PAGE_BYTES }));
    const stop = new AbortController();
    const waiting = held.ask(stop.signal, () => Promise.resolve({ bytes: 1 }));
    stop.abort(new Error('paused'));
    await expect(waiting).rejects.toThrow('paused');
  });
});
