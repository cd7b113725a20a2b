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
  const ref = String(2_000_000 + i);
  return {
    ref,
    EUI: (0x70b3d50000000000n + BigInt(i)).toString(16).toUpperCase(),
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
