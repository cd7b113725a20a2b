import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatedBrief } from '../../tools/stand-ins/fleet.ts';
import { simulatedEui, type Identifiers } from '../../tools/stand-ins/identifiers.ts';
import { DEVICES_PATH, SPEC_7_3, startPlatform, type Platform, type SimulatorOptions } from '../../tools/stand-ins/simulator.ts';

/**
 * The ThingPark simulator's device list, driven with plain fetch the way a client reads it:
 * the 7.3 spec's offset and cursor paging, `sort`, the `devEUI` filter and `count`, every
 * older or uncertain variant it can play, realistic identifiers, and a fleet that changes
 * under a sweep.
 */

interface Page {
  briefs: Record<string, unknown>[];
  more: boolean;
  count?: number;
  now: string | number;
  cursors?: { last: string };
}

let platform: Platform;
let token = '';

beforeAll(async () => {
  platform = await startPlatform(SPEC_7_3);
  const grant = await fetch(`${platform.url}/users-auth/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'demo-exporter', client_secret: 'demo-secret-change-me' }),
  });
  token = ((await grant.json()) as { access_token: string }).access_token;
});
afterAll(async () => {
  await platform.close();
});

const spec = (options: Partial<SimulatorOptions> = {}) => platform.reset({ ...SPEC_7_3, ...options });

/** A device-list request with these parameters (arrays repeat the parameter), as URLSearchParams encodes them. */
async function get(
  params: Record<string, string | number | string[]>,
  raw = '',
): Promise<{ status: number; body: Page & { code?: number; message?: string } }> {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) for (const each of Array.isArray(value) ? value : [value]) query.append(name, String(each));
  const answer = await fetch(`${platform.url}${DEVICES_PATH}?${query.toString()}${raw}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: answer.status, body: (await answer.json()) as Page & { code?: number; message?: string } };
}

async function page(params: Record<string, string | number | string[]>): Promise<Page> {
  const { status, body } = await get(params);
  expect(status, JSON.stringify(body)).toBe(200);
  return body;
}

/** A whole cursor sweep: every page's briefs in order, and the cursors it was given. */
async function sweep(params: Record<string, string | number | string[]>): Promise<{ euis: string[]; pages: Page[] }> {
  const pages: Page[] = [];
  let after: string | undefined;
  for (;;) {
    const answer = await page({ ...params, ...(after === undefined ? {} : { pageAfter: after }) });
    pages.push(answer);
    if (!answer.more) break;
    after = answer.cursors?.last;
    expect(after).toBeTypeOf('string');
  }
  return { euis: pages.flatMap((each) => each.briefs.map((brief) => brief.EUI as string)), pages };
}

const euisOf = (size: number, identifiers: Identifiers = 'skewed') => Array.from({ length: size }, (_, i) => simulatedEui(i, identifiers));
const names = (answer: Page) => answer.briefs.map((brief) => brief.name);
const sensors = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `sensor-${from + i}`);
const decode = (cursor: string) => JSON.parse(Buffer.from(cursor, 'base64').toString('utf8')) as unknown;

describe('offset paging, as the spec has it', () => {
  it('counts pages from 1 (a missing pageIndex is the first page) and refuses page 0', async () => {
    spec({ fleet: 250 });
    const first = await page({ pageIndex: 1, pageSize: 100 });
    expect(names(first)).toEqual(sensors(0, 100));
    expect(first).toMatchObject({ more: true, count: 250 });
    expect(first.cursors).toBeUndefined();
    expect(new Date(first.now as string).toISOString()).toBe(first.now);
    expect(first.briefs[0]).not.toHaveProperty('ref');
    expect(await page({ pageSize: 100 })).toMatchObject({ briefs: first.briefs });
    const last = await page({ pageIndex: 3, pageSize: 100 });
    expect(names(last)).toEqual(sensors(200, 250));
    expect(last.more).toBe(false);
    const zero = await get({ pageIndex: 0, pageSize: 100 });
    expect(zero.status).toBe(400);
    expect(zero.body).toEqual({ code: 400, message: expect.stringContaining('pageIndex') as string });
    expect(platform.stats).toMatchObject({ offsetRequests: 3, cursorRequests: 0, refusedRequests: 1 });
    expect([...platform.stats.byPage.entries()]).toEqual([
      [1, 2],
      [3, 1],
    ]);
  });

  it('plays the older 0-based deployments, and 1-based ones that read page 0 as page 1', async () => {
    spec({ fleet: 250, pageIndexBase: 0 });
    expect(names(await page({ pageIndex: 0, pageSize: 100 }))).toEqual(sensors(0, 100));
    expect(names(await page({ pageIndex: 2, pageSize: 100 }))).toEqual(sensors(200, 250));
    expect((await get({ pageIndex: -1 })).status).toBe(400);
    spec({ fleet: 250, pageZero: 'first' });
    expect(names(await page({ pageIndex: 0, pageSize: 100 }))).toEqual(sensors(0, 100));
    expect(names(await page({ pageIndex: 1, pageSize: 100 }))).toEqual(sensors(0, 100));
  });

  it('clamps the page size to the system-wide range', async () => {
    spec({ fleet: 250, minPageSize: 10, maxPageSize: 40 });
    expect((await page({ pageSize: 1 })).briefs).toHaveLength(10);
    expect((await page({ pageSize: 1000 })).briefs).toHaveLength(40);
    expect((await page({ pageSize: 1000, pageIndex: 7 })).briefs).toHaveLength(10);
    expect((await get({ pageSize: 'many' })).status).toBe(400);
  });

  it('cannot reach past a cap: refused with 400, or the list ends there silently; count still tells the truth', async () => {
    spec({ fleet: 250, offsetCap: { devices: 150, end: 'refuse' } });
    expect(names(await page({ pageIndex: 2, pageSize: 100 }))).toEqual(sensors(100, 200));
    const refused = await get({ pageIndex: 4, pageSize: 50 });
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe(400);
    spec({ fleet: 250, offsetCap: { devices: 150, end: 'silent' } });
    const cut = await page({ pageIndex: 2, pageSize: 100 });
    expect(names(cut)).toEqual(sensors(100, 150));
    expect(cut).toMatchObject({ more: false, count: 250 });
    expect(await page({ pageIndex: 4, pageSize: 50 })).toMatchObject({ briefs: [], more: false, count: 250 });
    // Cursor paging is not offset paging: it reaches every device.
    expect((await sweep({ sort: 'EUI,asc', pageSize: 100 })).euis).toHaveLength(250);
  });

  it('works in any order and within a filter', async () => {
    spec({ fleet: 1000 });
    const ascending = euisOf(1000)
      .filter((eui) => eui.startsWith('70B3D5'))
      .sort();
    const second = await page({ pageIndex: 2, pageSize: 100, sort: 'EUI,asc', devEUI: '70b3d5' });
    expect(second.briefs.map((brief) => brief.EUI)).toEqual(ascending.slice(100, 200));
    expect(second.count).toBe(950);
    // EUI-sorted pages carry a cursor even in offset paging.
    expect(decode(second.cursors?.last ?? '')).toEqual({ EUI: ascending[199] });
    const filtered = await page({ pageIndex: 10, pageSize: 100, devEUI: '70B3D5' });
    expect(filtered).toMatchObject({ count: 950, more: false });
    expect(names(filtered)).toEqual(Array.from({ length: 50 }, (_, i) => `sensor-${Math.floor((900 + i) / 95) * 100 + ((900 + i) % 95)}`));
    expect(names(await page({ sort: 'name,desc', pageSize: 5 }))).toEqual(sensors(0, 5));
  });
});

describe('cursor paging, as the spec has it', () => {
  it('sweeps a filter in EUI order, ascending and descending, every device once', async () => {
    spec({ fleet: 3000 });
    const prefixes = [...'0123456789ABCDEF'].filter((digit) => digit !== '7');
    const up = await sweep({ sort: 'EUI,asc', pageSize: 7, devEUI: [...prefixes, '70', '71', '72'] });
    const others = euisOf(3000)
      .filter((eui) => !eui.startsWith('7') || /^7[0-2]/.test(eui))
      .sort();
    expect(up.euis).toEqual(others);
    expect(others.length).toBeGreaterThan(100);
    const down = await sweep({ sort: 'EUI,desc', pageSize: 7, devEUI: [...prefixes, '70', '71', '72'] });
    expect(down.euis).toEqual([...others].reverse());
    for (const { pages } of [up, down]) {
      expect(pages.map(({ count }) => count)).toEqual(pages.map(() => others.length));
      expect(pages.at(-1)?.cursors).toBeUndefined();
      for (const each of pages.slice(0, -1)) expect(decode(each.cursors?.last ?? '')).toEqual({ EUI: each.briefs.at(-1)?.EUI });
    }
    expect(platform.stats.cursorRequests).toBe(up.pages.length + down.pages.length);
    expect(platform.stats.recent.slice(0, 2)).toEqual([
      { mode: 'cursor', pageSize: 7, sort: 'EUI,asc', devEUI: [...prefixes, '70', '71', '72'], status: 200 },
      { mode: 'cursor', pageSize: 7, sort: 'EUI,asc', devEUI: [...prefixes, '70', '71', '72'], pageAfter: up.pages[0]?.cursors?.last, status: 200 },
    ]);
  });

  it('sends cursors that end in =, which come back URL-encoded', async () => {
    spec({ fleet: 400 });
    const { pages } = await sweep({ sort: 'EUI,asc', pageSize: 1 });
    const cursors = pages.flatMap((each) => (each.cursors ? [each.cursors.last] : []));
    expect(cursors).toHaveLength(399);
    expect(cursors.filter((cursor) => !cursor.endsWith('='))).toEqual([]);
    for (const place of [0, 150, 398]) {
      const cursor = cursors[place] ?? '';
      expect(encodeURIComponent(cursor)).toContain('%3D');
      const next = await get({ sort: 'EUI,asc', pageSize: 1 }, `&pageAfter=${encodeURIComponent(cursor)}`);
      expect(next.body.briefs).toEqual(pages[place + 1]?.briefs);
    }
    // With its padding lost on the way, it is not a cursor any more.
    expect((await get({ sort: 'EUI,asc', pageSize: 1, pageAfter: (cursors[0] ?? '').replace(/=+$/, '') })).status).toBe(400);
  });

  it('refuses what it cannot read: a cursor not its own, a cursor without an EUI sort or with a page index, an unknown sort', async () => {
    spec({ fleet: 50 });
    const cursor = (await page({ sort: 'EUI,asc', pageSize: 10 })).cursors?.last ?? '';
    const refused: Record<string, string | number>[] = [
      { sort: 'EUI,asc', pageAfter: 'not-a-cursor' },
      { sort: 'EUI,asc', pageAfter: cursor.slice(0, -2) },
      { sort: 'EUI,asc', pageAfter: Buffer.from('{"ref":"1"}').toString('base64') },
      { pageAfter: cursor },
      { sort: 'name,asc', pageAfter: cursor },
      { sort: 'EUI,asc', pageAfter: cursor, pageIndex: 2 },
      { sort: 'EUI' },
      { sort: 'EUI,up' },
      { sort: 'serial,asc' },
    ];
    for (const params of refused) {
      const answer = await get(params);
      expect(answer.status, JSON.stringify(params)).toBe(400);
      expect(answer.body).toEqual({ code: 400, message: expect.any(String) as string });
    }
    expect((await get({ sort: 'EUI,asc', pageAfter: cursor, colour: 'blue' })).status).toBe(200);
  });

  it('counts a filter, and the union of several prefixes once each', async () => {
    spec({ fleet: 2000 });
    const euis = euisOf(2000);
    const matching = (...prefixes: string[]) => euis.filter((eui) => prefixes.some((prefix) => eui.startsWith(prefix))).length;
    for (const devEUI of [['70B3D5'], ['3'], ['70b3d5', '3'], ['7', '70B3', '70B3D50000000001'], ['A', 'B', 'C'], ['FFFF']]) {
      expect((await page({ sort: 'EUI,asc', pageSize: 1, devEUI })).count, devEUI.join()).toBe(matching(...devEUI.map((prefix) => prefix.toUpperCase())));
    }
    const union = await sweep({ sort: 'EUI,desc', pageSize: 50, devEUI: ['3', '70B3D50000000'] });
    expect(union.euis).toEqual(
      euis
        .filter((eui) => eui.startsWith('3') || eui.startsWith('70B3D50000000'))
        .sort()
        .reverse(),
    );
  });

  it('lets fault rules pick a cursor page: its mode, cursor and place in the sweep', async () => {
    const seen: unknown[] = [];
    spec({
      fleet: 100,
      fault: ({ mode, pageIndex, pageAfter, devEUI, attempt }) => {
        seen.push({ mode, pageIndex, after: pageAfter === undefined ? undefined : decode(pageAfter), devEUI, attempt });
        return mode === 'cursor' && pageIndex === 3 && attempt === 1 ? { status: 503, body: '{"code":503}' } : undefined;
      },
    });
    const first = await page({ sort: 'EUI,asc', pageSize: 30, devEUI: '7' });
    const second = await page({ sort: 'EUI,asc', pageSize: 30, devEUI: '7', pageAfter: first.cursors?.last ?? '' });
    const failed = await get({ sort: 'EUI,asc', pageSize: 30, devEUI: '7', pageAfter: second.cursors?.last ?? '' });
    expect(failed.status).toBe(503);
    expect((await get({ sort: 'EUI,asc', pageSize: 30, devEUI: '7', pageAfter: second.cursors?.last ?? '' })).status).toBe(200);
    expect(seen.map((each) => (each as { pageIndex: number; attempt: number }).pageIndex)).toEqual([1, 2, 3, 3]);
    expect(seen[2]).toEqual({ mode: 'cursor', pageIndex: 3, after: { EUI: second.briefs.at(-1)?.EUI }, devEUI: ['7'], attempt: 1 });
    expect(platform.stats.recent.map((each) => each.status)).toEqual([200, 200, 503, 200]);
  });
});

describe('the variants of older or uncertain deployments', () => {
  it('without cursor mode: EUI sort still sorts, but no cursors, and pageAfter is ignored', async () => {
    spec({ fleet: 300, cursorMode: false });
    const first = await page({ sort: 'EUI,asc', pageSize: 100 });
    expect(first.briefs.map((brief) => brief.EUI)).toEqual(euisOf(300).sort().slice(0, 100));
    expect(first.cursors).toBeUndefined();
    const again = await page({ sort: 'EUI,asc', pageSize: 100, pageAfter: Buffer.from(JSON.stringify({ EUI: first.briefs.at(-1)?.EUI })).toString('base64') });
    expect(again.briefs).toEqual(first.briefs);
    expect(platform.stats).toMatchObject({ offsetRequests: 2, cursorRequests: 0 });
  });

  it('without the devEUI filter: every device matches, and count is the whole fleet', async () => {
    spec({ fleet: 300, devEUIFilter: false });
    expect(await page({ sort: 'EUI,asc', pageSize: 1, devEUI: '3' })).toMatchObject({ count: 300, briefs: [{ EUI: euisOf(300).sort()[0] }] });
  });

  it('without count, with now in epoch ms, with briefs that carry a ref', async () => {
    spec({ fleet: 30, includeCount: false, nowFormat: 'epoch', briefRef: true, identifiers: 'one-oui' });
    const answer = await page({ pageSize: 10 });
    expect(answer).not.toHaveProperty('count');
    expect(answer.now).toBeTypeOf('number');
    expect(answer.briefs[3]).toEqual(simulatedBrief(3));
    expect(answer.briefs[3]).toMatchObject({ ref: '2000003', href: `${DEVICES_PATH}/2000003` });
  });

  it('answers one device by e + EUI always, and by ref only where briefs carry one', async () => {
    const one = async (id: string) => (await fetch(`${platform.url}${DEVICES_PATH}/${id}`, { headers: { authorization: `Bearer ${token}` } })).status;
    spec({ fleet: 300 });
    const imei = simulatedEui(99, 'skewed');
    expect(imei).toMatch(/^\d{15}$/);
    expect([await one(`e${imei}`), await one(`e${simulatedEui(7, 'skewed').toLowerCase()}`), await one('2000007'), await one('eFFFF')]).toEqual([
      200, 200, 404, 404,
    ]);
    expect(simulatedBrief(7, { identifiers: 'skewed', ref: false })).toMatchObject({ href: `${DEVICES_PATH}/e${simulatedEui(7, 'skewed')}` });
    spec({ fleet: 300, briefRef: true });
    expect([await one('2000007'), await one(`e${simulatedEui(7, 'skewed')}`), await one('2000300')]).toEqual([200, 200, 404]);
  });
});

describe('identifiers', () => {
  const stats = (identifiers: Identifiers, size: number) => {
    const euis = euisOf(size, identifiers);
    return {
      distinct: new Set(euis).size,
      vendor: euis.filter((eui) => eui.startsWith('70B3D5')).length,
      hex: euis.filter((eui) => /^[0-9A-F]{16}$/.test(eui)).length,
      imei: euis.filter((eui) => /^\d{15}$/.test(eui) && luhn(eui)).length,
      firstDigits: new Set(euis.map((eui) => eui[0])).size,
    };
  };

  it('skewed: one OUI holds 95 %, 4 % spread over the space, 1 % cellular IMEIs; no two alike', () => {
    expect(stats('skewed', 100_000)).toEqual({ distinct: 100_000, vendor: 95_000, hex: 99_000, imei: 1000, firstDigits: 16 });
  });

  it('uniform: 16 hex digits spread evenly; one-oui: the vendor block and the index', () => {
    const uniform = euisOf(64_000, 'uniform');
    expect(stats('uniform', 64_000)).toMatchObject({ distinct: 64_000, hex: 64_000, firstDigits: 16 });
    for (const digit of '0123456789ABCDEF') expect(uniform.filter((eui) => eui.startsWith(digit)).length).toBeGreaterThan(3600);
    expect(euisOf(3, 'one-oui')).toEqual(['70B3D50000000000', '70B3D50000000001', '70B3D50000000002']);
    expect(simulatedEui(123_456, 'skewed')).toBe(simulatedEui(123_456, 'skewed'));
  });

  it('serves a mixed fleet in string order of the EUI: IMEIs among the hex EUIs', async () => {
    spec({ fleet: 1000 });
    const { euis } = await sweep({ sort: 'EUI,asc', pageSize: 333 });
    expect(euis).toEqual(euisOf(1000).sort());
    expect(euis.filter((eui) => eui.length === 15)).toHaveLength(10);
  });
});

describe('a fleet that changes under a sweep', () => {
  it('cursor paging skips nothing when devices already read are deleted; offset paging in the same order skips as many', async () => {
    const all = euisOf(1000).sort();
    spec({ fleet: 1000, changes: [{ afterRequest: 3, remove: 5, at: 'served' }] });
    const cursor = await sweep({ sort: 'EUI,asc', pageSize: 100 });
    const removed = platform.stats.removed.map((brief) => brief.EUI as string);
    expect(removed).toEqual(all.slice(295, 300));
    expect(cursor.euis).toEqual(all);

    spec({ fleet: 1000, changes: [{ afterPage: 3, remove: 5, at: 'served' }] });
    const offset: string[] = [];
    for (let index = 1; index <= 10; index += 1)
      offset.push(...(await page({ sort: 'EUI,asc', pageSize: 100, pageIndex: index })).briefs.map((brief) => brief.EUI as string));
    expect(all.filter((eui) => !offset.includes(eui))).toEqual(all.slice(300, 305));
  });

  it('cursor paging in either direction: devices added behind the cursor are not seen, devices added ahead are', async () => {
    spec({
      fleet: 1000,
      changes: [
        { afterRequest: 2, add: 4, at: 'served' },
        { afterRequest: 4, add: 3, at: 'unserved' },
      ],
    });
    const down = await sweep({ sort: 'EUI,desc', pageSize: 100 });
    const [behind = [], ahead = []] = [platform.stats.added.slice(0, 4), platform.stats.added.slice(4)].map((briefs) =>
      briefs.map((brief) => brief.EUI as string),
    );
    expect(behind.filter((eui) => !(eui > (down.pages[1]?.briefs.at(-1)?.EUI as string)))).toEqual([]);
    expect(down.euis.filter((eui) => behind.includes(eui))).toEqual([]);
    expect(down.euis.slice(-3)).toEqual([...ahead].sort().reverse());
    expect(down.euis.slice(0, -3)).toEqual(euisOf(1000).sort().reverse());
    expect(down.pages.at(-1)?.count).toBe(1000 + 7);
  });

  it('applies a change after a page only once that page has reached a client still waiting for it', async () => {
    spec({ fleet: 500, latencyMs: 200, changes: [{ afterPage: 2, remove: 10, at: 'served' }] });
    await page({ pageSize: 100, pageIndex: 1 });
    // The client gives up on page 2 while the platform is still preparing it: page 2 was
    // never read, so the devices on it are not "already read".
    const query = new URLSearchParams({ pageSize: '100', pageIndex: '2' });
    const asked = fetch(`${platform.url}${DEVICES_PATH}?${query.toString()}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(50),
    });
    await expect(asked).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(platform.stats.removed).toEqual([]);

    const again = names(await page({ pageSize: 100, pageIndex: 2 }));
    expect(again).toEqual(sensors(100, 200));
    expect(platform.stats.removed.map((brief) => brief.name)).toEqual(sensors(190, 200));
  });

  it('deletes as many as asked when pages answered out of order reached past where the list now ends', async () => {
    spec({
      fleet: 500,
      changes: [
        { afterPage: 5, remove: 50, at: 'served' },
        { afterPage: 4, remove: 50, at: 'served' },
      ],
    });
    expect(names(await page({ pageSize: 100, pageIndex: 5 }))).toEqual(sensors(400, 500));
    // 450 devices left, while the pages have reached 500: the furthest place is the list's end.
    await page({ pageSize: 100, pageIndex: 4 });
    expect(platform.stats.removed.map((brief) => brief.name)).toEqual([...sensors(450, 500), ...sensors(400, 450)]);
  });

  it('keeps the creation order too: offset paging by default, as before', async () => {
    spec({ fleet: 500, changes: [{ afterPage: 2, remove: 10, at: 'served' }] });
    const read: unknown[] = [];
    for (let index = 1; index <= 5; index += 1) read.push(...names(await page({ pageSize: 100, pageIndex: index })));
    expect(platform.stats.removed.map((brief) => brief.name)).toEqual(sensors(190, 200));
    expect(sensors(0, 500).filter((name) => !read.includes(name) && !sensors(190, 200).includes(name))).toEqual(sensors(200, 210));
  });
});

describe('a million devices', () => {
  it('answers a page deep into a filtered sweep, and its count, without reading the fleet', async () => {
    spec({ fleet: 1_000_000 });
    const prefixes = ['70B3D5000000', '0', '35'];
    const first = await page({ sort: 'EUI,desc', pageSize: 1000, devEUI: prefixes });
    const euis = euisOf(1_000_000).filter((eui) => prefixes.some((prefix) => eui.startsWith(prefix)));
    euis.sort().reverse();
    expect(first.count).toBe(euis.length);
    const cursor = Buffer.from(JSON.stringify({ EUI: euis[euis.length - 500] })).toString('base64');
    const deep = await page({ sort: 'EUI,desc', pageSize: 1000, devEUI: prefixes, pageAfter: cursor });
    expect(deep.briefs.map((brief) => brief.EUI)).toEqual(euis.slice(-499));
    expect(deep.more).toBe(false);
  });
});

function luhn(digits: string): boolean {
  let sum = 0;
  for (let position = 0; position < digits.length; position += 1) {
    const digit = Number(digits[digits.length - 1 - position]) * (position % 2 === 1 ? 2 : 1);
    sum += digit > 9 ? digit - 9 : digit;
  }
  return sum % 10 === 0;
}
