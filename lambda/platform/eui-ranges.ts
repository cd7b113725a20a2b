/**
 * The EUI space, cut into disjoint ranges that the device list's `devEUI` prefix filter can
 * select, so that several cursor sweeps can read one fleet at once without offsets.
 *
 * A range is every EUI that starts with one of its prefixes (the filter is repeatable and
 * selects their union), consecutive prefixes of one length. Identifiers are LoRaWAN DevEUIs
 * (16 upper-case hex digits) and cellular IMEIs (15 decimal digits), so the sixteen hex
 * digits cover every next character. The platform sorts by EUI as strings, so a range's
 * first and last EUIs (one `asc` and one `desc` page) bound everything in it: only the
 * prefixes between theirs can have devices, and a fleet whose devices share a vendor's OUI
 * (`70B3D5...`) is split past those six digits in one step.
 *
 * Nothing here trusts that assumption blindly: a device outside every range is noticed
 * by the counts (see `shortfall`), and the run then reads the list in one unfiltered sweep.
 */

export const EUI_DIGITS = '0123456789ABCDEF';

/** An EUI as the ranges compare it: upper case, as the platform sorts and filters it. */
export function euiOf(brief: Record<string, unknown>): string | undefined {
  const { EUI } = brief;
  return typeof EUI === 'string' && EUI.length > 0 ? EUI.toUpperCase() : undefined;
}

function commonPrefix(a: string, b: string): string {
  let end = 0;
  while (end < a.length && end < b.length && a[end] === b[end]) end += 1;
  return a.slice(0, end);
}

/**
 * How to split a range whose first and last EUIs are `first` and `last` and which holds
 * `count` devices into ranges of about `perRange` devices: groups of consecutive prefixes,
 * one level of the EUI's digits deep enough that there are enough of them for groups of even
 * size (`tooCoarse`). Devices are
 * assumed spread evenly between the two EUIs; a group that turns out larger (a skewed
 * fleet) is split again when its own first page shows it. Undefined when the range cannot
 * be split that way: one EUI is the start of the other (a device whose whole EUI is the
 * shared part would be in no group), or a digit is not hex. `within`, the range's own
 * prefixes, keeps the groups inside it: they are never shorter than those.
 */
export function splitRange(first: string, last: string, count: number, perRange: number, within: readonly string[] = []): string[][] | undefined {
  const shared = commonPrefix(first, last);
  const deepest = Math.min(first.length, last.length);
  // Never shallower than the range's own prefixes: a shorter prefix would reach into a neighbour's range.
  const shallowest = Math.max(shared.length + 1, ...within.map((prefix) => prefix.length));
  if (shallowest > deepest) return undefined;
  const wanted = Math.max(2, Math.ceil(count / Math.max(1, perRange)));
  for (let depth = shallowest; depth <= deepest; depth += 1) {
    const span = prefixSpan(first, last, shared.length, depth);
    if (span === undefined) return undefined;
    if (depth < deepest && tooCoarse(span, wanted, prefixSpan(first, last, shared.length, depth + 1))) continue;
    const from = BigInt(`0x${first.slice(shared.length, depth)}`);
    const prefixes = Array.from(
      { length: Number(span) },
      (_, i) =>
        `${shared}${(from + BigInt(i))
          .toString(16)
          .toUpperCase()
          .padStart(depth - shared.length, '0')}`,
    );
    return groups(prefixes, Math.min(wanted, prefixes.length));
  }
  return undefined;
}

const HEX = /^[0-9A-F]+$/;

/** How many prefixes of `depth` digits lie between those of `first` and `last` (which share `shared` digits); undefined if not hex. */
function prefixSpan(first: string, last: string, shared: number, depth: number): bigint | undefined {
  const low = first.slice(shared, depth);
  const high = last.slice(shared, depth);
  if (!HEX.test(low) || !HEX.test(high)) return undefined;
  return BigInt(`0x${high}`) - BigInt(`0x${low}`) + 1n;
}

/**
 * Whether `span` prefixes are too few to make `wanted` even groups, so the split goes one
 * digit deeper. With fewer than EVEN_PREFIXES a group, one prefix more in some groups than
 * in others makes those up to twice the size of the rest (16 one-digit prefixes in 13
 * groups: three of two), and a group that large is split again, for two more probes and
 * two more ranges' last pages. One digit deeper, a group holds sixteen times the prefixes
 * and its share is even to a sixteenth; unless a request would then carry more than
 * MAX_GROUP_PREFIXES `devEUI` filters.
 */
function tooCoarse(span: bigint, wanted: number, deeper: bigint | undefined): boolean {
  if (span < BigInt(wanted)) return true;
  return span < BigInt(wanted * EVEN_PREFIXES) && deeper !== undefined && deeper <= BigInt(wanted * MAX_GROUP_PREFIXES);
}

const EVEN_PREFIXES = 4;
const MAX_GROUP_PREFIXES = 32;

/**
 * How many devices a split's groups are planned for: the range's middle (what its two
 * probes did not hold), unless the probes say it is concentrated. The groups share the
 * prefixes between the probes evenly, which is right where the devices spread evenly, as
 * they do through a vendor's block of serials. Where the middle holds far more than the
 * probes' own density predicts over its span (both ends sparse: other vendors' DevEUIs and
 * IMEIs around one OUI's block), most of it sits somewhere in that span, and groups planned
 * for all of it would be many that hold a few devices each, each costing a request for a
 * page far from full (a skewed fleet of 100 pages: 12 such ranges). The groups are then
 * planned for what the probes' density predicts, and never fewer than CONCENTRATED_GROUPS:
 * the concentration falls in one of them, whose own probes split it again (in one step,
 * once both of its probes reach into it), and the others are read as they are.
 */
export function plannedCount(middle: number, asc: readonly string[], desc: readonly string[], perRange: number): number {
  return concentrated(middle, asc, desc) ? Math.max(CONCENTRATED_GROUPS * perRange, spreadCount(asc, desc)) : middle;
}

/** Whether a range's middle holds far more than its probes' density predicts: one block somewhere between two sparse ends (plannedCount). */
export function concentrated(middle: number, asc: readonly string[], desc: readonly string[]): boolean {
  return middle > CONCENTRATION * spreadCount(asc, desc);
}

/** How many times what the probes' density predicts the middle must hold to count as concentrated. */
const CONCENTRATION = 8;
const CONCENTRATED_GROUPS = 4;

/**
 * How many devices lie between a range's two probes (`asc` as served, `desc` as served: its
 * last EUI the lowest) at the density of the denser of their inner halves (the halves nearer
 * the middle). Unbounded where a probe is too short to tell, or its inner half has one EUI.
 */
function spreadCount(asc: readonly string[], desc: readonly string[]): number {
  const low = asc.at(-1);
  const high = desc.at(-1);
  if (low === undefined || high === undefined || asc.length < 4 || desc.length < 4) return Number.POSITIVE_INFINITY;
  return Math.max(innerDensity(asc), innerDensity(desc)) * Math.max(0, position(high) - position(low));
}

/** Devices per unit of the EUI space over the second half of a probe's EUIs. */
function innerDensity(euis: readonly string[]): number {
  const inner = euis.slice(Math.floor(euis.length / 2));
  const span = Math.abs(position(inner.at(-1) ?? '') - position(inner[0] ?? ''));
  return span === 0 ? Number.POSITIVE_INFINITY : (inner.length - 1) / span;
}

/** Where an EUI sits in the EUI space, as a fraction of it: its first 13 digits read as hex, as the platform sorts them (13 fit a double exactly). */
export function position(eui: string): number {
  let at = 0;
  let scale = 1;
  for (let i = 0; i < 13; i += 1) {
    scale /= 16;
    const digit = parseInt(eui[i] ?? '0', 16);
    at += (Number.isNaN(digit) ? 0 : digit) * scale;
  }
  return at;
}

/** `items` in `count` runs of consecutive items, as even as can be. */
function groups<T>(items: T[], count: number): T[][] {
  return Array.from({ length: count }, (_, i) => items.slice(Math.floor((i * items.length) / count), Math.floor(((i + 1) * items.length) / count)));
}

/**
 * How many pages a range may hold and still be read by one sweep rather than split: the
 * fleet's pages shared among the sweeps the window can keep on the wire, so that the
 * longest range is about as long as the others, and never under MIN_RANGE_PAGES: each
 * range ends on a page that is not full, so many short ranges would cost more requests
 * than the pages of the fleet.
 */
export function rangePagesTarget(fleetCount: number, pageSize: number, sweeps: number): number {
  const pages = Math.ceil(fleetCount / Math.max(1, pageSize));
  return Math.max(MIN_RANGE_PAGES, Math.ceil(pages / Math.max(1, sweeps)));
}

/**
 * The fewest pages a range is split into. A range's last page is half full on average, so
 * ranges of at least eight pages keep the requests within about 6 % of the fleet's pages;
 * a fleet of 100 pages is then read by 13 sweeps at once, of 8 round trips each.
 */
export const MIN_RANGE_PAGES = 8;

/**
 * Whether a range of `count` devices is worth splitting: more than half again the target.
 * The groups a split makes hold whole prefixes, so they come out near the target but not
 * at it; one a little over is read as it is rather than split again for two more probes.
 */
export function worthSplitting(count: number | undefined, pageSize: number, target: number): boolean {
  return count !== undefined && Math.ceil(count / Math.max(1, pageSize)) > SPLIT_SLACK * target;
}

const SPLIT_SLACK = 1.5;

/** Whether an EUI is inside a range: it starts with one of its prefixes (none: the whole fleet). */
export function inRange(eui: string, prefixes: readonly string[]): boolean {
  return prefixes.length === 0 || prefixes.some((prefix) => eui.startsWith(prefix));
}

/**
 * How many devices a read is short of what the platform counted, or 0. The list changes
 * while it is read, so the counts it gave at the start and at the end differ: a read that
 * missed nothing has at least every device that existed throughout, which is at least the
 * smaller of the two when devices were only deleted, or only added (the ones added behind
 * a cursor are seen by the next run). A read short of even that lost devices: a filter the
 * platform ignored or applied differently, an EUI outside the ranges, a range that ended
 * early.
 */
export function shortfall(read: number, counts: readonly (number | undefined)[]): number {
  const known = counts.filter((count): count is number => count !== undefined);
  return known.length === 0 ? 0 : Math.max(0, Math.min(...known) - read);
}
