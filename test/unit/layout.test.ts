import { describe, expect, it } from 'vitest';
import {
  attemptOfDataKey,
  attemptOfIndexKey,
  checkpointKeys,
  CURATED_REMOVABLE,
  curatedKeys,
  manifestKey,
  markerKey,
  newAttempt,
  runIdOfManifestKey,
  runKeys,
} from '../../lambda/storage/layout.ts';

const RUN_ID = '20261128T100000Z';
const ATTEMPT = '0000000ab1c2d3e4';

describe('the bucket layout', () => {
  it('keeps an attempt of a run under the table location, its manifest, pointer, marker and key index beside it', () => {
    const keys = runKeys('p/', RUN_ID, ATTEMPT);
    expect({ ...keys, dataKey: keys.dataKey(3) }).toEqual({
      tableLocation: 'p/devices/',
      dataPrefix: `p/devices/dt=2026-11-28/run=${RUN_ID}/`,
      dataKey: `p/devices/dt=2026-11-28/run=${RUN_ID}/part-00003-${ATTEMPT}.ndjson.gz`,
      manifestKey: `p/manifests/${RUN_ID}.json`,
      latestKey: 'p/latest.json',
      markersPrefix: 'p/attempts/',
      markerKey: `p/attempts/${ATTEMPT}.json`,
      indexPrefix: `p/indexes/${RUN_ID}/`,
      indexKey: `p/indexes/${RUN_ID}/${ATTEMPT}.keys.gz`,
    });
    expect(manifestKey('p/', RUN_ID)).toBe(keys.manifestKey);
    expect(markerKey('p/', ATTEMPT)).toBe(keys.markerKey);
  });

  it('names the run’s keys by the date in its run id', () => {
    expect(runKeys('', '20261128T235959Z-6bd1a0f2', ATTEMPT).dataPrefix).toBe('devices/dt=2026-11-28/run=20261128T235959Z-6bd1a0f2/');
    expect(curatedKeys('', '20261129T000000Z').snapshotPrefix).toBe('curated/device_snapshots/dt=2026-11-29/run=20261129T000000Z/');
    expect(checkpointKeys('p/', RUN_ID, ATTEMPT)).toEqual({
      checkpoint: `p/checkpoints/${RUN_ID}/${ATTEMPT}.json`,
      seen: `p/checkpoints/${RUN_ID}/${ATTEMPT}.seen.gz`,
      lookups: `p/checkpoints/${RUN_ID}/${ATTEMPT}.lookups.gz`,
    });
  });

  it('refuses to file anything under a value that is not a run id, or whose time does not exist', () => {
    expect(() => runKeys('p/', '20261340T250000Z', ATTEMPT)).toThrow('Not a run id: "20261340T250000Z"');
    expect(() => curatedKeys('p/', '../x')).toThrow('Not a run id');
  });

  it('puts curated tables in locations of their own', () => {
    const keys = curatedKeys('p/', RUN_ID);
    expect({ ...keys, snapshotKey: keys.snapshotKey(0), changesKey: keys.changesKey(1), recordKeyOfCommit: keys.recordKeyOfCommit('ab'.repeat(32)) }).toEqual({
      snapshotLocation: 'p/curated/device_snapshots/',
      snapshotPrefix: `p/curated/device_snapshots/dt=2026-11-28/run=${RUN_ID}/`,
      snapshotKey: `p/curated/device_snapshots/dt=2026-11-28/run=${RUN_ID}/part-00000.parquet`,
      changesLocation: 'p/curated/device_changes/',
      changesPrefix: `p/curated/device_changes/dt=2026-11-28/run=${RUN_ID}/`,
      changesKey: `p/curated/device_changes/dt=2026-11-28/run=${RUN_ID}/part-00001.parquet`,
      currentLocation: 'p/curated/devices_current/',
      currentKey: 'p/curated/devices_current/symlink.txt',
      recordsLocation: 'p/curated/runs/',
      recordKey: `p/curated/runs/${RUN_ID}.json`,
      recordKeyOfCommit: `p/curated/runs/${RUN_ID}.abababababababab.json`,
      stateKey: `p/curated/state/${RUN_ID}.state.gz`,
      progressKey: `p/curated/state/${RUN_ID}.progress.json`,
    });
  });

  it('reads the attempt back from the keys it names, and the run from a manifest’s', () => {
    const attempt = newAttempt('6bd1a0f2');
    expect(attempt).toMatch(/^6bd1a0f2[0-9a-f]{8}$/);
    const keys = runKeys('p/', RUN_ID, attempt);
    expect(attemptOfDataKey(keys.dataKey(0))).toBe(attempt);
    expect(attemptOfIndexKey(keys.indexKey)).toBe(attempt);
    expect(attemptOfDataKey(`p/devices/dt=2026-11-28/run=${RUN_ID}/part-0-x.ndjson.gz`)).toBeUndefined();
    expect(runIdOfManifestKey('p/', keys.manifestKey)).toBe(RUN_ID);
    expect(runIdOfManifestKey('p/', 'p/manifests/notes.txt')).toBeUndefined();
    expect(runIdOfManifestKey('p/', `q/manifests/${RUN_ID}.json`)).toBeUndefined();
  });

  it("lets a failed curation's deletes reach its Parquet files, state and progress, never a record nor the current table's symlink", () => {
    // As IAM matches a resource pattern: `*` for any characters, "/" included.
    const patterns = CURATED_REMOVABLE.map((pattern) => new RegExp(`^p/${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`));
    const removable = (key: string) => patterns.some((pattern) => pattern.test(key));
    const keys = curatedKeys('p/', RUN_ID);
    for (const key of [keys.snapshotKey(0), keys.snapshotKey(12), keys.changesKey(0), keys.stateKey, keys.progressKey]) expect(removable(key), key).toBe(true);
    for (const key of [keys.recordKey, keys.currentKey]) expect(removable(key), key).toBe(false);
  });
});
