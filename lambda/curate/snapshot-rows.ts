import type { ColumnSpec } from './columns.ts';
import type { RawBrief } from './raw-briefs.ts';

/** How a typed column reads its field: the value's JS type it holds exactly, and how it is stored. */
type Kind = 'string' | 'double' | 'int64' | 'timestamp';

interface FieldColumn {
  column: string;
  /** The brief's top-level field. */
  field: string;
  /** For an object field, the one member the column holds (`model.commercialName`). */
  member?: string;
  kind: Kind;
  comment: string;
  encoding?: ColumnSpec['encoding'];
}

/**
 * The typed columns: the fields of a brief that public code names (docs/thingpark-api.md),
 * snake_case so that every engine finds them under one spelling, and the three objects
 * flattened to the member analysts group by.
 */
export const FIELD_COLUMNS: readonly FieldColumn[] = [
  { column: 'ref', field: 'ref', kind: 'string', comment: "The platform's device reference", encoding: 'DELTA_BYTE_ARRAY' },
  { column: 'eui', field: 'EUI', kind: 'string', comment: 'DevEUI', encoding: 'DELTA_BYTE_ARRAY' },
  { column: 'name', field: 'name', kind: 'string', comment: 'Device name', encoding: 'DELTA_BYTE_ARRAY' },
  { column: 'nw_address', field: 'nwAddress', kind: 'string', comment: 'Network address (DevAddr)', encoding: 'DELTA_BYTE_ARRAY' },
  { column: 'health_state', field: 'healthState', kind: 'string', comment: 'ACTIVE, INACTIVE, BATTERY_LOW, NEVER_SEEN, ...' },
  { column: 'model_commercial_name', field: 'model', member: 'commercialName', kind: 'string', comment: 'model.commercialName' },
  {
    column: 'subscription_commercial_name',
    field: 'networkSubscription',
    member: 'commercialName',
    kind: 'string',
    comment: 'networkSubscription.commercialName',
  },
  { column: 'routing_profile_name', field: 'appServersRoutingProfile', member: 'name', kind: 'string', comment: 'appServersRoutingProfile.name' },
  { column: 'last_up_timestamp', field: 'lastUpTimestamp', kind: 'timestamp', comment: 'Last uplink (UTC)', encoding: 'DELTA_BINARY_PACKED' },
  { column: 'last_dw_timestamp', field: 'lastDwTimestamp', kind: 'timestamp', comment: 'Last downlink (UTC)', encoding: 'DELTA_BINARY_PACKED' },
  { column: 'last_rssi', field: 'lastRSSI', kind: 'double', comment: 'dBm' },
  { column: 'last_snr', field: 'lastSNR', kind: 'double', comment: 'dB' },
  { column: 'avg_rssi', field: 'avgRSSI', kind: 'double', comment: 'dBm' },
  { column: 'avg_snr', field: 'avgSNR', kind: 'double', comment: 'dB' },
  { column: 'last_sf', field: 'lastSF', kind: 'int64', comment: 'Spreading factor' },
  { column: 'last_bat_level', field: 'lastBatLevel', kind: 'int64', comment: 'Battery level' },
  { column: 'alarm_count', field: 'alarmCount', kind: 'int64', comment: 'Alarms raised' },
  { column: 'alarm_level', field: 'alarmLevel', kind: 'int64', comment: 'Alarm level' },
  { column: 'lat', field: 'lat', kind: 'double', comment: 'Latitude' },
  { column: 'lon', field: 'lon', kind: 'double', comment: 'Longitude' },
  { column: 'href', field: 'href', kind: 'string', comment: "The device's API path", encoding: 'DELTA_BYTE_ARRAY' },
];

const TYPE_OF_KIND = { string: 'string', double: 'double', int64: 'bigint', timestamp: 'timestamp' } as const;

/** The columns of `device_snapshots` (and of `devices_current`, which lists its files). */
export const SNAPSHOT_COLUMNS: readonly ColumnSpec[] = [
  { name: 'run_id', type: 'string', required: true, comment: 'The export run the row comes from' },
  { name: 'run_time', type: 'timestamp', required: true, comment: "The run's time: its schedule, or the on-demand invocation's (UTC)" },
  ...FIELD_COLUMNS.map(({ column, kind, comment, encoding }) => ({ name: column, type: TYPE_OF_KIND[kind], comment, ...(encoding ? { encoding } : {}) })),
  {
    name: 'other_fields',
    type: 'string',
    required: true,
    statistics: false,
    // The bulk of the bytes where briefs are large.
    codec: 'GZIP',
    comment: 'JSON object of every field of the brief the typed columns do not hold exactly; with them, the whole brief',
  },
];

/** One row of `device_snapshots`, as parquetWriteRows takes it. */
export type SnapshotRow = Record<string, string | number | bigint | Date | null>;

/** Epoch milliseconds a JS Date can hold (±100,000,000 days). */
const MAX_TIME_MS = 8.64e15;

/**
 * A brief as a typed row, and never a field lost: a column holds its field only when the
 * value is of the column's type and nothing of it is left out (a string for a string
 * column; a finite number for a double; a safe integer for a bigint; integer epoch
 * milliseconds for a timestamp; an object of that one member for a flattened object; text
 * without a lone surrogate for a string).
 * Every other field, and every value a column cannot hold exactly, goes whole into
 * `other_fields`. A value of another type still fills its column where it reads as one
 * (a numeric ref as text, an ISO time as a timestamp, a model with more members by its
 * commercial name), for queries, and stays in `other_fields` as the platform sent it.
 */
export function snapshotRow(brief: RawBrief, run: { runId: string; runTime: Date }): SnapshotRow {
  const row: SnapshotRow = { run_id: run.runId, run_time: run.runTime };
  const held = new Set<string>(['exportRunId']);
  for (const spec of FIELD_COLUMNS) {
    const value = brief[spec.field];
    const { stored, exact } = spec.member === undefined ? typed(spec.kind, value) : memberOf(value, spec.member);
    row[spec.column] = stored;
    if (exact) held.add(spec.field);
  }
  // No prototype: a field named `__proto__` is then a field like any other, not the object's prototype.
  const other = Object.create(null) as Record<string, unknown>;
  for (const field of Object.keys(brief)) if (!held.has(field)) other[field] = brief[field];
  row.other_fields = JSON.stringify(other);
  return row;
}

function typed(kind: Kind, value: unknown): { stored: SnapshotRow[string]; exact: boolean } {
  switch (kind) {
    case 'string':
      if (typeof value === 'string') return { stored: value, exact: wellFormed(value) };
      return { stored: typeof value === 'number' || typeof value === 'boolean' ? String(value) : null, exact: false };
    case 'double':
      return typeof value === 'number' && Number.isFinite(value) ? { stored: value, exact: true } : { stored: null, exact: false };
    case 'int64':
      return Number.isSafeInteger(value) ? { stored: BigInt(value as number), exact: true } : { stored: null, exact: false };
    case 'timestamp':
      if (Number.isSafeInteger(value) && Math.abs(value as number) <= MAX_TIME_MS) return { stored: new Date(value as number), exact: true };
      if (typeof value === 'string') {
        const parsed = Date.parse(value);
        return { stored: Number.isNaN(parsed) ? null : new Date(parsed), exact: false };
      }
      return { stored: null, exact: false };
  }
}

function memberOf(value: unknown, member: string): { stored: string | null; exact: boolean } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { stored: null, exact: false };
  const inner = (value as Record<string, unknown>)[member];
  if (typeof inner !== 'string') return { stored: null, exact: false };
  return { stored: inner, exact: wellFormed(inner) && Object.keys(value).length === 1 };
}

/** A lone UTF-16 surrogate, which Parquet's UTF-8 cannot hold: the writer stores U+FFFD instead. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether a string column holds the text exactly. One with a lone surrogate is stored with
 * U+FFFD in its place, for queries, and the value stays whole in `other_fields`, whose JSON
 * keeps it as a `\uD800` escape.
 */
function wellFormed(value: string): boolean {
  return !LONE_SURROGATE.test(value);
}

/**
 * The brief back from a row of `device_snapshots`, as DuckDB or Athena reads it: each
 * column not null whose field `other_fields` does not hold, then `other_fields`. What the
 * tests check the files with, and what docs/analytics.md shows in SQL.
 */
export function briefOfRow(row: Record<string, unknown>): RawBrief {
  const other = JSON.parse(String(row.other_fields)) as RawBrief;
  const brief: RawBrief = {};
  for (const spec of FIELD_COLUMNS) {
    const value = row[spec.column];
    if (value === null || value === undefined || spec.field in other) continue;
    const plain = spec.kind === 'timestamp' ? (value as Date).getTime() : spec.kind === 'int64' ? Number(value) : value;
    brief[spec.field] = spec.member === undefined ? plain : { [spec.member]: plain };
  }
  return { ...brief, ...other };
}
