/**
 * `npm run bench -- --knobs [--scale=0.1]`: where the time of the 100k @ 100 ms, 100k @
 * 300 ms and 1000k @ 100 ms cases goes, on the skewed fleet in cursor mode, as the knobs that
 * shape a cursor read change: the window's ceiling (THINGPARK_MAX_CONCURRENCY, which is also
 * how many sweeps the EUI ranges are planned for), where it starts (THINGPARK_CONCURRENCY),
 * and the page size. The exporter alone, median of three runs per setting, against one
 * baseline run per case at the default page size (the speed-up targets' reference). main.ts
 * runs it; this file holds the settings and the tables.
 *
 * Where the stand-ins run is swept too: they share the machine's two cores with the
 * exporter, so the exporter is also run alone on one core with the stand-ins on the other
 * (no stand-ins beside it, but one core for its gzip and collector threads too), and on the
 * stand-ins' core (what sharing one costs).
 *
 * Not swept: the fewest pages a range is split into (MIN_RANGE_PAGES in
 * lambda/platform/eui-ranges.ts, a constant, not a setting), and the stand-ins in the
 * exporter's own process (they run in a process of their own in every case: see
 * stand-ins.ts for why).
 */

export interface KnobSetting {
  label: string;
  /** The fleet, before --scale. */
  devices: number;
  latencyMs: number;
  pageSize: number;
  env: Record<string, string>;
  /** The cores the stand-ins and the exporter are pinned to (cores.ts); unpinned where absent. */
  cores?: { standIns: number; exporter: number };
}

/** The cases swept: those of the speed-up targets, a fleet and a latency each. */
export const KNOB_CASES = [
  { devices: 100_000, latencyMs: 100 },
  { devices: 100_000, latencyMs: 300 },
  { devices: 1_000_000, latencyMs: 100 },
];

/**
 * The settings, each case's default first. At 300 ms the window's start and ceiling are
 * what the run waits on; at a million devices, whether anything but the run's CPU is.
 */
export function knobSettings(): KnobSetting[] {
  const window = (start: number, ceiling: number) => ({ THINGPARK_CONCURRENCY: String(start), THINGPARK_MAX_CONCURRENCY: String(ceiling) });
  const at =
    (devices: number, latencyMs: number) =>
    (label: string, pageSize: number, env: Record<string, string>, cores?: KnobSetting['cores']): KnobSetting => ({
      label,
      devices,
      latencyMs,
      pageSize,
      env,
      ...(cores ? { cores } : {}),
    });
  const apart = { standIns: 0, exporter: 1 };
  const together = { standIns: 1, exporter: 1 };
  const at100 = at(100_000, 100);
  const at300 = at(100_000, 300);
  const million = at(1_000_000, 100);
  return [
    at100('defaults: window 4 → 32, pages of 1000', 1000, {}),
    at100('window 4 → 8', 1000, window(4, 8)),
    at100('window 4 → 16', 1000, window(4, 16)),
    at100('window 16 → 32', 1000, window(16, 32)),
    at100('window 32 → 32', 1000, window(32, 32)),
    at100('pages of 500, window 4 → 64', 500, window(4, 64)),
    at100('pages of 2000, window 4 → 16', 2000, window(4, 16)),
    at100('exporter alone on one core, stand-ins on the other', 1000, {}, apart),
    at100('exporter and stand-ins on one core', 1000, {}, together),
    at300('defaults: window 4 → 32, pages of 1000', 1000, {}),
    at300('window 16 → 32', 1000, window(16, 32)),
    at300('window 32 → 32', 1000, window(32, 32)),
    at300('pages of 500, window 4 → 64', 500, window(4, 64)),
    at300('pages of 500, window 64 → 64', 500, window(64, 64)),
    million('defaults: window 4 → 32, pages of 1000', 1000, {}),
    million('window 16 → 32', 1000, window(16, 32)),
    million('pages of 2000, window 4 → 16', 2000, window(4, 16)),
    million('exporter alone on one core, stand-ins on the other', 1000, {}, apart),
  ];
}

/** What one setting measured (the median run). */
export interface KnobRow {
  setting: KnobSetting;
  wallMs: number;
  workCpuMs: number;
  maxRssMb: number;
  requests: number;
  maxInFlight: number;
  ranges: number;
  failed?: string;
}

const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');

/** The sweep's table: each setting's time, its speed-up over the baseline, and how it read. */
export function knobTable(caseName: string, rows: KnobRow[], baselineMs: number): string {
  const lines = [
    `**${caseName}**, skewed fleet, cursor mode; the exporter's median of three runs per setting; baseline (one page at a time, pages of 1000): ${f2(baselineMs / 1000)} s.`,
    '',
    '| setting | wall s | speed-up vs baseline | CPU s | peak RSS MB | page requests | EUI ranges | max in flight |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.setting.label}${row.failed ? ' **failed**' : ''} | ${f2(row.wallMs / 1000)} | ${(baselineMs / row.wallMs).toFixed(1)}× | ${f2(row.workCpuMs / 1000)} | ` +
        `${row.maxRssMb.toFixed(1)} | ${row.requests} | ${row.ranges} | ${row.maxInFlight} |`,
    );
  }
  return lines.join('\n');
}

const HEADING = '## Knob sweep';

/** The knob-sweep section of BENCHMARKS.md, heading excluded, if it has one: a full run keeps it (it says when it was measured). */
export function knobSection(markdown: string): string | undefined {
  const start = markdown.indexOf(HEADING);
  if (start < 0) return undefined;
  const next = markdown.indexOf('\n## ', start + HEADING.length);
  return markdown.slice(start + HEADING.length, next >= 0 ? next : undefined).trim();
}

/** BENCHMARKS.md with its knob-sweep section replaced by `section` (or added before the method). */
export function withKnobSection(markdown: string, section: string): string {
  const body = `${HEADING}\n\n${section}\n\n`;
  const start = markdown.indexOf(HEADING);
  if (start >= 0) {
    const next = markdown.indexOf('\n## ', start + HEADING.length);
    return markdown.slice(0, start) + body + (next >= 0 ? markdown.slice(next + 1) : '');
  }
  const method = markdown.indexOf('## Method');
  return method >= 0 ? markdown.slice(0, method) + body + markdown.slice(method) : `${markdown}\n${body}`;
}
