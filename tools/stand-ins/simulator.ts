import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeCursor, placeOf, readQuery, selectPage, type ListQuery, type OffsetCap, type View } from './device-list.ts';
import { applyChange, type FleetChange } from './fleet-changes.ts';
import { LiveFleet, type Brief, type Fleet } from './fleet.ts';
import type { Identifiers } from './identifiers.ts';
import { pageBody, RenderedBriefs, type Envelope } from './rendered-briefs.ts';
import { TOKEN_PATH, TokenServer, type TokenServerOptions } from './token-server.ts';

export const DEVICES_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices';

/** One device-list request as the simulator saw it, for fault rules to match on. */
export interface DeviceRequest {
  mode: 'offset' | 'cursor';
  /**
   * Offset paging: the page index asked for (the first page's when none is named). Cursor
   * paging: the index the page would have in offset paging (where its cursor stands in the
   * sweep's order and filter, in pages, from `pageIndexBase`): 2 is a sweep's third page.
   */
  pageIndex: number;
  /** The page size asked for. */
  pageSize: number;
  /** Cursor paging: the cursor named; absent on a cursor sweep's first page. */
  pageAfter?: string;
  sort?: string;
  /** The `devEUI` prefixes as sent. */
  devEUI: string[];
  /** 1 for the first request of this page (page index, or sort, filter and cursor), 2 for its first retry, ... */
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

/** A device-list request as `stats.recent` keeps it: how a client paged, for tests to assert. */
export interface ListRequestRecord {
  /** The paging mode it was read in; absent when its parameters were refused. */
  mode?: 'offset' | 'cursor';
  pageIndex?: number;
  pageSize?: number;
  pageAfter?: string;
  sort?: string;
  devEUI: string[];
  /** The status answered (a fault's included); absent while in flight or when the connection was dropped. */
  status?: number;
}

export type { FleetChange, OffsetCap };

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
  /** How a generated fleet's EUIs are made (tools/stand-ins/identifiers.ts). */
  identifiers: Identifiers;
  /** The page index of the first page: 1 in the spec, 0 in older deployments. */
  pageIndexBase: 0 | 1;
  /** With base 1, page 0 is refused with 400 (the spec's minimum is 1) or read as page 1 (older deployments). */
  pageZero: 'refuse' | 'first';
  /** Page sizes are clamped to `[minPageSize, maxPageSize]`, as a server with a system-wide range would. */
  minPageSize: number;
  maxPageSize: number;
  /** Offset paging cannot reach past this position; none by default. */
  offsetCap?: OffsetCap;
  /** Cursor paging (`pageAfter`, `cursors.last`); off = an older deployment: EUI sort sorts, no cursors, `pageAfter` ignored. */
  cursorMode: boolean;
  /** The `devEUI` prefix filter; off = ignored: every device matches. */
  devEUIFilter: boolean;
  /** `count` (the devices matching the filter) on each page. */
  includeCount: boolean;
  /** `now` as an ISO 8601 date-time (the spec) or epoch ms (older deployments). */
  nowFormat: 'iso' | 'epoch';
  /** Generated briefs carry a `ref` (older deployments) or not (the 7.3 brief). */
  briefRef: boolean;
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
  /** Device-list requests whose parameters were accepted, by paging mode. */
  offsetRequests: number;
  cursorRequests: number;
  /** Device-list requests answered 400: parameters refused, or past the offset cap. */
  refusedRequests: number;
  /** Offset requests per page index asked for. */
  byPage: Map<number, number>;
  /** The last RECENT_REQUESTS device-list requests, oldest first. */
  recent: ListRequestRecord[];
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

/** How many device-list requests `stats.recent` keeps. */
export const RECENT_REQUESTS = 1000;

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
   * Renders every brief once, and builds the fleet's EUI order: from then on pages of any
   * mode, order or filter are put together from those bytes instead of rendered per request,
   * so the benchmark's platform costs next to nothing, and the same for every client.
   * Offset pages of `pageSize` in the default order are answered as if rendered now, once:
   * with the time of rendering as their `now`, while the fleet has not changed. Kept across
   * resets to the same fleet.
   */
  prerender(pageSize: number): void;
  close(): Promise<void>;
}

/** ThingPark's device list as the 7.3 spec describes it (docs/thingpark-api.md). */
export const SPEC_7_3: Readonly<SimulatorOptions> = {
  fleet: 2500,
  identifiers: 'skewed',
  pageIndexBase: 1,
  pageZero: 'refuse',
  minPageSize: 1,
  maxPageSize: 5000,
  cursorMode: true,
  devEUIFilter: true,
  includeCount: true,
  nowFormat: 'iso',
  briefRef: false,
  latencyMs: 0,
  changes: [],
  missingDevice: 404,
};

/** What the simulator played before it followed the spec: pages from 0, no count, `now` in epoch ms, briefs with `ref`. */
export const LEGACY: Readonly<SimulatorOptions> = {
  ...SPEC_7_3,
  identifiers: 'one-oui',
  pageIndexBase: 0,
  pageZero: 'first',
  includeCount: false,
  nowFormat: 'epoch',
  briefRef: true,
};

/** The spec by default; every older or uncertain behaviour is an option over it. */
const DEFAULTS = SPEC_7_3;

/**
 * The ThingPark platform on 127.0.0.1: the device list as docs/thingpark-api.md describes it
 * (offset and cursor paging, `sort`, the `devEUI` filter, Bearer tokens), the single-device
 * route (`.../devices/e{EUI}`, or `.../devices/{ref}` where briefs carry one) and the
 * Keycloak token endpoint on its documented path, on one host like the real thing. The fleet
 * can change while it is read (`changes`). Every behaviour a deployment may differ in is an
 * option; options can be changed while it runs.
 */
export async function startPlatform(options: Partial<SimulatorOptions> = {}, token: Partial<TokenServerOptions> = {}): Promise<Platform> {
  const settings: SimulatorOptions = { ...DEFAULTS, ...options };
  const stats = freshStats();
  const bucket = { level: 0, at: 0 };
  // The fleet as it is now, made afresh when the fleet or the shape of its briefs is set to another.
  let fleet = new LiveFleet(settings.fleet, shapeOf(settings));
  const live = (): LiveFleet => {
    const { identifiers, ref } = shapeOf(settings);
    if (fleet.source !== settings.fleet || fleet.shape.identifiers !== identifiers || fleet.shape.ref !== ref)
      fleet = new LiveFleet(settings.fleet, { identifiers, ref });
    return fleet;
  };
  let applied = new WeakSet<FleetChange>();
  // The furthest place pages have reached, per order and filter: where 'served' changes go.
  let reached = new Map<string, number | string>();
  let lastView: View = { order: 'creation', prefixes: [] };
  // Attempts per cursor page (sort, filter and cursor), as `byPage` counts offset pages.
  let cursorAttempts = new Map<string, number>();
  let rendered: { briefs: RenderedBriefs; size: number; at: number } | undefined;

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
    if (single !== '') await serveDevice(req, res, single, bearer);
    else await serveList(req, res, requestUrl.searchParams, bearer);
  }

  /** `GET .../devices`: one page of the list, offset or cursor, or 400 for parameters it cannot read. */
  async function serveList(req: IncomingMessage, res: ServerResponse, params: URLSearchParams, bearer: string): Promise<void> {
    const record = remember(params);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    const query = readQuery(params, settings);
    if ('refused' in query) {
      stats.refusedRequests += 1;
      json(res, 400, { code: 400, message: query.refused });
      return;
    }
    const { paging } = query;
    record.mode = paging.mode;
    if (paging.mode === 'offset') stats.offsetRequests += 1;
    else stats.cursorRequests += 1;
    const request = stats.offsetRequests + stats.cursorRequests;
    const attempt = countAttempt(query);
    const fault = settings.fault?.(deviceRequest(query, attempt, bearer));
    if (await answeredByFault(fault, req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);

    const page = selectPage(live(), query, settings.offsetCap);
    if ('refused' in page) {
      stats.refusedRequests += 1;
      json(res, 400, { code: 400, message: page.refused });
      return;
    }
    send(res, bodyOf(query, page));
    noteReached(query.view, page.ids, page.start);
    lastView = query.view;
    applyChanges(
      (change) => (paging.mode === 'offset' && change.afterPage === paging.pageIndex) || (change.afterRequest !== undefined && change.afterRequest <= request),
      query.view,
    );
  }

  /** The request as fault rules see it. */
  function deviceRequest({ paging, view, size, askedSize, sort, devEUI }: ListQuery, attempt: number, bearer: string): DeviceRequest {
    if (paging.mode === 'offset')
      return { mode: 'offset', pageIndex: paging.pageIndex, pageSize: askedSize, ...(sort === undefined ? {} : { sort }), devEUI, attempt, bearer };
    const place = paging.after === undefined ? 0 : placeOf(live(), view, paging.after);
    return {
      mode: 'cursor',
      pageIndex: settings.pageIndexBase + Math.floor(place / size),
      ...(paging.pageAfter === undefined ? {} : { pageAfter: paging.pageAfter }),
      pageSize: askedSize,
      ...(sort === undefined ? {} : { sort }),
      devEUI,
      attempt,
      bearer,
    };
  }

  function remember(params: URLSearchParams): ListRequestRecord {
    const number = (name: string) => (params.has(name) ? { [name]: Number(params.get(name)) } : {});
    const text = (name: string) => (params.has(name) ? { [name]: params.get(name) ?? '' } : {});
    const record: ListRequestRecord = { ...number('pageIndex'), ...number('pageSize'), ...text('pageAfter'), ...text('sort'), devEUI: params.getAll('devEUI') };
    stats.recent.push(record);
    if (stats.recent.length > RECENT_REQUESTS) stats.recent.shift();
    return record;
  }

  /** The attempt this request is at: per page index for offset pages, per sort, filter and cursor for cursor pages. */
  function countAttempt({ paging, sort, devEUI }: ListQuery): number {
    if (paging.mode === 'offset') {
      const attempt = (stats.byPage.get(paging.pageIndex) ?? 0) + 1;
      stats.byPage.set(paging.pageIndex, attempt);
      return attempt;
    }
    const key = JSON.stringify([sort, devEUI, paging.pageAfter]);
    const attempt = (cursorAttempts.get(key) ?? 0) + 1;
    cursorAttempts.set(key, attempt);
    return attempt;
  }

  /** A page's body: from prerendered bytes where there are some for this fleet, rendered now otherwise. */
  function bodyOf(query: ListQuery, page: { ids: number[]; more: boolean; count: number }): Buffer[] {
    const current = live();
    const prepared = settings.revise ? undefined : rendered;
    const usable = prepared?.briefs.fits(current) === true;
    // Offset pages of the prerendered size in the default order keep the time of rendering, as if rendered then.
    const asRendered =
      usable &&
      prepared.size === query.size &&
      current.version === 0 &&
      query.paging.mode === 'offset' &&
      query.view.order === 'creation' &&
      query.view.prefixes.length === 0;
    const at = asRendered ? prepared.at : Date.now();
    const envelope: Envelope = { more: page.more, now: settings.nowFormat === 'iso' ? new Date(at).toISOString() : at };
    if (settings.includeCount) envelope.count = page.count;
    const last = page.ids.at(-1);
    if (settings.cursorMode && query.view.order !== 'creation' && page.more && last !== undefined)
      envelope.cursors = { last: encodeCursor(current.euiOf(last)) };
    const revise = settings.revise ?? ((brief: Brief) => brief);
    const slices = usable
      ? prepared.briefs.slices(page.ids, current)
      : page.ids.length === 0
        ? []
        : [Buffer.from(JSON.stringify(page.ids.map((id) => revise(current.brief(id)))).slice(1, -1))];
    return pageBody(slices, envelope);
  }

  function noteReached(view: View, ids: readonly number[], start: number): void {
    const key = JSON.stringify(view);
    const before = reached.get(key);
    const last = ids.at(-1);
    if (view.order === 'creation') reached.set(key, Math.max(typeof before === 'number' ? before : 0, start + ids.length));
    else if (last !== undefined) {
      const eui = live().euiOf(last);
      const further = before === undefined || (view.order === 'asc' ? eui > before : eui < before);
      if (further) reached.set(key, eui);
    }
  }

  /** `GET .../devices/{id}`: the device by `e` + EUI, or by ref where briefs carry one, or the not-found answer. */
  async function serveDevice(req: IncomingMessage, res: ServerResponse, id: string, bearer: string): Promise<void> {
    stats.lookups += 1;
    const lookup = stats.lookups;
    const attempt = (stats.byDevice.get(id) ?? 0) + 1;
    stats.byDevice.set(id, attempt);
    if (await answeredByFault(settings.lookupFault?.({ id, attempt, bearer }), req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);
    applyChanges((change) => change.beforeLookup === lookup, lastView);
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

  function applyChanges(due: (change: FleetChange) => boolean, view: View): void {
    for (const change of settings.changes) {
      if (applied.has(change) || !due(change)) continue;
      applied.add(change);
      const { removed, added } = applyChange(live(), change, view, reached.get(JSON.stringify(view)));
      stats.removed.push(...removed);
      stats.added.push(...added);
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
      Object.assign(stats, freshStats(), { tokens: stats.tokens, inFlight: stats.inFlight });
      fleet = new LiveFleet(settings.fleet, shapeOf(settings));
      applied = new WeakSet();
      reached = new Map();
      lastView = { order: 'creation', prefixes: [] };
      cursorAttempts = new Map();
      Object.assign(tokens, { grants: 0, requests: 0, fault: undefined, lifetimeSeconds: token.lifetimeSeconds ?? 300 });
      return platform;
    },
    fleet: live,
    prerender(pageSize) {
      const current = live();
      const briefs = rendered?.briefs.fits(current) ? rendered.briefs : new RenderedBriefs(current);
      current.euiIndex();
      rendered = { briefs, size: Math.min(Math.max(pageSize, settings.minPageSize), settings.maxPageSize), at: Date.now() };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return platform;
}

function shapeOf(settings: SimulatorOptions): { identifiers: Identifiers; ref: boolean } {
  return { identifiers: settings.identifiers, ref: settings.briefRef };
}

function freshStats(): SimulatorStats {
  return {
    requests: 0,
    offsetRequests: 0,
    cursorRequests: 0,
    refusedRequests: 0,
    byPage: new Map(),
    recent: [],
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
}

function send(res: ServerResponse, body: readonly Buffer[]): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.reduce((sum, part) => sum + part.length, 0) });
  res.cork();
  for (const part of body) res.write(part);
  res.end();
  res.uncork();
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export { TOKEN_PATH };
