import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { deleteObjects } from '../storage/deletes.ts';
import { CheckpointMismatchError, getCheckpoint } from '../storage/checkpoints.ts';
import type { CuratedKeys } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { putJson, statusOf } from '../storage/s3-json.ts';
import { HEALTH_STATES, type FleetTally } from './fleet-signals.ts';
import type { RawPosition } from './raw-briefs.ts';

const FORMAT = 'thingpark-exporter/curation-progress/1';

/**
 * Invocations one curation may take at most: a million briefs of 20 KB take two at one vCPU,
 * four at the smallest memory (docs/performance.md, "Curation"); a run that needs more than
 * this many is one no memory setting curates in reasonable time, and fails instead of
 * holding the state machine for hours.
 */
export const CURATION_MAX_INVOCATIONS = 48;

/** More snapshot files than this is no run this code curates: a million 20 KB briefs make about forty. */
const MAX_FILES = 10_000;

/**
 * How far a curation that goes on in another invocation got, at
 * `P curated/state/<runId>.progress.json`: the raw position it reads on from, what it wrote
 * of device_snapshots (files numbered from 0: only their rows and bytes are kept, their keys
 * follow from the run's id, so a changed progress can name no other object), the entries of
 * the state it has written so far (`P curated/state/<runId>.state.gz`, rewritten by each
 * invocation with the earlier ones' entries first) and its counts. Bound to one commit of the
 * run by its manifest's sha256. Removed once the run's record is written.
 */
export interface CurationProgress {
  format: typeof FORMAT;
  runId: string;
  manifestHash: string;
  /** Invocations that have read devices so far. */
  invocations: number;
  /** Time spent in them, from reading the manifest to saving this. */
  elapsedMs: number;
  next: RawPosition;
  /** Every device read and written to device_snapshots: what remains is the comparison, the changes and the record. */
  read: boolean;
  devices: number;
  unkeyed: number;
  stateEntries: number;
  fleet: FleetTally;
  snapshotFiles: { rows: number; bytes: number }[];
}

export type ProgressCounts = Omit<CurationProgress, 'format' | 'runId' | 'manifestHash'>;

export async function saveProgress(s3: S3Client, bucket: string, keys: CuratedKeys, manifest: Manifest, hash: string, counts: ProgressCounts): Promise<void> {
  const progress: CurationProgress = { format: FORMAT, runId: manifest.runId, manifestHash: hash, ...counts };
  await putJson(s3, bucket, keys.progressKey, progress);
}

/**
 * The progress saved for this commit of the run, checked against its manifest; undefined
 * when there is none. A progress that is not one this code saves for this commit (damaged,
 * or left by an earlier commit of the run id that was never curated) is reported through
 * `stale` and its files removed, and the curation starts over: curated files are derived
 * from the raw files, which are the record, so starting over loses nothing.
 */
export async function readProgress(
  s3: S3Client,
  bucket: string,
  keys: CuratedKeys,
  manifest: Manifest,
  hash: string,
  stale: (problems: string[], refused: string[]) => void,
): Promise<CurationProgress | undefined> {
  let stored: Partial<CurationProgress> | undefined;
  try {
    stored = (await getCheckpoint<Partial<CurationProgress>>(s3, bucket, keys.progressKey))?.value;
  } catch (error) {
    if (!(error instanceof CheckpointMismatchError)) throw error;
    stale([error.message], await removeProgress(s3, bucket, keys, 0));
    return undefined;
  }
  if (stored === undefined) return undefined;
  const problems = progressProblems(stored, manifest, hash);
  if (problems.length === 0) return stored as CurationProgress;
  const files = Array.isArray(stored.snapshotFiles) ? Math.min(stored.snapshotFiles.length, MAX_FILES) : 0;
  stale(problems, await removeProgress(s3, bucket, keys, files));
  return undefined;
}

/**
 * Removes a curation's progress and what it lists (its first `files` snapshot files and its
 * state so far); returns what S3 refused to delete.
 */
export async function removeProgress(s3: S3Client, bucket: string, keys: CuratedKeys, files: number): Promise<string[]> {
  const snapshots = Array.from({ length: files }, (_, part) => keys.snapshotKey(part));
  return (await deleteObjects(s3, bucket, [...snapshots, keys.stateKey, keys.progressKey])).refused;
}

/** What makes a stored progress not one this code saved for this commit of the run; none when it is. */
export function progressProblems(progress: Partial<CurationProgress>, manifest: Manifest, hash: string): string[] {
  if (progress.format !== FORMAT) return [`"format" is not ${FORMAT}`];
  if (progress.runId !== manifest.runId || progress.manifestHash !== hash) return ['it was saved for another commit of the run'];
  const problems: string[] = [];
  const count = (name: keyof ProgressCounts, value: unknown, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max) problems.push(`"${name}" must be a whole number from 0 to ${max}`);
  };
  const { devices, snapshotFiles, next, fleet } = progress;
  const total = rowsOf(manifest);
  count('invocations', progress.invocations, CURATION_MAX_INVOCATIONS);
  count('elapsedMs', progress.elapsedMs);
  count('devices', devices, total);
  count('unkeyed', progress.unkeyed, total);
  count('stateEntries', progress.stateEntries, total);
  if (typeof progress.read !== 'boolean') problems.push('"read" must be true or false');
  if (problems.length > 0) return problems;
  if ((progress.unkeyed as number) + (progress.stateEntries as number) !== devices) problems.push('"unkeyed" and "stateEntries" must add up to "devices"');
  problems.push(...positionProblems(next, manifest, devices as number, progress.read as boolean));
  problems.push(...filesProblems(snapshotFiles, devices as number));
  problems.push(...tallyProblems(fleet, devices as number));
  return problems;
}

/** The position must be a row of the manifest's files, with exactly `devices` rows before it. */
function positionProblems(next: RawPosition | undefined, manifest: Manifest, devices: number, read: boolean): string[] {
  const files = manifest.files;
  const file = next?.file;
  const line = next?.line;
  if (!Number.isSafeInteger(file) || !Number.isSafeInteger(line) || (file as number) < 0 || (line as number) < 0 || (file as number) > files.length) {
    return ['"next" must be a file of the manifest and a row of it'];
  }
  const within = files[file as number];
  if ((within ? within.devices : 0) < (line as number)) return ['"next.line" is past the end of its file'];
  const before = files.slice(0, file).reduce((sum, each) => sum + each.devices, 0) + (line as number);
  const problems = before === devices ? [] : [`"next" has ${before} rows before it, not "devices" (${devices})`];
  if (read !== (before === rowsOf(manifest))) problems.push('"read" must say whether "next" is past the last row');
  return problems;
}

/** The rows of all the run's raw files. */
export function rowsOf(manifest: Pick<Manifest, 'files'>): number {
  return manifest.files.reduce((sum, file) => sum + file.devices, 0);
}

function filesProblems(files: CurationProgress['snapshotFiles'] | undefined, devices: number): string[] {
  if (!Array.isArray(files) || files.length === 0 || files.length > MAX_FILES) return [`"snapshotFiles" must list 1 to ${MAX_FILES} files`];
  const valid = files.every((file) => Number.isSafeInteger(file?.rows) && file.rows >= 0 && Number.isSafeInteger(file?.bytes) && file.bytes > 0);
  if (!valid) return ['"snapshotFiles" must each have whole "rows" and "bytes"'];
  return files.reduce((sum, file) => sum + file.rows, 0) === devices ? [] : ['"snapshotFiles" must hold "devices" rows in all'];
}

function tallyProblems(fleet: FleetTally | undefined, devices: number): string[] {
  const counts = [fleet?.devices, fleet?.silent, fleet?.neverSeen, ...(Array.isArray(fleet?.byHealth) ? fleet.byHealth : [])];
  const whole = counts.every((value) => Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= devices);
  if (!whole || fleet?.byHealth.length !== HEALTH_STATES.length)
    return [`"fleet" must hold whole counts of at most "devices", ${HEALTH_STATES.length} health states`];
  const byHealth = fleet.byHealth.reduce((sum, value) => sum + value, 0);
  return fleet.devices === devices && byHealth === devices ? [] : ['"fleet" must count "devices" devices, each in one health state'];
}

/** Whether a curation of the run is under way: a progress is saved for it. */
export async function hasProgress(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (error) {
    if (statusOf(error) === 404) return false;
    throw error;
  }
}
