import { normalisePrefixes } from './eui-index.ts';
import type { LiveFleet } from './fleet.ts';

/**
 * The device list's query (`GET .../subscriptions/mine/devices`) as the 7.3 spec reads it,
 * and the pages it selects from a fleet: offset pages (`pageIndex`) in any order, cursor
 * pages (`pageAfter`) in EUI order, both within a `devEUI` prefix filter.
 */

/** The attributes `sort` takes; all but `EUI` leave the list in its default order (creation). */
const SORT_ATTRIBUTES = new Set([
  'name',
  'avgSNR',
  'avgESP',
  'lastSF',
  'lastUpTimestamp',
  'lastDwTimestamp',
  'lastBatLevel',
  'creationDate',
  'lastMeanPER',
  'EUI',
]);
/** Devices per page when the request names no `pageSize`. */
const DEFAULT_PAGE_SIZE = 100;

/** The order a list is read in: creation order, or EUI ascending or descending. */
export type Order = 'creation' | 'asc' | 'desc';

/** The devices a request pages over, in the order it reads them. */
export interface View {
  order: Order;
  /** Normalised `devEUI` prefixes; none means every device. */
  prefixes: readonly string[];
}

/** The settings of the simulator that decide how a query is read. */
export interface QuerySettings {
  pageIndexBase: 0 | 1;
  pageZero: 'refuse' | 'first';
  minPageSize: number;
  maxPageSize: number;
  cursorMode: boolean;
  devEUIFilter: boolean;
}

export interface ListQuery {
  view: View;
  /** The page size served: the one asked for, clamped. */
  size: number;
  /** The page size asked for. */
  askedSize: number;
  sort?: string;
  /** `devEUI` as sent, every value. */
  devEUI: string[];
  paging:
    | { mode: 'offset'; pageIndex: number; /** 0 for the first page, whatever the base. */ position: number }
    | { mode: 'cursor'; pageAfter?: string; /** The EUI the cursor names. */ after?: string };
}

/** Reads a request's query, or says why it is refused (400). */
export function readQuery(params: URLSearchParams, settings: QuerySettings): ListQuery | { refused: string } {
  const sort = params.get('sort') ?? undefined;
  const order = sort === undefined ? 'creation' : orderOf(sort);
  if (order === undefined) return { refused: `Invalid sort: ${sort}` };
  const askedSize = integerParam(params, 'pageSize') ?? DEFAULT_PAGE_SIZE;
  const pageIndex = integerParam(params, 'pageIndex');
  if (Number.isNaN(askedSize) || Number.isNaN(pageIndex)) return { refused: 'Invalid paging parameters' };
  const devEUI = params.getAll('devEUI');
  const view: View = { order, prefixes: settings.devEUIFilter ? normalisePrefixes(devEUI) : [] };
  const size = Math.min(Math.max(askedSize, settings.minPageSize), settings.maxPageSize);
  const query = { view, size, askedSize, sort, devEUI };

  const pageAfter = settings.cursorMode ? (params.get('pageAfter') ?? undefined) : undefined;
  const byEui = order !== 'creation';
  if (pageAfter !== undefined) {
    if (pageIndex !== undefined) return { refused: 'pageAfter and pageIndex cannot be used together' };
    if (!byEui) return { refused: 'pageAfter needs sort=EUI,asc or sort=EUI,desc' };
    const after = decodeCursor(pageAfter);
    if (after === undefined) return { refused: 'Invalid pageAfter' };
    return { ...query, paging: { mode: 'cursor', pageAfter, after } };
  }
  if (settings.cursorMode && byEui && pageIndex === undefined) return { ...query, paging: { mode: 'cursor' } };
  const index = pageIndex ?? settings.pageIndexBase;
  // An older 1-based deployment reads page 0 as page 1; the spec's minimum is 1.
  const position = index === 0 && settings.pageIndexBase === 1 && settings.pageZero === 'first' ? 0 : index - settings.pageIndexBase;
  if (position < 0) return { refused: `Invalid pageIndex: ${index} (the first page is ${settings.pageIndexBase})` };
  return { ...query, paging: { mode: 'offset', pageIndex: index, position } };
}

function orderOf(sort: string): Order | undefined {
  const [attribute = '', direction, ...rest] = sort.split(',');
  if (rest.length > 0 || !SORT_ATTRIBUTES.has(attribute) || (direction !== 'asc' && direction !== 'desc')) return undefined;
  return attribute === 'EUI' ? direction : 'creation';
}

/** A parameter's integer value: undefined when absent, NaN when not an integer. */
function integerParam(params: URLSearchParams, name: string): number | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  const number = value.trim() === '' ? Number.NaN : Number(value);
  return Number.isInteger(number) ? number : Number.NaN;
}

/** The cursor of a page whose last device has this EUI: opaque to clients, base64 of `{"EUI":...}`. */
export function encodeCursor(eui: string): string {
  return Buffer.from(JSON.stringify({ EUI: eui })).toString('base64');
}

/** The EUI a cursor names, or undefined when it is not one of ours (not URL-encoded, cut, made up). */
export function decodeCursor(cursor: string): string | undefined {
  if (cursor.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(cursor)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64').toString('utf8'));
    const eui = typeof value === 'object' && value !== null ? (value as { EUI?: unknown }).EUI : undefined;
    return typeof eui === 'string' ? eui.toUpperCase() : undefined;
  } catch {
    return undefined;
  }
}

/** How far offset paging reaches ("the total number of devices that can be retrieved is limited"). */
export interface OffsetCap {
  /** Pages starting at this position of the list or beyond are not served ... */
  devices: number;
  /** ... but refused with 400, or the list ends there: the page crossing it is cut and says `more: false`. */
  end: 'refuse' | 'silent';
}

/** A page selected: its devices, whether more follow, the view's `count`, and where it starts in the view. */
export interface Page {
  ids: number[];
  more: boolean;
  count: number;
  start: number;
}

/** The page a query asks for, or why it is refused: an offset page past the cap. */
export function selectPage(fleet: LiveFleet, query: ListQuery, cap: OffsetCap | undefined): Page | { refused: string } {
  const { view, size, paging } = query;
  const count = viewLength(fleet, view);
  if (paging.mode === 'cursor') return { ...idsAfter(fleet, view, paging.after, size), count, start: 0 };
  const start = paging.position * size;
  if (cap && start >= cap.devices && cap.end === 'refuse')
    return { refused: `pageIndex ${paging.pageIndex} is beyond the ${cap.devices} devices offset paging can reach` };
  const end = Math.min(start + size, count, cap?.end === 'silent' ? cap.devices : Number.POSITIVE_INFINITY);
  const ids = end > start ? viewIds(fleet, view, start, end) : [];
  return { ids, more: end < count && !(cap?.end === 'silent' && end >= cap.devices), count, start };
}

/** How many devices a view holds now: the platform's `count`. */
export function viewLength(fleet: LiveFleet, view: View): number {
  if (view.prefixes.length === 0) return fleet.size;
  return ranges(fleet, view).reduce((sum, [from, to]) => sum + to - from, 0);
}

/** The ids at places `[start, end)` of a view, in its order. */
export function viewIds(fleet: LiveFleet, view: View, start: number, end: number): number[] {
  if (view.order === 'creation') return view.prefixes.length === 0 ? fleet.ids(start, end) : fleet.matching(view.prefixes).slice(start, end);
  const index = fleet.euiIndex();
  const ids: number[] = [];
  let skip = start;
  for (const [from, to] of orderedRanges(fleet, view)) {
    const length = to - from;
    if (skip >= length) {
      skip -= length;
      continue;
    }
    for (let k = skip; k < length && ids.length < end - start; k += 1) ids.push(index.idAt(view.order === 'asc' ? from + k : to - 1 - k));
    skip = 0;
    if (ids.length >= end - start) break;
  }
  return ids;
}

/**
 * A page of an EUI-ordered view: the next `size` devices strictly after the EUI `after` in
 * its direction (from its start without one), and whether any follow. A binary search per
 * prefix, then the page itself: never a scan of the fleet.
 */
export function idsAfter(fleet: LiveFleet, view: View, after: string | undefined, size: number): { ids: number[]; more: boolean } {
  const index = fleet.euiIndex();
  const ids: number[] = [];
  if (view.order === 'asc') {
    const cut = after === undefined ? 0 : index.upperBound(after);
    for (const [from, to] of orderedRanges(fleet, view))
      for (let place = Math.max(from, cut); place < to; place += 1) {
        if (ids.length === size) return { ids, more: true };
        ids.push(index.idAt(place));
      }
  } else {
    const cut = after === undefined ? index.size : index.lowerBound(after);
    for (const [from, to] of orderedRanges(fleet, view))
      for (let place = Math.min(to, cut) - 1; place >= from; place -= 1) {
        if (ids.length === size) return { ids, more: true };
        ids.push(index.idAt(place));
      }
  }
  return { ids, more: false };
}

/**
 * How many devices of a view come before (in its order) a place reached: an EUI, or already
 * a count. Never past the view's end: pages answered out of order can have reached past
 * where the list ends once devices were deleted since.
 */
export function placeOf(fleet: LiveFleet, view: View, reached: number | string): number {
  if (typeof reached === 'number') return Math.min(reached, viewLength(fleet, view));
  const index = fleet.euiIndex();
  return ranges(fleet, view).reduce((sum, [from, to]) => {
    const cut = view.order === 'asc' ? index.upperBound(reached) : index.lowerBound(reached);
    const clipped = Math.min(Math.max(cut, from), to);
    return sum + (view.order === 'asc' ? clipped - from : to - clipped);
  }, 0);
}

function ranges(fleet: LiveFleet, view: View): [number, number][] {
  const index = fleet.euiIndex();
  return view.prefixes.length === 0 ? [[0, index.size]] : index.ranges(view.prefixes);
}

function orderedRanges(fleet: LiveFleet, view: View): [number, number][] {
  const all = ranges(fleet, view);
  return view.order === 'desc' ? all.reverse() : all;
}
