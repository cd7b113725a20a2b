/**
 * A brief's NDJSON line is its text as the platform sent it, with the run's id appended:
 * cut out of the page's JSON rather than serialised again from the parsed object, which
 * cost as much main-thread time as parsing the page. Only a page that parsed is scanned,
 * so its text is valid JSON and a structural scan (strings, nesting, keys) finds each brief
 * exactly. A line parses to what parsing the page gave, with the same keys; numbers keep
 * their digits (an id past 2^53 survives) and strings their escapes.
 */
const TEXT = Symbol('the brief as the platform sent it');

interface WithText {
  [TEXT]?: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** Where a brief's text starts and ends in the page, and how many keys it has; `end` is -1 where the text cannot be a line as it stands. */
interface Span {
  start: number;
  end: number;
  keys: number;
}

/**
 * The page's briefs as a run holds them until they are written. Where the page's text shows
 * a brief exactly, the brief is kept as what the run reads of it (`EUI` and `ref`: keys,
 * ranges and order go by them) and its text: the parsed object, some three times its text,
 * is left to the young generation's next collection instead of waiting with its page for
 * the writer. Kept as parsed, and serialised again when written: every brief of a page
 * whose text cannot be trusted to match (a top-level key written with escapes, which
 * parsing reads and a scan of the text would not; briefs not counted as parsing counted
 * them), and a brief whose text cannot be a line as it stands (a line break between its
 * tokens, no keys) or has a key twice (parsing kept the last; a JSON SerDe refuses both).
 */
export function keptBriefs<T extends Record<string, unknown>>(body: string, briefs: T[]): T[] {
  const spans = briefSpans(body);
  if (spans?.length !== briefs.length) return briefs;
  return briefs.map((brief, i) => {
    const { start, end, keys } = spans[i] as Span;
    if (end < 0 || keys !== Object.keys(brief).length) return brief;
    return { EUI: brief.EUI, ref: brief.ref, [TEXT]: body.slice(start, end) } as unknown as T;
  });
}

/**
 * The brief's NDJSON line: its text (kept, or serialised again) with `field`
 * (`,"name":value}`) in place of its closing brace. Joined, not concatenated: a
 * concatenation would point into the page's text, and keep all of it in memory for as long
 * as the line waits in a batch.
 */
export function lineOf(brief: object, field: string): string {
  const text = (brief as WithText)[TEXT] ?? JSON.stringify(brief);
  return text.length === 2 ? `{${field.slice(1)}` : [text.slice(0, -1), field].join('');
}

/**
 * The elements of the last top-level `briefs` array (as parsing keeps the last of a key
 * given twice); undefined where a top-level key is written with escapes, or the text
 * holds no such array.
 */
function briefSpans(text: string): Span[] | undefined {
  let spans: Span[] | undefined;
  let depth = 0;
  // Whether the next string is a key: at the top level, and inside a brief.
  let topKey = false;
  let briefKey = false;
  let lastKeyIsBriefs = false;
  let inBriefs = false;
  let current: Span = { start: 0, end: 0, keys: 0 };
  let broken = false;
  for (let i = 0, n = text.length; i < n; i += 1) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const close = stringEnd(text, i);
      if (depth === 1 && topKey) {
        if (escaped(text, i, close)) return undefined;
        lastKeyIsBriefs = close - i === 7 && text.startsWith('briefs"', i + 1);
        topKey = false;
      } else if (depth === 3 && inBriefs && briefKey) {
        current.keys += 1;
        briefKey = false;
      }
      i = close;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth += 1;
      if (depth === 1) topKey = true;
      else if (depth === 2 && c === OPEN_ARRAY && lastKeyIsBriefs) {
        inBriefs = true;
        spans = [];
      } else if (depth === 3 && inBriefs) {
        current = { start: i, end: 0, keys: 0 };
        briefKey = true;
        broken = false;
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth -= 1;
      if (depth === 2 && inBriefs) {
        current.end = broken || current.keys === 0 ? -1 : i + 1;
        spans?.push(current);
      } else if (depth === 1) inBriefs = false;
    } else if (c === COMMA) {
      if (depth === 1) topKey = true;
      else if (depth === 3) briefKey = true;
    } else if (c === LINE_FEED || c === CARRIAGE_RETURN) broken = true;
  }
  return spans;
}

/** Whether the string between these quotes has an escape in it. */
function escaped(text: string, open: number, close: number): boolean {
  for (let i = open + 1; i < close; i += 1) if (text.charCodeAt(i) === BACKSLASH) return true;
  return false;
}

/**
 * The index of the quote that closes the string opened at `open`: the next quote not
 * escaped. In text that parsed there always is one; past the end, were there none, the
 * scan ends rather than start over.
 */
function stringEnd(text: string, open: number): number {
  let quote = text.indexOf('"', open + 1);
  for (;;) {
    if (quote < 0) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return quote;
    quote = text.indexOf('"', quote + 1);
  }
}
