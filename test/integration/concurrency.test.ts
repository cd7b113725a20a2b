import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coldStart, lambdaContext } from '../support/lambda.ts';
import { OFFSET_ENV, OFFSET_PLATFORM } from '../support/paging.ts';
import type { SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { runRows, testS3, type RunFiles } from '../../tools/inspect/snapshot.ts';
import { startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';

let standIns: StandIns;
let port = 0;
let connections = 0;
const countConnection = (message: unknown) => {
  if ((message as { socket: Socket }).socket.localPort === port) connections += 1;
};

beforeAll(async () => {
  standIns = await startStandIns();
  port = Number(new URL(standIns.platform.url).port);
  diagnostics.subscribe('net.server.socket', countConnection);
});
afterAll(async () => {
  diagnostics.unsubscribe('net.server.socket', countConnection);
  await standIns.stop();
});

/** The simulator reset to `options`, counters cleared (after stragglers of the last test). */
async function platform(options: Partial<SimulatorOptions>) {
  await sleep(50);
  connections = 0;
  return standIns.platform.reset({ ...OFFSET_PLATFORM, ...options });
}

let coldStarts = 0;

/**
 * A cold start with the stand-ins' environment, every tunable at its default unless given,
 * under a snapshot prefix of its own: a run compares itself with the previous run under its
 * prefix, and looking up devices another test's larger fleet had would add requests.
 */
async function exporter(env: Record<string, string>) {
  coldStarts += 1;
  return coldStart({
    ...standIns.env,
    ...OFFSET_ENV,
    // Errors only: these tests throttle on purpose, and each retry is a WARN line (the
    // fault tests capture and check those); the summaries count the retries here.
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    THINGPARK_PAGE_SIZE: '100',
    SNAPSHOT_PREFIX: `concurrency-${coldStarts}/`,
    ...env,
  });
}

/** The refs of a run's rows, in the order the run wrote them. */
async function refsOf(run: RunFiles): Promise<unknown[]> {
  return (await runRows(testS3(standIns.s3Url), run)).map((row) => row.ref);
}

/** The simulator's refs (tools/stand-ins/fleet.ts) in fleet order. */
const fleetRefs = (size: number) => Array.from({ length: size }, (_, i) => String(2_000_000 + i));

describe('concurrent paging', () => {
  it('keeps within a fixed window, fetches every page once, reuses connections', async () => {
    const sim = await platform({ fleet: 20_000, latencyMs: 20 });
    // A ceiling where the window starts: fixed at 6.
    const handler = await exporter({ THINGPARK_CONCURRENCY: '6', THINGPARK_MAX_CONCURRENCY: '6' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 20_000, duplicates: 0, throttled: 0, retries: 0 });
    expect(sim.stats.maxInFlight).toBeLessThanOrEqual(6);
    expect(sim.stats.maxInFlight).toBeGreaterThanOrEqual(4);
    // Pages 0-199 exactly once each; anything past them was fetched ahead and is counted.
    for (let page = 0; page < 200; page += 1) expect(sim.stats.byPage.get(page)).toBe(1);
    const pastTheEnd = [...sim.stats.byPage.keys()].filter((page) => page >= 200).length;
    expect(pastTheEnd).toBeLessThanOrEqual(summary.wastedRequests);
    expect(summary.wastedRequests).toBeLessThanOrEqual(6);
    // Requests fetched ahead and aborted at the end may or may not have reached the platform.
    expect(sim.stats.requests).toBeGreaterThanOrEqual(summary.pageRequests - summary.wastedRequests);
    expect(sim.stats.requests).toBeLessThanOrEqual(summary.pageRequests);
    // Keep-alive: about one connection per slot of the window (undici opens the odd extra
    // one while another is being handed back) for the 200 pages and whatever look-ahead
    // reached the platform (none may have, above), not one each.
    expect(sim.stats.requests).toBeGreaterThanOrEqual(200);
    expect(connections).toBeLessThanOrEqual(2 * 6 + 2);
  });

  it('writes pages in index order even when later pages arrive first', async () => {
    const completed: number[] = [];
    const delays = new Map([
      [0, 300],
      [1, 200],
      [2, 100],
    ]);
    await platform({
      fleet: 1_000,
      fault: ({ pageIndex }) => {
        const delayMs = delays.get(pageIndex) ?? 0;
        setTimeout(() => completed.push(pageIndex), delayMs);
        return delayMs > 0 ? { delayMs } : undefined;
      },
    });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '4' });
    const summary = await handler({}, lambdaContext());
    expect(summary.devices).toBe(1_000);
    // Page 3 was answered before pages 2, 1 and 0 ...
    expect(completed.indexOf(3)).toBeLessThan(completed.indexOf(2));
    expect(completed.indexOf(2)).toBeLessThan(completed.indexOf(1));
    expect(completed.indexOf(1)).toBeLessThan(completed.indexOf(0));
    // ... and the snapshot still holds the fleet in page order.
    expect(await refsOf(summary)).toEqual(fleetRefs(1_000));
  });

  it('stops at the last page: the few requests past it are cancelled and counted as wasted', async () => {
    const sim = await platform({ fleet: 1_000, latencyMs: 30 });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '8', THINGPARK_MAX_CONCURRENCY: '8' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ devices: 1_000, pages: 10 });
    for (let page = 0; page < 10; page += 1) expect(sim.stats.byPage.get(page)).toBe(1);
    const pastTheEnd = [...sim.stats.byPage.entries()].filter(([page]) => page >= 10);
    expect(pastTheEnd.filter(([, requests]) => requests !== 1)).toEqual([]);
    expect(pastTheEnd.length).toBeLessThanOrEqual(summary.wastedRequests);
    expect(summary.wastedRequests).toBeLessThanOrEqual(8);
    expect(summary.pageRequests).toBe(10 + pastTheEnd.length);
  });

  it.each([429, 503])('halves the window on HTTP %i and grows it back slowly', async (status) => {
    // In flight at the simulator when each request arrives, in arrival order.
    const arrivals: { page: number; attempt: number; inFlight: number }[] = [];
    const sim = await platform({
      fleet: 30_000,
      latencyMs: 50,
      fault: ({ pageIndex, attempt }) => {
        arrivals.push({ page: pageIndex, attempt, inFlight: sim.stats.inFlight });
        return pageIndex === 20 && attempt === 1 ? { status, body: JSON.stringify({ code: status, message: 'slow down' }) } : undefined;
      },
    });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '8', THINGPARK_MAX_CONCURRENCY: '8' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ devices: 30_000, throttled: 1, retries: 1 });
    expect(sim.stats.maxInFlight).toBe(8);
    const retry = arrivals.findIndex(({ page, attempt }) => page === 20 && attempt === 2);
    const rejected = arrivals.findIndex(({ page, attempt }) => page === 20 && attempt === 1);
    expect(Math.max(...arrivals.slice(0, rejected).map(({ inFlight }) => inFlight))).toBe(8);
    // Requests sent before the cut drain away; then no more than half the window is used ...
    const after = arrivals.slice(retry);
    const halved = after.findIndex(({ inFlight }) => inFlight <= 4);
    expect(halved).toBeGreaterThanOrEqual(0);
    expect(halved).toBeLessThanOrEqual(8);
    // ... and it takes 2 × (4 + 5 + 6 + 7) = 44 successes to get back to 8.
    const regrown = after.findIndex(({ inFlight }, i) => i > halved && inFlight === 8);
    expect(regrown).toBeGreaterThanOrEqual(halved + 30);
    expect(Math.max(...after.slice(halved, halved + 8).map(({ inFlight }) => inFlight))).toBeLessThanOrEqual(5);
  });

  it('takes the token once a request is through the window, so none waits there until it expires', async () => {
    // A 429 on page 0 halves the window of 4 to 2 while pages 1-3 are on the wire; pages
    // take 2 s, so page 0's retry waits about 2 s for a place: as long as a token lives.
    const sim = await platform({
      fleet: 800,
      latencyMs: 2000,
      fault: ({ pageIndex, attempt }) => (pageIndex === 0 && attempt === 1 ? { status: 429, body: '{}' } : undefined),
    });
    sim.tokens.lifetimeSeconds = 2;
    const handler = await exporter({ THINGPARK_CONCURRENCY: '4' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 800, throttled: 1, retries: 1 });
    expect(sim.stats.unauthorized).toBe(0);
    expect(await refsOf(summary)).toEqual(fleetRefs(800));
  }, 30_000);

  it('paces a rate-limited platform instead of hammering it', async () => {
    const sim = await platform({ fleet: 16_000, rateLimit: { perSecond: 40, burst: 4, status: 503 } });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '8', THINGPARK_MAX_CONCURRENCY: '8' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 16_000, duplicates: 0 });
    expect(summary.throttled).toBe(sim.stats.rejected);
    expect(summary.retries).toBe(sim.stats.rejected);
    // Each of the 160 pages (plus a few past the end) once, and once more per rejection.
    const pastTheEnd = [...sim.stats.byPage.keys()].filter((page) => page >= 160).length;
    expect(pastTheEnd).toBeLessThanOrEqual(summary.wastedRequests);
    expect(sim.stats.requests).toBe(160 + pastTheEnd + sim.stats.rejected);
    expect(sim.stats.maxInFlight).toBeLessThanOrEqual(8);
    // The bench measures the rate (≥ 90 % of the limit); here: few rejections, not a storm.
    expect(sim.stats.rejected / sim.stats.requests).toBeLessThan(0.1);
    expect(await refsOf(summary)).toEqual(fleetRefs(16_000));
  });

  it('grows past where it starts against a platform with latency, never past its ceiling', async () => {
    const sim = await platform({ fleet: 30_000, latencyMs: 100 });
    const handler = await exporter({ THINGPARK_CONCURRENCY: '4', THINGPARK_MAX_CONCURRENCY: '12' });
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 30_000, duplicates: 0, throttled: 0, retries: 0 });
    expect(sim.stats.maxInFlight).toBeGreaterThan(4);
    expect(sim.stats.maxInFlight).toBeLessThanOrEqual(12);
    // Every page once; past the end, no more than the window's ceiling.
    for (let page = 0; page < 300; page += 1) expect(sim.stats.byPage.get(page)).toBe(1);
    expect(summary.wastedRequests).toBeLessThanOrEqual(12);
  });

  it('grows no further than a rate-limited platform accepts: near its limit, few rejections', async () => {
    const perSecond = 50;
    const sim = await platform({ fleet: 20_000, latencyMs: 100, rateLimit: { perSecond, burst: 5, status: 429 } });
    // The default ceiling: at 100 ms, 50 requests/s need 5 in flight, and the window would
    // grow far past that if latency alone decided.
    const handler = await exporter({});
    const summary = await handler({}, lambdaContext());
    expect(summary).toMatchObject({ status: 'committed', devices: 20_000, duplicates: 0 });
    expect(summary.throttled).toBe(sim.stats.rejected);
    const accepted = sim.stats.requests - sim.stats.rejected;
    const rate = accepted / ((sim.stats.lastAt - sim.stats.firstAt) / 1000);
    expect(sim.stats.rejected / sim.stats.requests).toBeLessThan(0.05);
    expect(rate).toBeGreaterThan(0.85 * perSecond);
    expect(rate).toBeLessThanOrEqual(1.05 * perSecond);
  });
});
