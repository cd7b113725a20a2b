// The saved queries each fleet alarm points to: the devices concerned, over the curated
// tables (infra/curation.ts), in the terms the function counts them.

/** The names the alarms' descriptions give, as Athena lists them in the workgroup. */
export const FLEET_QUERY_NAMES = {
  removed: 'Devices removed by the latest run that removed any',
  leftActive: 'Devices that left ACTIVE in the latest run where any did',
  silent: 'Silent devices in the newest curated run',
} as const;

type FleetQuery = keyof typeof FLEET_QUERY_NAMES;

const LAST_WEEK = "dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')";

/** Each query's description and SQL; `silentAfterHours` is the function's CURATE_SILENT_AFTER_HOURS. */
export function fleetQueries(database: string, silentAfterHours: number): Record<FleetQuery, { name: string; description: string; sql: string }> {
  return {
    removed: {
      name: FLEET_QUERY_NAMES.removed,
      description: 'For the mass-removal alarm: the devices of the previous run missing from the latest run with removals (last 7 days)',
      sql:
        `WITH removed AS (\n  SELECT * FROM ${database}.device_changes\n  WHERE ${LAST_WEEK} AND change = 'removed'\n)\n` +
        `SELECT run_time, previous_run_time, ref, eui, name, health_state_before, confirmed\nFROM removed\n` +
        `WHERE run_id = (SELECT max_by(run_id, run_time) FROM removed)\nORDER BY ref, eui;`,
    },
    leftActive: {
      name: FLEET_QUERY_NAMES.leftActive,
      description: 'For the health-drop alarm: devices ACTIVE in the run before and not ACTIVE (or gone) in the latest run where any were (last 7 days)',
      sql:
        `WITH left_active AS (\n  SELECT * FROM ${database}.device_changes\n` +
        `  WHERE ${LAST_WEEK}\n    AND health_state_before = 'ACTIVE' AND coalesce(health_state_after, '') <> 'ACTIVE'\n)\n` +
        `SELECT run_time, change, ref, eui, name, health_state_before, health_state_after\nFROM left_active\n` +
        `WHERE run_id = (SELECT max_by(run_id, run_time) FROM left_active)\nORDER BY health_state_after, ref, eui;`,
    },
    silent: {
      name: FLEET_QUERY_NAMES.silent,
      description: `For the silent-share alarms: devices of the newest curated run whose last uplink was more than ${silentAfterHours} hours before the run`,
      sql:
        `SELECT ref, eui, name, health_state, last_up_timestamp, date_diff('hour', last_up_timestamp, run_time) AS hours_silent\n` +
        `FROM ${database}.devices_current\nWHERE last_up_timestamp < run_time - INTERVAL '${silentAfterHours}' HOUR\nORDER BY last_up_timestamp, ref, eui;`,
    },
  };
}
