import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { previousCommittedRun } from '../../lambda/curate/previous-run.ts';
import { PLAIN_BODIES, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO, startStandIns, type StandIns } from '../../tools/stand-ins/standins.ts';

/**
 * The search reads S3 only (a listing of manifests, then the manifests where run ids tie),
 * so it runs here against s3rver, each test under a prefix of its own.
 */
let standIns: StandIns;
let s3: S3Client;
/** The S3 commands the search sent, by name, since the last `sent()`. */
let commands: string[] = [];
let prefixes = 0;

beforeAll(async () => {
  standIns = await startStandIns();
  s3 = testS3(standIns.s3Url, PLAIN_BODIES);
  s3.middlewareStack.add(
    (next, context) => (args) => {
      commands.push(context.commandName ?? '');
      return next(args);
    },
    { step: 'initialize' },
  );
});
afterAll(async () => {
  s3?.destroy();
  await standIns?.stop();
});

/** The commands sent since the last call, and a clean slate. */
function sent(): string[] {
  const all = commands;
  commands = [];
  return all;
}

/** A run as the search is given it and manifests name it: its id and its time. */
interface Run {
  runId: string;
  runTime: string;
}

/** A schedule's run: its id is its time to the second. */
const scheduled = (iso: string): Run => ({ runId: stamp(iso), runTime: new Date(iso).toISOString() });
/** An on-demand run: its time to the millisecond, its id that second and its attempt. */
const onDemand = (iso: string, attempt: string): Run => ({ runId: `${stamp(iso)}-${attempt}`, runTime: new Date(iso).toISOString() });

function stamp(iso: string): string {
  return new Date(iso)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** A prefix of its own with these runs committed (a manifest each, as far as the search reads one). */
async function committed(runs: Run[], others: string[] = []): Promise<string> {
  prefixes += 1;
  const prefix = `previous-run-${process.pid}-${prefixes}/`;
  const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: DEMO.bucket, Key: key, Body: body }));
  await Promise.all([
    ...runs.map((run) => put(`${prefix}manifests/${run.runId}.json`, `${JSON.stringify({ schemaVersion: 1, ...run })}\n`)),
    ...others.map((key) => put(`${prefix}${key}`, '{}')),
  ]);
  sent();
  return prefix;
}

async function previousOf(prefix: string, run: Run): Promise<string | undefined> {
  return (await previousCommittedRun(s3, DEMO.bucket, prefix, run))?.runId;
}

describe('the previous committed run', () => {
  it('is none for the first run', async () => {
    const first = scheduled('2026-11-28T10:00:00Z');
    expect(await previousOf(await committed([first]), first)).toBeUndefined();
    expect(await previousOf(await committed([]), first)).toBeUndefined();
  });

  it("is the newest older run, of the run's own prefix, never the run itself or a newer one", async () => {
    const runs = ['08', '09', '10', '11', '12'].map((hour) => scheduled(`2026-11-28T${hour}:00:00Z`));
    const prefix = await committed(runs);
    await committed([scheduled('2026-11-28T09:30:00Z')]);
    expect(await previousOf(prefix, runs[2] as Run)).toBe(runs[1]?.runId);
    expect(await previousOf(prefix, runs[0] as Run)).toBeUndefined();
    expect(await previousOf(prefix, scheduled('2026-11-28T10:30:00Z'))).toBe(runs[2]?.runId);
  });

  it("of an hourly run is found with one listing and the one manifest of the previous run's second", async () => {
    const runs = Array.from({ length: 72 }, (_, hour) => scheduled(new Date(Date.UTC(2026, 10, 25, hour)).toISOString()));
    const prefix = await committed(runs);
    const run = runs.at(-1) as Run;
    expect(await previousOf(prefix, run)).toBe(runs.at(-2)?.runId);
    expect(sent()).toEqual(['ListObjectsV2Command', 'GetObjectCommand']);
  });

  it('is found however long before: a month, or years, which only the last listing of every manifest reaches', async () => {
    const run = scheduled('2026-11-28T10:00:00Z');
    const monthBefore = scheduled('2026-10-20T10:00:00Z');
    expect(await previousOf(await committed([monthBefore, run]), run)).toBe(monthBefore.runId);
    expect(sent().filter((name) => name === 'ListObjectsV2Command')).toHaveLength(3);

    const yearsBefore = scheduled('2023-01-01T00:00:00Z');
    expect(await previousOf(await committed([yearsBefore, run]), run)).toBe(yearsBefore.runId);
    expect(sent().filter((name) => name === 'ListObjectsV2Command')).toHaveLength(5);
  });

  it("of the same second is told apart by the manifests' run times, to the millisecond", async () => {
    const early = onDemand('2026-11-28T10:15:30.100Z', 'zzzz');
    const late = onDemand('2026-11-28T10:15:30.900Z', 'aaaa');
    const run = onDemand('2026-11-28T10:15:30.500Z', 'mmmm');
    const prefix = await committed([scheduled('2026-11-28T10:00:00Z'), early, run, late]);
    expect(await previousOf(prefix, run)).toBe(early.runId);
    expect(await previousOf(prefix, late)).toBe(run.runId);
    expect(await previousOf(prefix, early)).toBe(stamp('2026-11-28T10:00:00Z'));
  });

  it('of the same second and the same time is the one whose run id sorts before', async () => {
    const [a, b, c] = ['aaaa', 'bbbb', 'cccc'].map((attempt) => onDemand('2026-11-28T10:15:30.000Z', attempt)) as [Run, Run, Run];
    const prefix = await committed([c, a, b]);
    expect(await previousOf(prefix, c)).toBe(b.runId);
    expect(await previousOf(prefix, b)).toBe(a.runId);
    expect(await previousOf(prefix, a)).toBeUndefined();
  });

  it('of an earlier second is the newest of the runs of that second: a schedule and an on-demand run', async () => {
    const schedule = scheduled('2026-11-28T10:00:00Z');
    const manual = onDemand('2026-11-28T10:00:00.250Z', 'b7c8');
    const run = scheduled('2026-11-28T11:00:00Z');
    expect(await previousOf(await committed([manual, schedule, run]), run)).toBe(manual.runId);
  });

  it('passes over objects in the manifests folder that are not manifests', async () => {
    const run = scheduled('2026-11-28T10:00:00Z');
    const before = scheduled('2026-11-28T09:00:00Z');
    const prefix = await committed([before, run], ['manifests/20261128T093000Z.json.tmp', 'manifests/20261128T094500Z/']);
    expect(await previousOf(prefix, run)).toBe(before.runId);
  });
});
