/**
 * The benchmark's results as a picture, for BENCHMARKS.md: a Vega-Lite spec compiled by
 * vega-lite and rendered to SVG by vega, in Node, with no browser and no canvas.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One approach in one case. */
export interface ChartRow {
  case: string;
  approach: string;
  devicesPerSecond: number;
  /** Absent where nothing ran (a rate-limited case's floor is the limit, computed). */
  peakRssMb?: number;
  /** The most device-list requests in flight at once, as the simulator saw them. */
  maxInFlight?: number;
}

/** The exporter's peak RSS target, drawn as a line on the memory panel. */
const RSS_TARGET_MB = 256;
/** The memory panel's axis: from below any Node process's RSS to above the baseline's at 1M. */
const RSS_AXIS_MB = [32, 4096] as const;

/** What to draw: every case and approach, in the order given (the table's). */
export function chartSpec(rows: ChartRow[]): TopLevelSpec {
  const cases = [...new Set(rows.map((row) => row.case))];
  const approaches = [...new Set(rows.map((row) => row.approach))];
  const x = { field: 'case', type: 'nominal', sort: cases, title: null, axis: { labelAngle: -30, labelLimit: 240 } } as const;
  const xOffset = { field: 'approach', sort: approaches } as const;
  const color = { field: 'approach', type: 'nominal', sort: approaches, title: 'approach' } as const;
  const width = Math.max(360, cases.length * approaches.length * 16);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    config: { font: 'sans-serif', view: { stroke: null } },
    vconcat: [
      {
        title: 'Devices exported per second (higher is better)',
        width,
        height: 220,
        mark: 'bar',
        encoding: { x, xOffset, color, y: { field: 'devicesPerSecond', type: 'quantitative', title: 'devices/s' } },
      },
      {
        title: `Peak RSS of each approach's process (log scale; the line: ${RSS_TARGET_MB} MB)`,
        width,
        height: 160,
        layer: [
          {
            transform: [{ filter: 'isValid(datum.peakRssMb)' }],
            mark: 'bar',
            // On a log scale a bar needs a base of its own: the scale's lowest value.
            encoding: {
              x,
              xOffset,
              color,
              y: { field: 'peakRssMb', type: 'quantitative', title: 'MB', scale: { type: 'log', domain: [RSS_AXIS_MB[0], RSS_AXIS_MB[1]], nice: false } },
              y2: { datum: RSS_AXIS_MB[0] },
            },
          },
          { mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { y: { datum: RSS_TARGET_MB } } },
        ],
      },
      {
        title: 'Most page requests in flight: the window as it followed each platform',
        width,
        height: 120,
        transform: [{ filter: 'isValid(datum.maxInFlight)' }],
        mark: 'bar',
        encoding: { x, xOffset, color, y: { field: 'maxInFlight', type: 'quantitative', title: 'in flight' } },
      },
    ],
  };
}

/** The chart as an SVG document. */
export async function drawChart(rows: ChartRow[]): Promise<string> {
  const view = new View(parse(compile(chartSpec(rows)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
