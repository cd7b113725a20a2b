import { beforeAll, describe, expect, it } from 'vitest';
import { runRows } from '../../tools/inspect/snapshot.ts';
import { encodeCursor, readQuery, selectPage, type ListQuery, type Page } from '../../tools/stand-ins/device-list.ts';
import type { Brief } from '../../tools/stand-ins/fleet.ts';
import { SPEC_7_3, type DeviceRequest, type Fault, type Platform, type SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { DEMO, exporter, freshPrefix, invokeFailing, invokeOk, objects, reset, useHarness } from './harness.ts';

/**
 * Faults met while the list is read in cursor mode (the spec's, the default): over EUI
 * ranges, each read by its own cursor, with the probes that split them. A fault a run can
 * get past (a rate limit, an expired token, a range the platform ends early, a filter it
 * drops) must leave a complete snapshot that says how it was read (`paging`, `fallback`);
 * one it cannot must leave the last committed snapshot exactly as it was.
 */
const h = useHarness();
let prefix: string;
let deliveries = 0;

/** 5000 devices in pages of 100: the fleet's probe splits it into several ranges of about eight pages. */
const FLEET = 5000;
const spec = (options: Partial<SimulatorOptions> = {}) => reset(h, { ...SPEC_7_3, fleet: FLEET, ...options });
/** The exporter as deployed: paging left to what the platform shows. */
const auto = (env: Record<string, string | undefined> = {}) =>
  exporter(h, prefix, { THINGPARK_PAGING: undefined, THINGPARK_FIRST_PAGE_INDEX: undefined, ...env });

beforeAll(async () => {
  // One committed run; every failed run below must leave the last one exactly as it is.
  prefix = freshPrefix();
  await spec();
  await invokeOk(h, await auto(), { scheduledTime: '2024-01-01T00:00:00Z' });
});

/** A later schedule each time, so a failed run would have moved the pointer had it committed. */
function nextSchedule() {
  deliveries += 1;
  return { scheduledTime: new Date(Date.UTC(2024, 1, deliveries)).toISOString() };
}

/** A page of a range's sweep past its first: a cursor named, and a prefix filter. */
const rangePage = (request: DeviceRequest) => request.mode === 'cursor' && request.pageAfter !== undefined && request.devEUI.length > 0;

/** A fault for the first range page the run asks for (its first attempt), nothing for the others. */
function onFirstRangePage(fault: (request: DeviceRequest, platform: Platform) => Fault): (request: DeviceRequest) => Fault | undefined {
  let struck = false;
  return (request) => {
    if (struck || !rangePage(request) || request.attempt > 1) return undefined;
    struck = true;
    return fault(request, h.platform);
  };
}

/**
 * The page the platform would answer to `request`, as its parts, to be served altered; or,
 * `unfiltered`, the list's first page, as a platform that dropped the filter and the cursor
 * would answer.
 */
function pageFor(platform: Platform, request: DeviceRequest, unfiltered = false): { briefs: Brief[]; more: boolean; count: number; cursors: { last: string } } {
  const params = new URLSearchParams({ sort: request.sort ?? 'EUI,asc', pageSize: String(request.pageSize) });
  if (!unfiltered && request.pageAfter !== undefined) params.set('pageAfter', request.pageAfter);
  if (!unfiltered) for (const prefixOf of request.devEUI) params.append('devEUI', prefixOf);
  const page = selectPage(platform.fleet(), readQuery(params, platform.options) as ListQuery, undefined) as Page;
  const briefs = page.ids.map((id) => platform.fleet().brief(id));
  return { briefs, more: page.more, count: page.count, cursors: { last: encodeCursor(String(briefs.at(-1)?.EUI)) } };
}

const answer = (body: Record<string, unknown>): Fault => ({ status: 200, body: JSON.stringify({ now: new Date().toISOString(), ...body }) });
const status = (code: number, headers: Record<string, string> = {}): Fault => ({ status: code, headers, body: JSON.stringify({ code, message: 'Simulated' }) });

/** A committed run read in cursor mode: every device of the fleet once, the previous snapshot replaced. */
async function completeCursorRun(summary: Awaited<ReturnType<typeof invokeOk>>) {
  expect(summary).toMatchObject({ status: 'committed', devices: FLEET, paging: 'cursor', verification: 'not-needed', verificationRequests: 0 });
  const euis = (await runRows(h.proxy.direct, summary)).map((row) => String(row.EUI));
  expect(new Set(euis).size).toBe(FLEET);
  expect(euis).toHaveLength(FLEET);
}

/** A run that must fail: its error, once the last committed snapshot, its pointer and every other object are found exactly as they were. */
async function failsCommittingNothing(env: Record<string, string> = {}) {
  const before = await objects(h, prefix);
  const error = await invokeFailing(h, await auto(env), nextSchedule());
  expect(await objects(h, prefix)).toEqual(before);
  return error;
}

describe('cursor mode: faults a run gets past', () => {
  it.each([
    ['429', status(429, { 'retry-after': '1' })],
    ['503 + Retry-After', status(503, { 'retry-after': '1' })],
  ])('waits out a %s on a range page and reads on from the same cursor, without falling back', async (_name, fault) => {
    let struck: string | undefined;
    const sim = await spec({
      fault: (request) => {
        if (rangePage(request)) struck ??= request.pageAfter;
        return struck !== undefined && request.pageAfter === struck && request.attempt === 1 ? fault : undefined;
      },
    });
    const summary = await invokeOk(h, await auto(), nextSchedule());
    await completeCursorRun(summary);
    expect(summary).toMatchObject({ retries: 1, throttled: 1 });
    expect(summary).not.toHaveProperty('fallback');
    expect(summary.ranges).toBeGreaterThan(1);
    // The retry asked for the very page refused: the same filter and cursor.
    expect(sim.stats.recent.filter((record) => record.pageAfter === struck).map((record) => record.status)).toEqual([fault.status, 200]);
  });

  it('renews a token the platform stops accepting mid-sweep, and reads on', async () => {
    const sim = await spec({
      fault: onFirstRangePage((_request, platform) => {
        // Every token granted so far is revoked: the next requests are answered 401.
        platform.tokens.rotateSecret(DEMO.clientSecret, { revoke: true });
        return { delayMs: 1 };
      }),
    });
    const summary = await invokeOk(h, await auto(), nextSchedule());
    await completeCursorRun(summary);
    expect(sim.stats.unauthorized).toBeGreaterThan(0);
    expect(summary.tokenRequests).toBe(2);
    expect(summary).not.toHaveProperty('fallback');
  });

  it('falls back to one unfiltered sweep when a range ends short of its count, and says so', async () => {
    const sim = await spec({
      fault: onFirstRangePage((request, platform) => {
        // The page as it is, but the list said to end there: the range's count is not met.
        const { briefs, count } = pageFor(platform, request);
        return answer({ briefs, more: false, count });
      }),
    });
    const summary = await invokeOk(h, await auto(), nextSchedule());
    await completeCursorRun(summary);
    expect(summary).toMatchObject({ fallback: 'range-short' });
    // The fallback is one sweep without a filter.
    expect(sim.stats.recent.some((record) => record.devEUI.length === 0 && record.pageAfter !== undefined)).toBe(true);
  });

  it('falls back to one unfiltered sweep when a range page comes back unfiltered mid-run, and says so', async () => {
    await spec({
      fault: onFirstRangePage((request, platform) => {
        const { briefs, count } = pageFor(platform, request, true);
        return answer({ briefs, more: true, count, cursors: { last: 'ignored' } });
      }),
    });
    const summary = await invokeOk(h, await auto(), nextSchedule());
    await completeCursorRun(summary);
    expect(summary).toMatchObject({ fallback: 'filter-ignored' });
  });
});

describe('cursor mode: faults that fail a run, committing nothing', () => {
  it('a rate limit that never lifts on a range page: the retries run out, nothing committed', async () => {
    let target: string | undefined;
    await spec({
      fault: (request) => {
        if (rangePage(request)) target ??= request.pageAfter;
        return target !== undefined && request.pageAfter === target ? status(503, { 'retry-after': '0' }) : undefined;
      },
    });
    const error = await failsCommittingNothing({ THINGPARK_MAX_RETRIES: '1' });
    expect(error).toMatchObject({ code: 'PLATFORM_ERROR', status: 503 });
  });

  it('"more" true but no cursors on a range page mid-run: PAGE_MALFORMED naming the range, nothing committed', async () => {
    await spec({
      fault: onFirstRangePage((request, platform) => {
        const { briefs, count } = pageFor(platform, request);
        return answer({ briefs, more: true, count });
      }),
    });
    const error = await failsCommittingNothing();
    expect(error).toMatchObject({ name: 'MalformedPageError', code: 'PAGE_MALFORMED' });
    expect(error.message).toMatch(/^Page \d+ of range [0-9A-F]+/);
    expect(error.message).toContain('"cursors.last" is missing');
  });

  it('a cursor that is not a string: PAGE_MALFORMED, nothing committed', async () => {
    await spec({
      fault: onFirstRangePage((request, platform) => {
        const { briefs, count } = pageFor(platform, request);
        return answer({ briefs, more: true, count, cursors: { last: 42 } });
      }),
    });
    const error = await failsCommittingNothing();
    expect(error).toMatchObject({ code: 'PAGE_MALFORMED' });
    expect(error.message).toContain('"cursors" is not an object whose "last" is a string');
  });

  it('a cursor the platform then refuses (400): the run fails on that page, nothing committed', async () => {
    const sim = await spec({
      fault: onFirstRangePage((request, platform) => {
        const { briefs, count } = pageFor(platform, request);
        return answer({ briefs, more: true, count, cursors: { last: 'not a cursor of this platform' } });
      }),
    });
    const error = await failsCommittingNothing();
    expect(error).toMatchObject({ code: 'PLATFORM_ERROR', status: 400 });
    expect(sim.stats.refusedRequests).toBeGreaterThan(0);
  });
});
