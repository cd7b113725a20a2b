import type { DeviceKey } from '../common/device-key.ts';
import type { ColumnSpec } from './columns.ts';
import type { BaseState, StateEntry } from './fleet-state.ts';

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
  { name: 'changed_fields', type: 'array<string>', comment: 'changed: the compared fields whose value changed; added, removed: every compared field' },
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
  const before = new Map<DeviceKey, unknown[]>();
  for await (const entry of previous) {
    const fate = base.fate(entry.key);
    if (fate === 'removed') yield row(context, 'removed', entry, { before: entry.values });
    // A key met twice in a state is one device: its first entry counts, as in BaseState.
    else if (fate === 'changed' && !before.has(entry.key)) before.set(entry.key, entry.values);
  }
  for await (const entry of current) {
    if (!base.has(entry.key)) {
      yield row(context, 'added', entry, { after: entry.values });
      continue;
    }
    const previousValues = before.get(entry.key);
    if (previousValues === undefined) continue;
    before.delete(entry.key);
    yield row(context, 'changed', entry, { before: previousValues, after: entry.values });
  }
}

function row(context: ChangeContext, change: 'added' | 'removed' | 'changed', entry: StateEntry, values: { before?: unknown[]; after?: unknown[] }): ChangeRow {
  const { fields } = context;
  const changed =
    values.before && values.after ? fields.filter((_, i) => JSON.stringify(values.before?.[i]) !== JSON.stringify(values.after?.[i])) : [...fields];
  const pick = (list: unknown[] | undefined) => {
    if (!list) return null;
    const object: Record<string, unknown> = {};
    fields.forEach((field, i) => {
      if (changed.includes(field)) object[field] = list[i];
    });
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
    changed_fields: changed,
    before: pick(values.before),
    after: pick(values.after),
    confirmed: change === 'removed' ? context.removalsConfirmed : null,
  };
}
