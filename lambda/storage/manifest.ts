import type { S3Client } from '@aws-sdk/client-s3';
import type { Fallback, Paging } from '../common/paging.ts';
import type { DataFile } from './data-writer.ts';
import type { KeyIndexEntry } from './key-index.ts';
import { CONFLICT_ATTEMPTS, conflictBackoff, putJson, readJson, statusOf } from './s3-json.ts';

/** What a run counted on its way through the fleet. */
export interface RunCounts {
  devices: number;
  pages: number;
  pageRequests: number;
  wastedRequests: number;
  duplicates: number;
  unkeyed: number;
  throttled: number;
  retries: number;
  tokenRequests: number;
  /** EUI ranges a cursor read split the fleet into (1: the list read whole; 0: offset paging). */
  ranges: number;
  /** Devices the sweep missed that the verification added: found by a lookup or a second sweep. */
  recovered: number;
  /** Devices of the previous run the platform confirmed gone (404, or 400 "Device not found"). */
  removed: number;
  /** Devices of the previous run that neither sweep saw and that were not looked up: more than a sweep's worth. */
  unresolved: number;
  /** Requests the verification made: lookups and a second sweep's pages, retries included. */
  verificationRequests: number;
}

/**
 * Whether the run compared the devices it exported with the previous committed run's key
 * index, or why not: there was no committed run yet, or that run has no index to compare
 * with (written before indexes existed, expired, or unreadable: the log says which).
 */
/** `not-needed`: a cursor read, which skips no device; the others say what an offset read was compared with. */
export type Verification = 'compared' | 'first-run' | 'no-previous-index' | 'not-needed';

/** What a committed run wrote; its presence is what makes the run's data official. */
export interface Manifest {
  schemaVersion: 1;
  runId: string;
  trigger: 'schedule' | 'on-demand';
  label?: string;
  /** The schedule's time, or the invocation's for an on-demand run; orders runs. */
  runTime: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Where and how the list was read; `firstPageIndex` only for offset paging (configured, or learned). */
  source: { baseUrl: string; pageSize: number; paging: Paging; firstPageIndex?: number };
  /** Why a cursor read fell back from its ranges to one unfiltered sweep, if it did. */
  fallback?: Fallback;
  counts: RunCounts;
  /** Absent from manifests written before key indexes. */
  verification?: Verification;
  /** The run whose key index this one was compared with. */
  comparedWith?: string;
  bucket: string;
  tableLocation: string;
  dataPrefix: string;
  /** In EUI order, file after file, where `order` is "eui"; else in the order they were written. */
  files: DataFile[];
  /**
   * "eui": the files, read in the order listed, hold the fleet in EUI order, and each file's
   * EUI bounds are disjoint from the others' (a cursor read that did not fall back).
   */
  order?: 'eui';
  bytes: number;
  /** The device keys this run exported, for the next run to compare with. */
  index?: KeyIndexEntry;
}

/**
 * Writes the manifest only if none exists for this run (a conditional write), so two
 * deliveries of one schedule can never both commit on a store that honours the
 * condition. Returns false when one already did.
 */
export async function commitManifest(s3: S3Client, bucket: string, key: string, manifest: Manifest): Promise<boolean> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await putJson(s3, bucket, key, manifest, { IfNoneMatch: '*' });
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 412) return false;
      if (status !== 409 || attempt >= CONFLICT_ATTEMPTS) throw error;
      await conflictBackoff(attempt);
    }
  }
}

/** Whose manifest S3 holds for a run, as far as S3 can be read. */
export type ManifestOwner = { owner: 'this attempt' } | { owner: 'another attempt'; manifest: Manifest } | { owner: 'nobody' };

/**
 * Whose manifest is at `key` now. A write can land although its answer is lost (and the
 * SDK's retry is then refused by the very manifest it wrote), and a store that does not
 * honour conditions can accept a write and then hold another's: only what S3 holds now
 * can tell, byte for byte. Undefined when S3 cannot be read: then nobody knows whether
 * the run committed, and its data must stay.
 */
export async function manifestOwner(s3: S3Client, bucket: string, key: string, written: Manifest): Promise<ManifestOwner | undefined> {
  let landed;
  try {
    landed = await readJson<Manifest>(s3, bucket, key);
  } catch {
    return undefined;
  }
  if (!landed) return { owner: 'nobody' };
  return JSON.stringify(landed.value) === JSON.stringify(written) ? { owner: 'this attempt' } : { owner: 'another attempt', manifest: landed.value };
}
