import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DataWriter } from '../../lambda/storage/data-writer.ts';
import { getJson, getText, runRows, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO, exporter, freshPrefix, invoke, invokeFailing, invokeOk, lambdaContext, objects, reset, useHarness } from './harness.ts';
import { repeated } from '../support/collections.ts';
import { putDirect } from './s3-proxy.ts';

const h = useHarness();

const BASELINE = { scheduledTime: '2024-01-01T00:00:00Z' };
const NEXT = { scheduledTime: '2024-01-02T00:00:00Z' };
const NEXT_DATA = (prefix: string) => `${prefix}devices/dt=2024-01-02/run=20240102T000000Z/`;
const NEXT_MANIFEST = (prefix: string) => `${prefix}manifests/20240102T000000Z.json`;

/** A committed run under a fresh prefix; returns the prefix and every object in it, byte for byte. */
async function baseline(env: Record<string, string> = {}) {
  const prefix = freshPrefix();
  await reset(h, { fleet: 150 });
  const handler = await exporter(h, prefix, env);
  const summary = await invokeOk(h, handler, BASELINE);
  expect(summary.pointerMoved).toBe(true);
  return { prefix, before: await objects(h, prefix) };
}

/** One object as text or JSON, read from S3 itself (past the proxy and its rule). */
const textOf = (key: string) => getText(h.proxy.direct, DEMO.bucket, key);
const jsonOf = <T = Record<string, unknown>>(key: string) => getJson<T>(h.proxy.direct, DEMO.bucket, key);

/** What the proxy saw for one key, in order: "PUT 412" and the like (only `method`'s, if given). */
function requestsFor(key: string, method?: string): string[] {
  return h.proxy.log
    .filter((request) => request.key === key && (method === undefined || request.method === method))
    .map(({ method: m, status }) => `${m} ${status}`);
}

/**
 * Another writer's `body` put at `key` (straight into S3) just before this run's first
 * conditional write of that key reaches it: the run's write then meets 412.
 */
function writtenFirstBy(key: string, body: string): void {
  let written = false;
  h.proxy.rule = async ({ key: requested, method, condition }) => {
    if (method === 'PUT' && requested === key && condition && !written) {
      written = true;
      await putDirect(h.proxy, DEMO.bucket, key, body);
    }
    return undefined;
  };
}

/** A pointer as another run, made at `runTime`, would have written it. */
function pointerOf(prefix: string, runTime: string): string {
  const runId = runTime.replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  const finishedAt = new Date(Date.parse(runTime) + 600_000).toISOString();
  return JSON.stringify({ runId, runTime, manifestKey: `${prefix}manifests/${runId}.json`, devices: 1, finishedAt });
}

/** Object keys S3 created under a prefix since `from` (an index into s3Events). */
function created(prefix: string, from: number): string[] {
  return h.s3Events
    .slice(from)
    .filter(({ event, key }) => event.startsWith('ObjectCreated') && key.startsWith(prefix))
    .map(({ key }) => key);
}

describe('deadline', () => {
  it('stops with DeadlineError before the Lambda timeout and publishes nothing', async () => {
    const { prefix, before } = await baseline();
    // Pages 0-4 come at once and fill several data files; page 5 is slow: the run is
    // waiting for it when the deadline comes.
    await reset(h, { fleet: 3000, fault: ({ pageIndex }) => (pageIndex === 5 ? { delayMs: 5000 } : undefined) });
    const handler = await exporter(h, prefix, {
      RUN_DEADLINE_MARGIN_SECONDS: '1',
      SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024),
    });
    const events = h.s3Events.length;
    const started = Date.now();
    const error = await invokeFailing(h, handler, NEXT, lambdaContext(2500));
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    expect(error.message).toContain('RUN_DEADLINE_MARGIN_SECONDS');
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(2500); // before the (simulated) Lambda timeout
    // It had written data files; they are gone, and nothing else changed, byte for byte.
    expect(created(NEXT_DATA(prefix), events).length).toBeGreaterThanOrEqual(4);
    await sleep(300);
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('removes a data file whose upload was in flight when the deadline came', async () => {
    const { prefix, before } = await baseline();
    await reset(h, { fleet: 3000 });
    // The third file is stored and its answer held until the client gives up on it: the run
    // waits on it until its deadline, however long it took to get there.
    let held: () => void = () => undefined;
    const stored = new Promise<void>((resolve) => (held = resolve));
    h.proxy.rule = ({ key, method }) => (method === 'PUT' && key.startsWith(`${NEXT_DATA(prefix)}part-00002-`) ? { holdResponseMs: 60_000, held } : undefined);
    const handler = await exporter(h, prefix, { RUN_DEADLINE_MARGIN_SECONDS: '1', SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024) });
    const events = h.s3Events.length;
    const error = await invokeFailing(h, handler, NEXT, lambdaContext(4000));
    expect(error.name).toBe('DeadlineError');
    await stored;
    // The held upload did land in S3, and is gone again; its answer never came, so the
    // attempt's marker stays, marked failed, outside the table, for a later run to settle.
    expect(created(NEXT_DATA(prefix), events).map((key) => key.slice(NEXT_DATA(prefix).length))).toContainEqual(expect.stringMatching(/^part-00002-/));
    const after = await objects(h, prefix);
    const markers = Object.keys(after).filter((key) => key.startsWith(`${prefix}attempts/`));
    expect(Object.keys(after).filter((key) => !markers.includes(key))).toEqual(Object.keys(before));
    expect(markers).toHaveLength(1);
    expect(JSON.parse(Buffer.from(after[markers[0] as string] as string, 'base64').toString())).toMatchObject({
      runId: '20240102T000000Z',
      state: 'failed',
      dataPrefix: NEXT_DATA(prefix),
    });
  });

  it('ends a Retry-After longer than the time left at the deadline, not after the wait', async () => {
    const { prefix, before } = await baseline();
    await reset(h, {
      fault: ({ pageIndex, attempt }) => (pageIndex === 1 && attempt === 1 ? { status: 429, headers: { 'retry-after': '3600' }, body: '{}' } : undefined),
    });
    const handler = await exporter(h, prefix, { RUN_DEADLINE_MARGIN_SECONDS: '1' });
    const started = Date.now();
    const error = await invokeFailing(h, handler, NEXT, lambdaContext(2000));
    expect(error.name).toBe('DeadlineError');
    expect(Date.now() - started).toBeLessThan(1800);
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('ends at the deadline while a token grant hangs, though no signal reaches the grant', async () => {
    const { prefix, before } = await baseline();
    const sim = await reset(h);
    // A fresh context: the grant is made in this run. Each attempt hangs for 5 s, and the
    // grant may take its timeout and retries: far past the simulated Lambda timeout.
    sim.tokens.fault = () => ({ delayMs: 5000 });
    const handler = await exporter(h, prefix, { RUN_DEADLINE_MARGIN_SECONDS: '1', THINGPARK_REQUEST_TIMEOUT_MS: '4000' });
    const started = Date.now();
    const error = await invokeFailing(h, handler, NEXT, lambdaContext(2000));
    expect(error.name).toBe('DeadlineError');
    expect(Date.now() - started).toBeLessThan(1800);
    sim.tokens.fault = undefined;
    await sleep(300);
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('publishes nothing when less time than the margin remains at the start', async () => {
    const { prefix, before } = await baseline();
    await reset(h);
    const handler = await exporter(h, prefix, { RUN_DEADLINE_MARGIN_SECONDS: '5' });
    const error = await invokeFailing(h, handler, NEXT, lambdaContext(3000));
    expect(error.name).toBe('DeadlineError');
    await sleep(200);
    expect(await objects(h, prefix)).toEqual(before);
  });
});

describe('atomic publish', () => {
  it('a page failing mid-run leaves the previous snapshot byte-identical and removes the data files it wrote', async () => {
    const { prefix, before } = await baseline();
    await reset(h, { fleet: 1000, fault: ({ pageIndex }) => (pageIndex === 5 ? { status: 200, body: 'this is not JSON' } : undefined) });
    const handler = await exporter(h, prefix, { SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024) });
    const events = h.s3Events.length;
    const error = await invokeFailing(h, handler, NEXT);
    expect(error).toMatchObject({ name: 'MalformedPageError', code: 'PAGE_MALFORMED' });
    expect(error.message).toContain('Page 5');
    expect(created(NEXT_DATA(prefix), events).length).toBeGreaterThanOrEqual(4); // pages 0-4 were written ...
    expect(await objects(h, prefix)).toEqual(before); // ... and removed; pointer and manifest untouched
  });

  it('an S3 failure while writing data removes what was written and publishes nothing', async () => {
    const { prefix, before } = await baseline();
    await reset(h, { fleet: 1000 });
    h.proxy.rule = ({ key }) => (key.startsWith(`${NEXT_DATA(prefix)}part-00003-`) ? { status: 500, code: 'InternalError' } : undefined);
    const handler = await exporter(h, prefix, { SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024) });
    const events = h.s3Events.length;
    const error = await invokeFailing(h, handler, NEXT);
    expect(error.name).toBe('InternalError');
    expect(created(NEXT_DATA(prefix), events)).toHaveLength(3); // parts 0-2, then part 3 failed
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('an S3 failure committing the manifest publishes nothing and removes the data files', async () => {
    const { prefix, before } = await baseline();
    await reset(h);
    h.proxy.rule = ({ key, method }) => (method === 'PUT' && key === NEXT_MANIFEST(prefix) ? { status: 500, code: 'InternalError' } : undefined);
    const handler = await exporter(h, prefix);
    const error = await invokeFailing(h, handler, NEXT);
    expect(error.name).toBe('InternalError');
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('a pointer write failure leaves the run committed but not latest; its redelivery moves the pointer', async () => {
    const { prefix, before } = await baseline();
    const sim = await reset(h);
    h.proxy.rule = ({ key, method }) => (method === 'PUT' && key === `${prefix}latest.json` ? { status: 500, code: 'InternalError' } : undefined);
    const handler = await exporter(h, prefix);
    const error = await invokeFailing(h, handler, NEXT);
    expect(error.name).toBe('InternalError');
    const after = await objects(h, prefix);
    expect(after[`${prefix}latest.json`]).toBe(before[`${prefix}latest.json`]);
    expect(after[NEXT_MANIFEST(prefix)]).toBeDefined();

    h.proxy.rule = undefined;
    const requests = sim.stats.requests;
    const redelivered = await invokeOk(h, handler, NEXT);
    expect(redelivered).toMatchObject({ status: 'already-committed', pointerMoved: true, runId: '20240102T000000Z' });
    expect(sim.stats.requests).toBe(requests);
    expect(await jsonOf(`${prefix}latest.json`)).toMatchObject({ runId: '20240102T000000Z', manifestKey: NEXT_MANIFEST(prefix) });
  });

  it('never moves the pointer backwards: an older schedule finishing after a newer one leaves latest at the newer', async () => {
    const prefix = freshPrefix();
    await reset(h);
    const handler = await exporter(h, prefix);
    // The newer schedule is two minutes ahead of this clock (within the skew allowed).
    const at = (offsetMs: number) => new Date(Math.floor(Date.now() / 1000) * 1000 + offsetMs).toISOString();
    const newer = await invokeOk(h, handler, { scheduledTime: at(120_000) });
    expect(newer.pointerMoved).toBe(true);
    const pointer = (await objects(h, `${prefix}latest.json`))[`${prefix}latest.json`];
    const older = await invokeOk(h, handler, { scheduledTime: at(-3_600_000) });
    expect(older).toMatchObject({ status: 'committed', pointerMoved: false });
    // An on-demand run stamped "now" is older than that schedule too.
    const onDemand = await invokeOk(h, handler, { label: 'manual' });
    expect(onDemand.pointerMoved).toBe(false);
    const after = await objects(h, prefix);
    expect(after[`${prefix}latest.json`]).toBe(pointer);
    expect(after[older.manifestKey]).toBeDefined();
  });

  it('an older run losing the pointer race (412) re-reads and leaves the newer run latest', async () => {
    const { prefix } = await baseline();
    await reset(h);
    // A newer run moves the pointer between our read and our write.
    const newerPointer = pointerOf(prefix, '2099-01-01T00:00:00.000Z');
    writtenFirstBy(`${prefix}latest.json`, newerPointer);
    const summary = await invokeOk(h, await exporter(h, prefix), NEXT);
    expect(summary).toMatchObject({ status: 'committed', pointerMoved: false });
    // The first read finds the previous run to verify against; the next three are the pointer's move.
    expect(requestsFor(`${prefix}latest.json`)).toEqual(['GET 200', 'GET 200', 'PUT 412', 'GET 200']);
    expect(await textOf(`${prefix}latest.json`)).toBe(newerPointer);
  });

  it('a newer run whose pointer write meets an older writer (412) re-reads and still moves the pointer', async () => {
    const { prefix } = await baseline();
    await reset(h);
    writtenFirstBy(`${prefix}latest.json`, pointerOf(prefix, '2020-01-01T00:00:00.000Z'));
    const summary = await invokeOk(h, await exporter(h, prefix), NEXT);
    expect(summary).toMatchObject({ status: 'committed', pointerMoved: true });
    // The first read finds the previous run to verify against; the rest are the pointer's move.
    expect(requestsFor(`${prefix}latest.json`)).toEqual(['GET 200', 'GET 200', 'PUT 412', 'GET 200', 'PUT 200']);
    expect(await jsonOf(`${prefix}latest.json`)).toMatchObject({ runId: '20240102T000000Z', manifestKey: NEXT_MANIFEST(prefix) });
  });

  it('a writer discarded while it completes a file fails the write waiting on it and opens no next file', async () => {
    const prefix = freshPrefix();
    await reset(h);
    // File 0 is stored and its answer held until the client gives up on it: the discard
    // comes while the upload is in flight, whatever the machine's load.
    let held: () => void = () => undefined;
    const stored = new Promise<void>((resolve) => (held = resolve));
    h.proxy.rule = ({ key, method }) => (method === 'PUT' && key === `${prefix}w/0.gz` ? { holdResponseMs: 60_000, held } : undefined);
    const writer = new DataWriter(testS3(h.proxy.url), DEMO.bucket, (index) => `${prefix}w/${index}.gz`, 1024, {});
    await writer.write('x'.repeat(600));
    await writer.write('y'.repeat(600));
    // Over 1024 bytes: this write completes file 0, whose upload S3 is slow to answer.
    const rolling = writer.write('z'.repeat(600)).then(
      () => 'written',
      (error: unknown) => (error as Error).message,
    );
    await stored;
    await writer.discard();
    expect(await rolling).toBe('The snapshot writer was discarded');
    // File 0's upload was aborted before S3 answered it: never completed, yet deleted, and
    // the writer cannot vouch that nothing lands later.
    expect(writer.files).toEqual([]);
    expect(writer.leftNothing).toBe(false);
    expect(await objects(h, prefix)).toEqual({});
    expect(h.proxy.log.filter(({ key }) => key.startsWith(`${prefix}w/1`))).toEqual([]);
  });

  it("a manifest conflict (412: another attempt committed first) returns already-committed with the winner's summary", async () => {
    const { prefix } = await baseline();
    await reset(h);
    const winner = JSON.stringify({
      schemaVersion: 1,
      runId: '20240102T000000Z',
      trigger: 'schedule',
      runTime: '2024-01-02T00:00:00.000Z',
      startedAt: '2024-01-02T00:00:01.000Z',
      finishedAt: '2024-01-02T00:00:02.000Z',
      durationMs: 1000,
      source: { baseUrl: h.platform.url, pageSize: 100, firstPageIndex: 0 },
      counts: { devices: 4242, pages: 43, pageRequests: 44, wastedRequests: 1, duplicates: 0, unkeyed: 0, throttled: 0, retries: 0, tokenRequests: 1 },
      bucket: DEMO.bucket,
      tableLocation: `${prefix}devices/`,
      dataPrefix: NEXT_DATA(prefix),
      files: [{ key: `${NEXT_DATA(prefix)}part-00000.ndjson.gz`, devices: 4242, bytes: 1, uncompressedBytes: 1 }],
      bytes: 1,
    });
    writtenFirstBy(NEXT_MANIFEST(prefix), winner);
    const summary = await invokeOk(h, await exporter(h, prefix), NEXT);
    expect(summary).toMatchObject({ status: 'already-committed', devices: 4242, pointerMoved: false });
    expect(requestsFor(NEXT_MANIFEST(prefix), 'PUT')).toEqual(['PUT 412']);
    expect(await textOf(NEXT_MANIFEST(prefix))).toBe(winner);
  });

  it('retries a manifest write that meets a concurrent conditional write in progress (409)', async () => {
    const { prefix } = await baseline();
    await reset(h);
    let conflicts = 0;
    h.proxy.rule = ({ key, method }) => {
      if (method === 'PUT' && key === NEXT_MANIFEST(prefix) && conflicts < 1) {
        conflicts += 1;
        return { status: 409, code: 'ConditionalRequestConflict' };
      }
      return undefined;
    };
    const handler = await exporter(h, prefix);
    const summary = await invokeOk(h, handler, NEXT);
    expect(summary).toMatchObject({ status: 'committed', pointerMoved: true });
    expect(requestsFor(NEXT_MANIFEST(prefix), 'PUT')).toEqual(['PUT 409', 'PUT 200']);
  });

  it("a manifest write that lands although its answer is lost (the SDK's retry then meets 412) commits, data kept", async () => {
    const { prefix } = await baseline();
    await reset(h);
    let lost = 0;
    h.proxy.rule = ({ key, method }) => {
      if (method !== 'PUT' || key !== NEXT_MANIFEST(prefix) || lost > 0) return undefined;
      lost += 1;
      return { status: 500, code: 'InternalError', applied: true };
    };
    const handler = await exporter(h, prefix);
    const summary = await invokeOk(h, handler, NEXT);
    expect(summary).toMatchObject({ status: 'committed', pointerMoved: true, devices: 250 });
    expect(requestsFor(NEXT_MANIFEST(prefix), 'PUT')).toEqual(['PUT 500', 'PUT 412']);
    const stored = await objects(h, NEXT_DATA(prefix));
    expect(summary.dataKeys.length).toBeGreaterThan(0);
    for (const key of summary.dataKeys) expect(stored[key], `${key} listed in the manifest`).toBeDefined();
  });

  it('keeps the data when it cannot tell whether the manifest landed; a redelivery then commits and tidies up', async () => {
    const { prefix, before } = await baseline();
    await reset(h);
    let putTried = false;
    h.proxy.rule = ({ key, method }) => {
      if (key !== NEXT_MANIFEST(prefix)) return undefined;
      if (method === 'PUT') putTried = true;
      // The start-of-run check reads the manifest too: only fail what comes after the write.
      return putTried ? { status: 500, code: 'InternalError' } : undefined;
    };
    const handler = await exporter(h, prefix);
    const events = h.s3Events.length;
    const error = await invokeFailing(h, handler, NEXT);
    expect(error.name).toBe('InternalError');
    const kept = created(NEXT_DATA(prefix), events);
    expect(kept.length).toBeGreaterThan(0);
    const after = await objects(h, prefix);
    expect(after[NEXT_MANIFEST(prefix)]).toBeUndefined();
    expect(after[`${prefix}latest.json`]).toBe(before[`${prefix}latest.json`]);
    for (const key of kept) expect(after[key]).toBeDefined();

    h.proxy.rule = undefined;
    const summary = await invokeOk(h, handler, NEXT);
    expect(summary).toMatchObject({ status: 'committed', pointerMoved: true });
    expect(Object.keys(await objects(h, NEXT_DATA(prefix))).sort()).toEqual([...summary.dataKeys].sort());
  });
});

describe('idempotent schedules', () => {
  it('a schedule delivered twice commits once: one manifest, one set of data files, no device request the second time', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h, { fleet: 700 });
    const handler = await exporter(h, prefix, { SNAPSHOT_FILE_MAX_BYTES: String(128 * 1024) });
    const first = await invokeOk(h, handler, NEXT);
    expect(first).toMatchObject({ status: 'committed', devices: 700 });
    const after = await objects(h, prefix);
    const counts = { device: sim.stats.requests, token: sim.tokens.requests, ssm: h.ssm.calls };
    const events = h.s3Events.length;

    const second = await invokeOk(h, handler, NEXT);
    expect(second).toMatchObject({ status: 'already-committed', runId: first.runId, devices: 700, tokenRequests: 0 });
    expect(second.dataKeys).toEqual(first.dataKeys);
    expect({ device: sim.stats.requests, token: sim.tokens.requests, ssm: h.ssm.calls }).toEqual(counts);
    expect(created(prefix, events).filter((key) => !key.endsWith('latest.json'))).toEqual([]);
    expect(await objects(h, prefix)).toEqual(after);
    const keys = Object.keys(after);
    expect(keys.filter((key) => key.includes('/manifests/'))).toEqual([first.manifestKey]);
    expect(keys.filter((key) => key.includes('/devices/')).sort()).toEqual([...first.dataKeys].sort());
  });

  it('a redelivery on a cold start also returns already-committed without a device request', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h);
    await invokeOk(h, await exporter(h, prefix), NEXT);
    const requests = sim.stats.requests;
    const summary = await invokeOk(h, await exporter(h, prefix), NEXT);
    expect(summary.status).toBe('already-committed');
    expect(sim.stats.requests).toBe(requests);
  });

  it('a schedule redelivered after a failed attempt commits once, with only its own data files', async () => {
    const prefix = freshPrefix();
    const sim = await reset(h, { fleet: 600, fault: ({ pageIndex }) => (pageIndex === 3 ? { status: 500, body: '{}' } : undefined) });
    const handler = await exporter(h, prefix, { THINGPARK_MAX_RETRIES: '0', SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024) });
    await invokeFailing(h, handler, NEXT);
    expect(await objects(h, prefix)).toEqual({});
    sim.options.fault = undefined;
    const summary = await invokeOk(h, handler, NEXT);
    expect(summary).toMatchObject({ status: 'committed', devices: 600 });
    const keys = Object.keys(await objects(h, prefix));
    expect(keys.filter((key) => key.includes('/devices/')).sort()).toEqual([...summary.dataKeys].sort());
    expect(keys.filter((key) => key.includes('/manifests/'))).toEqual([summary.manifestKey]);
  });

  it('a duplicate delivery running concurrently cannot damage the committed snapshot', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 800, latencyMs: 120 });
    const env = { THINGPARK_CONCURRENCY: '1', SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024), RUN_DEADLINE_MARGIN_SECONDS: '1' };
    const first = await exporter(h, prefix, env);
    const duplicate = await exporter(h, prefix, env);
    const events = h.s3Events.length;
    const firstRun = invoke(h, first, NEXT);
    while (!created(NEXT_DATA(prefix), events).some((key) => key.includes('/part-00001-'))) await sleep(10);
    // The duplicate starts while the first is still paging, and runs out of time.
    const duplicateRun = invoke(h, duplicate, NEXT, lambdaContext(1400));
    const [a, b] = await Promise.all([firstRun, duplicateRun]);
    expect(a.summary?.status).toBe('committed');
    expect(b.error?.name).toBe('DeadlineError');
    const manifest = await jsonOf<{ bucket: string; files: { key: string; devices: number }[] }>(NEXT_MANIFEST(prefix));
    const stored = await objects(h, NEXT_DATA(prefix));
    for (const file of manifest.files) {
      expect(stored[file.key], `${file.key} listed in the manifest`).toBeDefined();
      expect(await runRows(h.proxy.direct, { ...manifest, files: [file] }), file.key).toHaveLength(file.devices);
    }
    // The whole fleet, each device once, all written by the run that committed.
    const rows = await runRows(h.proxy.direct, manifest);
    expect(rows).toHaveLength(800);
    expect(repeated(rows.map((row) => row.ref))).toEqual([]);
    expect(new Set(rows.map((row) => row.exportRunId))).toEqual(new Set([a.summary?.runId]));
  });
});
