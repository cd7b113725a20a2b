import { placeOf, viewIds, viewLength, type View } from './device-list.ts';
import type { EuiIndex } from './eui-index.ts';
import type { Brief, LiveFleet } from './fleet.ts';

/**
 * A change to the fleet while it is read, applied once, at the moment it names: devices
 * deleted (`remove`) or added (`add`), one or the other, at a place (`at`) of the list as
 * the request that triggered it reads it: its order (creation order, or EUI ascending or
 * descending) within its `devEUI` filter. (A `beforeLookup` change takes the last page's.)
 * - `'served'`: among devices already read, just before the furthest place any page of that
 *   order and filter has reached (or the list's end, where deletions since have moved it
 *   back past that place). In creation order (offset paging, the default sort),
 *   deleting K there shifts the rest back, and the K devices that cross the page boundary
 *   are never served; adding K shifts them forward, and K devices are served twice. In EUI
 *   order the furthest place is an EUI: deleted devices are the last K read up to it, added
 *   devices get free EUIs just behind it, so a cursor sweep (which resumes after that EUI)
 *   misses nothing and never sees the new devices, while offset pages in EUI order shift as
 *   above. With one page in flight at a time (THINGPARK_CONCURRENCY=1) the counts are exact.
 * - `'unserved'`: at the end of the list in that order, which no page has reached (behind
 *   the cursor): a deleted device is never read, an added one is read like any other (in EUI
 *   order it gets free EUIs just past the last one).
 * - a number: that place in the list (in that order) as it is then; added devices in EUI
 *   order get free EUIs just before the device at that place.
 * Devices added in EUI order are new generated devices with those EUIs, created last;
 * explicit briefs given to `add` keep their own EUIs there. Deleted and added briefs are
 * recorded in `stats.removed` and `stats.added`.
 */
export interface FleetChange {
  /**
   * Right after the offset page with this `pageIndex` has been answered (the first time) to a
   * client still waiting for it.
   */
  afterPage?: number;
  /**
   * Or right after the page answering the n-th device-list request of either paging mode
   * (1 for the first; requests refused for their parameters are not counted), or the first
   * page answered after it when a fault answered that one.
   */
  afterRequest?: number;
  /** Or right before the n-th single-device request is answered (1 for the first). */
  beforeLookup?: number;
  /** Deletes this many devices ... */
  remove?: number;
  /** ... or adds this many new generated devices, or these briefs. */
  add?: number | Brief[];
  at: 'served' | 'unserved' | number;
}

/**
 * Applies `change` to `fleet` as read in `view`, where pages have reached `reached` (a count
 * of devices in creation order, an EUI in EUI order; nothing yet when undefined).
 */
export function applyChange(fleet: LiveFleet, change: FleetChange, view: View, reached: number | string | undefined): { removed: Brief[]; added: Brief[] } {
  const served = reached === undefined ? 0 : placeOf(fleet, view, reached);
  const whole = view.order === 'creation' && view.prefixes.length === 0;
  let removed: Brief[] = [];
  if (change.remove !== undefined) {
    const count = change.remove;
    const at = Math.max(0, change.at === 'served' ? served - count : change.at === 'unserved' ? viewLength(fleet, view) - count : change.at);
    removed = whole ? fleet.remove(at, count) : fleet.removeIds(viewIds(fleet, view, at, at + count));
  }
  if (change.add === undefined) return { removed, added: [] };
  const count = typeof change.add === 'number' ? change.add : change.add.length;
  const length = viewLength(fleet, view);
  const place = change.at === 'served' ? Math.max(0, served - count) : change.at === 'unserved' ? length : change.at;
  if (view.order === 'creation') return { removed, added: fleet.insert(positionOf(fleet, view, place), change.add) };
  if (typeof change.add !== 'number') return { removed, added: fleet.insert(fleet.size, change.add) };
  return { removed, added: fleet.insertWithEuis(freeEuis(fleet, view, change.at, served, count)) };
}

/** The list position of a place in a creation-order view: where a device inserted there goes. */
function positionOf(fleet: LiveFleet, view: View, place: number): number {
  if (view.prefixes.length === 0) return place;
  const [id] = viewIds(fleet, view, place, place + 1);
  return id === undefined ? fleet.size : fleet.positionOf(id);
}

/** `count` EUIs no device has, at `at` of an EUI-ordered view (see FleetChange). */
function freeEuis(fleet: LiveFleet, view: View, at: FleetChange['at'], served: number, count: number): string[] {
  const length = viewLength(fleet, view);
  const euiAt = (place: number) => fleet.euiOf(viewIds(fleet, view, place, place + 1)[0] ?? 0);
  // Behind a place in the view's direction is below it ascending, above it descending.
  const behind: 1n | -1n = view.order === 'asc' ? -1n : 1n;
  if (length === 0) return walk(fleet.euiIndex(), view.prefixes[0] ?? '', 1n, count);
  if (at === 'unserved' || (typeof at === 'number' && at >= length)) return walk(fleet.euiIndex(), euiAt(length - 1), behind === 1n ? -1n : 1n, count);
  const from = at === 'served' ? Math.max(0, served - 1) : at;
  return walk(fleet.euiIndex(), euiAt(from), behind, count);
}

const LARGEST = 0xffff_ffff_ffff_ffffn;
/** How far to look for free EUIs before giving up: past a million devices in a row. */
const LOOK_AHEAD = 4_000_000;

/** The first `count` EUIs (16 hex digits) no device has, going from `start` (not included) in `step`'s direction. */
function walk(index: EuiIndex, start: string, step: 1n | -1n, count: number): string[] {
  const found: string[] = [];
  let value = firstAfter(start, step);
  for (let tries = 0; found.length < count; tries += 1) {
    if (value < 0n || value > LARGEST || tries > LOOK_AHEAD) throw new Error(`No free EUI ${step > 0n ? 'after' : 'before'} ${start}`);
    const eui = value.toString(16).toUpperCase().padStart(16, '0');
    if (index.find(eui) === undefined) found.push(eui);
    value += step;
  }
  return found;
}

/**
 * The first 16-hex-digit value past `start` in string order: the next number for a 16-digit
 * EUI; for a shorter one (an IMEI, a prefix) the first 16-digit string above or below it.
 */
function firstAfter(start: string, step: 1n | -1n): bigint {
  if (/^[0-9A-F]{16}$/.test(start)) return BigInt(`0x${start}`) + step;
  if (!/^[0-9A-F]{0,15}$/.test(start)) throw new Error(`Cannot place a device beside EUI ${start}`);
  if (step > 0n) return BigInt(`0x${start.padEnd(16, '0')}`);
  const below = BigInt(`0x${start || '0'}`) - 1n;
  if (below < 0n) throw new Error(`No EUI below ${start}`);
  return BigInt(`0x${below.toString(16).padStart(start.length, '0').padEnd(16, 'F')}`);
}
