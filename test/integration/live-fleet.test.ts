import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { decodeKeyIndex } from '../../lambda/storage/key-index.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { exporter, freshPrefix, invoke, invokeFailing, invokeOk, objects, reset, useHarness, type Harness } from '../faults/harness.ts';
import { simulatedBrief, type Brief } from '../../tools/stand-ins/fleet.ts';
import type { FleetChange, SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { getJson, runRows, type Row } from '../../tools/inspect/snapshot.ts';
import { DEMO } from '../../tools/stand-ins/standins.ts';

/**
 * A fleet that changes while a run reads it (the simulator's `changes`), against a run
 * that has a previous run's key index to compare with: the snapshot must hold every
 * device that existed throughout the run, each once, and say what it recovered and what
 * is gone. Pages of 100 (the harness's page size) over 3,000 devices: 30 pages.
 */
const h: Harness = useHarness();

const FLEET = 3000;
const PAGES = FLEET / 100;
/** One page in flight at a time, and no growth past it: which devices a change makes the paging skip is then exact. */
const SERIAL = { THINGPARK_CONCURRENCY: '1', THINGPARK_MAX_CONCURRENCY: '1' };

const refOf = (brief: Brief | Row) => String(brief.ref);
const refs = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => refOf(simulatedBrief(from + i)));
const fleetRefs = () => refs(0, FLEET);

/**
 * A committed run over the unchanged fleet under a fresh prefix (the previous run the next
 * one compares with), then the simulator set up for the run under test, counters cleared.
 */
async function afterAPreviousRun(options: Partial<SimulatorOptions>, env: Record<string, string> = {}) {
  const prefix = freshPrefix();
  await reset(h, { fleet: FLEET });
  const handler = await exporter(h, prefix, env);
  const previous = await invokeOk(h, handler, {});
  expect(previous).toMatchObject({ status: 'committed', devices: FLEET, verification: 'first-run' });
  const sim = await reset(h, { fleet: FLEET, ...options });
  return { prefix, handler, previous, sim };
}

/** Every row of a run's snapshot, and its refs. */
async function snapshotOf(summary: { bucket: string; dataKeys: readonly string[] }) {
  const rows = await runRows(h.proxy.direct, summary);
  return { rows, refs: rows.map(refOf) };
}

/** Checks that every ref in `expected` is in the snapshot exactly once, and nothing else is. */
function expectEachOnce(actual: string[], expected: string[]) {
  expect(actual.length).toBe(new Set(actual).size);
  expect([...actual].sort()).toEqual([...expected].sort());
}

const without = (all: string[], gone: Brief[]) => {
  const removed = new Set(gone.map(refOf));
  return all.filter((ref) => !removed.has(ref));
};

describe('devices deleted ahead of the cursor (among devices already read)', () => {
  it('recovers exactly the devices the paging skipped, by lookups, each once, and says so at INFO', async () => {
    const changes: FleetChange[] = [
      { afterPage: 10, remove: 15, at: 'served' },
      { afterPage: 20, remove: 10, at: 'served' },
    ];
    const { handler, previous, sim } = await afterAPreviousRun({ changes }, SERIAL);
    const outcome = await invoke(h, handler, {});
    const summary = outcome.summary;
    if (!summary) throw outcome.error ?? new Error('The run returned no summary');
    // Deleting 15 read devices after page 10 shifts positions 1100-1114 behind the cursor;
    // deleting 10 more after page 20 does the same to the ten then at 2100-2109, which were
    // at 2115-2124 before the first deletion.
    const skipped = [...refs(1100, 1115), ...refs(2115, 2125)];
    expect(summary).toMatchObject({
      status: 'committed',
      verification: 'compared',
      comparedWith: previous.runId,
      recovered: 25,
      removed: 0,
      unresolved: 0,
      verificationRequests: 25,
      duplicates: 0,
    });
    expect(sim.stats.lookups).toBe(25);
    const { refs: written } = await snapshotOf(summary);
    // The deleted devices were read before they went: the snapshot holds the whole fleet.
    expectEachOnce(written, fleetRefs());
    // The sweep's rows come first; the recovered ones after it, in key order.
    expect(written.slice(-25)).toEqual(skipped);
    expect(outcome.output).toContain('Recovered devices the sweep missed');
    const logged = outcome.output.split('\n').find((line) => line.includes('Recovered devices the sweep missed')) ?? '';
    expect(JSON.parse(logged)).toMatchObject({ level: 'INFO', recovered: 25, removed: 0, verificationRequests: 25, comparedWith: previous.runId });
  });

  it('with pages fetched concurrently, holds every device that existed throughout once, the recovered ones after the sweep', async () => {
    const changes: FleetChange[] = [5, 12, 19, 26].map((afterPage) => ({ afterPage, remove: 4, at: 'served' }));
    const { handler, sim } = await afterAPreviousRun({ changes, latencyMs: 5 });
    const summary = await invokeOk(h, handler, {});
    const { refs: written } = await snapshotOf(summary);
    expect(written.length).toBe(new Set(written).size);
    const throughout = without(fleetRefs(), sim.stats.removed);
    for (const ref of throughout) expect(written).toContain(ref);
    expect(summary.recovered).toBeGreaterThan(0);
    // What the verification added is exactly what the sweep had not written.
    const swept = new Set(written.slice(0, summary.devices - summary.recovered));
    const recovered = written.slice(summary.devices - summary.recovered);
    expect(recovered.filter((ref) => swept.has(ref))).toEqual([]);
    expect(throughout.filter((ref) => !swept.has(ref)).sort()).toEqual([...recovered].sort());
    expect(summary.verificationRequests).toBe(sim.stats.lookups);
  });

  it('150 of 3,000 deleted mid-run: none of the devices that existed throughout is lost', async () => {
    const changes: FleetChange[] = [4, 8, 12, 16, 20, 24].map((afterPage) => ({ afterPage, remove: 25, at: 'served' }));
    const { handler, sim } = await afterAPreviousRun({ changes, latencyMs: 5 });
    const summary = await invokeOk(h, handler, {});
    expect(sim.stats.removed).toHaveLength(150);
    const { refs: written } = await snapshotOf(summary);
    expect(written.length).toBe(new Set(written).size);
    const swept = new Set(written.slice(0, summary.devices - summary.recovered));
    const skipped = without(fleetRefs(), sim.stats.removed).filter((ref) => !swept.has(ref));
    expect(skipped.length).toBeGreaterThan(0);
    expect(summary).toMatchObject({ verification: 'compared', recovered: skipped.length, unresolved: 0 });
    expect(written.slice(summary.devices - summary.recovered).sort()).toEqual(skipped.sort());
  });
});

describe('devices deleted behind the cursor (not yet read)', () => {
  it.each([
    ['404', 404],
    ['400 "Device not found"', 400],
  ] as const)('has nothing to recover and confirms each gone (%s)', async (_name, missingDevice) => {
    const { handler, sim } = await afterAPreviousRun({ changes: [{ afterPage: 5, remove: 20, at: 'unserved' }], missingDevice });
    const summary = await invokeOk(h, handler, {});
    expect(sim.stats.removed).toHaveLength(20);
    expect(summary).toMatchObject({ status: 'committed', devices: FLEET - 20, recovered: 0, removed: 20, unresolved: 0, verificationRequests: 20 });
    expectEachOnce((await snapshotOf(summary)).refs, without(fleetRefs(), sim.stats.removed));
    expect([...sim.stats.byDevice.keys()].sort()).toEqual(sim.stats.removed.map(refOf).sort());
  });
});

describe('devices added while the fleet is read', () => {
  it('ahead of the cursor: the devices pushed back are read twice and kept once; the new ones come with the next run', async () => {
    const { handler, sim } = await afterAPreviousRun({ changes: [{ afterPage: 10, add: 12, at: 'served' }] }, SERIAL);
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ devices: FLEET, duplicates: 12, recovered: 0, removed: 0, verificationRequests: 0 });
    expectEachOnce((await snapshotOf(summary)).refs, fleetRefs());
    // Created since the previous run and never read: no index knows them. The next run reads them.
    sim.options.changes = [];
    const next = await invokeOk(h, handler, {});
    expect(next).toMatchObject({ devices: FLEET + 12, duplicates: 0, recovered: 0, removed: 0 });
    expectEachOnce((await snapshotOf(next)).refs, [...fleetRefs(), ...sim.stats.added.map(refOf)]);
  });
});

describe('more devices missing than the sweep has pages', () => {
  it('sweeps the list once more instead of looking each up, then looks up only those still missing', async () => {
    const changes: FleetChange[] = [
      { afterPage: 10, remove: 50, at: 'served' },
      { afterPage: 12, remove: 5, at: 'unserved' },
    ];
    const { handler, sim } = await afterAPreviousRun({ changes }, SERIAL);
    const summary = await invokeOk(h, handler, {});
    // 50 skipped + 5 gone = 55 missing, more than the 30 pages the sweep took.
    const pagesAfter = Math.ceil((FLEET - 55) / 100);
    expect(summary).toMatchObject({ pages: PAGES, recovered: 50, removed: 5, unresolved: 0, duplicates: 0 });
    // One more sweep of the list (every page asked twice), then five lookups, not 55.
    expect(sim.stats.lookups).toBe(5);
    for (let page = 0; page < pagesAfter; page += 1) expect(sim.stats.byPage.get(page), `page ${page}`).toBe(2);
    expect(summary.verificationRequests).toBe(pagesAfter + 5);
    expect(summary.pageRequests + summary.verificationRequests).toBe(sim.stats.requests);
    expectEachOnce((await snapshotOf(summary)).refs, without(fleetRefs(), sim.stats.removed.slice(-5)));
  });

  it("looks up no more than a sweep's worth after the second sweep, and reports the rest as unresolved", async () => {
    // 70 devices gone since the previous run: more than the 30 pages, twice.
    const { handler, sim } = await afterAPreviousRun({ changes: [{ afterPage: 3, remove: 70, at: 'unserved' }] }, SERIAL);
    const outcome = await invoke(h, handler, {});
    const pagesAfter = Math.ceil((FLEET - 70) / 100);
    expect(outcome.summary).toMatchObject({ status: 'committed', devices: FLEET - 70, recovered: 0, removed: PAGES, unresolved: 70 - PAGES });
    expect(outcome.summary?.verificationRequests).toBe(pagesAfter + PAGES);
    expect(sim.stats.lookups).toBe(PAGES);
    expect(outcome.output).toContain('Left devices of the previous run unresolved');
  });
});

describe('a device deleted between the sweep and its lookup', () => {
  it('is confirmed removed, not an error; the others skipped are recovered', async () => {
    const changes: FleetChange[] = [
      { afterPage: 10, remove: 3, at: 'served' },
      // Skipped: devices 1100-1102, now at positions 1097-1099. The first lookup (in key
      // order: device 1100) finds it gone.
      { beforeLookup: 1, remove: 1, at: 1097 },
    ];
    const { handler, sim } = await afterAPreviousRun({ changes }, SERIAL);
    const summary = await invokeOk(h, handler, {});
    expect(sim.stats.removed.map(refOf).at(-1)).toBe(refOf(simulatedBrief(1100)));
    expect(summary).toMatchObject({ status: 'committed', recovered: 2, removed: 1, verificationRequests: 3 });
    const { refs: written } = await snapshotOf(summary);
    expect(written).not.toContain(refOf(simulatedBrief(1100)));
    expect(written.slice(-2)).toEqual(refs(1101, 1103));
  });
});

describe('lookups go the way pages go', () => {
  it('a lookup answered 401 drops the token and is sent once more with a new one', async () => {
    let refused = 0;
    const { handler, sim } = await afterAPreviousRun({
      changes: [{ afterPage: 10, remove: 3, at: 'served' }],
      lookupFault: () => (refused++ === 0 ? { status: 401, body: JSON.stringify({ code: 401, message: 'Invalid or expired token' }) } : undefined),
    });
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ recovered: 3, tokenRequests: 1, verificationRequests: 4 });
    expect(sim.tokens.grants).toBe(1);
    expect([...sim.stats.byDevice.values()].sort()).toEqual([1, 1, 2]);
  });

  it('a throttled lookup is retried after Retry-After and counted as throttled', async () => {
    const { handler } = await afterAPreviousRun({
      changes: [{ afterPage: 10, remove: 3, at: 'served' }],
      lookupFault: ({ attempt }) => (attempt === 1 ? { status: 429, headers: { 'retry-after': '0' }, body: '{"code":429}' } : undefined),
    });
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ recovered: 3, throttled: 3, retries: 3, verificationRequests: 6 });
  });

  it('a lookup that keeps failing fails the run, which publishes nothing', async () => {
    const { prefix, handler } = await afterAPreviousRun(
      {
        changes: [{ afterPage: 10, remove: 3, at: 'served' }],
        lookupFault: () => ({ status: 500, body: '{"code":500,"message":"Simulated"}' }),
      },
      { THINGPARK_MAX_RETRIES: '1' },
    );
    const before = await objects(h, prefix);
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'PlatformError', code: 'PLATFORM_ERROR', status: 500 });
    expect(error.message).toMatch(/Gave up after 1 retry .*device \d+: HTTP 500/);
    expect(await objects(h, prefix)).toEqual(before);
  });
});

describe('a lookup asks only for a device id, and takes only the device asked for', () => {
  it('a 200 answering another device fails the run as a malformed answer, which publishes nothing', async () => {
    const { prefix, handler } = await afterAPreviousRun({
      changes: [{ afterPage: 10, remove: 3, at: 'served' }],
      lookupFault: () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(simulatedBrief(7)) }),
    });
    const before = await objects(h, prefix);
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'MalformedPageError', code: 'PAGE_MALFORMED' });
    expect(error.message).toMatch(
      new RegExp(`^The answer for device \\d+ is malformed: it names device ${refOf(simulatedBrief(7))}, not the device asked for`),
    );
    expect(await objects(h, prefix)).toEqual(before);
  });

  it.each(['..', '.', 'a/b', '70B3D5%2F'])('a previous device keyed %j is refused before any request with the token', async (ref) => {
    const prefix = freshPrefix();
    const odd = { ...simulatedBrief(FLEET), ref };
    const sim = await reset(h, { fleet: [...Array.from({ length: 50 }, (_, i) => simulatedBrief(i)), odd] });
    const handler = await exporter(h, prefix, SERIAL);
    await invokeOk(h, handler, {});
    await reset(h, { fleet: Array.from({ length: 50 }, (_, i) => simulatedBrief(i)) });
    const error = await invokeFailing(h, handler, {});
    expect(error).toMatchObject({ name: 'DeviceIdError', code: 'DEVICE_ID_INVALID' });
    expect(error.message).toContain(`Device ${JSON.stringify(ref)} cannot be looked up`);
    // One page of 50 devices, and nothing else: no lookup, and no other route, got the token.
    expect(sim.stats.lookups).toBe(0);
    expect(sim.stats.requests).toBe(1);
  });
});

describe('a run with nothing to compare with', () => {
  it('the first run skips the verification and says so', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: FLEET });
    const outcome = await invoke(h, await exporter(h, prefix), {});
    expect(outcome.summary).toMatchObject({ status: 'committed', verification: 'first-run', recovered: 0, removed: 0, verificationRequests: 0 });
    expect(outcome.summary).not.toHaveProperty('comparedWith');
    expect(outcome.output).toContain('No previous key index to compare with: verification skipped');
  });

  it('a first run misses what the paging skipped; the next run reads those devices, as they exist', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h, { fleet: FLEET, changes: [{ afterPage: 10, remove: 7, at: 'served' }] });
    const handler = await exporter(h, prefix, SERIAL);
    const first = await invokeOk(h, handler, {});
    expect(first).toMatchObject({ verification: 'first-run', devices: FLEET - 7, recovered: 0 });
    expect((await snapshotOf(first)).refs).not.toContain(refOf(simulatedBrief(1100)));
    sim.options.changes = [];
    const next = await invokeOk(h, handler, {});
    // The seven deleted were read, so the first run's index holds them: now confirmed gone.
    expect(next).toMatchObject({ verification: 'compared', comparedWith: first.runId, recovered: 0, removed: 7 });
    expectEachOnce((await snapshotOf(next)).refs, without(fleetRefs(), sim.stats.removed));
  });

  it('where the platform counts the fleet and the count falls during the sweep, sweeps once more', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h, { fleet: FLEET, includeCount: true, changes: [{ afterPage: 10, remove: 7, at: 'served' }] });
    const summary = await invokeOk(h, await exporter(h, prefix, SERIAL), {});
    expect(summary).toMatchObject({ verification: 'first-run', recovered: 7, verificationRequests: Math.ceil((FLEET - 7) / 100) });
    expectEachOnce((await snapshotOf(summary)).refs, fleetRefs());
    expect(sim.stats.lookups).toBe(0);
  });

  it('a previous run without a key index (written before them) is not compared with, and the run says why', async () => {
    const { handler, previous } = await afterAPreviousRun({});
    const { index: _index, verification: _verification, ...older } = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, previous.manifestKey);
    await h.proxy.direct.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: previous.manifestKey, Body: JSON.stringify(older) }));
    const outcome = await invoke(h, handler, {});
    expect(outcome.summary).toMatchObject({ verification: 'no-previous-index', recovered: 0, verificationRequests: 0 });
    expect(outcome.summary).not.toHaveProperty('comparedWith');
    expect(outcome.output).toContain('it was written before key indexes');
  });
});

describe('the key index', () => {
  it("is listed in the manifest, outside the table location, and holds the snapshot's keys", async () => {
    const { previous } = await afterAPreviousRun({});
    const manifest = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, previous.manifestKey);
    const entry = manifest.index;
    if (!entry) throw new Error('the manifest lists no key index');
    expect(entry.key).toMatch(new RegExp(`^faults-\\d+-\\d+/indexes/${previous.runId}/[a-z0-9]+\\.keys\\.gz$`));
    expect(entry.key.slice(0, manifest.tableLocation.length)).not.toBe(manifest.tableLocation);
    const object = await h.proxy.direct.send(new GetObjectCommand({ Bucket: DEMO.bucket, Key: entry.key }));
    const stored = await object.Body?.transformToByteArray();
    expect(stored?.length).toBe(entry.bytes);
    const index = await decodeKeyIndex(stored ?? new Uint8Array());
    expect(entry.count).toBe(FLEET);
    expect([...index.keys()].map(String)).toEqual(fleetRefs());
  });
});
