import { describe, expect, it } from 'vitest';
import { getJson, runRows, type Row } from '../../tools/inspect/snapshot.ts';
import { simulatedBrief } from '../../tools/stand-ins/fleet.ts';
import { SPEC_7_3, type SimulatorOptions } from '../../tools/stand-ins/simulator.ts';
import { queryObjects } from '../support/curated.ts';
import { lambdaContext } from '../support/lambda.ts';
import { DEMO, exporter, freshPrefix, invoke, invokeFailing, invokeOk, reset, useHarness, type Harness } from '../faults/harness.ts';

/**
 * How a run reads the device list, against the simulator playing Actility's published 7.3
 * description and each older or uncertain variant (docs/thingpark-api.md): cursor sweeps
 * over EUI ranges where the platform has cursor mode, offsets (with the first page
 * learned) where it has not, and never a snapshot that looks complete when the list was
 * not read to its end.
 */
const h: Harness = useHarness();

/** The platform as the spec describes it, overlaid with a variant. */
const spec = (options: Partial<SimulatorOptions>) => reset(h, { ...SPEC_7_3, ...options });
/** The exporter as deployed: paging and the first page index left to what the platform shows. */
const auto = (prefix: string, env: Record<string, string | undefined> = {}) =>
  exporter(h, prefix, { THINGPARK_PAGING: undefined, THINGPARK_FIRST_PAGE_INDEX: undefined, ...env });

const euis = (rows: Row[]) => rows.map((row) => String(row.EUI));
const repeated = (values: string[]) => values.filter((value, index) => values.indexOf(value) !== index);
const ascending = (values: string[]) => values.every((value, i) => i === 0 || (values[i - 1] as string) < value);

interface ListedFile {
  key: string;
  minEui?: string;
  maxEui?: string;
}

/** The run's manifest, and each listed file's EUIs, in the order listed: each file's bounds (upper case, docs/data-layout.md) checked against its rows. */
async function filesOf(summary: { bucket: string; manifestKey: string }): Promise<{ order?: string; files: string[][] }> {
  const manifest = await getJson<{ order?: string; files: ListedFile[] }>(h.proxy.direct, summary.bucket, summary.manifestKey);
  const files: string[][] = [];
  for (const file of manifest.files) {
    const read = euis(await runRows(h.proxy.direct, { bucket: summary.bucket, dataKeys: [file.key] }));
    const bounds = read.map((eui) => eui.toUpperCase()).sort();
    expect({ minEui: file.minEui, maxEui: file.maxEui }).toEqual({ minEui: bounds[0], maxEui: bounds.at(-1) });
    files.push(read);
  }
  return { ...(manifest.order === undefined ? {} : { order: manifest.order }), files };
}

describe('cursor mode (the spec)', () => {
  it('reads a skewed fleet with IMEIs among DevEUIs in EUI ranges, each device once, without offsets or lookups', async () => {
    const sim = await spec({ fleet: 20_000 });
    const handler = await auto(freshPrefix());
    const summary = await invokeOk(h, handler, {});
    expect(summary).toMatchObject({ devices: 20_000, duplicates: 0, paging: 'cursor', verification: 'not-needed', verificationRequests: 0 });
    expect(summary.ranges).toBeGreaterThan(4);
    expect(summary).not.toHaveProperty('fallback');
    expect(sim.stats).toMatchObject({ offsetRequests: 0, lookups: 0 });
    const rows = await runRows(h.proxy.direct, summary);
    const read = euis(rows);
    expect(repeated(read)).toEqual([]);
    expect(read).toHaveLength(20_000);
    // The simulated fleet's cellular devices (15-digit IMEIs) are there too.
    expect(read.filter((eui) => /^\d{15}$/.test(eui)).length).toBeGreaterThan(0);
    // Every page that was read was needed: the fleet's pages plus the probes of the ranges split.
    expect(summary.pageRequests).toBeLessThan(Math.ceil(20_000 / 100) * 1.3);
    const manifest = await getJson<{ source: Record<string, unknown> }>(h.proxy.direct, summary.bucket, summary.manifestKey);
    expect(manifest.source).toMatchObject({ paging: 'cursor' });
    expect(manifest.source).not.toHaveProperty('firstPageIndex');
  });

  it('writes the snapshot in EUI order: a file per range, listed in order, their bounds in the manifest', async () => {
    await spec({ fleet: 20_000 });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    const { order, files } = await filesOf(summary);
    expect(order).toBe('eui');
    // Ranges read at once, each into a file of its own: more than one file, in the order listed.
    expect(files.length).toBeGreaterThan(4);
    const read = files.flat();
    expect(read).toHaveLength(20_000);
    expect(ascending(read)).toBe(true);
  });

  it('curates a cursor-read run into a device_snapshots table in EUI order', async () => {
    await spec({ fleet: 20_000 });
    const prefix = freshPrefix();
    const summary = await invokeOk(h, await auto(prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', CURATE_CHANGE_FIELDS: undefined }), {});
    expect(summary).toMatchObject({ curation: { status: 'curated', devices: 20_000 } });
    const record = await getJson<{ snapshotFiles: { key: string }[] }>(h.proxy.direct, summary.bucket, `${prefix}curated/runs/${summary.runId}.json`);
    const curated: string[] = [];
    for (const { key } of record.snapshotFiles) {
      const rows = await queryObjects(h.proxy.direct, summary.bucket, [key], 'SELECT eui FROM read_parquet({files})');
      curated.push(...rows.map((row) => String(row.eui).toUpperCase()));
    }
    expect(curated).toHaveLength(20_000);
    expect(ascending(curated)).toBe(true);
  });

  it('reads a fleet ten times larger than the offset limit completely', async () => {
    await spec({ fleet: 10_000, offsetCap: { devices: 1000, end: 'refuse' } });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    expect(summary).toMatchObject({ devices: 10_000, paging: 'cursor' });
  });

  it('skips no device when devices are deleted while it reads, with no lookup and no second sweep', async () => {
    const prefix = freshPrefix();
    await spec({ fleet: 10_000 });
    await invokeOk(h, await auto(prefix), {});
    const sim = await spec({
      fleet: 10_000,
      latencyMs: 5,
      changes: [
        { afterRequest: 20, remove: 25, at: 'served' },
        { afterRequest: 40, remove: 25, at: 'served' },
      ],
    });
    const summary = await invokeOk(h, await auto(prefix), {});
    const removed = new Set(sim.stats.removed.map((brief) => String(brief.EUI)));
    expect(removed.size).toBe(50);
    const read = new Set(euis(await runRows(h.proxy.direct, summary)));
    const fleet = (await spec({ fleet: 10_000 })).fleet();
    const everyEui = fleet.ids(0, fleet.size).map((id) => fleet.euiOf(id));
    expect(everyEui).toHaveLength(10_000);
    expect(everyEui.filter((eui) => !removed.has(eui) && !read.has(eui))).toEqual([]);
    expect(summary).toMatchObject({ paging: 'cursor', verification: 'not-needed', recovered: 0, verificationRequests: 0 });
    expect(sim.stats.lookups).toBe(0);
    expect(summary.pageRequests).toBeLessThanOrEqual(Math.ceil(10_000 / 100) * 1.3);
  });

  it('reads a fleet whose EUIs come in lower case as it reads upper case: in ranges, each device once, in order, as sent', async () => {
    // The spec writes EUIs in upper case; a platform that stores them as given, filtering and
    // sorting them without regard to case (as the simulator does), must lose nothing either.
    const fleet = Array.from({ length: 3000 }, (_, i) => {
      const brief = simulatedBrief(i, { identifiers: 'skewed', ref: false });
      return { ...brief, EUI: String(brief.EUI).toLowerCase() };
    });
    const sim = await spec({ fleet });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    expect(summary).toMatchObject({ devices: 3000, duplicates: 0, paging: 'cursor', verification: 'not-needed' });
    expect(summary.ranges).toBeGreaterThan(1);
    expect(summary).not.toHaveProperty('fallback');
    expect(sim.stats.lookups).toBe(0);
    const { order, files } = await filesOf(summary);
    const read = files.flat();
    expect(order).toBe('eui');
    expect(read).toHaveLength(3000);
    expect(repeated(read)).toEqual([]);
    expect(ascending(read)).toBe(true);
    expect(new Set(read)).toEqual(new Set(fleet.map((brief) => brief.EUI)));
  });

  it('falls back to one unfiltered cursor sweep when the platform ignores the EUI filter, and says so', async () => {
    await spec({ fleet: 5000, devEUIFilter: false });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    expect(summary).toMatchObject({ devices: 5000, paging: 'cursor', fallback: 'filter-ignored', duplicates: 0 });
    const read = euis(await runRows(h.proxy.direct, summary));
    expect(repeated(read)).toEqual([]);
    // The unfiltered sweep overlaps what the ranges wrote: the files are not claimed to be in order.
    expect((await filesOf(summary)).order).toBeUndefined();
  });

  it('reads by offset when asked to (THINGPARK_PAGING=offset), from the page it learns the list starts at', async () => {
    const sim = await spec({ fleet: 1500 });
    const summary = await invokeOk(h, await auto(freshPrefix(), { THINGPARK_PAGING: 'offset' }), {});
    expect(summary).toMatchObject({ devices: 1500, paging: 'offset', ranges: 0 });
    expect(sim.stats.cursorRequests).toBe(0);
    // In the list's own order, one file: its bounds are there, no order is claimed.
    const { order, files } = await filesOf(summary);
    expect(order).toBeUndefined();
    expect(files).toHaveLength(1);
  });
});

describe('a platform without cursor mode', () => {
  it('is read by offset from page 1, having learned that page 0 is refused', async () => {
    await spec({ fleet: 2500, cursorMode: false });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    expect(summary).toMatchObject({ devices: 2500, paging: 'offset', duplicates: 0 });
    const manifest = await getJson<{ source: Record<string, unknown> }>(h.proxy.direct, summary.bucket, summary.manifestKey);
    expect(manifest.source).toMatchObject({ paging: 'offset', firstPageIndex: 1 });
  });

  it('loses nothing on an older platform whose pages start at 0', async () => {
    await spec({ fleet: 2500, cursorMode: false, pageIndexBase: 0, pageZero: 'first' });
    const summary = await invokeOk(h, await auto(freshPrefix()), {});
    expect(summary).toMatchObject({ devices: 2500, paging: 'offset' });
    const manifest = await getJson<{ source: Record<string, unknown> }>(h.proxy.direct, summary.bucket, summary.manifestKey);
    expect(manifest.source).toMatchObject({ firstPageIndex: 0 });
  });

  it('fails with OFFSET_LIMIT when the platform refuses pages past its limit, and leaves the previous snapshot alone', async () => {
    const prefix = freshPrefix();
    await spec({ fleet: 3000, cursorMode: false });
    const before = await invokeOk(h, await auto(prefix), {});
    await spec({ fleet: 12_000, cursorMode: false, offsetCap: { devices: 5000, end: 'refuse' } });
    const error = await invokeFailing(h, await auto(prefix), {});
    expect(error).toMatchObject({ name: 'ListIncompleteError', code: 'OFFSET_LIMIT' });
    expect(error.message).toMatch(/refused page 51 \(HTTP 400\) after 50 pages, while it counted 12000 devices/);
    const latest = await getJson<{ runId: string }>(h.proxy.direct, before.bucket, before.latestKey);
    expect(latest.runId).toBe(before.runId);
  });

  it('fails with LIST_ENDED_EARLY when the list silently ends at the limit, though every page counted more', async () => {
    const prefix = freshPrefix();
    await spec({ fleet: 12_000, cursorMode: false, offsetCap: { devices: 5000, end: 'silent' } });
    const outcome = await invoke(h, await auto(prefix), {});
    expect(outcome.error).toMatchObject({ name: 'ListIncompleteError', code: 'LIST_ENDED_EARLY' });
    expect(outcome.error?.message).toMatch(/ended after 5000 devices \(50 pages\) while the platform counted 12000: 7000 devices were not reached/);
    expect(outcome.summary).toBeUndefined();
  });
});

describe('a cursor read over several invocations', () => {
  it('resumes every range where it stopped and commits each device once', async () => {
    await spec({ fleet: 6000, latencyMs: 25 });
    const prefix = freshPrefix();
    const handler = await auto(prefix, {
      RUN_DEADLINE_MARGIN_SECONDS: '1',
      RUN_CHECKPOINT_MARGIN_SECONDS: '1',
      THINGPARK_MAX_CONCURRENCY: '2',
      THINGPARK_CONCURRENCY: '2',
    });
    let answer: unknown = await invoke(h, handler, { scheduledTime: '2024-06-01T10:00:00Z' }, lambdaContext(2500)).then((outcome) => outcome.summary);
    let invocations = 1;
    while ((answer as { status?: string } | undefined)?.status === 'continue' && invocations < 20) {
      const checkpoint = await getJson<{ sweep: { cursor?: { ranges: unknown[] } } }>(
        h.proxy.direct,
        DEMO.bucket,
        (answer as { checkpoint: string }).checkpoint,
      );
      expect(checkpoint.sweep.cursor?.ranges.length ?? 0).toBeGreaterThan(0);
      answer = (await invoke(h, handler, answer, lambdaContext(2500))).summary;
      invocations += 1;
    }
    expect(invocations).toBeGreaterThan(1);
    expect(answer).toMatchObject({ status: 'committed', devices: 6000, paging: 'cursor', duplicates: 0 });
    const read = euis(await runRows(h.proxy.direct, answer as never));
    expect(repeated(read)).toEqual([]);
    expect(read).toHaveLength(6000);
    // Each invocation completed its ranges' files; listed by their bounds, they are still in EUI order.
    const { order, files } = await filesOf(answer as never);
    expect(order).toBe('eui');
    expect(ascending(files.flat())).toBe(true);
  });
});
