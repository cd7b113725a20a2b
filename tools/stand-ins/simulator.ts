import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LiveFleet, type Brief, type Fleet } from './fleet.ts';
import { TOKEN_PATH, TokenServer, type TokenServerOptions } from './token-server.ts';

export const DEVICES_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices';

/** One device-list request as the simulator saw it, for fault rules to match on. */
export interface DeviceRequest {
  pageIndex: number;
  pageSize: number;
  /** 1 for the first request of this page index, 2 for its first retry, ... */
  attempt: number;
  /** The bearer token presented, for rules that echo it back (a proxy's debug page). */
  bearer: string;
}

/** One single-device request (`GET .../devices/{id}`) as the simulator saw it, for fault rules. */
export interface LookupRequest {
  /** The path's last segment: a ref, or `e` and an EUI. */
  id: string;
  /** 1 for the first request for this id, 2 for its first retry, ... */
  attempt: number;
  bearer: string;
}

/**
 * A change to the fleet while it is read, applied once, at the moment it names: devices
 * deleted (`remove`) or added (`add`), one or the other, at a place (`at`):
 * - `'served'`: just before the furthest position any page has reached so far, among
 *   devices already read (ahead of the paging's cursor, in list order). Deleting K there
 *   shifts the rest back, and the K devices that cross the page boundary are never served;
 *   adding K shifts them forward, and K devices are served twice. With one page in flight
 *   at a time (THINGPARK_CONCURRENCY=1) the count is exact.
 * - `'unserved'`: at the end of the list, which no page has reached (behind the cursor):
 *   a deleted device is never read, an added one is read like any other.
 * - a number: that position in the list as it is then.
 * Deleted and added briefs are recorded in `stats.removed` and `stats.added`.
 */
export interface FleetChange {
  /** Right after the device-list page with this index has been answered (the first time). */
  afterPage?: number;
  /** Or right before the n-th single-device request is answered (1 for the first). */
  beforeLookup?: number;
  /** Deletes this many devices ... */
  remove?: number;
  /** ... or adds this many new generated devices, or these briefs. */
  add?: number | Brief[];
  at: 'served' | 'unserved' | number;
}

/** What a fault rule makes the simulator do instead of (or before) answering normally. */
export interface Fault {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long first; with no status, then answer normally (a slow page). */
  delayMs?: number;
  /** Drop the connection without an answer. */
  destroy?: boolean;
}

export interface RateLimit {
  /** NGINX limit_req: requests per second drained from the bucket ... */
  perSecond: number;
  /** ... and how many may wait in it before requests are rejected. */
  burst: number;
  status: 429 | 503;
  /** Retry-After sent with a rejection: seconds, an HTTP date, or nothing. */
  retryAfter?: 'seconds' | 'date';
}

export interface SimulatorOptions {
  fleet: Fleet;
  /** The page index the platform counts from; undocumented, so both are played. */
  pageIndexBase: 0 | 1;
  /** Larger page sizes are clamped to this, as a server with a cap would. */
  maxPageSize: number;
  /** Some deployments add a `count` to each page. */
  includeCount: boolean;
  /** Added to every answer of the device API: pages and single devices. */
  latencyMs: number;
  /** Applies to pages and single devices alike, from one bucket. */
  rateLimit?: RateLimit;
  fault?: (request: DeviceRequest) => Fault | undefined;
  /** Changes to the fleet while a run reads it (see FleetChange); none by default. */
  changes: readonly FleetChange[];
  /**
   * How the single-device route answers an id no device has: 404 (default), or 400 with
   * "Device not found", what ThingPark answers for a device of another subscription. A
   * device it has is answered 200 with its brief.
   */
  missingDevice: 404 | 400;
  /** As `fault`, for single-device requests. */
  lookupFault?: (request: LookupRequest) => Fault | undefined;
  /**
   * The brief as served, pages and single devices alike: a fleet whose devices change
   * between runs (health, name, model) without holding a million briefs. None by default.
   */
  revise?: (brief: Brief) => Brief;
}

export interface SimulatorStats {
  /** Device API requests: pages and single devices. */
  requests: number;
  /** Requests per page index asked for. */
  byPage: Map<number, number>;
  /** Single-device requests, in all and per id asked for. */
  lookups: number;
  byDevice: Map<string, number>;
  /** Briefs the fleet changes deleted and added, in order. */
  removed: Brief[];
  added: Brief[];
  rejected: number;
  unauthorized: number;
  inFlight: number;
  maxInFlight: number;
  /** Every bearer token presented, to check none leaks. */
  tokens: Set<string>;
  /** Time of the first and last device API request, for achieved-rate figures. */
  firstAt: number;
  lastAt: number;
}

export interface Platform {
  url: string;
  options: SimulatorOptions;
  stats: SimulatorStats;
  tokens: TokenServer;
  /** Back to the defaults overlaid with `options`, counters cleared, token faults off. */
  reset(options?: Partial<SimulatorOptions>): Platform;
  /** The fleet as it is now, to delete devices from or add devices to between runs. */
  fleet(): LiveFleet;
  /**
   * Renders every page of `pageSize` now, once, and from then on answers those pages with
   * the same bytes instead of rendering each answer: the benchmark's platform then costs
   * next to nothing, and the same for every client (its `now` is the time of rendering).
   * Kept across resets to the same fleet; dropped when the fleet changes.
   */
  prerender(pageSize: number): void;
  close(): Promise<void>;
}

const DEFAULTS: SimulatorOptions = {
  fleet: 2500,
  pageIndexBase: 0,
  maxPageSize: 5000,
  includeCount: false,
  latencyMs: 0,
  changes: [],
  missingDevice: 404,
};

/**
 * The ThingPark platform on 127.0.0.1: the device list as docs/thingpark-api.md describes it
 * (`{ briefs, more, now }`, pageIndex/pageSize, Bearer tokens), the single-device route
 * (`.../devices/{ref}` or `.../devices/e{EUI}`) and the Keycloak token endpoint on its
 * documented path, on one host like the real thing. The fleet can change while it is read
 * (`changes`). Every undocumented behaviour is an option; options can be changed while it
 * runs.
 */
export async function startPlatform(options: Partial<SimulatorOptions> = {}, token: Partial<TokenServerOptions> = {}): Promise<Platform> {
  const settings: SimulatorOptions = { ...DEFAULTS, ...options };
  const stats: SimulatorStats = {
    requests: 0,
    byPage: new Map(),
    lookups: 0,
    byDevice: new Map(),
    removed: [],
    added: [],
    rejected: 0,
    unauthorized: 0,
    inFlight: 0,
    maxInFlight: 0,
    tokens: new Set(),
    firstAt: 0,
    lastAt: 0,
  };
  const bucket = { level: 0, at: 0 };
  // The fleet as it is now, made afresh when `fleet` is set to another one.
  let fleet = new LiveFleet(settings.fleet);
  const live = (): LiveFleet => (fleet.source === settings.fleet ? fleet : (fleet = new LiveFleet(settings.fleet)));
  let applied = new WeakSet<FleetChange>();
  // The furthest position any page has reached: where 'served' changes go.
  let servedEnd = 0;
  // Page bodies rendered by `prerender`, for this fleet as it was made, by position.
  let rendered: { fleet: Fleet; includeCount: boolean; size: number; bodies: { body: Buffer; briefs: number }[] } | undefined;

  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/users-auth/')) {
      tokens.handle(req, res);
      return;
    }
    serveDevices(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { code: 500, message: String(error) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tokens = new TokenServer(url, {
    clientId: 'demo-exporter',
    clientSecret: 'demo-secret-change-me',
    lifetimeSeconds: 300,
    ...token,
  });

  async function serveDevices(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', url);
    const single = requestUrl.pathname.startsWith(`${DEVICES_PATH}/`) ? decodeURIComponent(requestUrl.pathname.slice(DEVICES_PATH.length + 1)) : '';
    if (req.method !== 'GET' || (requestUrl.pathname !== DEVICES_PATH && single === '')) {
      json(res, 404, { code: 404, message: 'Not found' });
      return;
    }
    const now = Date.now();
    stats.requests += 1;
    stats.firstAt ||= now;
    stats.lastAt = now;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    res.on('close', () => {
      stats.inFlight -= 1;
    });

    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) stats.tokens.add(bearer);
    if (!bearer || !(await tokens.verify(bearer))) {
      stats.unauthorized += 1;
      json(res, 401, { code: 401, message: 'Invalid or expired token' });
      return;
    }
    if (settings.rateLimit && !admit(settings.rateLimit, now)) {
      stats.rejected += 1;
      const { retryAfter, status } = settings.rateLimit;
      const headers: Record<string, string> = {};
      if (retryAfter === 'seconds') headers['retry-after'] = '1';
      if (retryAfter === 'date') headers['retry-after'] = new Date(now + 1000).toUTCString();
      json(res, status, { code: status, message: 'Too many requests' }, headers);
      return;
    }
    if (single !== '') {
      await serveDevice(req, res, single, bearer);
      return;
    }

    const pageIndex = Number(requestUrl.searchParams.get('pageIndex') ?? settings.pageIndexBase);
    const pageSize = Number(requestUrl.searchParams.get('pageSize') ?? 100);
    if (!Number.isInteger(pageIndex) || !Number.isInteger(pageSize) || pageIndex < 0 || pageSize < 1) {
      json(res, 400, { code: 400, message: 'Invalid paging parameters' });
      return;
    }
    const attempt = (stats.byPage.get(pageIndex) ?? 0) + 1;
    stats.byPage.set(pageIndex, attempt);

    if (await answeredByFault(settings.fault?.({ pageIndex, pageSize, attempt, bearer }), req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);

    const size = Math.min(pageSize, settings.maxPageSize);
    // A server counting from 1 reads page 0 as page 1: the first page twice, as documented.
    const position = Math.max(0, pageIndex - settings.pageIndexBase);
    const start = position * size;
    const ready = rendered?.size === size && rendered.fleet === settings.fleet && rendered.includeCount === settings.includeCount && !settings.revise;
    const page = (ready ? rendered?.bodies[position] : undefined) ?? renderPage(start, size);
    servedEnd = Math.max(servedEnd, start + page.briefs);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(page.body) });
    res.end(page.body);
    applyChanges((change) => change.afterPage === pageIndex);
  }

  /** The page of `size` devices from `start` of the fleet as it is now: its JSON, and how many briefs it holds. */
  function renderPage(start: number, size: number): { body: string | Buffer; briefs: number } {
    const total = live().size;
    const revise = settings.revise;
    const briefs = revise
      ? live()
          .slice(start, start + size)
          .map(revise)
      : live().slice(start, start + size);
    const page: Record<string, unknown> = { briefs, more: start + briefs.length < total, now: Date.now() };
    if (settings.includeCount) page.count = total;
    return { body: JSON.stringify(page), briefs: briefs.length };
  }

  /** `GET .../devices/{id}`: the device by ref or by `e` + EUI, or the not-found answer. */
  async function serveDevice(req: IncomingMessage, res: ServerResponse, id: string, bearer: string): Promise<void> {
    stats.lookups += 1;
    const lookup = stats.lookups;
    const attempt = (stats.byDevice.get(id) ?? 0) + 1;
    stats.byDevice.set(id, attempt);
    if (await answeredByFault(settings.lookupFault?.({ id, attempt, bearer }), req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);
    applyChanges((change) => change.beforeLookup === lookup);
    const found = live().find(id);
    const brief = found && settings.revise ? settings.revise(found) : found;
    if (brief) json(res, 200, brief);
    else json(res, settings.missingDevice, { code: settings.missingDevice, message: 'Device not found' });
  }

  /** Plays a fault rule's answer, if it has one; false when the request is to be answered normally. */
  async function answeredByFault(fault: Fault | undefined, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.destroy) {
      req.socket.destroy();
      return true;
    }
    if (fault?.status !== undefined || fault?.body !== undefined) {
      res.writeHead(fault.status ?? 200, { 'content-type': 'application/json', ...fault.headers });
      res.end(fault.body ?? '');
      return true;
    }
    return false;
  }

  function applyChanges(due: (change: FleetChange) => boolean): void {
    for (const change of settings.changes) {
      if (applied.has(change) || !due(change)) continue;
      applied.add(change);
      rendered = undefined;
      const current = live();
      const count = change.remove ?? (typeof change.add === 'number' ? change.add : (change.add?.length ?? 0));
      const at = change.at === 'served' ? Math.max(0, servedEnd - count) : change.at === 'unserved' ? current.size - (change.remove ?? 0) : change.at;
      if (change.remove !== undefined) stats.removed.push(...current.remove(at, change.remove));
      if (change.add !== undefined) stats.added.push(...current.insert(at, change.add));
    }
  }

  function admit(limit: RateLimit, now: number): boolean {
    // NGINX's leaky bucket: the level drains at `perSecond`; past `burst`, reject.
    bucket.level = Math.max(0, bucket.level - ((now - bucket.at) / 1000) * limit.perSecond);
    bucket.at = now;
    if (bucket.level + 1 > limit.burst + 1) return false;
    bucket.level += 1;
    return true;
  }

  const platform: Platform = {
    url,
    options: settings,
    stats,
    tokens,
    reset(overrides = {}) {
      for (const name of Object.keys(settings) as (keyof SimulatorOptions)[]) delete settings[name];
      Object.assign(settings, DEFAULTS, overrides);
      Object.assign(stats, { requests: 0, lookups: 0, removed: [], added: [], rejected: 0, unauthorized: 0, maxInFlight: 0, firstAt: 0, lastAt: 0 });
      stats.byPage.clear();
      stats.byDevice.clear();
      fleet = new LiveFleet(settings.fleet);
      applied = new WeakSet();
      servedEnd = 0;
      Object.assign(tokens, { grants: 0, requests: 0, fault: undefined, lifetimeSeconds: token.lifetimeSeconds ?? 300 });
      return platform;
    },
    fleet: () => {
      // Whoever takes the fleet may change it: bodies rendered from it before would be stale.
      rendered = undefined;
      return live();
    },
    prerender(pageSize) {
      const size = Math.min(pageSize, settings.maxPageSize);
      const { fleet: source, includeCount } = settings;
      if (rendered?.fleet === source && rendered.size === size && rendered.includeCount === includeCount) return;
      const bodies: { body: Buffer; briefs: number }[] = [];
      for (let start = 0; start < live().size; start += size) {
        const page = renderPage(start, size);
        bodies.push({ body: Buffer.from(page.body), briefs: page.briefs });
      }
      rendered = { fleet: source, includeCount, size, bodies };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return platform;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export { TOKEN_PATH };
