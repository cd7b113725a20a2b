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
    const hi = typeof key === 'string' ? euiHalf(key, 1) : -1;
    const lo = hi < 0 ? -1 : euiHalf(key as string, 9);
    return lo < 0 ? this.#others.has(key) : this.#euis.has(hi, lo);
  }

  add(key: DeviceKey): this {
    const hi = typeof key === 'string' ? euiHalf(key, 1) : -1;
    const lo = hi < 0 ? -1 : euiHalf(key as string, 9);
    if (lo < 0) this.#others.add(key);
    else this.#euis.add(hi, lo);
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
 * kept by a flag of its own.
 */
class EuiTable {
  #slots = new Uint32Array(2 * INITIAL_SLOTS);
  #mask = INITIAL_SLOTS - 1;
  #zero = false;
  #filled = 0;

  get size(): number {
    return this.#filled + (this.#zero ? 1 : 0);
  }

  has(hi: number, lo: number): boolean {
    if (hi === 0 && lo === 0) return this.#zero;
    return this.#slotOf(hi, lo) >= 0;
  }

  add(hi: number, lo: number): void {
    if (hi === 0 && lo === 0) {
      this.#zero = true;
      return;
    }
    const slot = this.#slotOf(hi, lo);
    if (slot >= 0) return;
    if (2 * (this.#filled + 1) > this.#mask + 1) this.#grow();
    this.#put(this.#slots, this.#mask, hi, lo);
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
    if (this.#zero) each(0, 0);
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

  #put(slots: Uint32Array, mask: number, hi: number, lo: number): void {
    let slot = mix(hi, lo) & mask;
    while (slots[2 * slot] !== 0 || slots[2 * slot + 1] !== 0) slot = (slot + 1) & mask;
    slots[2 * slot] = hi;
    slots[2 * slot + 1] = lo;
  }

  #grow(): void {
    const old = this.#slots;
    const mask = 2 * (this.#mask + 1) - 1;
    const slots = new Uint32Array(2 * (mask + 1));
    for (let at = 0; at < old.length; at += 2) {
      const hi = old[at] as number;
      const lo = old[at + 1] as number;
      if (hi !== 0 || lo !== 0) this.#put(slots, mask, hi, lo);
    }
    this.#slots = slots;
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
