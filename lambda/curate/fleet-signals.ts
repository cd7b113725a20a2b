import type { RawBrief } from './raw-briefs.ts';

/**
 * The health states a brief's `healthState` is counted under: those public code and the
 * simulator show. Any other value, or none, is counted as OTHER, so that a platform that
 * sends a new state (or garbage) never adds a metric dimension or a column.
 */
export const HEALTH_STATES = ['ACTIVE', 'INACTIVE', 'BATTERY_LOW', 'NEVER_SEEN', 'ERROR', 'OTHER'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

const OTHER = HEALTH_STATES.indexOf('OTHER');
const ACTIVE = HEALTH_STATES.indexOf('ACTIVE');
const SLOT_OF = new Map<unknown, number>(HEALTH_STATES.map((state, slot) => [state, slot]));
const HOUR_MS = 60 * 60 * 1000;

/**
 * What a run says about the fleet's health, as the `signals` of its curation record (the
 * curated_runs table reads it; its keys are snake_case as the table's columns are). Shares
 * are percentages, to four decimals (one device in a million). Counts of changes are the
 * record's own `added`, `removed` and `changed`; their shares are null for a first run.
 */
export interface FleetSignals {
  /** CURATE_SILENT_AFTER_HOURS: a device whose last uplink is older than this, at the run's time, is silent. */
  silent_after_hours: number;
  /** Devices of the run per health state (unknown and missing states under OTHER). */
  devices_by_health: Record<HealthState, number>;
  /** The same, as shares of the run's devices. */
  health_share: Record<HealthState, number>;
  active_share: number;
  /** active_share minus the previous run's, in points; null when that run has none (not curated, or curated before signals). */
  active_share_change: number | null;
  /** Devices with an uplink, the last one longer ago than silent_after_hours at the run's time. */
  silent_devices: number;
  silent_share: number;
  /** Devices without any uplink (`lastUpTimestamp` absent or null). */
  never_seen_devices: number;
  never_seen_share: number;
  /** Added devices, as a share of this run's devices. */
  added_share: number | null;
  /** Removed and changed devices, as shares of the previous run's (keyed) devices. */
  removed_share: number | null;
  changed_share: number | null;
}

/** What the comparison with the previous run found: its counts, and how many devices that run had. */
export interface ComparedRun {
  added: number;
  removed: number;
  changed: number;
  previousDevices: number;
  /** The previous run's active_share, when its record holds one. */
  previousActiveShare?: number;
}

/** What a FleetSignalCounter holds: what a curation that goes on in another invocation carries over. */
export interface FleetTally {
  devices: number;
  silent: number;
  neverSeen: number;
  /** Devices per health state, in the order of HEALTH_STATES. */
  byHealth: number[];
}

/**
 * Counts a run's devices as curation reads them, one brief at a time, holding a few
 * numbers whatever the fleet: nothing is read twice for these figures.
 */
export class FleetSignalCounter {
  readonly #silentBefore: number;
  readonly #byHealth: number[];
  #devices: number;
  #silent: number;
  #neverSeen: number;

  /**
   * Silence is measured from the run's time, so a run curated again later, or late, counts
   * the same. `from` goes on from the tally of the invocations that read the run's first devices.
   */
  constructor(
    runTime: Date,
    readonly silentAfterHours: number,
    from?: FleetTally,
  ) {
    this.#silentBefore = runTime.getTime() - silentAfterHours * HOUR_MS;
    this.#byHealth = HEALTH_STATES.map((_, slot) => from?.byHealth[slot] ?? 0);
    this.#devices = from?.devices ?? 0;
    this.#silent = from?.silent ?? 0;
    this.#neverSeen = from?.neverSeen ?? 0;
  }

  tally(): FleetTally {
    return { devices: this.#devices, silent: this.#silent, neverSeen: this.#neverSeen, byHealth: [...this.#byHealth] };
  }

  add(brief: RawBrief): void {
    this.#devices += 1;
    const slot = SLOT_OF.get(brief.healthState) ?? OTHER;
    this.#byHealth[slot] = (this.#byHealth[slot] ?? 0) + 1;
    const lastUp = brief.lastUpTimestamp;
    if (lastUp === undefined || lastUp === null) this.#neverSeen += 1;
    // Epoch milliseconds, or a time as text, as the typed column reads it; anything else is neither.
    else if ((typeof lastUp === 'number' ? lastUp : typeof lastUp === 'string' ? Date.parse(lastUp) : Number.NaN) < this.#silentBefore) this.#silent += 1;
  }

  /** The signals of the run, compared with the run before when there is one. */
  signals(compared: ComparedRun | undefined): FleetSignals {
    const devices = this.#devices;
    const byHealth = Object.fromEntries(HEALTH_STATES.map((state, slot) => [state, this.#byHealth[slot] ?? 0])) as Record<HealthState, number>;
    const activeShare = share(this.#byHealth[ACTIVE] ?? 0, devices);
    const previousActive = compared?.previousActiveShare;
    return {
      silent_after_hours: this.silentAfterHours,
      devices_by_health: byHealth,
      health_share: Object.fromEntries(HEALTH_STATES.map((state) => [state, share(byHealth[state], devices)])) as Record<HealthState, number>,
      active_share: activeShare,
      active_share_change: previousActive === undefined ? null : rounded(activeShare - previousActive),
      silent_devices: this.#silent,
      silent_share: share(this.#silent, devices),
      never_seen_devices: this.#neverSeen,
      never_seen_share: share(this.#neverSeen, devices),
      added_share: compared ? share(compared.added, devices) : null,
      removed_share: compared ? share(compared.removed, compared.previousDevices) : null,
      changed_share: compared ? share(compared.changed, compared.previousDevices) : null,
    };
  }
}

/** A percentage to four decimals; 0 of nothing is 0. */
export function share(count: number, of: number): number {
  return of === 0 ? 0 : rounded((100 * count) / of);
}

function rounded(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
