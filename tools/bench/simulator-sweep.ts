/**
 * `npx tsx tools/bench/simulator-sweep.ts [--devices=1000000] [--page-size=1000] [--identifiers=skewed] [--concurrency=8] [--no-prerender]`
 *
 * What the ThingPark simulator costs a client that reads a large fleet the 7.3 spec's way:
 * a full cursor sweep (`sort=EUI,asc` + `pageAfter`) with plain fetch, one request at a time,
 * then several sweeps at once over disjoint `devEUI` prefixes; and how long the fleet's EUI
 * order takes to build. The simulator runs in the benchmark's stand-ins process, with every
 * brief prerendered unless told not to, so the CPU it reports is its own. Prints the
 * figures; writes nothing.
 */
import { LiveFleet } from '../stand-ins/fleet.ts';
import type { Identifiers } from '../stand-ins/identifiers.ts';
import { DEVICES_PATH, SPEC_7_3 } from '../stand-ins/simulator.ts';
import { DEMO } from '../stand-ins/standins.ts';
import { startBenchStandIns } from './stand-ins.ts';

const arg = (name: string, fallback: string) => process.argv.find((value) => value.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const devices = Number(arg('devices', '1000000'));
const pageSize = Number(arg('page-size', '1000'));
const identifiers = arg('identifiers', 'skewed') as Identifiers;
const concurrency = Number(arg('concurrency', '8'));
const prerender = !process.argv.includes('--no-prerender');

interface Page {
  briefs: { EUI: string }[];
  more: boolean;
  count: number;
  cursors?: { last: string };
}

const built = performance.now();
new LiveFleet(devices, { identifiers, ref: false }).euiIndex();
console.log(`EUI order of ${devices} devices (${identifiers}): built in ${Math.round(performance.now() - built)} ms`);

const started = performance.now();
const standIns = await startBenchStandIns({ simulator: { ...SPEC_7_3, fleet: devices, identifiers }, ...(prerender ? { prerender: pageSize } : {}) });
console.log(`simulator started${prerender ? ', every brief rendered and the EUI order built,' : ''} in ${Math.round(performance.now() - started)} ms`);
const base = standIns.env.THINGPARK_BASE_URL ?? '';
try {
  const grant = await fetch(`${base}/users-auth/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: DEMO.clientId, client_secret: DEMO.clientSecret }),
  });
  const { access_token: token } = (await grant.json()) as { access_token: string };

  const page = async (prefixes: readonly string[], size: number, after?: string): Promise<Page> => {
    const query = new URLSearchParams({ sort: 'EUI,asc', pageSize: String(size) });
    for (const prefix of prefixes) query.append('devEUI', prefix);
    if (after !== undefined) query.set('pageAfter', after);
    const answer = await fetch(`${base}${DEVICES_PATH}?${query.toString()}`, { headers: { authorization: `Bearer ${token}` } });
    if (answer.status !== 200) throw new Error(`${answer.status} ${await answer.text()}`);
    return (await answer.json()) as Page;
  };

  /** One cursor sweep over a union of prefixes: its EUIs, in order, and its page count. */
  const sweep = async (prefixes: readonly string[]): Promise<{ euis: string[]; pages: number }> => {
    const euis: string[] = [];
    let pages = 0;
    let after: string | undefined;
    for (;;) {
      const answer = await page(prefixes, pageSize, after);
      pages += 1;
      for (const brief of answer.briefs) euis.push(brief.EUI);
      if (!answer.more) return { euis, pages };
      after = answer.cursors?.last;
    }
  };

  const check = (euis: readonly string[]) => {
    const sorted = [...euis].sort();
    if (sorted.length !== devices || new Set(sorted).size !== devices)
      throw new Error(`swept ${euis.length} devices, ${new Set(euis).size} distinct, of ${devices}`);
  };

  await standIns.clear();
  const alone = performance.now();
  const one = await sweep([]);
  const aloneMs = performance.now() - alone;
  check(one.euis);
  if (one.euis.some((eui, i) => i > 0 && eui <= (one.euis[i - 1] ?? ''))) throw new Error('the sweep is not in EUI order');
  const aloneCpu = (await standIns.counts()).cpuMs;
  console.log(
    `one sweep, sequential: ${one.pages} pages of ${pageSize} in ${Math.round(aloneMs)} ms: ${(aloneMs / one.pages).toFixed(2)} ms a page ` +
      `(simulator CPU ${(aloneCpu / one.pages).toFixed(2)} ms a page)`,
  );

  // Disjoint prefixes of about equal weight: split the heaviest until there are 4 per sweep, then deal them out.
  const weighed = async (prefix: string) => ({ prefix, count: (await page([prefix], 1)).count });
  let prefixes = await Promise.all([...'0123456789ABCDEF'].map(weighed));
  while (prefixes.length < concurrency * 4) {
    prefixes.sort((a, b) => b.count - a.count);
    const [heaviest, ...rest] = prefixes;
    if (heaviest === undefined) break;
    prefixes = [...rest, ...(await Promise.all([...'0123456789ABCDEF'].map((digit) => weighed(heaviest.prefix + digit))))].filter((entry) => entry.count > 0);
  }
  const shares = Array.from({ length: concurrency }, () => ({ prefixes: [] as string[], count: 0 }));
  for (const entry of prefixes.sort((a, b) => b.count - a.count)) {
    const lightest = shares.reduce((a, b) => (b.count < a.count ? b : a));
    lightest.prefixes.push(entry.prefix);
    lightest.count += entry.count;
  }

  await standIns.clear();
  const together = performance.now();
  const sweeps = await Promise.all(shares.map((share) => sweep(share.prefixes)));
  const togetherMs = performance.now() - together;
  check(sweeps.flatMap((each) => each.euis));
  const pages = sweeps.reduce((sum, each) => sum + each.pages, 0);
  const togetherCpu = (await standIns.counts()).cpuMs;
  console.log(
    `${concurrency} sweeps at once over ${prefixes.length} disjoint prefixes: ${pages} pages in ${Math.round(togetherMs)} ms: ` +
      `${(togetherMs / pages).toFixed(2)} ms a page overall, ${((togetherMs * concurrency) / pages).toFixed(2)} ms a request ` +
      `(simulator CPU ${(togetherCpu / pages).toFixed(2)} ms a page)`,
  );
} finally {
  await standIns.stop();
}
