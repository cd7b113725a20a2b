/**
 * What the fleet signals cost a curation (lambda/curate/fleet-signals.ts): the time spent
 * in FleetSignalCounter.add over every brief of a committed run, and in reading the signals
 * out, in this process. Briefs are read and parsed in batches outside the timed part, so
 * only what curation adds per device for its signals is counted.
 */
import { readJson } from '../../lambda/storage/s3-json.ts';
import type { Manifest } from '../../lambda/storage/manifest.ts';
import { rawBriefs, type RawBrief } from '../../lambda/curate/raw-briefs.ts';
import { FleetSignalCounter } from '../../lambda/curate/fleet-signals.ts';
import { testS3 } from '../inspect/snapshot.ts';

const BATCH = 10_000;

export async function signalsCost(s3Url: string, run: { bucket: string; manifestKey: string }): Promise<{ ms: number; devices: number }> {
  const s3 = testS3(s3Url);
  const manifest = (await readJson<Manifest>(s3, run.bucket, run.manifestKey))?.value;
  if (!manifest) throw new Error(`No manifest at ${run.manifestKey}`);
  const counter = new FleetSignalCounter(new Date(manifest.runTime), 24);
  let ms = 0;
  let devices = 0;
  let batch: RawBrief[] = [];
  const count = () => {
    const start = performance.now();
    for (const brief of batch) counter.add(brief);
    ms += performance.now() - start;
    devices += batch.length;
    batch = [];
  };
  for await (const brief of rawBriefs(s3, manifest)) {
    batch.push(brief);
    if (batch.length === BATCH) count();
  }
  count();
  const start = performance.now();
  counter.signals({ added: 0, removed: 0, changed: 0, previousDevices: devices, previousActiveShare: 0 });
  ms += performance.now() - start;
  return { ms, devices };
}
