import type { ColumnSource, SchemaElement } from 'hyparquet-writer';

/**
 * The column types curation writes, named as Glue declares them; infra/curation.ts
 * declares the tables from the same lists, so the Parquet files and the tables cannot
 * disagree.
 */
export type ColumnType = 'string' | 'timestamp' | 'double' | 'bigint' | 'boolean' | 'array<string>';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  comment: string;
  /** Never null. */
  required?: boolean;
  /**
   * A Parquet encoding other than the writer's choice (dictionary where it halves the size,
   * else plain): DELTA_BYTE_ARRAY for strings unique per device that share their start
   * (refs, EUIs, names, hrefs), DELTA_BINARY_PACKED for times, which differ by far less
   * than their 64 bits; PLAIN for booleans, which Spark before 3.3 cannot read RLE-encoded.
   */
  encoding?: 'DELTA_BYTE_ARRAY' | 'DELTA_BINARY_PACKED' | 'PLAIN';
  /** Min/max per row group: of no use on a JSON text, so left out there. */
  statistics?: boolean;
  /**
   * GZIP instead of the tables' Snappy: for a column of long texts, where zlib's native
   * deflate (level 1) is faster than the writer's Snappy, written in JavaScript, and its
   * output about half the size (docs/performance.md, "Curating large briefs").
   */
  codec?: 'GZIP';
}

/** A camelCase name in the curated tables' snake_case: `healthState` is `health_state`, `lastRSSI` `last_rssi`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** Parquet's physical and logical types for a column; timestamps are milliseconds, UTC. */
function schemaElementsOf(spec: ColumnSpec): SchemaElement[] {
  const repetition_type = spec.required ? 'REQUIRED' : 'OPTIONAL';
  switch (spec.type) {
    case 'string':
      return [{ name: spec.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type }];
    case 'timestamp':
      return [
        {
          name: spec.name,
          type: 'INT64',
          converted_type: 'TIMESTAMP_MILLIS',
          logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' },
          repetition_type,
        },
      ];
    case 'double':
      return [{ name: spec.name, type: 'DOUBLE', repetition_type }];
    case 'bigint':
      return [{ name: spec.name, type: 'INT64', repetition_type }];
    case 'boolean':
      return [{ name: spec.name, type: 'BOOLEAN', repetition_type }];
    case 'array<string>':
      // The three-level LIST every engine reads (Athena's array<string>, DuckDB's VARCHAR[]).
      return [
        { name: spec.name, converted_type: 'LIST', repetition_type, num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      ];
  }
}

/** The Parquet schema of a table: its root, then each column's elements. */
export function parquetSchema(specs: readonly ColumnSpec[]): SchemaElement[] {
  return [{ name: 'root', num_children: specs.length }, ...specs.flatMap(schemaElementsOf)];
}

/** What the writer takes of a column besides its values: its name and how to encode it. */
export type WriterColumn = Omit<ColumnSource, 'data'>;

/** What parquetWriteRows takes of each column: its name and how to encode it. */
export function writerColumns(specs: readonly ColumnSpec[]): WriterColumn[] {
  return specs.map((spec) => ({
    name: spec.name,
    ...(spec.encoding ? { encoding: spec.encoding } : {}),
    ...(spec.statistics === false ? { statistics: false } : {}),
    ...(spec.codec ? { codec: spec.codec } : {}),
  }));
}
