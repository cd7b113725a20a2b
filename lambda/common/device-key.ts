/**
 * A device's identity for de-duplication. The set of them is the one structure of a run
 * that grows with the fleet: refs that are plain decimal integers, as older deployments'
 * are, are kept as numbers (about 20 MB per million devices in a Set); EUI keys, all a 7.3
 * platform's briefs give, are packed by the set itself (device-key-set.ts). A string key is
 * never a canonical integer, so the two kinds cannot collide, and an EUI key is always a
 * string.
 */
export type DeviceKey = string | number;

const CANONICAL_INTEGER = /^(?:0|[1-9]\d{0,14})$/;

/** De-duplication key: the device's `ref`, else its EUI (case-insensitive). */
export function deviceKey(brief: Readonly<Record<string, unknown>>): DeviceKey | undefined {
  const { ref, EUI } = brief;
  if (typeof ref === 'number') return Number.isSafeInteger(ref) && ref >= 0 ? ref : String(ref);
  if (typeof ref === 'string' && ref !== '') return CANONICAL_INTEGER.test(ref) ? Number(ref) : ref;
  if (typeof EUI === 'string' && EUI !== '') return `e${EUI.toUpperCase()}`;
  return undefined;
}
