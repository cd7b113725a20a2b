import { describe, expect, it } from 'vitest';
import { readMarkers, settleAttempts, SETTLED_MS } from '../../lambda/storage/attempts.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { getJson, listKeys, runRows } from '../../tools/inspect/snapshot.ts';
import { repeated } from '../support/collections.ts';
import { putDirect } from './s3-proxy.ts';
import { DEMO, exporter, freshPrefix, invoke, invokeFailing, invokeOk, lambdaContext, objects, reset, useHarness } from './harness.ts';

const h = useHarness();
const SCHEDULE = { scheduledTime: '2024-03-01T00:00:00Z' };
const DATA = (prefix: string) => `${prefix}devices/dt=2024-03-01/run=20240301T000000Z/`;
const MANIFEST = (prefix: string) => `${prefix}manifests/20240301T000000Z.json`;

describe('uploads that land after their attempt gave up', () => {
  it("never overwrite a retry's committed data, and are settled by a later run once they can no longer land", async () => {
    const prefix = freshPrefix();
    // The first attempt's first data file is on its way to S3, which applies it only once
    // the attempt has met its deadline, given up and deleted what it wrote, and a retry has
    // committed the run: the attempt waits on that upload until its deadline.
    await reset(h, { fleet: 1000 });
    let held = 0;
    let release: () => void = () => undefined;
    let landed: () => void = () => undefined;
    const applyWhen = new Promise<void>((resolve) => (release = resolve));
    const lateUpload = new Promise<void>((resolve) => (landed = resolve));
    h.proxy.rule = ({ method, key }) => {
      if (method !== 'PUT' || !key.startsWith(`${DATA(prefix)}part-00000-`) || held > 0) return undefined;
      held += 1;
      return { applyWhen, landed };
    };
    const handler = await exporter(h, prefix, { RUN_DEADLINE_MARGIN_SECONDS: '1', SNAPSHOT_FILE_MAX_BYTES: String(32 * 1024) });
    // The attempt waits on the held upload whatever its deadline: a long one only leaves a
    // loaded machine the time to get that far.
    const first = lambdaContext(8000);
    const failed = await invokeFailing(h, handler, SCHEDULE, first);
    expect(failed.name).toBe('DeadlineError');
    expect(held).toBe(1);

    // Lambda's retry of an asynchronous invocation carries the same request id.
    const summary = await invokeOk(h, handler, SCHEDULE, { ...lambdaContext(), awsRequestId: first.awsRequestId });
    expect(summary).toMatchObject({ status: 'committed', devices: 1000 });
    release();
    await lateUpload;

    // The late upload landed, under a key of its own attempt: the committed files are intact.
    const keys = await listKeys(h.proxy.direct, DEMO.bucket, DATA(prefix));
    const late = keys.filter((key) => !summary.dataKeys.includes(key));
    expect(late).toHaveLength(1);
    expect(late[0]).toMatch(/part-00000-[a-z0-9]+\.ndjson\.gz$/);
    const manifest = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, MANIFEST(prefix));
    for (const file of manifest.files) expect(await runRows(h.proxy.direct, { ...manifest, files: [file] })).toHaveLength(file.devices);
    const rows = await runRows(h.proxy.direct, manifest);
    expect(new Set(rows.map((row) => row.ref)).size).toBe(1000);

    // The failed attempt's marker says where to look; the committed attempt left none.
    const markers = await readMarkers(h.proxy.direct, DEMO.bucket, `${prefix}attempts/`);
    expect(markers.map(({ marker }) => ({ state: marker.state, dataPrefix: marker.dataPrefix }))).toEqual([{ state: 'failed', dataPrefix: DATA(prefix) }]);
    expect(late[0]).toContain(markers[0]?.marker.attempt);

    // Within the hour an upload may still land, so nothing is settled yet...
    expect(await settleAttempts(h.proxy.direct, DEMO.bucket, markers)).toEqual({ settled: 0, deleted: [], refused: [] });
    // ...after it, the late file and the marker go, and the committed run stays as it is.
    const later = await readMarkers(h.proxy.direct, DEMO.bucket, `${prefix}attempts/`, Date.now() + SETTLED_MS + 1000);
    expect(await settleAttempts(h.proxy.direct, DEMO.bucket, later)).toEqual({ settled: 1, deleted: late, refused: [] });
    expect(await listKeys(h.proxy.direct, DEMO.bucket, DATA(prefix))).toEqual([...summary.dataKeys].sort());
    expect(await listKeys(h.proxy.direct, DEMO.bucket, `${prefix}attempts/`)).toEqual([]);
  });

  it('a run that failed with nothing in flight leaves no marker behind', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 1000, fault: ({ pageIndex }) => (pageIndex === 3 ? { status: 500, body: '{"code":500}' } : undefined) });
    const handler = await exporter(h, prefix, { THINGPARK_MAX_RETRIES: '0' });
    await invokeFailing(h, handler, SCHEDULE);
    expect(await objects(h, prefix)).toEqual({});
  });
});

describe('a store that accepts conditional writes without honouring them', () => {
  it('never leaves a manifest whose files are gone when two deliveries of a schedule run at once', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 600, fault: () => ({ delayMs: 30 }) });
    h.proxy.honourConditions = false;
    // The second manifest write lands only after the first delivery has committed and
    // tidied up: the order in which deleting what "its" manifest does not list would
    // remove the files the second manifest is about to name.
    let manifestWrites = 0;
    h.proxy.rule = ({ method, key }) => {
      if (method !== 'PUT' || key !== MANIFEST(prefix)) return undefined;
      manifestWrites += 1;
      return manifestWrites === 2 ? { applyAfterMs: 1000 } : undefined;
    };
    const handler = await exporter(h, prefix);
    const [first, second] = await Promise.all([invoke(h, handler, SCHEDULE), invoke(h, handler, SCHEDULE)]);
    expect([first.error, second.error]).toEqual([undefined, undefined]);
    expect(manifestWrites).toBe(2);

    // Whichever manifest S3 kept, every file it lists is there, and it holds the fleet once.
    const manifest = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, MANIFEST(prefix));
    const data = await listKeys(h.proxy.direct, DEMO.bucket, DATA(prefix));
    for (const file of manifest.files) expect(data).toContain(file.key);
    const rows = await runRows(h.proxy.direct, manifest);
    expect(rows).toHaveLength(600);
    expect(repeated(rows.map((row) => row.ref))).toEqual([]);
    expect(await getJson(h.proxy.direct, DEMO.bucket, `${prefix}latest.json`)).toMatchObject({ manifestKey: MANIFEST(prefix) });
  });

  it("warns when S3 accepted a conditional manifest write yet holds another attempt's manifest", async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 300 });
    h.proxy.honourConditions = false;
    // A competing attempt's manifest (listing files of its own) replaces this attempt's
    // right after S3 accepted it, before this attempt reads it back.
    let written = false;
    let competing = false;
    h.proxy.rule = async ({ method, key }) => {
      if (key !== MANIFEST(prefix)) return undefined;
      if (method === 'PUT') written = true;
      else if (method === 'GET' && written && !competing) {
        competing = true;
        const ours = await getJson<Manifest>(h.proxy.direct, DEMO.bucket, MANIFEST(prefix));
        await putDirect(h.proxy, DEMO.bucket, MANIFEST(prefix), JSON.stringify({ ...ours, startedAt: '2024-03-01T00:00:01.000Z', files: [] }));
      }
      return undefined;
    };
    const outcome = await invoke(h, await exporter(h, prefix), SCHEDULE);
    expect(competing).toBe(true);
    expect(outcome.summary).toMatchObject({ status: 'already-committed' });
    expect(outcome.output).toContain('does not honour conditional writes');
    // This attempt's files, which the manifest S3 kept does not list, are gone.
    expect(await listKeys(h.proxy.direct, DEMO.bucket, DATA(prefix))).toEqual([]);
  });
});
