import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DataWriter, QUEUED_BYTES, inEuiOrder, type DataFile } from '../../lambda/storage/data-writer.ts';
import { runRows, testS3 } from '../../tools/inspect/snapshot.ts';
import { DEMO, freshPrefix, objects, reset, useHarness, type Harness } from '../faults/harness.ts';

/**
 * The writer's lanes against a real S3-protocol server: a cursor read gives each EUI range
 * a lane, so the ranges read at once each write a file of their own, in order, and the
 * files together stay within a memory budget in bytes however many lanes are open.
 */
const h: Harness = useHarness();

const writerAt = (prefix: string, maxBytes = 256 * 1024 * 1024) =>
  new DataWriter(testS3(h.proxy.url), DEMO.bucket, (index) => `${prefix}part-${index}.ndjson.gz`, maxBytes, {});

const rowsOf = async (file: DataFile) => (await runRows(h.proxy.direct, { bucket: DEMO.bucket, dataKeys: [file.key] })).map((row) => String(row.EUI));

describe('DataWriter lanes', () => {
  it("writes each lane's lines to files of its own, in order, with each file's EUI bounds", async () => {
    const writer = writerAt(freshPrefix());
    const lanes = { a: ['10', '11', '12'], b: ['30', '31'], c: ['20', '21', '22', '23'] };
    // Interleaved, as pages of ranges read at once arrive.
    for (let i = 0; i < 4; i += 1) {
      for (const [lane, euis] of Object.entries(lanes)) {
        const eui = euis[i];
        if (eui !== undefined) await writer.write(JSON.stringify({ EUI: eui }), { lane, eui });
      }
    }
    await writer.end('b');
    const files = await writer.close();
    expect(files.map(({ devices, minEui, maxEui }) => ({ devices, minEui, maxEui }))).toEqual([
      { devices: 3, minEui: '10', maxEui: '12' },
      { devices: 2, minEui: '30', maxEui: '31' },
      { devices: 4, minEui: '20', maxEui: '23' },
    ]);
    expect(await Promise.all(files.map(rowsOf))).toEqual([lanes.a, lanes.b, lanes.c]);
    const ordered = inEuiOrder(files);
    expect(ordered?.map(({ minEui }) => minEui)).toEqual(['10', '20', '30']);
  });

  it('completes the lane holding the most once the open files hold more than their budget, each lane still in order', async () => {
    const writer = writerAt(freshPrefix());
    // Six lanes of about 4 MiB each once compressed (random bytes), none of them a whole
    // 5 MiB part that S3 would take: 24 MiB held together, past the 12 MiB the open files may hold.
    const lanes = ['a', 'b', 'c', 'd', 'e', 'f'];
    const written = new Map<string, string[]>(lanes.map((lane) => [lane, []]));
    for (let i = 0; i < 1024; i += 1) {
      for (const lane of lanes) {
        const eui = `${lane}${String(i).padStart(5, '0')}`;
        written.get(lane)?.push(eui);
        await writer.write(JSON.stringify({ EUI: eui, noise: randomBytes(4096).toString('base64') }), { lane, eui });
      }
    }
    const files = await writer.close();
    expect(files.length).toBeGreaterThan(lanes.length);
    // Every file is one stretch of one lane: listed by their bounds, the lanes' lines in order.
    const ordered = inEuiOrder(files) as DataFile[];
    expect(ordered).toHaveLength(files.length);
    const read = (await Promise.all(ordered.map(rowsOf))).flat();
    expect(read).toEqual(lanes.flatMap((lane) => written.get(lane)));
  });

  it('completes no file for a page not yet compressed: completing one would not free it sooner', async () => {
    const writer = writerAt(freshPrefix());
    // Three lanes hold 11.15 MiB compressed (random bytes: 3 KiB a line, 4.54 MiB for 1,536
    // lines), with four deflate states 11.5 MiB, under the 12 MiB the open files may hold;
    // none of them a whole 5 MiB part that S3 would take.
    const lines = { a: 1536, b: 1536, c: 700 };
    for (const [lane, count] of Object.entries(lines)) {
      for (let i = 0; i < count; i += 1) {
        const eui = `${lane}${String(i).padStart(5, '0')}`;
        await writer.write(JSON.stringify({ EUI: eui, noise: randomBytes(3072).toString('base64') }), { lane, eui });
      }
    }
    // Once gzip has compressed them, two pages' worth of lines that compress to almost
    // nothing (2 MiB, 25 KB once compressed) go to a fourth lane: gzip's queue fills to
    // 1 MiB before a write waits.
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 2500; i += 1) {
      const eui = `d${String(i).padStart(5, '0')}`;
      await writer.write(JSON.stringify({ EUI: eui, text: 'same'.repeat(200) }), { lane: 'd', eui });
    }
    // Lanes a and b go on: had either been completed for the queue's sake, it would now be two files.
    for (const eui of ['a99999', 'b99999']) await writer.write(JSON.stringify({ EUI: eui }), { lane: eui.slice(0, 1), eui });
    const files = await writer.close();
    expect(files.map(({ minEui, maxEui }) => `${minEui}..${maxEui}`).sort()).toEqual(['a00000..a99999', 'b00000..b99999', 'c00000..c00699', 'd00000..d02499']);
  });

  it("lets gzip's queues hold many batches, and no more than QUEUED_BYTES, before a write waits", async () => {
    const writer = writerAt(freshPrefix());
    // gzip moves on only between turns of the event loop, and writes that need not wait take
    // none: what is written before the first turn is what the queues held before one waited.
    let turned = false;
    setImmediate(() => (turned = true));
    const line = JSON.stringify({ EUI: 'a', noise: randomBytes(3072).toString('base64') });
    let before = 0;
    for (let i = 0; i < (3 * QUEUED_BYTES) / line.length && !turned; i += 1) {
      await writer.write(line, { lane: 'a', eui: 'a' });
      before += line.length + 1;
    }
    expect(turned).toBe(true);
    expect(before).toBeGreaterThan(QUEUED_BYTES - 64 * 1024);
    expect(before).toBeLessThanOrEqual(QUEUED_BYTES + 64 * 1024 + line.length);
    await writer.close();
  });

  it("fails the run's next write when a lane's file cannot be completed, and a discard then leaves nothing", async () => {
    const prefix = freshPrefix();
    await reset(h);
    h.proxy.rule = ({ key, method }) => (method === 'PUT' && key === `${prefix}part-0.ndjson.gz` ? { status: 500, code: 'InternalError' } : undefined);
    const writer = writerAt(prefix);
    await writer.write(JSON.stringify({ EUI: '10' }), { lane: 'a', eui: '10' });
    await writer.write(JSON.stringify({ EUI: '20' }), { lane: 'b', eui: '20' });
    // Lane a's file is completed while lane b goes on; S3 refuses it.
    await expect(writer.end('a')).resolves.toBeUndefined();
    await expect(writer.write(JSON.stringify({ EUI: '21' }), { lane: 'b', eui: '21' })).rejects.toMatchObject({ name: 'InternalError' });
    await expect(writer.close()).rejects.toMatchObject({ name: 'InternalError' });
    await writer.discard();
    expect(writer.leftNothing).toBe(true);
    expect(await objects(h, prefix)).toEqual({});
  });

  it('discards every lane, open or being completed, and deletes each file it started', async () => {
    const prefix = freshPrefix();
    await reset(h);
    const writer = writerAt(prefix);
    for (const lane of ['a', 'b', 'c']) await writer.write(JSON.stringify({ EUI: lane }), { lane, eui: lane });
    await writer.end('a');
    // b is being completed while c is open when the run fails.
    const completing = writer.end('b');
    await writer.discard();
    await completing;
    expect(writer.leftNothing).toBe(true);
    expect(await objects(h, prefix)).toEqual({});
    await expect(writer.write('{}', { lane: 'c' })).rejects.toThrow('The snapshot writer was discarded');
  });

  it('claims no order for files that overlap or lack bounds', () => {
    const file = (key: string, minEui?: string, maxEui?: string): DataFile => ({
      key,
      devices: 1,
      bytes: 1,
      uncompressedBytes: 1,
      ...(minEui ? { minEui, maxEui } : {}),
    });
    expect(inEuiOrder([file('x', '20', '29'), file('y', '10', '20')])).toBeUndefined();
    expect(inEuiOrder([file('x', '20', '29'), file('y')])).toBeUndefined();
    expect(inEuiOrder([file('x', '20', '29'), file('y', '10', '19')])?.map(({ key }) => key)).toEqual(['y', 'x']);
  });
});
