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
  expect(result.lines).toHaveLength(result.parsed.length);
  result.lines.forEach((line, i) => {
    expect(line).not.toMatch(/[\n\r]/);
    const row = JSON.parse(line) as Brief;
    expect(row).toStrictEqual({ ...result.parsed[i], exportRunId: 'run-1' });
    expect(Object.keys(row)).toEqual([...Object.keys(result.parsed[i] as Brief), 'exportRunId']);
  });
  return result;
}

const cut = (kept: Brief[]) => kept.map((brief) => Object.keys(brief).length === 2 && 'EUI' in brief && 'ref' in brief);

describe('a brief cut out of its page', () => {
  it('is its text as sent, whatever its strings, nesting and spacing, and keeps only what the run reads of it', () => {
    const body =
      '{"more":true,"note":"briefs","briefs":[' +
      '{"EUI":"70B3D5000000000A","name":"a \\"quoted\\" {name} [x]","path":"C:\\\\dir\\\\","u":"\\u00e9\\ud83d\\ude00 é 名前"},' +
      '{ "EUI" : "70B3D5000000000B" ,\t"nested": {"briefs": [{"EUI": "no"}], "list": [1, [2, {"a": "}"}]]}, "ok": true, "none": null },' +
      '{"ref":"42","EUI":"70B3D5000000000C","e":-1.5e-3,"backslash":"\\\\","slash":"\\/"}' +
      '],"count":3,"now":"2026-12-08T00:00:00Z"}';
    const { kept, lines } = expectFaithful(body);
    expect(cut(kept)).toEqual([true, true, true]);
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
    const { kept } = expectFaithful('{"briefs":[{"EUI":"01"}],"more":true,"briefs":[{"EUI":"02"},{"EUI":"03"}]}');
    expect(cut(kept)).toEqual([true, true]);
  });

  it('serialises again every brief of a page whose top-level keys are written with escapes', () => {
    const body = '{"briefs":[{"EUI":"01"}],"\\u0062riefs":[{"EUI":"02","x":1}]}';
    const { kept, parsed } = expectFaithful(body);
    expect(kept).toBe(parsed);
  });

  it('serialises again a brief whose text cannot be a line, or has a key twice; the others are cut', () => {
    const body = '{"briefs":[{"EUI":"01",\n"a":1},{},{ },{"EUI":"04","a":1,"a":2},{"EUI":"05","\\u0061":1,"a":2},{"EUI":"06"}],"more":false}';
    const { kept, parsed, lines } = expectFaithful(body);
    expect(cut(kept)).toEqual([false, false, false, false, false, true]);
    expect(kept.slice(0, 5)).toEqual(parsed.slice(0, 5));
    expect(lines.slice(1, 4)).toEqual(['{"exportRunId":"run-1"}', '{"exportRunId":"run-1"}', '{"EUI":"04","a":2,"exportRunId":"run-1"}']);
  });

  it('a pretty-printed page: every line is still one line', () => {
    const briefs = [
      { EUI: '01', a: [1, 2] },
      { EUI: '02', b: { c: 'd' } },
    ];
    const { kept } = expectFaithful(JSON.stringify({ briefs, more: false }, null, 2));
    expect(cut(kept)).toEqual([false, false]);
  });

  it('agrees with parsing on pages of random JSON, spacing and escapes', () => {
    let seed = 20261208;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const space = () => pick(['', '', '', ' ', '\t', '  ', random() < 0.05 ? '\n' : '']);
    const strings = ['', 'a', '"', '\\', '\\"', '{', '}', '[', ']', ',', ':', 'é', '名', '😀', '\u2028', 'briefs', 'EUI'];
    const text = (): string => {
      const raw = Array.from({ length: Math.floor(random() * 4) }, () => pick(strings)).join('');
      const json = JSON.stringify(raw);
      return random() < 0.2 ? json.replace(/[a-z]/, (letter) => `\\u00${letter.charCodeAt(0).toString(16)}`) : json;
    };
    const value = (depth: number): string => {
      const kind = pick(depth > 2 ? ['s', 'n', 'l'] : ['s', 'n', 'l', 'o', 'a']);
      if (kind === 's') return text();
      if (kind === 'n') return pick(['0', '-1', '1.5', '1e3', '12345678901234567890', '-0.5']);
      if (kind === 'l') return pick(['true', 'false', 'null']);
      if (kind === 'a')
        return `[${space()}${Array.from({ length: Math.floor(random() * 3) }, () => value(depth + 1)).join(`${space()},${space()}`)}${space()}]`;
      return object(depth + 1);
    };
    const object = (depth: number): string => {
      const members = Array.from(
        { length: Math.floor(random() * 5) },
        () => `${space()}${random() < 0.3 ? '"k"' : text()}${space()}:${space()}${value(depth)}${space()}`,
      );
      return `{${members.join(',')}}`;
    };
    for (let page = 0; page < 400; page += 1) {
      const briefs = Array.from({ length: Math.floor(random() * 6) }, () => object(1));
      const top = [`"briefs"${space()}:${space()}[${space()}${briefs.join(`${space()},${space()}`)}${space()}]`, `"more":${pick(['true', 'false'])}`];
      if (random() < 0.3) top.push(`"cursors":{"last":${text()}}`);
      if (random() < 0.2) top.push(`"briefs":[${object(1)}]`);
      expectFaithful(`${space()}{${space()}${(random() < 0.5 ? top : top.reverse()).join(`${space()},${space()}`)}${space()}}${space()}`);
    }
  });
});
