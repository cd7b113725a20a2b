import type { OffsetCap } from './device-list.ts';
import type { FleetChange } from './fleet-changes.ts';
import type { Brief, Fleet } from './fleet.ts';
import type { Identifiers } from './identifiers.ts';

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
export const DEFAULTS = SPEC_7_3;

export function freshStats(): SimulatorStats {
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
