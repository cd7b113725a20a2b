import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeCursor, placeOf, readQuery, selectPage, type ListQuery, type View } from './device-list.ts';
import { applyChange, type FleetChange } from './fleet-changes.ts';
import { LiveFleet, type Brief } from './fleet.ts';
import type { Identifiers } from './identifiers.ts';
import { pageBody, RenderedBriefs, type Envelope } from './rendered-briefs.ts';
import {
  DEFAULTS,
  freshStats,
  RECENT_REQUESTS,
  type DeviceRequest,
  type Fault,
  type ListRequestRecord,
  type RateLimit,
  type SimulatorOptions,
} from './simulator-options.ts';

export const DEVICES_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices';

/**
 * The platform's device API (the list and the single-device route) and what it keeps between
 * requests: the counters, the rate limit's bucket, the fleet as it is now, where pages have
 * reached and which fleet changes were applied. Options are read on every request, so they
 * can be changed while it runs.
 */
export class DeviceApi {
  readonly settings: SimulatorOptions;
  readonly stats = freshStats();
  private readonly bucket = { level: 0, at: 0 };
  // The fleet as it is now, made afresh when the fleet or the shape of its briefs is set to another.
  private fleet: LiveFleet;
  private applied = new WeakSet<FleetChange>();
  // The furthest place pages have reached, per order and filter: where 'served' changes go.
  private reached = new Map<string, number | string>();
  private lastView: View = { order: 'creation', prefixes: [] };
  // Attempts per cursor page (sort, filter and cursor), as `byPage` counts offset pages.
  private cursorAttempts = new Map<string, number>();
  private rendered: { briefs: RenderedBriefs; size: number; at: number } | undefined;

  constructor(
    options: Partial<SimulatorOptions>,
    private readonly verify: (bearer: string) => Promise<boolean>,
  ) {
    this.settings = { ...DEFAULTS, ...options };
    this.fleet = new LiveFleet(this.settings.fleet, shapeOf(this.settings));
  }

  /** The fleet as it is now. */
  live(): LiveFleet {
    const { identifiers, ref } = shapeOf(this.settings);
    const { fleet, settings } = this;
    if (fleet.source !== settings.fleet || fleet.shape.identifiers !== identifiers || fleet.shape.ref !== ref)
      this.fleet = new LiveFleet(settings.fleet, { identifiers, ref });
    return this.fleet;
  }

  /** Back to the defaults overlaid with `overrides`, counters cleared; prerendered briefs are kept. */
  reset(overrides: Partial<SimulatorOptions>): void {
    const { settings, stats } = this;
    for (const name of Object.keys(settings) as (keyof SimulatorOptions)[]) delete settings[name];
    Object.assign(settings, DEFAULTS, overrides);
    Object.assign(stats, freshStats(), { tokens: stats.tokens, inFlight: stats.inFlight });
    this.fleet = new LiveFleet(settings.fleet, shapeOf(settings));
    this.applied = new WeakSet();
    this.reached = new Map();
    this.lastView = { order: 'creation', prefixes: [] };
    this.cursorAttempts = new Map();
  }

  /** See Platform.prerender. */
  prerender(pageSize: number): void {
    const current = this.live();
    const briefs = this.rendered?.briefs.fits(current) ? this.rendered.briefs : new RenderedBriefs(current);
    current.euiIndex();
    this.rendered = { briefs, size: Math.min(Math.max(pageSize, this.settings.minPageSize), this.settings.maxPageSize), at: Date.now() };
  }

  /** Answers a request to the device API; an unexpected failure answers 500, or drops the connection once answering began. */
  serve(req: IncomingMessage, res: ServerResponse, base: string): void {
    this.serveDevices(req, res, base).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { code: 500, message: String(error) });
      else res.destroy();
    });
  }

  private async serveDevices(req: IncomingMessage, res: ServerResponse, base: string): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', base);
    const single = requestUrl.pathname.startsWith(`${DEVICES_PATH}/`) ? decodeURIComponent(requestUrl.pathname.slice(DEVICES_PATH.length + 1)) : '';
    if (req.method !== 'GET' || (requestUrl.pathname !== DEVICES_PATH && single === '')) {
      json(res, 404, { code: 404, message: 'Not found' });
      return;
    }
    const now = Date.now();
    this.count(res, now);
    const bearer = await this.authorised(req, res);
    if (bearer === undefined || this.rateLimited(res, now)) return;
    if (single !== '') await this.serveDevice(req, res, single, bearer);
    else await this.serveList(req, res, requestUrl.searchParams, bearer);
  }

  /** Counts a device API request, and keeps it in flight until its connection closes. */
  private count(res: ServerResponse, now: number): void {
    const { stats } = this;
    stats.requests += 1;
    stats.firstAt ||= now;
    stats.lastAt = now;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    res.on('close', () => {
      stats.inFlight -= 1;
    });
  }

  /** The bearer token presented, when the token server issued it and it is still valid; otherwise answers 401. */
  private async authorised(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) this.stats.tokens.add(bearer);
    if (bearer && (await this.verify(bearer))) return bearer;
    this.stats.unauthorized += 1;
    json(res, 401, { code: 401, message: 'Invalid or expired token' });
    return undefined;
  }

  /** Whether the rate limit rejected the request, which it then answers. */
  private rateLimited(res: ServerResponse, now: number): boolean {
    const limit = this.settings.rateLimit;
    if (!limit || this.admit(limit, now)) return false;
    this.stats.rejected += 1;
    const { retryAfter, status } = limit;
    const headers: Record<string, string> = {};
    if (retryAfter === 'seconds') headers['retry-after'] = '1';
    if (retryAfter === 'date') headers['retry-after'] = new Date(now + 1000).toUTCString();
    json(res, status, { code: status, message: 'Too many requests' }, headers);
    return true;
  }

  private admit(limit: RateLimit, now: number): boolean {
    // NGINX's leaky bucket: the level drains at `perSecond`; past `burst`, reject.
    const { bucket } = this;
    bucket.level = Math.max(0, bucket.level - ((now - bucket.at) / 1000) * limit.perSecond);
    bucket.at = now;
    if (bucket.level + 1 > limit.burst + 1) return false;
    bucket.level += 1;
    return true;
  }

  /** `GET .../devices`: one page of the list, offset or cursor, or 400 for parameters it cannot read. */
  private async serveList(req: IncomingMessage, res: ServerResponse, params: URLSearchParams, bearer: string): Promise<void> {
    const { settings, stats } = this;
    const record = this.remember(params);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    const query = readQuery(params, settings);
    if ('refused' in query) return this.refuse(res, query.refused);
    const { paging } = query;
    record.mode = paging.mode;
    if (paging.mode === 'offset') stats.offsetRequests += 1;
    else stats.cursorRequests += 1;
    const request = stats.offsetRequests + stats.cursorRequests;
    const attempt = this.countAttempt(query);
    if (await answeredByFault(settings.fault?.(this.deviceRequest(query, attempt, bearer)), req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);
    // A client that gave up while the page was prepared never reads it: its devices are not
    // "already read", and changes due after it wait for a page that is answered.
    if (res.destroyed) return;

    const page = selectPage(this.live(), query, settings.offsetCap);
    if ('refused' in page) return this.refuse(res, page.refused);
    send(res, this.bodyOf(query, page));
    this.noteReached(query.view, page.ids, page.start);
    this.lastView = query.view;
    this.applyChanges(
      (change) => (paging.mode === 'offset' && change.afterPage === paging.pageIndex) || (change.afterRequest !== undefined && change.afterRequest <= request),
      query.view,
    );
  }

  private refuse(res: ServerResponse, message: string): void {
    this.stats.refusedRequests += 1;
    json(res, 400, { code: 400, message });
  }

  /** The request as fault rules see it. */
  private deviceRequest({ paging, view, size, askedSize, sort, devEUI }: ListQuery, attempt: number, bearer: string): DeviceRequest {
    if (paging.mode === 'offset')
      return { mode: 'offset', pageIndex: paging.pageIndex, pageSize: askedSize, ...(sort === undefined ? {} : { sort }), devEUI, attempt, bearer };
    const place = paging.after === undefined ? 0 : placeOf(this.live(), view, paging.after);
    return {
      mode: 'cursor',
      pageIndex: this.settings.pageIndexBase + Math.floor(place / size),
      ...(paging.pageAfter === undefined ? {} : { pageAfter: paging.pageAfter }),
      pageSize: askedSize,
      ...(sort === undefined ? {} : { sort }),
      devEUI,
      attempt,
      bearer,
    };
  }

  private remember(params: URLSearchParams): ListRequestRecord {
    const number = (name: string) => (params.has(name) ? { [name]: Number(params.get(name)) } : {});
    const text = (name: string) => (params.has(name) ? { [name]: params.get(name) ?? '' } : {});
    const record: ListRequestRecord = { ...number('pageIndex'), ...number('pageSize'), ...text('pageAfter'), ...text('sort'), devEUI: params.getAll('devEUI') };
    const { recent } = this.stats;
    recent.push(record);
    if (recent.length > RECENT_REQUESTS) recent.shift();
    return record;
  }

  /** The attempt this request is at: per page index for offset pages, per sort, filter and cursor for cursor pages. */
  private countAttempt({ paging, sort, devEUI }: ListQuery): number {
    if (paging.mode === 'offset') {
      const attempt = (this.stats.byPage.get(paging.pageIndex) ?? 0) + 1;
      this.stats.byPage.set(paging.pageIndex, attempt);
      return attempt;
    }
    const key = JSON.stringify([sort, devEUI, paging.pageAfter]);
    const attempt = (this.cursorAttempts.get(key) ?? 0) + 1;
    this.cursorAttempts.set(key, attempt);
    return attempt;
  }

  /** A page's body: from prerendered bytes where there are some for this fleet, rendered now otherwise. */
  private bodyOf(query: ListQuery, page: { ids: number[]; more: boolean; count: number }): Buffer[] {
    const { settings } = this;
    const current = this.live();
    const prepared = settings.revise ? undefined : this.rendered;
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

  private noteReached(view: View, ids: readonly number[], start: number): void {
    const key = JSON.stringify(view);
    const before = this.reached.get(key);
    const last = ids.at(-1);
    if (view.order === 'creation') this.reached.set(key, Math.max(typeof before === 'number' ? before : 0, start + ids.length));
    else if (last !== undefined) {
      const eui = this.live().euiOf(last);
      const further = before === undefined || (view.order === 'asc' ? eui > before : eui < before);
      if (further) this.reached.set(key, eui);
    }
  }

  /** `GET .../devices/{id}`: the device by `e` + EUI, or by ref where briefs carry one, or the not-found answer. */
  private async serveDevice(req: IncomingMessage, res: ServerResponse, id: string, bearer: string): Promise<void> {
    const { settings, stats } = this;
    stats.lookups += 1;
    const lookup = stats.lookups;
    const attempt = (stats.byDevice.get(id) ?? 0) + 1;
    stats.byDevice.set(id, attempt);
    if (await answeredByFault(settings.lookupFault?.({ id, attempt, bearer }), req, res)) return;
    if (settings.latencyMs > 0) await sleep(settings.latencyMs);
    this.applyChanges((change) => change.beforeLookup === lookup, this.lastView);
    const found = this.live().find(id);
    const brief = found && settings.revise ? settings.revise(found) : found;
    if (brief) json(res, 200, brief);
    else json(res, settings.missingDevice, { code: settings.missingDevice, message: 'Device not found' });
  }

  private applyChanges(due: (change: FleetChange) => boolean, view: View): void {
    for (const change of this.settings.changes) {
      if (this.applied.has(change) || !due(change)) continue;
      this.applied.add(change);
      const { removed, added } = applyChange(this.live(), change, view, this.reached.get(JSON.stringify(view)));
      this.stats.removed.push(...removed);
      this.stats.added.push(...added);
    }
  }
}

function shapeOf(settings: SimulatorOptions): { identifiers: Identifiers; ref: boolean } {
  return { identifiers: settings.identifiers, ref: settings.briefRef };
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
