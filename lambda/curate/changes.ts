import type { DeviceKey } from '../common/device-key.ts';
import { snakeCase, type ColumnSpec } from './columns.ts';
import type { BaseState, StateEntry } from './fleet-state.ts';
import { FIELD_COLUMNS } from './snapshot-rows.ts';

/**
 * A compared field as the curated tables name it (`changed_fields`, the keys of `before`
 * and `after`, `curated_runs.change_fields`): the column that holds it whole
 * (`healthState` is `health_state`), so that one spelling names a field everywhere; a field
 * no column holds whole (an object the columns flatten to one member, `customerData`) in
 * the same snake_case (`network_subscription`, `customer_data`).
 */
export function changeColumnName(field: string): string {
  const column = FIELD_COLUMNS.find((spec) => spec.field === field && spec.member === undefined);
  return column?.column ?? snakeCase(field);
}

/** The columns of `device_changes`: one row per device added, removed or changed since the previous run. */
export const CHANGE_COLUMNS: readonly ColumnSpec[] = [
  { name: 'run_id', type: 'string', required: true, comment: 'The run the change was seen in' },
  { name: 'run_time', type: 'timestamp', required: true, comment: 'Its time (UTC)' },
  { name: 'previous_run_id', type: 'string', required: true, comment: 'The committed run before it, compared with' },
  { name: 'previous_run_time', type: 'timestamp', required: true, comment: 'Its time (UTC)' },
  { name: 'change', type: 'string', required: true, comment: 'added, removed or changed' },
  { name: 'device_key', type: 'string', required: true, comment: 'ref, else "e" and the EUI: how runs tell devices apart', encoding: 'DELTA_BYTE_ARRAY' },
  { name: 'ref', type: 'string', comment: 'The device reference', encoding: 'DELTA_BYTE_ARRAY' },
  { name: 'eui', type: 'string', comment: 'DevEUI', encoding: 'DELTA_BYTE_ARRAY' },
  { name: 'name', type: 'string', comment: 'Its name: after the change, or before a removal (when name is compared)' },
  { name: 'health_state_before', type: 'string', comment: 'healthState in the previous run (changed, removed; when healthState is compared)' },
  { name: 'health_state_after', type: 'string', comment: 'healthState in this run (added, changed; when healthState is compared)' },
  {
    name: 'changed_fields',
    type: 'array<string>',
    comment: 'changed: the compared fields whose value changed; added, removed: every compared field; each named as its column (health_state)',
  },
  { name: 'before', type: 'string', statistics: false, comment: "JSON object of those fields' values in the previous run (null for added)" },
  { name: 'after', type: 'string', statistics: false, comment: "JSON object of those fields' values in this run (null for removed)" },
  {
    name: 'confirmed',
    type: 'boolean',
    encoding: 'PLAIN',
    comment:
      'removed: true when the export confirmed every device gone from this run with the platform; false when a device may have been skipped by the paging',
  },
];

export type ChangeRow = Record<string, string | Date | boolean | string[] | null>;

export interface ChangeContext {
  runId: string;
  runTime: Date;
  previousRunId: string;
  previousRunTime: Date;
  fields: readonly string[];
  /** Whether the export confirmed every device missing from this run as gone (see confirmedRemovals). */
  removalsConfirmed: boolean;
}

/** Counts of a run's changes. */
export interface ChangeCounts {
  added: number;
  removed: number;
  changed: number;
}

/**
 * The change rows, in two passes that hold nothing of the fleet but the previous run's
 * BaseState (already compared with this run) and, between them, the previous values of
 * the devices that changed: the previous run's entries (removed devices, and the values
 * before of changed ones), then this run's (added devices, and changed ones with both).
 */
export async function* changeRows(
  base: BaseState,
  previous: AsyncIterable<StateEntry>,
  current: AsyncIterable<StateEntry>,
  context: ChangeContext,
): AsyncGenerator<ChangeRow> {
  const names = context.fields.map(changeColumnName);
  const before = new Map<DeviceKey, unknown[]>();
  for await (const entry of previous) {
    const fate = base.fate(entry.key);
    if (fate === 'removed') yield row(context, names, 'removed', entry, { before: entry.values });
    // A key met twice in a state is one device: its first entry counts, as in BaseState.
    else if (fate === 'changed' && !before.has(entry.key)) before.set(entry.key, entry.values);
  }
  for await (const entry of current) {
    if (!base.has(entry.key)) {
      yield row(context, names, 'added', entry, { after: entry.values });
      continue;
    }
    const previousValues = before.get(entry.key);
    if (previousValues === undefined) continue;
    before.delete(entry.key);
    yield row(context, names, 'changed', entry, { before: previousValues, after: entry.values });
  }
}

/** One change row; `names` are the compared fields as the table names them, in their order. */
function row(
  context: ChangeContext,
  names: readonly string[],
  change: 'added' | 'removed' | 'changed',
  entry: StateEntry,
  values: { before?: unknown[]; after?: unknown[] },
): ChangeRow {
  const { fields } = context;
  const differs = (i: number) => !values.before || !values.after || JSON.stringify(values.before[i]) !== JSON.stringify(values.after[i]);
  const changed = fields.flatMap((_, i) => (differs(i) ? [i] : []));
  const pick = (list: unknown[] | undefined) => {
    if (!list) return null;
    const object: Record<string, unknown> = {};
    for (const i of changed) object[names[i] as string] = list[i];
    return JSON.stringify(object);
  };
  const valueOf = (list: unknown[] | undefined, field: string): string | null => {
    const index = fields.indexOf(field);
    const value = index < 0 || !list ? null : list[index];
    return typeof value === 'string' ? value : value === null || value === undefined ? null : JSON.stringify(value);
  };
  return {
    run_id: context.runId,
    run_time: context.runTime,
    previous_run_id: context.previousRunId,
    previous_run_time: context.previousRunTime,
    change,
    device_key: String(entry.key),
    ref: entry.ref,
    eui: entry.eui,
    name: valueOf(values.after ?? values.before, 'name'),
    health_state_before: valueOf(values.before, 'healthState'),
    health_state_after: valueOf(values.after, 'healthState'),
    changed_fields: changed.map((i) => names[i] as string),
    before: pick(values.before),
    after: pick(values.after),
    confirmed: change === 'removed' ? context.removalsConfirmed : null,
  };
}
