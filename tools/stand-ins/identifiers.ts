/**
 * The EUIs of a generated fleet. Each is a pure function of the device's index: two runs,
 * or two processes, agree, no two indexes share an EUI, and a million of them take about a
 * second to make.
 *
 * - `'one-oui'`: `70B3D5` and the index, one vendor's dense block (what the simulator made
 *   before identifiers were an option).
 * - `'skewed'`: the shape of a real subscription. Of every hundred devices, 95 come from one
 *   vendor's block under `70B3D5` (dense, in creation order), 4 are DevEUIs of other vendors
 *   spread over the whole 16-hex-digit space, and 1 is a cellular device, whose EUI is its
 *   IMEI: 15 decimal digits.
 * - `'uniform'`: 16-hex-digit EUIs spread evenly over the space, none clustered.
 */
export type Identifiers = 'one-oui' | 'skewed' | 'uniform';

/** The vendor block of `'one-oui'` and `'skewed'`: the IEEE's `70B3D5` registry. */
const VENDOR_BLOCK = 0x70b3d5;

/** Type allocation codes (an IMEI's first 8 digits) the cellular devices are spread over. */
const TACS = ['35361311', '35473810', '86012305', '35925406'];

/** The EUI (upper case) of the i-th generated device under `identifiers`. */
export function simulatedEui(i: number, identifiers: Identifiers): string {
  if (identifiers === 'one-oui') return vendorEui(i);
  if (identifiers === 'uniform') return spreadEui(i);
  const batch = Math.floor(i / 100);
  const slot = i % 100;
  if (slot < 95) return vendorEui(batch * 95 + slot);
  if (slot < 99) return spreadOutsideBlock(batch * 4 + slot - 95);
  return imei(batch);
}

function vendorEui(serial: number): string {
  return `70B3D5${serial.toString(16).toUpperCase().padStart(10, '0')}`;
}

function spreadEui(k: number): string {
  const [high, low] = permute(Math.floor(k / 2 ** 32) >>> 0, k >>> 0);
  return hex8(high) + hex8(low);
}

/**
 * As `spreadEui`, but never inside the vendor block: where the permutation lands there, it
 * is applied again until it leaves (cycle walking). Every k here lies outside the block
 * itself (its high half is 0), so this stays one-to-one.
 */
function spreadOutsideBlock(k: number): string {
  let [high, low] = permute(0, k >>> 0);
  while (high >>> 8 === VENDOR_BLOCK) [high, low] = permute(high, low);
  return hex8(high) + hex8(low);
}

/** A permutation of the 64-bit values (as two 32-bit halves): a four-round Feistel network. */
function permute(high: number, low: number): [number, number] {
  let left = high;
  let right = low;
  for (let round = 0; round < 4; round += 1) {
    let mixed = Math.imul(right ^ (0x9e3779b9 + round), 0x85ebca6b);
    mixed ^= mixed >>> 13;
    mixed = Math.imul(mixed, 0xc2b2ae35);
    mixed ^= mixed >>> 16;
    [left, right] = [right, (left ^ mixed) >>> 0];
  }
  return [left, right];
}

/** The k-th cellular device's IMEI: a type allocation code, a 6-digit serial, the Luhn digit. */
function imei(k: number): string {
  const body = `${TACS[k % TACS.length] ?? ''}${String(Math.floor(k / TACS.length)).padStart(6, '0')}`;
  let sum = 0;
  for (let position = 0; position < body.length; position += 1) {
    const digit = Number(body[position]) * (position % 2 === 1 ? 2 : 1);
    sum += digit > 9 ? digit - 9 : digit;
  }
  return `${body}${(10 - (sum % 10)) % 10}`;
}

function hex8(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}
