import { describe, expect, it } from 'vitest';
import { changeColumnName, changeRows, type ChangeContext, type ChangeRow } from '../../lambda/curate/changes.ts';
import { BaseState, type StateEntry } from '../../lambda/curate/fleet-state.ts';

const FIELDS = ['healthState', 'name', 'model'];
/** FIELDS as the rows name them. */
const COLUMNS = ['health_state', 'name', 'model'];

const CONTEXT: ChangeContext = {
  runId: '20261128T100000Z',
  runTime: new Date('2026-11-28T10:00:00Z'),
  previousRunId: '20261128T090000Z',
  previousRunTime: new Date('2026-11-28T09:00:00Z'),
  fields: FIELDS,
  removalsConfirmed: true,
};

/** A device as a state holds it: the compared values in FIELDS order. */
const device = (ref: number, healthState: unknown, name: unknown, model: unknown = null): StateEntry => ({
  key: ref,
  ref: String(ref),
  eui: `70B3D5FFFF${String(ref).padStart(6, '0')}`,
  values: [healthState, name, model],
});

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/** As curation does: the previous run loaded, this run compared device by device, then the rows. */
async function changes(previous: readonly StateEntry[], current: readonly StateEntry[], context: Partial<ChangeContext> = {}): Promise<ChangeRow[]> {
  const base = new BaseState();
  for (const entry of previous) base.add(entry);
  for (const entry of current) base.compare(entry);
  const rows: ChangeRow[] = [];
  for await (const row of changeRows(base, each(previous), each(current), { ...CONTEXT, ...context })) rows.push(row);
  return rows;
}

const RUNS = {
  run_id: '20261128T100000Z',
  run_time: new Date('2026-11-28T10:00:00Z'),
  previous_run_id: '20261128T090000Z',
  previous_run_time: new Date('2026-11-28T09:00:00Z'),
};

describe('device_changes rows', () => {
  it('are none for a fleet that did not change, whatever its order', async () => {
    const fleet = [device(1, 'ACTIVE', 'pump'), device(2, 'ERROR', 'valve', { ID: 'm1' }), device(3, null, null)];
    expect(await changes(fleet, [...fleet].reverse())).toEqual([]);
  });

  it('are none for an empty fleet either side', async () => {
    expect(await changes([], [])).toEqual([]);
  });

  it('show an added device with every compared field, its values after and none before', async () => {
    const rows = await changes([device(1, 'ACTIVE', 'pump')], [device(1, 'ACTIVE', 'pump'), device(2, 'NEVER_SEEN', 'valve', { ID: 'm1' })]);
    expect(rows).toEqual([
      {
        ...RUNS,
        change: 'added',
        device_key: '2',
        ref: '2',
        eui: '70B3D5FFFF000002',
        name: 'valve',
        health_state_before: null,
        health_state_after: 'NEVER_SEEN',
        changed_fields: COLUMNS,
        before: null,
        after: '{"health_state":"NEVER_SEEN","name":"valve","model":{"ID":"m1"}}',
        confirmed: null,
      },
    ]);
  });

  it('show a removed device with every compared field, its values before and none after, confirmed as the export said', async () => {
    const previous = [device(1, 'ACTIVE', 'pump'), device(2, 'ERROR', 'valve')];
    const removed = {
      ...RUNS,
      change: 'removed',
      device_key: '2',
      ref: '2',
      eui: '70B3D5FFFF000002',
      name: 'valve',
      health_state_before: 'ERROR',
      health_state_after: null,
      changed_fields: COLUMNS,
      before: '{"health_state":"ERROR","name":"valve","model":null}',
      after: null,
    };
    expect(await changes(previous, [device(1, 'ACTIVE', 'pump')])).toEqual([{ ...removed, confirmed: true }]);
    expect(await changes(previous, [device(1, 'ACTIVE', 'pump')], { removalsConfirmed: false })).toEqual([{ ...removed, confirmed: false }]);
  });

  it('show a changed device with only the fields that changed, before and after', async () => {
    const rows = await changes([device(1, 'ACTIVE', 'pump', { ID: 'm1' })], [device(1, 'ERROR', 'pump', { ID: 'm2' })]);
    expect(rows).toEqual([
      {
        ...RUNS,
        change: 'changed',
        device_key: '1',
        ref: '1',
        eui: '70B3D5FFFF000001',
        name: 'pump',
        health_state_before: 'ACTIVE',
        health_state_after: 'ERROR',
        changed_fields: ['health_state', 'model'],
        before: '{"health_state":"ACTIVE","model":{"ID":"m1"}}',
        after: '{"health_state":"ERROR","model":{"ID":"m2"}}',
        confirmed: null,
      },
    ]);
  });

  it('name a renamed device by its new name, and a value that became null as null', async () => {
    const [row] = await changes([device(1, 'ACTIVE', 'pump')], [device(1, null, 'pump-2')]);
    expect(row).toMatchObject({
      name: 'pump-2',
      health_state_before: 'ACTIVE',
      health_state_after: null,
      changed_fields: ['health_state', 'name'],
      before: '{"health_state":"ACTIVE","name":"pump"}',
      after: '{"health_state":null,"name":"pump-2"}',
    });
  });

  it('come removed first, in the previous run order, then added and changed in this run order', async () => {
    const previous = [device(5, 'A', 'five'), device(1, 'A', 'one'), device(4, 'A', 'four'), device(2, 'A', 'two')];
    const current = [device(2, 'B', 'two'), device(6, 'A', 'six'), device(1, 'A', 'one'), device(3, 'A', 'three')];
    const rows = await changes(previous, current);
    expect(rows.map(({ change, device_key }) => `${String(change)} ${String(device_key)}`)).toEqual([
      'removed 5',
      'removed 4',
      'changed 2',
      'added 6',
      'added 3',
    ]);
  });

  it('count a key met twice in the previous state once, by its first values', async () => {
    const rows = await changes([device(1, 'ACTIVE', 'pump'), device(1, 'ERROR', 'stale copy')], [device(1, 'ERROR', 'pump')]);
    expect(rows).toEqual([expect.objectContaining({ change: 'changed', changed_fields: ['health_state'], before: '{"health_state":"ACTIVE"}' })]);
  });

  it('give a device key as text, an EUI key with its "e"', async () => {
    const byEui: StateEntry = { key: 'eA0B1C2D3E4F50001', ref: null, eui: 'a0b1c2d3e4f50001', values: ['ACTIVE', 'eui-only', null] };
    const [row] = await changes([], [byEui]);
    expect(row).toMatchObject({ change: 'added', device_key: 'eA0B1C2D3E4F50001', ref: null, eui: 'a0b1c2d3e4f50001' });
  });

  it('have no name nor health state columns when those fields are not compared', async () => {
    const fields = ['model'];
    const entry = (model: unknown): StateEntry => ({ key: 1, ref: '1', eui: null, values: [model] });
    const [row] = await changes([entry('m1')], [entry('m2')], { fields });
    expect(row).toMatchObject({
      name: null,
      health_state_before: null,
      health_state_after: null,
      changed_fields: ['model'],
      before: '{"model":"m1"}',
      after: '{"model":"m2"}',
    });
  });

  it('show a name or health state that is not text as its JSON', async () => {
    const [row] = await changes([device(1, { code: 1 }, 7)], [device(1, { code: 2 }, 7)]);
    expect(row).toMatchObject({ name: '7', health_state_before: '{"code":1}', health_state_after: '{"code":2}', changed_fields: ['health_state'] });
  });

  it('name each compared field as its column, and a field no column holds whole in the same snake_case', () => {
    expect(['healthState', 'nwAddress', 'EUI', 'alarmLevel', 'lat', 'name'].map(changeColumnName)).toEqual([
      'health_state',
      'nw_address',
      'eui',
      'alarm_level',
      'lat',
      'name',
    ]);
    // model is compared whole; its column holds only model.commercialName.
    expect(['model', 'networkSubscription', 'customerData', 'lastRSSI'].map(changeColumnName)).toEqual([
      'model',
      'network_subscription',
      'customer_data',
      'last_rssi',
    ]);
  });
});
