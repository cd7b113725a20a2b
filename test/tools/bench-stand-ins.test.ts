import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICES_PATH } from '../../tools/stand-ins/simulator.ts';
import { DEMO } from '../../tools/stand-ins/standins.ts';
import { drawChart } from '../../tools/bench/chart.ts';
import { startBenchStandIns, type BenchStandIns } from '../../tools/bench/stand-ins.ts';
import { OFFSET_PLATFORM } from '../support/paging.ts';

let standIns: BenchStandIns;
const PRERENDERED = { simulator: { ...OFFSET_PLATFORM, fleet: 250 }, prerender: 100 };

beforeAll(async () => {
  standIns = await startBenchStandIns(PRERENDERED);
});
afterAll(async () => {
  await standIns.stop();
});

async function page(index: number, pageSize: number): Promise<{ briefs: { ref: string }[]; more: boolean; now: number }> {
  const base = standIns.env.THINGPARK_BASE_URL as string;
  const grant = await fetch(`${base}/users-auth/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: DEMO.clientId, client_secret: DEMO.clientSecret }),
  });
  const { access_token: token } = (await grant.json()) as { access_token: string };
  const answer = await fetch(`${base}${DEVICES_PATH}?pageIndex=${index}&pageSize=${pageSize}`, { headers: { authorization: `Bearer ${token}` } });
  expect(answer.status).toBe(200);
  return (await answer.json()) as { briefs: { ref: string }[]; more: boolean; now: number };
}

describe("the benchmark's stand-ins", () => {
  it('serve the same pages rendered once as rendered per request, and count what they served', async () => {
    // As started: another test may have reset them to options of its own.
    await standIns.reset(PRERENDERED);
    // Pages of 100 were rendered up front (and carry the time of rendering); pages of 50 are not.
    const first = await page(1, 100);
    const again = await page(1, 100);
    expect(again).toEqual(first);
    expect(first.briefs.map((brief) => brief.ref)).toEqual(Array.from({ length: 100 }, (_, i) => String(2_000_100 + i)));
    expect(first.more).toBe(true);
    const last = await page(2, 100);
    expect(last.briefs).toHaveLength(50);
    expect(last.more).toBe(false);
    // The same briefs as pages rendered for the request, field for field.
    const fresh = [...(await page(2, 50)).briefs, ...(await page(3, 50)).briefs];
    expect(first.briefs).toEqual(fresh);
    const counts = await standIns.counts();
    expect(counts).toMatchObject({ requests: 5, rejected: 0, grants: 5 });
    expect(counts.cpuMs).toBeGreaterThan(0);
    await standIns.clear();
    expect(await standIns.counts()).toMatchObject({ requests: 0, grants: 0, maxInFlight: 0 });
  });

  it('take new simulator options on reset', async () => {
    await standIns.reset({ simulator: { ...OFFSET_PLATFORM, fleet: 10, rateLimit: { perSecond: 1, burst: 0, status: 429 } }, prerender: 5 });
    const base = standIns.env.THINGPARK_BASE_URL as string;
    expect((await page(0, 5)).briefs).toHaveLength(5);
    const refused = await fetch(`${base}${DEVICES_PATH}?pageIndex=1&pageSize=5`, { headers: { authorization: 'Bearer x' } });
    expect(refused.status).toBe(401);
    expect(await standIns.counts()).toMatchObject({ requests: 2 });
  });
});

describe("the benchmark's chart", () => {
  it('draws every case and approach as SVG', async () => {
    const svg = await drawChart([
      { case: '100k @ 100 ms', approach: 'exporter', devicesPerSecond: 56_000, peakRssMb: 210, maxInFlight: 21 },
      { case: '100k @ 100 ms', approach: 'baseline', devicesPerSecond: 8_400, peakRssMb: 498, maxInFlight: 1 },
      { case: 'rate 50/s, 429', approach: 'floor', devicesPerSecond: 5_000 },
    ]);
    expect(svg.slice(0, 4)).toBe('<svg');
    for (const text of ['100k @ 100 ms', 'rate 50/s, 429', 'exporter', 'baseline', 'floor', 'Devices exported per second']) expect(svg).toContain(text);
  });
});
