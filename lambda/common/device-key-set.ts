import type { DeviceKey } from './device-key.ts';

/**
 * The keys of the devices a run has written: its de-duplication set, and the key index it
 * commits, the one structure of a run that grows with the fleet. A 7.3 brief has no `ref`,
 * so its key is `e` + its EUI; as a string in a Set that takes about 85 bytes a device on
 * the heap (the key, the EUI it was made from, the Set's entry), every one of them traced
 * by each full garbage collection. A key of that form (`e` and sixteen upper-case hex
 * digits) is kept instead as its EUI's 64 bits in a hash table of typed arrays, which the
 * collector does not trace: 16 to 32 bytes a device (8 a slot, a quarter to a half of the
 * slots filled). Every other key (a ref, an EUI of another length) stays in a Set as it is.
 * The two forms map one to one, so the key index stores the keys added.
 */
export class DeviceKeySet {
  readonly #others = new Set<DeviceKey>();
  readonly #euis = new EuiTable();

  static from(keys: Iterable<DeviceKey>): DeviceKeySet {
    const set = new DeviceKeySet();
    for (const key of keys) set.add(key);
    return set;
  }

  get size(): number {
    return this.#others.size + this.#euis.size;
  }

  has(key: DeviceKey): boolean {
    const hi = euiHigh(key);
    const lo = euiLow(key, hi);
    return lo < 0 ? this.#others.has(key) : this.#euis.ordinalOf(hi, lo) >= 0;
  }

  add(key: DeviceKey): this {
    const hi = euiHigh(key);
    const lo = euiLow(key, hi);
    if (lo < 0) this.#others.add(key);
    else this.#euis.add(hi, lo, 0);
    return this;
  }

  /** The keys not held as EUIs. */
  get others(): ReadonlySet<DeviceKey> {
    return this.#others;
  }

  /**
   * The EUI keys as their two 32-bit halves, smallest first, which is their order as
   * strings too: the key index writes them so (storage/key-index.ts), with no string made
   * per key.
   */
  forEachEui(each: (hi: number, lo: number) => void): void {
    this.#euis.forEachAscending(each);
  }
}

/**
 * Each device key's ordinal: 0 for the first key added, then 1, and so on; a key added again
 * keeps its first. What curation's comparison state indexes its per-device arrays by
 * (curate/fleet-state.ts), with EUI keys packed as DeviceKeySet packs them: 24 to 48 bytes a
 * device (12 a slot, a quarter to a half of the slots filled), against some 100 for a string
 * key in a Map.
 */
export class DeviceKeyOrdinals {
  readonly #others = new Map<DeviceKey, number>();
  readonly #euis = new EuiTable({ ordinals: true });
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The key's ordinal, or -1 when it was never added. */
  ordinalOf(key: DeviceKey): number {
    const hi = euiHigh(key);
    return this.#held(key, hi, euiLow(key, hi));
  }

  /** Adds the key if it is new; its ordinal either way (`size - 1` after the call when it was new). */
  add(key: DeviceKey): number {
    const hi = euiHigh(key);
    const lo = euiLow(key, hi);
    const held = this.#held(key, hi, lo);
    if (held >= 0) return held;
    const ordinal = this.#size;
    if (lo < 0) this.#others.set(key, ordinal);
    else this.#euis.add(hi, lo, ordinal);
    this.#size += 1;
    return ordinal;
  }

  /** The ordinal of a key whose EUI halves are read already (-1 each when it is not an EUI key). */
  #held(key: DeviceKey, hi: number, lo: number): number {
    return lo < 0 ? (this.#others.get(key) ?? -1) : this.#euis.ordinalOf(hi, lo);
  }
}

/** The high half of an EUI key's value; -1 when the key is not one (see euiHalf). */
function euiHigh(key: DeviceKey): number {
  return typeof key === 'string' ? euiHalf(key, 1) : -1;
}

/** The low half, given the high one; -1 when the key is not an EUI key. */
function euiLow(key: DeviceKey, high: number): number {
  return high < 0 ? -1 : euiHalf(key as string, 9);
}

/**
 * Eight upper-case hex digits of an EUI key from `from` on, as a number; -1 unless the key is
 * `e` and exactly sixteen of them. Read by char code: no string is made per key.
 */
function euiHalf(key: string, from: number): number {
  if (key.length !== 17 || key.charCodeAt(0) !== 0x65) return -1;
  let value = 0;
  for (let at = from; at < from + 8; at += 1) {
    const code = key.charCodeAt(at);
    const digit = code >= 0x30 && code <= 0x39 ? code - 0x30 : code >= 0x41 && code <= 0x46 ? code - 0x37 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

const INITIAL_SLOTS = 1024;

/**
 * A set of 64-bit values as (hi, lo) pairs of 32 bits, in one Uint32Array: open addressing,
 * linear probing, at most half full. The pair (0, 0) marks an empty slot, so the value 0 is
 * kept apart. With `ordinals`, each value also keeps the number it was added with, in an
 * Int32Array beside the slots (4 bytes a slot that a plain set does not pay for).
 */
class EuiTable {
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #ordinals: Int32Array | undefined;
  #mask = INITIAL_SLOTS - 1;
  /** The value 0's ordinal, -1 while it is not held. */
  #zero = -1;
  #filled = 0;

  constructor(options: { ordinals: boolean } = { ordinals: false }) {
    if (options.ordinals) this.#ordinals = new Int32Array(INITIAL_SLOTS);
  }

  get size(): number {
    return this.#filled + (this.#zero >= 0 ? 1 : 0);
  }

  /** The value's ordinal (0 in a table without ordinals), or -1 when it is not held. */
  ordinalOf(hi: number, lo: number): number {
    if (hi === 0 && lo === 0) return this.#zero;
    const slot = this.#slotOf(hi, lo);
    return slot < 0 ? -1 : (this.#ordinals?.[slot] ?? 0);
  }

  /** Adds the value with its ordinal, unless it is held already. */
  add(hi: number, lo: number, ordinal: number): void {
    if (hi === 0 && lo === 0) {
      if (this.#zero < 0) this.#zero = ordinal;
      return;
    }
    if (this.#slotOf(hi, lo) >= 0) return;
    if (2 * (this.#filled + 1) > this.#mask + 1) this.#grow();
    this.#put(this.#slots, this.#ordinals, this.#mask, hi, lo, ordinal);
    this.#filled += 1;
  }

  /**
   * Every value, smallest first: a copy of the filled slots as (lo, hi) pairs, sorted in
   * place as 64-bit integers by the engine, with no value made per key. The pairs read as
   * those integers on a little-endian machine (as Lambda's are); on another the order
   * would be lost, not a value.
   */
  forEachAscending(each: (hi: number, lo: number) => void): void {
    const pairs = new Uint32Array(2 * this.#filled);
    const slots = this.#slots;
    let filled = 0;
    for (let at = 0; at < slots.length; at += 2) {
      const hi = slots[at] as number;
      const lo = slots[at + 1] as number;
      if (hi === 0 && lo === 0) continue;
      pairs[filled++] = lo;
      pairs[filled++] = hi;
    }
    new BigUint64Array(pairs.buffer).sort();
    if (this.#zero >= 0) each(0, 0);
    for (let at = 0; at < pairs.length; at += 2) each(pairs[at + 1] as number, pairs[at] as number);
  }

  /** The value's slot, or -1 when it is not held. */
  #slotOf(hi: number, lo: number): number {
    const slots = this.#slots;
    for (let slot = mix(hi, lo) & this.#mask; ; slot = (slot + 1) & this.#mask) {
      const slotHi = slots[2 * slot] as number;
      const slotLo = slots[2 * slot + 1] as number;
      if (slotHi === hi && slotLo === lo) return slot;
      if (slotHi === 0 && slotLo === 0) return -1;
    }
  }

  #put(slots: Uint32Array, ordinals: Int32Array | undefined, mask: number, hi: number, lo: number, ordinal: number): void {
    let slot = mix(hi, lo) & mask;
    while (slots[2 * slot] !== 0 || slots[2 * slot + 1] !== 0) slot = (slot + 1) & mask;
    slots[2 * slot] = hi;
    slots[2 * slot + 1] = lo;
    if (ordinals) ordinals[slot] = ordinal;
  }

  #grow(): void {
    const old = this.#slots;
    const oldOrdinals = this.#ordinals;
    const mask = 2 * (this.#mask + 1) - 1;
    const slots = new Uint32Array(2 * (mask + 1));
    const ordinals = oldOrdinals && new Int32Array(mask + 1);
    for (let at = 0; at < old.length; at += 2) {
      const hi = old[at] as number;
      const lo = old[at + 1] as number;
      if (hi !== 0 || lo !== 0) this.#put(slots, ordinals, mask, hi, lo, oldOrdinals?.[at / 2] ?? 0);
    }
    this.#slots = slots;
    this.#ordinals = ordinals;
    this.#mask = mask;
  }
}

/**
 * Both halves into one 32-bit hash (murmur3's finaliser): EUIs of one vendor share their
 * high half and differ in the low one, so neither half alone spreads them over the table.
 */
function mix(hi: number, lo: number): number {
  let hash = lo ^ Math.imul(hi, 0x9e3779b1);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}
