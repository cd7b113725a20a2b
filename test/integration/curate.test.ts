import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { CuratedRunSummary } from '../../lambda/handler.ts';
import type { CurationSummary } from '../../lambda/curate/curate-run.ts';
import type { CurationRecord } from '../../lambda/curate/record.ts';
import { ParquetFiles, ROW_GROUP_MAX_BYTES, ROW_GROUP_ROWS, rowBytes, rowGroups } from '../../lambda/curate/parquet-files.ts';
import { briefOfRow, SNAPSHOT_COLUMNS, snapshotRow } from '../../lambda/curate/snapshot-rows.ts';
import { DEMO, exporter, freshPrefix, invoke, invokeFailing, invokeOk, lambdaContext, reset, useHarness } from '../faults/harness.ts';
import { currentKeys, queryObjects } from '../support/curated.ts';
import { simulatedBrief, type Brief } from '../../tools/stand-ins/fleet.ts';
import { getJson, listKeys, runRows, testS3 } from '../../tools/inspect/snapshot.ts';

const h = useHarness();
const s3 = () => testS3(h.s3Url);

/** A cold start whose runs curate inline (or, with `inline: false`, never). */
const curatingExporter = (prefix: string, inline = true) =>
  exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: inline ? '0' : '900', CURATE_CHANGE_FIELDS: undefined });

const exportOk = async (handler: Awaited<ReturnType<typeof exporter>>, label: string) => (await invokeOk(h, handler, { label })) as CuratedRunSummary;
const curateOk = async (handler: Awaited<ReturnType<typeof exporter>>, runId: string) =>
  (await invokeOk(h, handler, { curate: runId })) as unknown as CurationSummary;
const recordOf = (prefix: string, runId: string) => getJson<CurationRecord>(s3(), DEMO.bucket, `${prefix}curated/runs/${runId}.json`);
const fleetOf = (indexes: number[], revise: (brief: Brief, i: number) => Brief = (brief) => brief) => indexes.map((i) => revise(simulatedBrief(i), i));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('curation: device_snapshots', () => {
  it('writes every device as a typed row that DuckDB reads with the declared types, and no field is lost', async () => {
    const odd: Brief[] = [
      // A numeric ref, a time as text, a fractional SF, a model with more than its name, a null.
      {
        ref: 12345,
        EUI: '70B3D5000000FFFF',
        name: 'numeric-ref',
        healthState: 'ACTIVE',
        lastUpTimestamp: '2026-11-28T09:00:00Z',
        lastSF: 7.5,
        model: { commercialName: 'X', ID: 'm1' },
        lat: null,
      },
      { EUI: 'a0b1c2d3e4f50001', name: 'eui-only', lastRSSI: '-70', extra: { nested: [1, 2, { deep: true }] } },
      { name: 'unkeyed', healthState: 'NEVER_SEEN' },
      { ref: 'ABC-1', 'weird key': 'é ✓ "quoted"', lastDwTimestamp: -1000 },
    ];
    await reset(h, { fleet: [...fleetOf(range(0, 150)), ...odd] });
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix);
    const summary = await exportOk(handler, 'typed');

    expect(summary.curation).toMatchObject({ status: 'curated', devices: 154, comparison: 'first-run', added: 0, removed: 0, changed: 0, current: 'switched' });
    const record = await recordOf(prefix, summary.runId);
    expect(record.snapshotFiles.map(({ key, rows }) => ({ key, rows }))).toEqual([
      { key: `${prefix}curated/device_snapshots/dt=${summary.runTime.slice(0, 10)}/run=${summary.runId}/part-00000.parquet`, rows: 154 },
    ]);
    expect(record.snapshotFiles[0]?.bytes).toBeGreaterThan(0);
    expect(record.unkeyed).toBe(1);
    const keys = record.snapshotFiles.map(({ key }) => key);

    const types = await queryObjects(s3(), DEMO.bucket, keys, 'SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet({files}))');
    expect(Object.fromEntries(types.map((row) => [row.column_name, row.column_type]))).toEqual({
      run_id: 'VARCHAR',
      run_time: 'TIMESTAMP WITH TIME ZONE',
      ref: 'VARCHAR',
      eui: 'VARCHAR',
      name: 'VARCHAR',
      nw_address: 'VARCHAR',
      health_state: 'VARCHAR',
      model_commercial_name: 'VARCHAR',
      subscription_commercial_name: 'VARCHAR',
      routing_profile_name: 'VARCHAR',
      last_up_timestamp: 'TIMESTAMP WITH TIME ZONE',
      last_dw_timestamp: 'TIMESTAMP WITH TIME ZONE',
      last_rssi: 'DOUBLE',
      last_snr: 'DOUBLE',
      avg_rssi: 'DOUBLE',
      avg_snr: 'DOUBLE',
      last_sf: 'BIGINT',
      last_bat_level: 'BIGINT',
      alarm_count: 'BIGINT',
      alarm_level: 'BIGINT',
      lat: 'DOUBLE',
      lon: 'DOUBLE',
      href: 'VARCHAR',
      other_fields: 'VARCHAR',
    });

    // Snappy, but for the brief's other fields, the bulk of the bytes where briefs are large.
    const codecs = await queryObjects(s3(), DEMO.bucket, keys, 'SELECT DISTINCT path_in_schema AS column, compression FROM parquet_metadata({files})');
    expect(codecs.filter(({ compression }) => compression !== 'SNAPPY')).toEqual([{ column: 'other_fields', compression: 'GZIP' }]);

    const rows = await queryObjects(s3(), DEMO.bucket, keys, 'SELECT * FROM read_parquet({files})');
    const raw = (await runRows(s3(), summary)).map(({ exportRunId: _run, ...brief }) => brief);
    const sorted = (briefs: Record<string, unknown>[]) => briefs.map((brief) => JSON.stringify(brief, Object.keys(brief).sort())).sort();
    expect(rows).toHaveLength(raw.length);
    expect(sorted(rows.map(briefOfRow))).toEqual(sorted(raw));
    expect(new Set(rows.map((row) => row.run_id))).toEqual(new Set([summary.runId]));

    // Typed values as an analyst queries them.
    const [device] = rows.filter((row) => row.ref === '2000007');
    expect(device).toMatchObject({
      health_state: simulatedBrief(7).healthState,
      last_sf: BigInt(simulatedBrief(7).lastSF as number),
      model_commercial_name: (simulatedBrief(7).model as { commercialName: string }).commercialName,
    });
    expect((device?.last_up_timestamp as Date).getTime()).toBe(simulatedBrief(7).lastUpTimestamp);
    const [numeric] = rows.filter((row) => row.name === 'numeric-ref');
    expect(numeric).toMatchObject({ ref: '12345', last_sf: null, model_commercial_name: 'X' });
    expect((numeric?.last_up_timestamp as Date).toISOString()).toBe('2026-11-28T09:00:00.000Z');
    expect(JSON.parse(numeric?.other_fields as string)).toEqual({
      ref: 12345,
      lastUpTimestamp: '2026-11-28T09:00:00Z',
      lastSF: 7.5,
      model: { commercialName: 'X', ID: 'm1' },
      lat: null,
    });
  });

  it('keeps a field named __proto__, and a typed text with a lone surrogate, whole in other_fields', async () => {
    // As the platform's JSON would carry them: `__proto__` an own field, the surrogate escaped.
    const odd = JSON.parse(
      '{"ref":"P-1","EUI":"70B3D5000000EEEE","name":"lone-\\ud800-x","model":{"commercialName":"M\\udc00"},"__proto__":{"polluted":true}}',
    ) as Brief;
    await reset(h, { fleet: [...fleetOf(range(0, 5)), odd] });
    const prefix = freshPrefix();
    const summary = await exportOk(await curatingExporter(prefix), 'fields');
    expect(summary.curation).toMatchObject({ status: 'curated', devices: 6 });
    const record = await recordOf(prefix, summary.runId);
    const rows = await queryObjects(
      s3(),
      DEMO.bucket,
      record.snapshotFiles.map(({ key }) => key),
      "SELECT * FROM read_parquet({files}) WHERE ref = 'P-1'",
    );
    expect(rows).toHaveLength(1);
    const other = JSON.parse(rows[0]?.other_fields as string) as Record<string, unknown>;
    expect(Object.keys(other).sort()).toEqual(['__proto__', 'model', 'name']);
    expect(Object.getOwnPropertyDescriptor(other, '__proto__')?.value).toEqual({ polluted: true });
    expect(other.name).toBe('lone-\ud800-x');
    expect(other.model).toEqual({ commercialName: 'M\udc00' });
    // The columns hold what UTF-8 can: U+FFFD where the surrogate was, for queries.
    expect(rows[0]).toMatchObject({ name: 'lone-\ufffd-x', model_commercial_name: 'M\ufffd' });
    const brief = briefOfRow(rows[0] as Record<string, unknown>);
    expect(JSON.stringify(brief, Object.keys(brief).sort())).toBe(JSON.stringify(odd, Object.keys(odd).sort()));
  });

  it('rolls nothing over for a fleet that fits one file, and writes row groups of ROW_GROUP_ROWS rows', async () => {
    await reset(h, { fleet: 60_000 });
    const prefix = freshPrefix();
    const summary = await exportOk(await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', THINGPARK_PAGE_SIZE: '5000' }), 'groups');
    const record = await recordOf(prefix, summary.runId);
    expect(record.snapshotFiles).toHaveLength(1);
    const groups = await queryObjects(
      s3(),
      DEMO.bucket,
      record.snapshotFiles.map(({ key }) => key),
      'SELECT row_group_id, any_value(row_group_num_rows)::INTEGER AS n, any_value(compression) AS codec FROM parquet_metadata({files}) GROUP BY 1 ORDER BY 1',
    );
    expect(groups.map((group) => group.n)).toEqual([12_500, 12_500, 12_500, 12_500, 10_000]);
    expect(new Set(groups.map((group) => group.codec))).toEqual(new Set(['SNAPPY']));
  }, 120_000);
});

describe('curation: row groups', () => {
  it('closes a row group at ROW_GROUP_MAX_BYTES of values as well as at ROW_GROUP_ROWS rows, so large briefs make small groups', async () => {
    const run = { runId: '20261128T100000Z', runTime: new Date('2026-11-28T10:00:00Z') };
    // 120 briefs of about 100 KB each (a long history), against a budget of 1 MiB a group.
    async function* rows() {
      for (let i = 0; i < 120; i += 1) yield snapshotRow({ ...simulatedBrief(i), history: 'u'.repeat(100_000) }, run);
    }
    const key = `${freshPrefix()}groups/part-00000.parquet`;
    const files = new ParquetFiles(s3(), DEMO.bucket, () => key, SNAPSHOT_COLUMNS, { metadata: {}, groupBytes: 1024 * 1024 });
    expect(await files.write(rows())).toEqual([{ key, rows: 120, bytes: expect.any(Number) as number }]);
    const groups = await queryObjects(
      s3(),
      DEMO.bucket,
      [key],
      'SELECT row_group_id, any_value(row_group_num_rows)::INTEGER AS n FROM parquet_metadata({files}) GROUP BY 1 ORDER BY 1',
    );
    // Ten rows are just under the budget; the eleventh reaches it and closes the group.
    expect(groups.map((group) => group.n)).toEqual([...Array.from({ length: 10 }, () => 11), 10]);
    const [{ n } = { n: 0 }] = await queryObjects(s3(), DEMO.bucket, [key], 'SELECT count(*)::INTEGER AS n FROM read_parquet({files})');
    expect(n).toBe(120);
  });

  it('rolls over to a new file at the first row group past maxBytes: rows alone do not bound a file of large briefs', async () => {
    const run = { runId: '20261128T100000Z', runTime: new Date('2026-11-28T10:00:00Z') };
    // 120 briefs of about 100 KB that gzip cannot shrink much, in groups of about 1 MiB of values.
    async function* rows() {
      for (let i = 0; i < 120; i += 1) yield snapshotRow({ ...simulatedBrief(i), history: randomBytes(50_000).toString('hex') }, run);
    }
    const prefix = `${freshPrefix()}rollover/`;
    const maxBytes = 2 * 1024 * 1024;
    const files = new ParquetFiles(s3(), DEMO.bucket, (part) => `${prefix}part-${part}.parquet`, SNAPSHOT_COLUMNS, {
      metadata: {},
      groupBytes: 1024 * 1024,
      maxBytes,
    });
    const written = await files.write(rows());
    expect(written.length).toBeGreaterThanOrEqual(3);
    expect(written.reduce((sum, file) => sum + file.rows, 0)).toBe(120);
    // Each file but the last ended with the group that took it past the bound, and no later.
    for (const file of written.slice(0, -1)) {
      expect(file.bytes).toBeGreaterThanOrEqual(maxBytes);
      expect(file.bytes).toBeLessThan(maxBytes + 2 * 1024 * 1024);
    }
    const names = await queryObjects(
      s3(),
      DEMO.bucket,
      written.map(({ key }) => key),
      'SELECT name FROM read_parquet({files}, filename = true, file_row_number = true) ORDER BY filename, file_row_number',
    );
    expect(names.map(({ name }) => name)).toEqual(Array.from({ length: 120 }, (_, i) => simulatedBrief(i).name));
  });

  it('groups briefs of a few hundred bytes by ROW_GROUP_ROWS, and a brief larger than the budget alone', async () => {
    const small = { a: 'x'.repeat(300) };
    async function* rows(sizes: number[]) {
      for (const size of sizes) yield { a: 'x'.repeat(size) };
    }
    const groups = async (sizes: number[], budget = ROW_GROUP_MAX_BYTES) => {
      const lengths: number[] = [];
      for await (const group of rowGroups(rows(sizes), budget)) lengths.push(group.length);
      return lengths;
    };
    expect(await groups(Array.from({ length: 3 * ROW_GROUP_ROWS - 100 }, () => small.a.length))).toEqual([
      ROW_GROUP_ROWS,
      ROW_GROUP_ROWS,
      ROW_GROUP_ROWS - 100,
    ]);
    expect(await groups([10, 5000, 10, 10], 1000)).toEqual([2, 2]);
    expect(rowBytes({ s: 'abc', n: 1, list: ['ab', 'c'], when: new Date(0), none: null })).toBe(3 + 8 + 3 + 8 + 8);
  });
});

describe('curation: device_changes', () => {
  it('is exact over a scripted sequence of runs: first run, an unchanged fleet, deletions, additions, health and config changes, no telemetry', async () => {
    const prefix = freshPrefix();
    // Pages of 10: the export looks each missing device up (one lookup per page of the sweep at most).
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', THINGPARK_PAGE_SIZE: '10' });
    const base = range(0, 30);
    const run = async (fleet: Brief[], label: string) => {
      await reset(h, { fleet });
      const summary = await exportOk(handler, label);
      const record = await recordOf(prefix, summary.runId);
      const rows = await queryObjects(
        s3(),
        DEMO.bucket,
        record.changeFiles.map(({ key }) => key),
        'SELECT change, device_key, ref, name, health_state_before, health_state_after, changed_fields, before, after, confirmed, previous_run_id FROM read_parquet({files}) ORDER BY change, device_key',
      );
      return { summary, record, rows };
    };

    const first = await run(fleetOf(base), 'first');
    expect(first.record).toMatchObject({ comparison: 'first-run', added: 0, removed: 0, changed: 0 });
    expect(first.rows).toEqual([]);

    const unchanged = await run(fleetOf(base), 'unchanged');
    expect(unchanged.record).toMatchObject({
      comparison: 'compared',
      previousRunId: first.summary.runId,
      comparedFrom: 'state',
      added: 0,
      removed: 0,
      changed: 0,
    });
    expect(unchanged.rows).toEqual([]);

    // 3 and 4 deleted; 100 and 101 new; 12's health and 6's name changed; 7 only reported new telemetry.
    const third = await run(
      fleetOf([...base.filter((i) => i !== 3 && i !== 4), 100, 101], (brief, i) => {
        if (i === 12) return { ...brief, healthState: 'INACTIVE' };
        if (i === 6) return { ...brief, name: 'renamed' };
        if (i === 7) return { ...brief, lastUpTimestamp: 1_900_000_000_000, lastRSSI: -1, lastBatLevel: 3, alarmCount: 9 };
        if (i === 9) return { ...brief, model: { ID: 'm9', commercialName: 'Adeunis FTD' } };
        return brief;
      }),
      'third',
    );
    expect(simulatedBrief(12).healthState).toBe('ACTIVE');
    expect(third.record).toMatchObject({ previousRunId: unchanged.summary.runId, added: 2, removed: 2, changed: 3, removalsConfirmed: true });
    expect(third.summary.curation).toMatchObject({ status: 'curated', added: 2, removed: 2, changed: 3 });
    // Each compared field named as the curated tables name it: its column, else snake_case.
    const all = ['health_state', 'name', 'model', 'network_subscription', 'app_servers_routing_profile', 'alarm_level'];
    const valuesOf = (i: number, brief = simulatedBrief(i)) =>
      JSON.stringify({
        health_state: brief.healthState,
        name: brief.name,
        model: brief.model,
        network_subscription: brief.networkSubscription,
        app_servers_routing_profile: brief.appServersRoutingProfile,
        alarm_level: brief.alarmLevel,
      });
    const previous = unchanged.summary.runId;
    expect(third.rows).toEqual([
      {
        change: 'added',
        device_key: '2000100',
        ref: '2000100',
        name: 'sensor-100',
        health_state_before: null,
        health_state_after: simulatedBrief(100).healthState,
        changed_fields: all,
        before: null,
        after: valuesOf(100),
        confirmed: null,
        previous_run_id: previous,
      },
      {
        change: 'added',
        device_key: '2000101',
        ref: '2000101',
        name: 'sensor-101',
        health_state_before: null,
        health_state_after: simulatedBrief(101).healthState,
        changed_fields: all,
        before: null,
        after: valuesOf(101),
        confirmed: null,
        previous_run_id: previous,
      },
      {
        change: 'changed',
        device_key: '2000006',
        ref: '2000006',
        name: 'renamed',
        health_state_before: 'ACTIVE',
        health_state_after: 'ACTIVE',
        changed_fields: ['name'],
        before: '{"name":"sensor-6"}',
        after: '{"name":"renamed"}',
        confirmed: null,
        previous_run_id: previous,
      },
      {
        change: 'changed',
        device_key: '2000009',
        ref: '2000009',
        name: 'sensor-9',
        health_state_before: 'INACTIVE',
        health_state_after: 'INACTIVE',
        changed_fields: ['model'],
        before: '{"model":{"commercialName":"Adeunis FTD"}}',
        after: '{"model":{"ID":"m9","commercialName":"Adeunis FTD"}}',
        confirmed: null,
        previous_run_id: previous,
      },
      {
        change: 'changed',
        device_key: '2000012',
        ref: '2000012',
        name: 'sensor-12',
        health_state_before: 'ACTIVE',
        health_state_after: 'INACTIVE',
        changed_fields: ['health_state'],
        before: '{"health_state":"ACTIVE"}',
        after: '{"health_state":"INACTIVE"}',
        confirmed: null,
        previous_run_id: previous,
      },
      {
        change: 'removed',
        device_key: '2000003',
        ref: '2000003',
        name: 'sensor-3',
        health_state_before: simulatedBrief(3).healthState,
        health_state_after: null,
        changed_fields: all,
        before: valuesOf(3),
        after: null,
        confirmed: true,
        previous_run_id: previous,
      },
      {
        change: 'removed',
        device_key: '2000004',
        ref: '2000004',
        name: 'sensor-4',
        health_state_before: simulatedBrief(4).healthState,
        health_state_after: null,
        changed_fields: all,
        before: valuesOf(4),
        after: null,
        confirmed: true,
        previous_run_id: previous,
      },
    ]);

    // The same model with its members in another order is no change; a change undone is one again.
    const fourth = await run(
      fleetOf([...base.filter((i) => i !== 3 && i !== 4), 100, 101], (brief, i) => {
        if (i === 6) return { ...brief, name: 'renamed' };
        if (i === 9) return { ...brief, model: { commercialName: 'Adeunis FTD', ID: 'm9' } };
        return brief;
      }),
      'fourth',
    );
    expect(fourth.record).toMatchObject({ added: 0, removed: 0, changed: 1 });
    expect(fourth.rows).toMatchObject([
      { change: 'changed', device_key: '2000012', changed_fields: ['health_state'], health_state_before: 'INACTIVE', health_state_after: 'ACTIVE' },
    ]);
  });

  it("compares with the previous run's raw files when it has no curated state, and with the fields configured", async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: fleetOf(range(0, 20)) });
    const first = await exportOk(await curatingExporter(prefix, false), 'uncurated');
    expect(first.curation).toMatchObject({ status: 'skipped', event: { curate: first.runId } });
    await reset(h, { fleet: fleetOf(range(0, 20), (brief, i) => (i === 2 ? { ...brief, nwAddress: 'CAFE', healthState: 'INACTIVE' } : brief)) });
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', CURATE_CHANGE_FIELDS: 'nwAddress' });
    const second = await exportOk(handler, 'by-address');
    expect(second.curation).toMatchObject({ status: 'curated', comparison: 'compared', previousRunId: first.runId, changed: 1 });
    const record = await recordOf(prefix, second.runId);
    expect(record).toMatchObject({ comparedFrom: 'raw', changeFields: ['nw_address'] });
    const rows = await queryObjects(
      s3(),
      DEMO.bucket,
      record.changeFiles.map(({ key }) => key),
      'SELECT changed_fields, before, after, health_state_after FROM read_parquet({files})',
    );
    expect(rows).toEqual([
      {
        changed_fields: ['nw_address'],
        before: JSON.stringify({ nw_address: simulatedBrief(2).nwAddress }),
        after: '{"nw_address":"CAFE"}',
        health_state_after: null,
      },
    ]);
  });

  it('never reports a device the paging skipped as removed: the export recovered it, and only the deleted ones are removed, confirmed', async () => {
    const prefix = freshPrefix();
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', THINGPARK_CONCURRENCY: '1', THINGPARK_PAGE_SIZE: '100' });
    await reset(h, { fleet: 500 });
    await exportOk(handler, 'before');
    // Deleting 5 devices already read shifts the list: 5 devices cross the page boundary
    // unread, and the export recovers them. The 5 deleted were read: they are in this run.
    await reset(h, { fleet: 500, changes: [{ afterPage: 1, remove: 5, at: 'served' }] });
    const skipping = await exportOk(handler, 'skipping');
    expect(skipping).toMatchObject({ devices: 500, recovered: 5, removed: 0, unresolved: 0 });
    expect(skipping.curation).toMatchObject({ status: 'curated', added: 0, removed: 0, changed: 0 });
    // The next run misses the 5 deleted devices, and the export confirms each gone.
    const summary = await exportOk(handler, 'after');
    expect(summary).toMatchObject({ devices: 495, recovered: 0, removed: 5, unresolved: 0 });
    const deleted = new Set(h.platform.stats.removed.map((brief) => String(brief.ref)));
    expect(deleted.size).toBe(5);
    const record = await recordOf(prefix, summary.runId);
    expect(record).toMatchObject({ removed: 5, added: 0, changed: 0, removalsConfirmed: true });
    const rows = await queryObjects(
      s3(),
      DEMO.bucket,
      record.changeFiles.map(({ key }) => key),
      'SELECT change, ref, confirmed FROM read_parquet({files})',
    );
    expect(new Set(rows.map((row) => row.ref))).toEqual(deleted);
    expect(rows.filter((row) => row.change !== 'removed' || row.confirmed !== true)).toEqual([]);
  });
  it('leaves removals unconfirmed when the export could not resolve every missing device', async () => {
    const prefix = freshPrefix();
    // One page of 100: more devices missing than pages, so the export sweeps again and then
    // looks up at most one; the other is left unresolved.
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: '0', THINGPARK_PAGE_SIZE: '100' });
    await reset(h, { fleet: fleetOf(range(0, 30)) });
    await exportOk(handler, 'all');
    await reset(h, { fleet: fleetOf(range(2, 30)) });
    const summary = await exportOk(handler, 'two-gone');
    expect(summary).toMatchObject({ devices: 28, unresolved: 1 });
    const record = await recordOf(prefix, summary.runId);
    expect(record).toMatchObject({ removed: 2, removalsConfirmed: false });
    const rows = await queryObjects(
      s3(),
      DEMO.bucket,
      record.changeFiles.map(({ key }) => key),
      'SELECT change, confirmed FROM read_parquet({files})',
    );
    expect(rows).toEqual([
      { change: 'removed', confirmed: false },
      { change: 'removed', confirmed: false },
    ]);
  });
});

describe('curation: devices_current', () => {
  it('switches only once a run is curated, and always lists exactly one whole run', async () => {
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix);
    await reset(h, { fleet: 120 });
    const first = await exportOk(handler, 'one');
    const firstFiles = (await recordOf(prefix, first.runId)).snapshotFiles.map(({ key }) => key);
    expect(await currentKeys(s3(), DEMO.bucket, prefix)).toEqual(firstFiles);

    await reset(h, { fleet: 140 });
    let seenWhileRecording: string[] | undefined;
    h.proxy.rule = async (request) => {
      if (request.method === 'PUT' && request.key.startsWith(`${prefix}curated/runs/`) && seenWhileRecording === undefined) {
        // The second run's files are written, its record not yet: the table still shows the first run.
        seenWhileRecording = await currentKeys(s3(), DEMO.bucket, prefix);
      }
      return undefined;
    };
    const second = await exportOk(handler, 'two');
    h.proxy.rule = undefined;
    expect(seenWhileRecording).toEqual(firstFiles);
    const secondFiles = (await recordOf(prefix, second.runId)).snapshotFiles.map(({ key }) => key);
    expect(await currentKeys(s3(), DEMO.bucket, prefix)).toEqual(secondFiles);
    const [counts] = await queryObjects(
      s3(),
      DEMO.bucket,
      await currentKeys(s3(), DEMO.bucket, prefix),
      'SELECT count(*)::INTEGER AS devices, count(DISTINCT run_id)::INTEGER AS runs, any_value(run_id) AS run FROM read_parquet({files})',
    );
    expect(counts).toEqual({ devices: 140, runs: 1, run: second.runId });
  });

  it('is never moved back by an older run curated late, which is still curated against its own predecessor', async () => {
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix, false);
    await reset(h, { fleet: 50 });
    const older = await exportOk(handler, 'older');
    const newer = await exportOk(handler, 'newer');
    expect(await currentKeys(s3(), DEMO.bucket, prefix)).toEqual([]);

    expect(await curateOk(handler, newer.runId)).toMatchObject({ status: 'curated', current: 'switched', previousRunId: older.runId, comparedFrom: 'raw' });
    const late = await curateOk(handler, older.runId);
    expect(late).toMatchObject({ status: 'curated', current: 'newer-run-current', comparison: 'first-run' });
    const current = await currentKeys(s3(), DEMO.bucket, prefix);
    expect(current.filter((key) => !key.includes(`/run=${newer.runId}/`))).toEqual([]);
  });

  it('writes nothing at all when a curation is delivered again', async () => {
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix);
    await reset(h, { fleet: 80 });
    const summary = await exportOk(handler, 'once');
    const before = await listKeys(s3(), DEMO.bucket, `${prefix}curated/`);
    h.proxy.log.length = 0;
    const again = await curateOk(handler, summary.runId);
    expect(again).toMatchObject({ status: 'already-curated', current: 'already-current', devices: 80 });
    expect(h.proxy.log.filter((request) => request.method !== 'GET' && request.method !== 'HEAD')).toEqual([]);
    expect(await listKeys(s3(), DEMO.bucket, `${prefix}curated/`)).toEqual(before);
  });
});

describe('curation: a run exported again under the same id', () => {
  const SCHEDULE = { scheduledTime: '2026-11-02T03:00:00Z' };
  const manifestOf = (prefix: string, runId: string) => `${prefix}manifests/${runId}.json`;
  const expire = (key: string) => h.proxy.direct.send(new DeleteObjectCommand({ Bucket: DEMO.bucket, Key: key }));

  it('curates a redone schedule whose manifest expired anew, under a record of its own, and keeps the earlier record as it was', async () => {
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix);
    await reset(h, { fleet: 60 });
    const first = (await invokeOk(h, handler, SCHEDULE)) as CuratedRunSummary;
    expect(first.curation).toMatchObject({ status: 'curated', devices: 60 });
    const earlier = await recordOf(prefix, first.runId);

    await expire(manifestOf(prefix, first.runId));
    await reset(h, { fleet: 75 });
    const again = (await invokeOk(h, handler, SCHEDULE)) as CuratedRunSummary;
    expect(again.runId).toBe(first.runId);
    const supersedes = `${prefix}curated/runs/${first.runId}.json`;
    // devices_current already names this run's files, which now hold the new commit's devices.
    expect(again.curation).toMatchObject({ status: 'curated', devices: 75, supersedes });
    const recordKey = (again.curation as { recordKey: string }).recordKey;
    expect(recordKey).toMatch(new RegExp(`^${prefix}curated/runs/${first.runId}\\.[0-9a-f]{16}\\.json$`));
    const record = await getJson<CurationRecord>(s3(), DEMO.bucket, recordKey);
    expect(record.devices).toBe(75);
    expect(record.manifestHash).toMatch(/^[0-9a-f]{64}$/);
    expect(record.manifestHash).not.toBe(earlier.manifestHash);
    expect(await recordOf(prefix, first.runId)).toEqual(earlier);
    const [counts] = await queryObjects(
      s3(),
      DEMO.bucket,
      await currentKeys(s3(), DEMO.bucket, prefix),
      'SELECT count(*)::INTEGER AS devices FROM read_parquet({files})',
    );
    expect(counts).toEqual({ devices: 75 });

    // Delivered again, this commit is already curated: by its own record, not the earlier one.
    h.proxy.log.length = 0;
    const redelivered = await curateOk(handler, first.runId);
    expect(redelivered).toMatchObject({ status: 'already-curated', devices: 75, recordKey, supersedes });
    expect(h.proxy.log.filter((request) => request.method !== 'GET' && request.method !== 'HEAD')).toEqual([]);

    // The next run is compared with this commit, and so are its fleet signals: the ACTIVE share
    // it moved from is this commit's (39 of 75), not the earlier one's (30 of 60).
    const next = (await invokeOk(h, handler, { scheduledTime: '2026-11-02T04:00:00Z' })) as CuratedRunSummary;
    const nextRecord = await recordOf(prefix, next.runId);
    expect([earlier.signals?.active_share, record.signals?.active_share, nextRecord.signals?.active_share]).toEqual([50, 52, 52]);
    expect(nextRecord.signals?.active_share_change).toBe(0);
  });

  it('tells a record written before records named their manifest by its time: one older than the commit is of an earlier commit', async () => {
    const prefix = freshPrefix();
    const handler = await curatingExporter(prefix);
    await reset(h, { fleet: 40 });
    const first = (await invokeOk(h, handler, SCHEDULE)) as CuratedRunSummary;
    const key = `${prefix}curated/runs/${first.runId}.json`;
    const { manifestHash: _sha, ...legacy } = await recordOf(prefix, first.runId);
    await h.proxy.direct.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: key, Body: JSON.stringify(legacy) }));
    expect(await curateOk(handler, first.runId)).toMatchObject({ status: 'already-curated', recordKey: key, devices: 40 });

    await expire(manifestOf(prefix, first.runId));
    await reset(h, { fleet: 45 });
    const again = (await invokeOk(h, handler, SCHEDULE)) as CuratedRunSummary;
    expect(again.curation).toMatchObject({ status: 'curated', devices: 45, supersedes: key });
  });
});

describe('curation: failures', () => {
  const damage = async (prefix: string, corrupt: (runId: string, key: string) => Promise<void>) => {
    const handler = await curatingExporter(prefix);
    await reset(h, { fleet: 60 });
    const good = await exportOk(handler, 'good');
    const goodFiles = await currentKeys(s3(), DEMO.bucket, prefix);
    const later = await curatingExporter(prefix, false);
    const bad = await exportOk(later, 'bad');
    await corrupt(bad.runId, bad.dataKeys[0] as string);
    const error = await invokeFailing(h, later, { curate: bad.runId });
    expect(await currentKeys(s3(), DEMO.bucket, prefix)).toEqual(goodFiles);
    // Nothing of the failed curation is left: no file, no record, no state.
    const left = (await listKeys(s3(), DEMO.bucket, `${prefix}curated/`)).filter((key) => key.includes(bad.runId));
    expect(left).toEqual([]);
    return { error, good, bad };
  };
  const put = (key: string, body: Buffer) => h.proxy.direct.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: key, Body: body }));

  it('fails clearly on a raw file that is not complete gzip, and leaves the current table as it was', async () => {
    const { error } = await damage(freshPrefix(), async (runId, key) => {
      const whole = gzipSync(Buffer.from(`${JSON.stringify({ ref: '1', exportRunId: runId })}\n`.repeat(1000)));
      await put(key, whole.subarray(0, whole.length - 20));
    });
    expect(error).toMatchObject({ name: 'CurationError', code: 'RAW_DAMAGED' });
    expect(error.message).toMatch(/The raw data file \S+\.ndjson\.gz cannot be curated: it is not complete gzip \(Z_BUF_ERROR\)/);
  });

  it('fails clearly on a raw file that holds other rows than its manifest counted, or a line that is not JSON', async () => {
    const short = await damage(freshPrefix(), async (runId, key) => {
      await put(key, gzipSync(Buffer.from(`${JSON.stringify({ ref: '1', exportRunId: runId })}\n`)));
    });
    expect(short.error).toMatchObject({ code: 'RAW_DAMAGED' });
    expect(short.error.message).toContain('it holds 1 rows where the manifest counted 60');
    const garbled = await damage(freshPrefix(), async (runId, key) => {
      await put(key, gzipSync(Buffer.from(`${JSON.stringify({ ref: '1', exportRunId: runId })}\n{"ref": "2", oops\n`)));
    });
    expect(garbled.error.message).toContain('line 2 is not JSON');
  });

  it('stops at its deadline saying how far it got and how long the run needs, and leaves nothing of it visible', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 60 });
    await exportOk(await curatingExporter(prefix), 'good');
    const goodFiles = await currentKeys(s3(), DEMO.bucket, prefix);
    // Unkeyed devices among them: counted by the manifest and by curation alike.
    await reset(h, { fleet: fleetOf(range(0, 3000), (brief, i) => (i % 100 === 7 ? { name: `unkeyed-${i}`, healthState: 'ACTIVE' } : brief)) });
    const later = await exporter(h, prefix, { CURATE_CHANGE_FIELDS: undefined, SNAPSHOT_FILE_MAX_BYTES: String(64 * 1024), RUN_DEADLINE_MARGIN_SECONDS: '1' });
    const slow = await exportOk(later, 'slow');
    const manifest = await getJson<{ files: { key: string; devices: number }[] }>(s3(), DEMO.bucket, `${prefix}manifests/${slow.runId}.json`);
    expect(manifest.files.length).toBeGreaterThanOrEqual(3);
    // The third raw file's answer is held: curation has read the first two when its deadline comes.
    const third = manifest.files[2]?.key;
    const firstTwo = await runRows(s3(), { bucket: DEMO.bucket, files: manifest.files.slice(0, 2) });
    expect(firstTwo.filter((row) => row.EUI === undefined).length).toBeGreaterThan(0);
    h.proxy.rule = ({ method, key }) => (method === 'GET' && key === third ? { holdResponseMs: 60_000 } : undefined);
    const started = Date.now();
    const error = await invokeFailing(h, later, { curate: slow.runId }, lambdaContext(3000));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toMatchObject({ name: 'DeadlineError', code: 'DEADLINE_NEAR' });
    const read = firstTwo.length;
    expect(error.message).toContain(`Stopped curating run ${slow.runId} 1 s before the Lambda timeout`);
    expect(error.message).toMatch(new RegExp(`after [12] s with ${read} of its 3000 devices read; nothing of it is visible`));
    const estimate = Number(/its devices alone take about (\d+) s to curate/.exec(error.message)?.[1]);
    expect(estimate).toBeGreaterThanOrEqual(Math.floor((1.5 * 3000) / read));
    expect(estimate).toBeLessThanOrEqual(Math.ceil((3 * 3000) / read));
    expect(error.message).toContain(`{"curate": "${slow.runId}"}`);
    expect(error.message).toContain('a run that needs more than one goes on over several');
    h.proxy.rule = undefined;
    expect(await currentKeys(s3(), DEMO.bucket, prefix)).toEqual(goodFiles);
    expect((await listKeys(s3(), DEMO.bucket, `${prefix}curated/`)).filter((key) => key.includes(slow.runId))).toEqual([]);
  });

  it('refuses a run that never committed', async () => {
    const handler = await curatingExporter(freshPrefix());
    const error = await invokeFailing(h, handler, { curate: '20261128T100000Z' });
    expect(error).toMatchObject({ name: 'CurationError', code: 'RUN_NOT_COMMITTED' });
    expect(error.message).toContain('Run 20261128T100000Z has no manifest');
  });

  it('skips inline curation when too little time is left, with the event that curates the run', async () => {
    const prefix = freshPrefix();
    await reset(h, { fleet: 40 });
    const handler = await exporter(h, prefix, { CURATE_INLINE_MIN_REMAINING_SECONDS: undefined });
    const outcome = await invoke(h, handler, { label: 'short' }, lambdaContext(120_000));
    const summary = outcome.summary as CuratedRunSummary;
    expect(summary.curation).toMatchObject({ status: 'skipped', event: { curate: summary.runId } });
    expect(summary.curation.status === 'skipped' && summary.curation.reason).toMatch(/^1\d\d s left, under CURATE_INLINE_MIN_REMAINING_SECONDS \(300 s\)$/);
    expect(outcome.output).toContain('Curation skipped');
    expect(await listKeys(s3(), DEMO.bucket, `${prefix}curated/`)).toEqual([]);
  });
});
