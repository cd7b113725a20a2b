import { describe, expect, it } from 'vitest';
import { progressProblems, type CurationProgress } from '../../lambda/curate/curation-progress.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';

const HASH = 'a'.repeat(64);
/** A run of 250 devices in three raw files. */
const manifest = {
  runId: '20261207T120000Z',
  counts: { devices: 250 },
  files: [{ devices: 100 }, { devices: 100 }, { devices: 50 }],
} as unknown as Manifest;

/** Stopped 30 rows into the second file: 130 devices read, 3 of them unkeyed. */
const saved: CurationProgress = {
  format: 'thingpark-exporter/curation-progress/1',
  runId: manifest.runId,
  manifestHash: HASH,
  invocations: 2,
  elapsedMs: 1_500_000,
  next: { file: 1, line: 30 },
  read: false,
  devices: 130,
  unkeyed: 3,
  stateEntries: 127,
  fleet: { devices: 130, silent: 4, neverSeen: 2, byHealth: [100, 20, 5, 2, 3, 0] },
  snapshotFiles: [
    { rows: 90, bytes: 5000 },
    { rows: 40, bytes: 3000 },
  ],
};
const problems = (change: Partial<Record<keyof CurationProgress, unknown>>) => progressProblems({ ...saved, ...change } as CurationProgress, manifest, HASH);

describe('a saved curation progress', () => {
  it('is accepted as saved, and at the end of the run', () => {
    expect(progressProblems(saved, manifest, HASH)).toEqual([]);
    const end = { next: { file: 3, line: 0 }, read: true, devices: 250, stateEntries: 247, snapshotFiles: [{ rows: 250, bytes: 9000 }] };
    expect(problems({ ...end, fleet: { ...saved.fleet, devices: 250, byHealth: [220, 20, 5, 2, 3, 0] } })).toEqual([]);
    // Stopped right after the last row: the same place.
    const last = { ...end, next: { file: 2, line: 50 } };
    expect(problems({ ...last, fleet: { ...saved.fleet, devices: 250, byHealth: [220, 20, 5, 2, 3, 0] } })).toEqual([]);
  });

  it("belongs to one commit of the run: another manifest's, or another format, is not taken", () => {
    expect(progressProblems(saved, manifest, 'b'.repeat(64))).toEqual(['it was saved for another commit of the run']);
    expect(problems({ runId: '20261207T130000Z' })).toEqual(['it was saved for another commit of the run']);
    expect(problems({ format: 'something/else' })).toEqual(['"format" is not thingpark-exporter/curation-progress/1']);
  });

  it('has a position with exactly as many rows before it as the devices it counts, inside the files', () => {
    expect(problems({ next: { file: 1, line: 31 } })).toEqual(['"next" has 131 rows before it, not "devices" (130)']);
    expect(problems({ next: { file: 1, line: 101 } })).toEqual(['"next.line" is past the end of its file']);
    expect(problems({ next: { file: 4, line: 0 } })).toEqual(['"next" must be a file of the manifest and a row of it']);
    expect(problems({ next: { file: 1, line: -1 } })).toEqual(['"next" must be a file of the manifest and a row of it']);
    expect(problems({ next: undefined })).toEqual(['"next" must be a file of the manifest and a row of it']);
    expect(problems({ read: true })).toEqual(['"read" must say whether "next" is past the last row']);
  });

  it('holds whole counts that agree with each other, within the run and the ceiling of invocations', () => {
    expect(problems({ devices: 251 })).toEqual(['"devices" must be a whole number from 0 to 250']);
    expect(problems({ invocations: 49 })).toEqual(['"invocations" must be a whole number from 0 to 48']);
    expect(problems({ elapsedMs: 1.5 })).toEqual(['"elapsedMs" must be a whole number from 0 to 9007199254740991']);
    expect(problems({ unkeyed: '3' })).toEqual(['"unkeyed" must be a whole number from 0 to 250']);
    expect(problems({ read: 'no' })).toEqual(['"read" must be true or false']);
    expect(problems({ stateEntries: 126 })).toEqual(['"unkeyed" and "stateEntries" must add up to "devices"']);
  });

  it('lists snapshot files holding its devices, and fleet counts of them', () => {
    expect(problems({ snapshotFiles: [] })).toEqual(['"snapshotFiles" must list 1 to 10000 files']);
    expect(problems({ snapshotFiles: [{ rows: 90, bytes: 5000 }] })).toEqual(['"snapshotFiles" must hold "devices" rows in all']);
    expect(problems({ snapshotFiles: [{ rows: 130, bytes: 0 }] })).toEqual(['"snapshotFiles" must each have whole "rows" and "bytes"']);
    expect(problems({ snapshotFiles: [{ key: 'elsewhere', rows: 130 }] })).toEqual(['"snapshotFiles" must each have whole "rows" and "bytes"']);
    expect(problems({ fleet: { ...saved.fleet, byHealth: [100, 20, 5, 2, 3] } })).toEqual([
      '"fleet" must hold whole counts of at most "devices", 6 health states',
    ]);
    expect(problems({ fleet: { ...saved.fleet, silent: 131 } })).toEqual(['"fleet" must hold whole counts of at most "devices", 6 health states']);
    expect(problems({ fleet: { ...saved.fleet, byHealth: [99, 20, 5, 2, 3, 0] } })).toEqual(['"fleet" must count "devices" devices, each in one health state']);
  });
});
