/**
 * The EUI space, cut into disjoint ranges that the device list's `devEUI` prefix filter can
 * select, so that several cursor sweeps can read one fleet at once without offsets.
 *
 * A range is every EUI that starts with its prefix. Identifiers are LoRaWAN DevEUIs (16
 * upper-case hex digits) and cellular IMEIs (15 decimal digits), so the sixteen hex digits
 * cover every next character: the children of a prefix are that prefix and one more digit.
 * The platform sorts by EUI as strings, so a range's first and last EUIs (one `asc` and one
 * `desc` page) bound everything in it: only the digits between theirs, at the first place
 * they differ, can have devices, and a fleet whose devices share a vendor's OUI
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
 * The prefixes that split the range `prefix`, given its first and last EUI: one per digit
 * between theirs where they first differ. Undefined when the range cannot be split that
 * way: one EUI is the start of the other (a device whose whole EUI is the shared prefix
 * would be in no child), or a digit where they differ is not a hex digit.
 */
export function childPrefixes(prefix: string, first: string, last: string): string[] | undefined {
  const shared = commonPrefix(first, last);
  if (!shared.startsWith(prefix) || shared.length >= first.length || shared.length >= last.length) return undefined;
  const from = EUI_DIGITS.indexOf(first.charAt(shared.length));
  const to = EUI_DIGITS.indexOf(last.charAt(shared.length));
  if (from < 0 || to < 0 || from > to) return undefined;
  return [...EUI_DIGITS.slice(from, to + 1)].map((digit) => `${shared}${digit}`);
}

/**
 * How many pages a range may hold and still be read by its own two sweeps (one from each
 * end) rather than split: the fleet's pages shared among the sweeps the window can keep on
 * the wire, so that the longest range is about as long as the others. Never below two, so
 * that small fleets are not split into ranges of one page, each costing a probe.
 */
export function rangePagesTarget(fleetCount: number, pageSize: number, sweeps: number): number {
  const pages = Math.ceil(fleetCount / Math.max(1, pageSize));
  return Math.max(2, Math.ceil(pages / Math.max(1, Math.floor(sweeps / 2))));
}

/** Whether a range of `count` devices is worth splitting (it is more pages than the target). */
export function worthSplitting(count: number | undefined, pageSize: number, target: number): boolean {
  return count !== undefined && Math.ceil(count / Math.max(1, pageSize)) > target;
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
