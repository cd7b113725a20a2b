import { fleetSize, type BriefShape, type Fleet, type LiveFleet } from './fleet.ts';

/**
 * Briefs rendered per chunk: one buffer, a comma after each brief, and where each starts
 * (with one more entry, its end, so that brief j ends at `starts[j + 1] - 1`).
 */
interface Chunk {
  bytes: Buffer;
  starts: Uint32Array;
}

const CHUNK = 1024;

/**
 * Every brief of a fleet as it was made, rendered to JSON once and kept by device id: pages
 * of any order, size or filter are then put together from slices of these bytes (a run of
 * consecutive ids is one slice) instead of being rendered per request. A brief's JSON
 * depends only on its id and the fleet's shape, so the bytes stay right while devices come
 * and go; devices added since are rendered when served.
 */
export class RenderedBriefs {
  readonly source: Fleet;
  readonly shape: BriefShape;
  /** The chunks of generated ids (id = k) and of the fleet's explicit briefs (id = -(k + 1)). */
  readonly #generated: Chunk[] = [];
  readonly #explicit: Chunk[] = [];

  constructor(fleet: LiveFleet) {
    this.source = fleet.source;
    this.shape = fleet.shape;
    const size = fleetSize(fleet.source);
    const chunks = typeof fleet.source === 'number' ? this.#generated : this.#explicit;
    const idOf = typeof fleet.source === 'number' ? (k: number) => k : (k: number) => -k - 1;
    for (let from = 0; from < size; from += CHUNK) {
      // Each brief made and stringified at once: a brief lives only as long as that takes.
      const texts: string[] = [];
      for (let k = from; k < Math.min(from + CHUNK, size); k += 1) texts.push(JSON.stringify(fleet.brief(idOf(k))));
      chunks.push(renderChunk(texts));
    }
  }

  /** Whether these bytes are the briefs `fleet` serves. */
  fits(fleet: LiveFleet): boolean {
    return this.source === fleet.source && this.shape.identifiers === fleet.shape.identifiers && this.shape.ref === fleet.shape.ref;
  }

  /**
   * The briefs of these ids, in slices to be joined with commas. Ids without rendered bytes
   * (devices added since) are rendered now with `fleet`.
   */
  slices(ids: readonly number[], fleet: LiveFleet): Buffer[] {
    const slices: Buffer[] = [];
    let run: { chunk: Chunk; from: number; to: number } | undefined;
    for (const id of ids) {
      const k = id >= 0 ? id : -id - 1;
      const chunk = (id >= 0 ? this.#generated : this.#explicit)[Math.floor(k / CHUNK)];
      const place = k % CHUNK;
      if (chunk === undefined || place + 1 >= chunk.starts.length) {
        if (run) slices.push(sliceOf(run));
        run = undefined;
        slices.push(Buffer.from(JSON.stringify(fleet.brief(id))));
      } else if (run?.chunk === chunk && run.to === place) run.to += 1;
      else {
        if (run) slices.push(sliceOf(run));
        run = { chunk, from: place, to: place + 1 };
      }
    }
    if (run) slices.push(sliceOf(run));
    return slices;
  }
}

/** Briefs' JSON written into one buffer, a comma after each. */
function renderChunk(texts: readonly string[]): Chunk {
  const bytes = Buffer.allocUnsafeSlow(texts.reduce((total, text) => total + Buffer.byteLength(text) + 1, 0));
  const starts = new Uint32Array(texts.length + 1);
  let at = 0;
  texts.forEach((text, place) => {
    starts[place] = at;
    at += bytes.write(text, at);
    at = bytes.write(',', at) + at;
  });
  starts[texts.length] = at;
  return { bytes, starts };
}

/** Briefs `from` to `to` (excluded) of a chunk, with the commas between them. */
function sliceOf(run: { chunk: Chunk; from: number; to: number }): Buffer {
  return run.chunk.bytes.subarray(run.chunk.starts[run.from], (run.chunk.starts[run.to] ?? 0) - 1);
}

/** What a page says besides its briefs. */
export interface Envelope {
  more: boolean;
  count?: number;
  now: string | number;
  cursors?: { last: string };
}

const COMMA = Buffer.from(',');

/** A page's body, as the buffers to write in order: `{"briefs":[`, the briefs' slices joined by commas, then the rest of the object. */
export function pageBody(slices: readonly Buffer[], envelope: Envelope): Buffer[] {
  return [
    Buffer.from('{"briefs":['),
    ...slices.flatMap((slice, place) => (place === 0 ? [slice] : [COMMA, slice])),
    Buffer.from(`],${JSON.stringify(envelope).slice(1)}`),
  ];
}
