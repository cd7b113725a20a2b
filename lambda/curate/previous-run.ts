import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { stampOf, stampOfRunId } from '../common/run-id.ts';
import { manifestKey, manifestsPrefix, runIdOfManifestKey } from '../storage/layout.ts';
import type { Manifest } from '../storage/manifest.ts';
import { readJson } from '../storage/s3-json.ts';

/** A committed run as curation orders runs: by run time, then run id, as the `latest` pointer does. */
export interface CommittedRun {
  runId: string;
  runTime: string;
  manifest: Manifest;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How far back the manifests are listed for the run before this one, window after window:
 * hourly runs find it in the first (about 50 keys), daily ones in the second; a gap longer
 * than a year lists every manifest.
 */
const WINDOW_DAYS = [2, 9, 40, 400];

/**
 * The newest committed run older than `run`: the run it is compared with. Manifests are
 * named by run id, and a run id starts with its time to the second, so the listing is in
 * time order but for runs of the same second, which are told apart by their manifests.
 */
export async function previousCommittedRun(
  s3: S3Client,
  bucket: string,
  prefix: string,
  run: { runId: string; runTime: string },
): Promise<CommittedRun | undefined> {
  const second = stampOfRunId(run.runId);
  for (const days of [...WINDOW_DAYS, Number.POSITIVE_INFINITY]) {
    const from = Number.isFinite(days) ? stampOf(new Date(Date.parse(run.runTime) - days * DAY_MS)) : undefined;
    const ids = await runIdsBetween(s3, bucket, prefix, from, second);
    const earlier = ids.filter((id) => id !== run.runId);
    const found = await newestBefore(s3, bucket, prefix, earlier, run);
    if (found) return found;
  }
  return undefined;
}

/** Run ids of the manifests from the run time `from` (all when undefined) up to the second `until`, inclusive. */
async function runIdsBetween(s3: S3Client, bucket: string, prefix: string, from: string | undefined, until: string): Promise<string[]> {
  const folder = manifestsPrefix(prefix);
  const ids: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: folder,
        ...(from ? { StartAfter: `${folder}${from}` } : {}),
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const { Key } of page.Contents ?? []) {
      const id = Key === undefined ? undefined : runIdOfManifestKey(prefix, Key);
      if (id === undefined) continue;
      if (stampOfRunId(id) > until) return ids;
      ids.push(id);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return ids;
}

/** Among `ids` (in key order), the newest run older than `run`, reading manifests only where seconds tie. */
async function newestBefore(
  s3: S3Client,
  bucket: string,
  prefix: string,
  ids: string[],
  run: { runId: string; runTime: string },
): Promise<CommittedRun | undefined> {
  const second = stampOfRunId(run.runId);
  const read = async (id: string) => {
    const manifest = (await readJson<Manifest>(s3, bucket, manifestKey(prefix, id)))?.value;
    return manifest ? { runId: manifest.runId, runTime: manifest.runTime, manifest } : undefined;
  };
  const older = (candidate: CommittedRun) => (candidate.runTime !== run.runTime ? candidate.runTime < run.runTime : candidate.runId < run.runId);
  const newest = (candidates: CommittedRun[]) =>
    candidates.sort((a, b) => (a.runTime !== b.runTime ? (a.runTime < b.runTime ? -1 : 1) : a.runId < b.runId ? -1 : 1)).at(-1);
  // Runs of the same second as `run` may be older or newer: their manifests say.
  const sameSecond = (await Promise.all(ids.filter((id) => stampOfRunId(id) === second).map(read))).filter((c): c is CommittedRun => c !== undefined);
  const tied = newest(sameSecond.filter(older));
  if (tied) return tied;
  const before = ids.filter((id) => stampOfRunId(id) < second);
  const last = before.at(-1);
  if (last === undefined) return undefined;
  const lastSecond = stampOfRunId(last);
  const candidates = (await Promise.all(before.filter((id) => stampOfRunId(id) === lastSecond).map(read))).filter((c): c is CommittedRun => c !== undefined);
  return newest(candidates);
}
