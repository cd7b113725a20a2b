import { EuiIndex } from './eui-index.ts';
import { simulatedEui, type Identifiers } from './identifiers.ts';

/** A device brief as ThingPark sends it: an open JSON object. */
export type Brief = Record<string, unknown>;

/** What a generated brief looks like: how its EUI is made, and whether it carries a `ref`. */
export interface BriefShape {
  identifiers: Identifiers;
  /** Older deployments send a `ref` (and an `href` by it); the 7.3 brief has none. */
  ref: boolean;
}

/** The shape the simulator generated before either was an option. */
const OLDER_SHAPE: BriefShape = { identifiers: 'one-oui', ref: true };

const DEVICE_PATH = '/thingpark/wireless/rest/subscriptions/mine/devices/';
const HEALTH = ['ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE', 'BATTERY_LOW', 'NEVER_SEEN'];
const MODELS = ['Abeeway Micro Tracker', 'Adeunis FTD', 'Elsys ERS CO2', 'Milesight EM300'];
const EPOCH = 1_790_000_000_000;

/**
 * The i-th device of a simulated fleet, deterministic so two runs (or two processes) agree.
 * It carries every field public code has seen on a brief, plus one no document names, to
 * prove that unknown fields travel through untouched.
 */
export function simulatedBrief(i: number, shape: BriefShape = OLDER_SHAPE): Brief {
  const EUI = simulatedEui(i, shape.identifiers);
  const ref = refOf(i);
  const brief = {
    EUI,
    name: `sensor-${i}`,
    nwAddress: (0x26000000 + i).toString(16).toUpperCase(),
    healthState: HEALTH[i % HEALTH.length],
    model: { commercialName: MODELS[i % MODELS.length] },
    networkSubscription: { commercialName: 'LoRaWAN Basic' },
    appServersRoutingProfile: { name: 'aws-iot-core' },
    lastUpTimestamp: EPOCH - i * 1000,
    lastDwTimestamp: EPOCH - i * 2000,
    lastRSSI: -60 - (i % 60),
    lastSNR: (i % 20) - 5.5,
    avgRSSI: -70 - (i % 40),
    avgSNR: (i % 15) - 2.25,
    lastSF: 7 + (i % 6),
    lastBatLevel: i % 101,
    alarmCount: i % 3,
    alarmLevel: i % 4,
    lat: 48.85 + (i % 1000) / 10_000,
    lon: 2.35 + (i % 997) / 10_000,
    href: `${DEVICE_PATH}${shape.ref ? ref : `e${EUI}`}`,
    customerData: { site: `site-${i % 10}`, tags: ['pilot', `batch-${i % 7}`] },
  };
  // `ref` leads, as it did; spread after it, not before: an object literal that opens with a
  // spread is built on V8's slow path, some fifteen times slower to make and to serialise.
  return shape.ref ? { ref, ...brief } : brief;
}

function refOf(i: number): string {
  return String(2_000_000 + i);
}

/** A fleet: either a size (devices made on the fly, for millions) or explicit briefs. */
export type Fleet = number | Brief[];

export function fleetSize(fleet: Fleet): number {
  return typeof fleet === 'number' ? fleet : fleet.length;
}

/** Devices a fleet gains are generated from this index on: refs no fleet here starts with. */
const ADDED_FROM = 5_000_000;

/**
 * A fleet that changes while it is read, as a real one does: devices removed at, or added
 * at, positions of the list (creation order). Until the first change it is the fleet it was
 * made from (a million generated devices cost nothing); the first change makes it a list of
 * device ids. The EUI order (`euiIndex`) is built on first use and then kept up to date.
 *
 * A device id is its index for a generated device, and -(k + 1) for the k-th explicit brief
 * (the fleet's own, then those added): ids never change, so a brief rendered once for an id
 * stays right.
 */
export class LiveFleet {
  #order: number[] | undefined;
  readonly #explicit: Brief[];
  #added = 0;
  #index: EuiIndex | undefined;
  #version = 0;
  #positions: { version: number; of: Map<number, number> } | undefined;
  #present: { version: number; ids: Set<number> } | undefined;
  #matching = new Map<string, { version: number; ids: number[] }>();

  constructor(
    readonly source: Fleet,
    readonly shape: BriefShape = OLDER_SHAPE,
  ) {
    this.#explicit = typeof source === 'number' ? [] : [...source];
  }

  get size(): number {
    return this.#order?.length ?? fleetSize(this.source);
  }

  /** How many changes the fleet has had: 0 while it is the fleet it was made from. */
  get version(): number {
    return this.#version;
  }

  /** The ids of the devices at positions `[start, end)` of the list. */
  ids(start: number, end: number): number[] {
    if (this.#order) return this.#order.slice(start, end);
    const ids: number[] = [];
    for (let position = Math.max(0, start); position < Math.min(end, this.size); position += 1) ids.push(this.#pristineId(position));
    return ids;
  }

  brief(id: number): Brief {
    return id >= 0 ? simulatedBrief(id, this.shape) : (this.#explicit[-id - 1] ?? {});
  }

  /** The device's EUI in upper case ('' when its brief has none), without making its brief. */
  euiOf(id: number): string {
    if (id >= 0) return simulatedEui(id, this.shape.identifiers);
    const EUI = this.#explicit[-id - 1]?.EUI;
    return typeof EUI === 'string' ? EUI.toUpperCase() : '';
  }

  /** The fleet in EUI order. */
  euiIndex(): EuiIndex {
    this.#index ??= new EuiIndex(this.#order ?? this.ids(0, this.size), (id) => this.euiOf(id));
    return this.#index;
  }

  /**
   * The ids of the devices whose EUI starts with one of `prefixes` (normalised), in
   * creation order. Found through the EUI order and kept until the fleet changes.
   */
  matching(prefixes: readonly string[]): number[] {
    const key = prefixes.join('\n');
    const cached = this.#matching.get(key);
    if (cached?.version === this.#version) return cached.ids;
    const index = this.euiIndex();
    const ids: number[] = [];
    for (const [from, to] of index.ranges(prefixes)) for (let place = from; place < to; place += 1) ids.push(index.idAt(place));
    const position = this.#positionOf();
    ids.sort((a, b) => position(a) - position(b));
    // A handful of filters at a time is what clients use; more would only hold memory.
    if (this.#matching.size >= 64) this.#matching.clear();
    this.#matching.set(key, { version: this.#version, ids });
    return ids;
  }

  /** Removes `count` devices from position `at` on; returns them. */
  remove(at: number, count: number): Brief[] {
    return this.#forget(this.#list().splice(Math.max(0, at), count));
  }

  /** Removes these devices; returns them. */
  removeIds(ids: readonly number[]): Brief[] {
    const gone = new Set(ids);
    this.#order = this.#list().filter((id) => !gone.has(id));
    return this.#forget([...gone]);
  }

  /** Inserts devices at position `at`: these briefs, or that many new generated ones; returns them. */
  insert(at: number, devices: number | Brief[]): Brief[] {
    const added =
      typeof devices === 'number' ? Array.from({ length: devices }, () => ADDED_FROM + this.#added++) : devices.map((brief) => -this.#explicit.push(brief));
    this.#list().splice(Math.max(0, at), 0, ...added);
    this.#version += 1;
    for (const id of added) this.#index?.insert(id, this.euiOf(id));
    return added.map((id) => this.brief(id));
  }

  /** Adds, at the end of the list, new generated devices with these EUIs instead of their own; returns them. */
  insertWithEuis(euis: readonly string[]): Brief[] {
    return this.insert(
      this.size,
      euis.map((EUI) => {
        const brief = simulatedBrief(ADDED_FROM + this.#added++, this.shape);
        return { ...brief, EUI, ...(this.shape.ref ? {} : { href: `${DEVICE_PATH}e${EUI}` }) };
      }),
    );
  }

  /** A device's position in the list, by its id. */
  positionOf(id: number): number {
    return this.#positionOf()(id);
  }

  /** The device the single-device route names `id`: `e` and its EUI (any case), or its ref where briefs carry one. */
  find(id: string): Brief | undefined {
    if (id.startsWith('e')) {
      const found = this.euiIndex().find(id.slice(1).toUpperCase());
      return found === undefined ? undefined : this.brief(found);
    }
    const generated = Number(id) - 2_000_000;
    if (this.shape.ref && Number.isInteger(generated) && generated >= 0 && this.#has(generated)) return this.brief(generated);
    const explicit = this.#explicit.findIndex(
      (brief, k) => (typeof brief.ref === 'string' || typeof brief.ref === 'number') && String(brief.ref) === id && this.#has(-k - 1),
    );
    return explicit < 0 ? undefined : this.#explicit[explicit];
  }

  #forget(ids: number[]): Brief[] {
    this.#version += 1;
    for (const id of ids) this.#index?.remove(id, this.euiOf(id));
    return ids.map((id) => this.brief(id));
  }

  #has(id: number): boolean {
    if (!this.#order) return id >= 0 ? typeof this.source === 'number' && id < this.source : typeof this.source !== 'number' && -id - 1 < this.source.length;
    if (this.#present?.version !== this.#version) this.#present = { version: this.#version, ids: new Set(this.#order) };
    return this.#present.ids.has(id);
  }

  /** A device's position in the list, by its id. */
  #positionOf(): (id: number) => number {
    if (!this.#order) return (id) => (id >= 0 ? id : -id - 1);
    if (this.#positions?.version !== this.#version)
      this.#positions = { version: this.#version, of: new Map(this.#order.map((id, position) => [id, position])) };
    const of = this.#positions.of;
    return (id) => of.get(id) ?? 0;
  }

  #pristineId(position: number): number {
    return typeof this.source === 'number' ? position : -position - 1;
  }

  #list(): number[] {
    this.#order ??= this.ids(0, this.size);
    return this.#order;
  }
}
