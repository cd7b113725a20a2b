import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** What two outputs must share to count as identical. */
export interface Digest {
  rows: number;
  /** Sum of the rows' SHA-256 (mod 2^256), in hex. */
  sum: string;
}

const MOD = 1n << 256n;

/**
 * A streaming, order-independent digest of gzip NDJSON objects: each row is parsed, its
 * `exportRunId` dropped, re-serialised with keys sorted at every level (so field order
 * does not matter), hashed, and the hashes summed. Two outputs with equal digests hold the
 * same multiset of rows: the same thing "sort the canonical rows, then hash" proves, in
 * constant memory, which a million rows need. Given `euis`, each row's EUI is added to it too,
 * to check which devices an output holds.
 */
export async function digestObjects(s3: S3Client, bucket: string, keys: string[], euis?: Set<string>): Promise<Digest> {
  let rows = 0;
  let sum = 0n;
  for (const key of keys) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const lines = createInterface({ input: (object.Body as Readable).pipe(createGunzip()), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === '') continue;
      const { exportRunId: _run, ...row } = JSON.parse(line) as Record<string, unknown>;
      euis?.add(String(row.EUI));
      const hash = createHash('sha256').update(canonical(row)).digest('hex');
      sum = (sum + BigInt(`0x${hash}`)) % MOD;
      rows += 1;
    }
  }
  return { rows, sum: sum.toString(16).padStart(64, '0') };
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
