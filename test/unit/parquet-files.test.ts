import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnSpec } from '../../lambda/curate/columns.ts';
import { DICTIONARY_MAX_MEAN_CHARS, PART_SIZE, ParquetFiles } from '../../lambda/curate/parquet-files.ts';
import { PLAIN_BODIES, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';
import { queryObjects } from '../support/curated.ts';
import { refuseParts } from '../support/refused-parts.ts';

const COLUMNS: ColumnSpec[] = [
  { name: 'n', type: 'bigint', required: true, comment: 'Row number' },
  { name: 'text', type: 'string', required: true, statistics: false, comment: 'Text Snappy cannot shrink' },
];

describe('Parquet files: memory while a large row group is uploaded', () => {
  let standIns: StandIns;
  let s3: S3Client;
  /** For each part uploaded: its bytes, and the bytes of the buffer that holds them. */
  const parts: { bytes: number; held: number }[] = [];
  /** Keys whose parts S3 refuses, from the second on. */
  const refused = new Set<string>();

  beforeAll(async () => {
    standIns = await startStandIns();
    s3 = testS3(standIns.s3Url, PLAIN_BODIES);
    refuseParts(s3, refused, (body) => {
      if (body instanceof Uint8Array) parts.push({ bytes: body.byteLength, held: body.buffer.byteLength });
    });
  });
  afterAll(async () => {
    s3?.destroy();
    await standIns?.stop();
  });

  it("holds each part in a buffer of about a part, not in one of the row group's whole bytes", async () => {
    // 1,500 rows of 20 KB in one row group: 30 MB that Snappy cannot shrink, four parts.
    const rows = 1_500;
    const text = (n: number) => randomBytes(15_000).toString('base64') + String(n);
    const files = new ParquetFiles(s3, DEMO.bucket, (part) => `parquet-files-${process.pid}/part-${part}.parquet`, COLUMNS, {
      metadata: {},
      groupBytes: 64 * 1024 * 1024,
    });
    const written = await files.write(
      (async function* () {
        for (let n = 0; n < rows; n += 1) yield { n: BigInt(n), text: text(n) };
      })(),
    );

    expect(written).toHaveLength(1);
    expect(written[0]?.bytes).toBeGreaterThan(3 * PART_SIZE);
    expect(parts.length).toBeGreaterThanOrEqual(4);
    for (const part of parts) expect(part.held).toBeLessThan(2 * PART_SIZE);
    const [counted] = await queryObjects(
      s3,
      DEMO.bucket,
      written.map(({ key }) => key),
      'SELECT count(*)::INTEGER AS rows, sum(n)::BIGINT AS total, sum(length(text))::BIGINT AS chars FROM read_parquet({files})',
    );
    expect(counted).toEqual({ rows, total: BigInt((rows * (rows - 1)) / 2), chars: BigInt(rows * 20_000 + [...Array(rows).keys()].join('').length) });
  }, 60_000);

  it('writes a row group of long texts plain, and one of short repeated texts with a dictionary, group by group', async () => {
    const long = (n: number) => `{"history":[${String(n).repeat(DICTIONARY_MAX_MEAN_CHARS)}]}`;
    const short = (n: number) => `{"model":"${n % 3}"}`;
    // Rows of short texts first (one group of ROW_GROUP_ROWS), then long ones; each group
    // is judged by its own values. Both repeat: the writer's own test would take a
    // dictionary for either.
    const files = new ParquetFiles(s3, DEMO.bucket, (part) => `parquet-files-${process.pid}/encodings-${part}.parquet`, COLUMNS, {
      metadata: {},
    });
    const written = await files.write(
      (async function* () {
        for (let n = 0; n < 12_500; n += 1) yield { n: BigInt(n), text: short(n) };
        for (let n = 0; n < 100; n += 1) yield { n: BigInt(n), text: long(n % 4) };
      })(),
    );
    const groups = await queryObjects(
      s3,
      DEMO.bucket,
      written.map(({ key }) => key),
      "SELECT row_group_id::INTEGER AS rowGroup, num_values::INTEGER AS rows, encodings, dictionary_page_offset IS NOT NULL AS dictionary FROM parquet_metadata({files}) WHERE path_in_schema = 'text' ORDER BY row_group_id",
    );
    expect(groups).toEqual([
      { rowGroup: 0, rows: 12_500, encodings: 'PLAIN, RLE_DICTIONARY', dictionary: true },
      { rowGroup: 1, rows: 100, encodings: 'PLAIN', dictionary: false },
    ]);
    const [texts] = await queryObjects(
      s3,
      DEMO.bucket,
      written.map(({ key }) => key),
      'SELECT count(DISTINCT text)::INTEGER AS distinct, sum(length(text))::BIGINT AS chars FROM read_parquet({files})',
    );
    const chars = (count: number, text: (n: number) => string) => [...Array(count).keys()].reduce((sum, n) => sum + text(n).length, 0);
    expect(texts).toEqual({ distinct: 3 + 4, chars: BigInt(chars(12_500, short) + chars(100, (n) => long(n % 4))) });
  }, 60_000);

  it("fails with S3's error, not the body's, when S3 refuses a part while a row group is written", async () => {
    const key = `parquet-files-${process.pid}/refused.parquet`;
    refused.add(key);
    const files = new ParquetFiles(s3, DEMO.bucket, () => key, COLUMNS, { metadata: {}, groupBytes: 4 * 1024 * 1024 });
    const written = files.write(
      (async function* () {
        for (let n = 0; n < 3_000; n += 1) yield { n: BigInt(n), text: randomBytes(15_000).toString('base64') };
      })(),
    );
    await expect(written).rejects.toThrow('S3 refused the part');
    expect(await files.discard()).toEqual([]);
  }, 60_000);
});
