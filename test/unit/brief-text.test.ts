import { describe, expect, it } from 'vitest';
import { keptBriefs, lineOf } from '../../lambda/platform/brief-text.ts';

/**
 * A brief's line is cut out of the page's text: whatever the page, each line must parse to
 * what parsing the page gave, with the run's id, and be one line.
 */
const FIELD = ',"exportRunId":"run-1"}';

type Brief = Record<string, unknown>;

/** The page's briefs as a run keeps them, and their lines. */
function read(body: string): { kept: Brief[]; parsed: Brief[]; lines: string[] } {
  const parsed = (JSON.parse(body) as { briefs: Brief[] }).briefs;
  const kept = keptBriefs(body, parsed);
  return { kept, parsed, lines: kept.map((brief) => lineOf(brief, FIELD)) };
}

/** Each line is one line and parses to the parsed brief with the run's id, keys in the same order. */
function expectFaithful(body: string): { kept: Brief[]; parsed: Brief[]; lines: string[] } {
  const result = read(body);
  result.lines.forEach((line, i) => {
    expect(line).not.toMatch(/[\n\r]/);
    const row = JSON.parse(line) as Brief;
    expect(row).toStrictEqual({ ...result.parsed[i], exportRunId: 'run-1' });
    expect(Object.keys(row)).toEqual([...Object.keys(result.parsed[i] as Brief), 'exportRunId']);
  });
  return result;
}

/** Which briefs were cut out of the text: a brief kept as parsed is the parsed object itself. */
const cut = ({ kept, parsed }: { kept: Brief[]; parsed: Brief[] }) => kept.map((brief, i) => brief !== parsed[i]);

describe('a brief cut out of its page', () => {
  it('is its text as sent, whatever its strings, nesting and spacing, and keeps only what the run reads of it', () => {
    const body =
      '{"more":true,"note":"briefs","briefs":[' +
      '{"EUI":"70B3D5000000000A","name":"a \\"quoted\\" {name} [x]","path":"C:\\\\dir\\\\","u":"\\u00e9\\ud83d\\ude00 é 名前"},' +
      '{ "EUI" : "70B3D5000000000B" ,\t"nested": {"briefs": [{"EUI": "no"}], "list": [1, [2, {"a": "}"}]]}, "ok": true, "none": null },' +
      '{"ref":"42","EUI":"70B3D5000000000C","e":-1.5e-3,"backslash":"\\\\","slash":"\\/"}' +
      '],"count":3,"now":"2026-12-08T00:00:00Z"}';
    const result = expectFaithful(body);
    const { kept, lines } = result;
    expect(cut(result)).toEqual([true, true, true]);
    // What the run reads of a brief, and nothing else of the parsed object.
    expect(kept.map((brief) => Object.keys(brief))).toEqual([
      ['EUI', 'ref'],
      ['EUI', 'ref'],
      ['EUI', 'ref'],
    ]);
    expect(kept.map((brief) => [brief.EUI, brief.ref])).toEqual([
      ['70B3D5000000000A', undefined],
      ['70B3D5000000000B', undefined],
      ['70B3D5000000000C', '42'],
    ]);
    // As sent: escapes and spacing kept, not rewritten.
    expect(lines[0]).toBe(
      '{"EUI":"70B3D5000000000A","name":"a \\"quoted\\" {name} [x]","path":"C:\\\\dir\\\\","u":"\\u00e9\\ud83d\\ude00 é 名前","exportRunId":"run-1"}',
    );
    expect(lines[1]?.startsWith('{ "EUI" : "70B3D5000000000B" ,\t"nested"')).toBe(true);
  });

  it("keeps a number's digits that parsing would round", () => {
    const { lines } = read('{"briefs":[{"EUI":"01","id":12345678901234567890,"f":1.10}],"more":false}');
    expect(lines[0]).toBe('{"EUI":"01","id":12345678901234567890,"f":1.10,"exportRunId":"run-1"}');
  });

  it('takes the last "briefs" of a page that has two, as parsing does', () => {
    const result = expectFaithful('{"briefs":[{"EUI":"01"}],"more":true,"briefs":[{"EUI":"02"},{"EUI":"03"}]}');
    expect(cut(result)).toEqual([true, true]);
    expect(result.lines).toEqual(['{"EUI":"02","exportRunId":"run-1"}', '{"EUI":"03","exportRunId":"run-1"}']);
  });

  it('serialises again every brief of a page whose top-level keys are written with escapes', () => {
    const body = '{"briefs":[{"EUI":"01"}],"\\u0062riefs":[{"EUI":"02","x":1}]}';
    const { kept, parsed } = expectFaithful(body);
    expect(kept).toBe(parsed);
  });

  it('serialises again a brief whose text cannot be a line, or has a key twice; the others are cut', () => {
    const body = '{"briefs":[{"EUI":"01",\n"a":1},{},{ },{"EUI":"04","a":1,"a":2},{"EUI":"05","\\u0061":1,"a":2},{"EUI":"06"}],"more":false}';
    const result = expectFaithful(body);
    expect(cut(result)).toEqual([false, false, false, false, false, true]);
    expect(result.lines.slice(1, 4)).toEqual(['{"exportRunId":"run-1"}', '{"exportRunId":"run-1"}', '{"EUI":"04","a":2,"exportRunId":"run-1"}']);
  });

  it('a pretty-printed page: every line is still one line', () => {
    const briefs = [
      { EUI: '01', a: [1, 2] },
      { EUI: '02', b: { c: 'd' } },
    ];
    expect(cut(expectFaithful(JSON.stringify({ briefs, more: false }, null, 2)))).toEqual([false, false]);
    expect(cut(expectFaithful(JSON.stringify({ briefs, more: false }).replaceAll(',', ',\r')))).toEqual([false, false]);
  });

  it('agrees with parsing on pages of random JSON, spacing and escapes', () => {
    let seed = 20261208;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const space = () => pick(['', '', '', ' ', '\t', '  ', random() < 0.05 ? pick(['\n', '\r', '\r\n']) : '']);
    const strings = ['', 'a', '"', '\\', '\\"', '{', '}', '[', ']', ',', ':', 'é', '名', '😀', '\u2028', 'briefs', 'EUI'];
    const text = (): string => {
      const raw = Array.from({ length: Math.floor(random() * 4) }, () => pick(strings)).join('');
      const json = JSON.stringify(raw);
      return random() < 0.2 ? json.replace(/[a-z]/, (letter) => `\\u00${letter.charCodeAt(0).toString(16)}`) : json;
    };
    const value = (depth: number): string => {
      const kind = pick(depth > 2 ? ['s', 'n', 'l'] : ['s', 'n', 'l', 'o', 'a']);
      if (kind === 's') return text();
      if (kind === 'n') return pick(['0', '-1', '1.5', '1e3', '1E-7', '12345678901234567890', '-0.5']);
      if (kind === 'l') return pick(['true', 'false', 'null']);
      if (kind === 'a')
        return `[${space()}${Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1)).join(`${space()},${space()}`)}${space()}]`;
      return object(depth + 1);
    };
    // Keys given twice (one of them maybe escaped), integer-like, or __proto__.
    const key = () => (random() < 0.3 ? pick(['"k"', '"\\u006b"', '"7"', '"__proto__"']) : text());
    const object = (depth: number): string => {
      const members = Array.from({ length: Math.floor(random() * 5) }, () => `${space()}${key()}${space()}:${space()}${value(depth)}${space()}`);
      return `{${members.join(',')}}`;
    };
    const briefsKey = () => (random() < 0.05 ? '"\\u0062riefs"' : '"briefs"');
    let briefs = 0;
    let cutOut = 0;
    for (let page = 0; page < 400; page += 1) {
      const objects = Array.from({ length: Math.floor(random() * 6) }, () => object(1));
      const top = [`${briefsKey()}${space()}:${space()}[${space()}${objects.join(`${space()},${space()}`)}${space()}]`, `"more":${pick(['true', 'false'])}`];
      if (random() < 0.3) top.push(`"cursors":{"last":${text()}}`);
      if (random() < 0.2) top.push(`${briefsKey()}:[${object(1)}]`);
      const result = expectFaithful(`${space()}{${space()}${(random() < 0.5 ? top : top.reverse()).join(`${space()},${space()}`)}${space()}}${space()}`);
      briefs += result.parsed.length;
      cutOut += cut(result).filter(Boolean).length;
    }
    // Most are cut out; not those with a line break, a key twice or none, nor a page with an escaped top-level key.
    expect(cutOut / briefs).toBeGreaterThan(0.4);
    expect(cutOut).toBeLessThan(briefs);
  });
});
