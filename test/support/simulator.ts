import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fleetSize, fleetSlice, type Fleet } from './fleet.ts';
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
  /** Added to every device-list answer. */
  latencyMs: number;
  rateLimit?: RateLimit;
  fault?: (request: DeviceRequest) => Fault | undefined;
}

export interface SimulatorStats {
  requests: number;
  /** Requests per page index asked for. */
  byPage: Map<number, number>;
  rejected: number;
  unauthorized: number;
  inFlight: number;
  maxInFlight: number;
  /** Every bearer token presented, to check none leaks. */
  tokens: Set<string>;
  /** Time of the first and last device-list request, for achieved-rate figures. */
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
  close(): Promise<void>;
}

const DEFAULTS: SimulatorOptions = {
  fleet: 2500,
  pageIndexBase: 0,
  maxPageSize: 5000,
  includeCount: false,
  latencyMs: 0,
};

/**
 * The ThingPark platform on 127.0.0.1: the device list as docs/thingpark-api.md describes it
 * (`{ briefs, more, now }`, pageIndex/pageSize, Bearer tokens) and the Keycloak token
 * endpoint on its documented path, on one host like the real thing. Every undocumented
 * behaviour is an option; options can be changed while it runs.
 */
export async function startPlatform(
  options: Partial<SimulatorOptions> = {},
  token: Partial<TokenServerOptions> = {},
): Promise<Platform> {
  const settings: SimulatorOptions = { ...DEFAULTS, ...options };
  const stats: SimulatorStats = {
    requests: 0,
    byPage: new Map(),
    rejected: 0,
    unauthorized: 0,
    inFlight: 0,
    maxInFlight: 0,
    tokens: new Set(),
    firstAt: 0,
    lastAt: 0,
  };
  const bucket = { level: 0, at: 0 };
  let tokens: TokenServer | undefined;

  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/users-auth/')) {
      (tokens as TokenServer).handle(req, res);
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
  tokens = new TokenServer(url, {
    clientId: 'demo-exporter',
    clientSecret: 'demo-secret-change-me',
    lifetimeSeconds: 300,
    ...token,
  });
  const tokenServer = tokens;

  async function serveDevices(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', url);
    if (req.method !== 'GET' || requestUrl.pathname !== DEVICES_PATH) {
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
    if (!bearer || !(await tokenServer.verify(bearer))) {
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

    const pageIndex = Number(requestUrl.searchParams.get('pageIndex') ?? settings.pageIndexBase);
    const pageSize = Number(requestUrl.searchParams.get('pageSize') ?? 100);
    if (!Number.isInteger(pageIndex) || !Number.isInteger(pageSize) || pageIndex < 0 || pageSize < 1) {
      json(res, 400, { code: 400, message: 'Invalid paging parameters' });
      return;
    }
    const attempt = (stats.byPage.get(pageIndex) ?? 0) + 1;
    stats.byPage.set(pageIndex, attempt);

    const fault = settings.fault?.({ pageIndex, pageSize, attempt, bearer });
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.destroy) {
      req.socket.destroy();
      return;
    }
    if (fault?.status !== undefined || fault?.body !== undefined) {
      res.writeHead(fault.status ?? 200, { 'content-type': 'application/json', ...fault.headers });
      res.end(fault.body ?? '');
      return;
    }
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);

    const size = Math.min(pageSize, settings.maxPageSize);
    // A server counting from 1 reads page 0 as page 1: the first page twice, as documented.
    const position = Math.max(0, pageIndex - settings.pageIndexBase);
    const total = fleetSize(settings.fleet);
    const start = position * size;
    const briefs = fleetSlice(settings.fleet, start, start + size);
    const page: Record<string, unknown> = { briefs, more: start + briefs.length < total, now: Date.now() };
    if (settings.includeCount) page.count = total;
    json(res, 200, page);
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
    tokens: tokenServer,
    reset(overrides = {}) {
      for (const name of Object.keys(settings) as (keyof SimulatorOptions)[]) delete settings[name];
      Object.assign(settings, DEFAULTS, overrides);
      Object.assign(stats, { requests: 0, rejected: 0, unauthorized: 0, maxInFlight: 0, firstAt: 0, lastAt: 0 });
      stats.byPage.clear();
      Object.assign(tokenServer, { grants: 0, requests: 0, fault: undefined, lifetimeSeconds: token.lifetimeSeconds ?? 300 });
      return platform;
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
