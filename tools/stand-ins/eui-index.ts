/**
 * A fleet's devices in EUI order (string order of the upper-case EUI, as the platform sorts
 * `sort=EUI`): what makes a cursor page, a prefix filter's count and a cursor's position cost
 * a binary search instead of a scan. Built once per fleet, on first use; kept up to date as
 * devices come and go.
 */
export class EuiIndex {
  /** EUIs in ascending order, and the device at each place (equal EUIs in creation order). */
  readonly #euis: string[];
  readonly #ids: number[];

  /** The index of `ids` (in creation order), each with the EUI `euiOf` gives it. */
  constructor(ids: readonly number[], euiOf: (id: number) => string) {
    const keys = ids.map(euiOf);
    const order = Array.from(keys, (_, place) => place);
    order.sort((a, b) => compare(keys[a] ?? '', keys[b] ?? ''));
    this.#euis = order.map((place) => keys[place] ?? '');
    this.#ids = order.map((place) => ids[place] ?? 0);
  }

  get size(): number {
    return this.#euis.length;
  }

  euiAt(place: number): string {
    return this.#euis[place] ?? '';
  }

  idAt(place: number): number {
    return this.#ids[place] ?? 0;
  }

  /** The first place whose EUI is not below `eui`. */
  lowerBound(eui: string): number {
    let low = 0;
    let high = this.#euis.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#euis[middle] ?? '') < eui) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The first place whose EUI is above `eui`. */
  upperBound(eui: string): number {
    let low = 0;
    let high = this.#euis.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#euis[middle] ?? '') <= eui) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * The places of the devices whose EUI starts with one of `prefixes` (already normalised:
   * see `normalisePrefixes`), as disjoint ranges `[from, to)` in ascending order.
   */
  ranges(prefixes: readonly string[]): [number, number][] {
    return prefixes.map((prefix) => [this.lowerBound(prefix), this.lowerBound(`${prefix}\uffff`)]);
  }

  /** A device with this EUI, if the fleet has one. */
  find(eui: string): number | undefined {
    const place = this.lowerBound(eui);
    return this.#euis[place] === eui ? this.#ids[place] : undefined;
  }

  insert(id: number, eui: string): void {
    const place = this.upperBound(eui);
    this.#euis.splice(place, 0, eui);
    this.#ids.splice(place, 0, id);
  }

  remove(id: number, eui: string): void {
    for (let place = this.lowerBound(eui); this.#euis[place] === eui; place += 1) {
      if (this.#ids[place] !== id) continue;
      this.#euis.splice(place, 1);
      this.#ids.splice(place, 1);
      return;
    }
  }
}

/**
 * A `devEUI` filter as a set of disjoint prefixes: upper case, sorted, without those a
 * shorter one already covers. No prefix at all means no filter (every device).
 */
export function normalisePrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes.map((prefix) => prefix.toUpperCase()))].sort(compare);
  const kept: string[] = [];
  for (const prefix of sorted) if (!kept.some((shorter) => prefix.startsWith(shorter))) kept.push(prefix);
  return kept;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
