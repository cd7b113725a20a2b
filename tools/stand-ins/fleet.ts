/** A device brief as ThingPark sends it: an open JSON object. */
export type Brief = Record<string, unknown>;

const HEALTH = ['ACTIVE', 'ACTIVE', 'ACTIVE', 'INACTIVE', 'BATTERY_LOW', 'NEVER_SEEN'];
const MODELS = ['Abeeway Micro Tracker', 'Adeunis FTD', 'Elsys ERS CO2', 'Milesight EM300'];
const EPOCH = 1_790_000_000_000;

/**
 * The i-th device of a simulated fleet, deterministic so two runs (or two processes) agree.
 * It carries every field public code has seen on a brief, plus one no document names, to
 * prove that unknown fields travel through untouched.
 */
export function simulatedBrief(i: number): Brief {
  const { ref, EUI } = simulatedIds(i);
  return {
    ref,
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
    href: `/thingpark/wireless/rest/subscriptions/mine/devices/${ref}`,
    customerData: { site: `site-${i % 10}`, tags: ['pilot', `batch-${i % 7}`] },
  };
}

/** The i-th simulated device's ref and EUI, without the rest of its brief. */
function simulatedIds(i: number): { ref: string; EUI: string } {
  return { ref: String(2_000_000 + i), EUI: (0x70b3d50000000000n + BigInt(i)).toString(16).toUpperCase() };
}

/** A fleet: either a size (devices made on the fly, for millions) or explicit briefs. */
export type Fleet = number | Brief[];

export function fleetSize(fleet: Fleet): number {
  return typeof fleet === 'number' ? fleet : fleet.length;
}

export function fleetSlice(fleet: Fleet, start: number, end: number): Brief[] {
  if (typeof fleet !== 'number') return fleet.slice(start, end);
  const briefs: Brief[] = [];
  for (let i = start; i < Math.min(end, fleet); i += 1) briefs.push(simulatedBrief(i));
  return briefs;
}

/** A generated device by its index (its brief made when served), or an explicit brief. */
type Member = number | Brief;

/** Devices a fleet gains are generated from this index on: refs no fleet here starts with. */
const ADDED_FROM = 5_000_000;

/**
 * A fleet that changes while it is read, as a real one does: devices removed at, or added
 * at, positions of the list. Until the first change it is the fleet it was made from
 * (a million generated devices cost nothing); the first change makes it a list of members,
 * and the first single-device lookup an index of them by ref and by `e` + EUI.
 */
export class LiveFleet {
  #members: Member[] | undefined;
  #byId: Map<string, Member> | undefined;
  #added = 0;

  constructor(readonly source: Fleet) {}

  get size(): number {
    return this.#members?.length ?? fleetSize(this.source);
  }

  slice(start: number, end: number): Brief[] {
    return this.#members ? this.#members.slice(start, end).map(briefOf) : fleetSlice(this.source, start, end);
  }

  /** Removes `count` devices from position `at` on; returns them. */
  remove(at: number, count: number): Brief[] {
    const removed = this.#list().splice(Math.max(0, at), count);
    for (const member of removed) for (const id of idsOf(member)) this.#byId?.delete(id);
    return removed.map(briefOf);
  }

  /** Inserts devices at position `at`: these briefs, or that many new generated ones; returns them. */
  insert(at: number, devices: number | Brief[]): Brief[] {
    const added: Member[] = typeof devices === 'number' ? Array.from({ length: devices }, () => ADDED_FROM + this.#added++) : [...devices];
    this.#list().splice(Math.max(0, at), 0, ...added);
    for (const member of added) for (const id of idsOf(member)) this.#byId?.set(id, member);
    return added.map(briefOf);
  }

  /** The device the single-device route names `id`: its ref, or `e` and its EUI (any case). */
  find(id: string): Brief | undefined {
    this.#byId ??= new Map(this.#list().flatMap((member) => idsOf(member).map((key): [string, Member] => [key, member])));
    const member = this.#byId.get(id) ?? (id.startsWith('e') ? this.#byId.get(`e${id.slice(1).toUpperCase()}`) : undefined);
    return member === undefined ? undefined : briefOf(member);
  }

  #list(): Member[] {
    this.#members ??= typeof this.source === 'number' ? Array.from({ length: this.source }, (_, i) => i) : [...this.source];
    return this.#members;
  }
}

function briefOf(member: Member): Brief {
  return typeof member === 'number' ? simulatedBrief(member) : member;
}

/** The ids the single-device route knows a device by. */
function idsOf(member: Member): string[] {
  const { ref, EUI } = typeof member === 'number' ? simulatedIds(member) : member;
  return [...(typeof ref === 'string' || typeof ref === 'number' ? [String(ref)] : []), ...(typeof EUI === 'string' ? [`e${EUI.toUpperCase()}`] : [])];
}
