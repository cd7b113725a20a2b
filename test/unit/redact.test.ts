import { describe, expect, it } from 'vitest';
import { EXCERPT_CHARS, excerpt, failureName, holdsPiece, isJsonAnswer, unquoted } from '../../lambda/common/redact.ts';

// Opaque, with every character a b64token allows besides letters and digits, and runs
// between them longer than a masked piece.
const TOKEN = 'q7Lr0aXkPz4M+Hn2WvYc8tEb/Gs5JfUo1Dd.Ri3NwKm9Se_Qy6Ta-Vx0Bh~Zp==';

/** Every piece of `size` characters of the token still readable in `text`. */
function readablePieces(text: string, secret = TOKEN, size = 8): string[] {
  const found: string[] = [];
  for (let i = 0; i + size <= secret.length; i += 1) {
    const piece = secret.slice(i, i + size);
    if (text.includes(piece)) found.push(piece);
  }
  return found;
}

const wrap = (text: string, width: number, separator: string) =>
  Array.from({ length: Math.ceil(text.length / width) }, (_, i) => text.slice(i * width, (i + 1) * width)).join(separator);

describe('excerpt', () => {
  it('keeps a body without secrets or credentials as it starts, blanks collapsed, at most 120 characters', () => {
    const body = `{"code":503,\n  "message": "upstream unavailable",\t"retry": true, "pad": "${'x'.repeat(300)}"}`;
    const result = excerpt(body, [TOKEN]);
    expect(result).toHaveLength(EXCERPT_CHARS);
    expect(body.replace(/\s+/g, ' ').slice(0, result.length)).toBe(result);
  });

  const echoes: [string, string][] = [
    ['exact', TOKEN],
    ['URL-encoded', encodeURIComponent(TOKEN)],
    ['URL-encoded, lower-case hex', encodeURIComponent(TOKEN).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())],
    ['every character URL-encoded', [...TOKEN].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('')],
    ['JSON-escaped "/"', TOKEN.replaceAll('/', '\\/')],
    ['JSON \\u escapes', TOKEN.replace(/[+/=~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`)],
    ['HTML numeric entities', TOKEN.replace(/[+/=]/g, (c) => `&#${c.charCodeAt(0)};`).replace(/~/g, '&#x7e;')],
    ['wrapped by LF every 16', wrap(TOKEN, 16, '\n')],
    ['wrapped by CRLF every 9', wrap(TOKEN, 9, '\r\n')],
    ['wrapped by an escaped "\\n" every 20', wrap(TOKEN, 20, '\\n')],
    ['wrapped by "<br>" every 12', wrap(TOKEN, 12, '<br>')],
    ['URL-encoded, then wrapped every 30', wrap(encodeURIComponent(TOKEN), 30, '\n')],
  ];
  it.each(echoes)('masks the token echoed %s', (_name, echo) => {
    const result = excerpt(`{"echo":"${echo}","after":"kept"}`, [TOKEN]);
    expect(result).toMatch(/^\{"echo":"\*\*\*/);
    expect(result).toContain('"after":"kept"}');
    expect(readablePieces(result)).toEqual([]);
    expect(readablePieces(result.replace(/%[0-9a-f]{2}/gi, (e) => decodeURIComponent(e)))).toEqual([]);
  });

  it('leaves a wrapped token at most a few characters readable at a line end, never a piece of 8', () => {
    const result = excerpt(`token: ${wrap(TOKEN, 13, '\n')}`, [TOKEN], 400);
    // 63 characters in lines of 13: four masked lines and a last one of 11; in lines of 30,
    // the last line is 3 characters, too short to tell from any other text.
    expect(result).toBe('token: *** *** *** *** ***');
    const tail = excerpt(`token: ${wrap(TOKEN, 30, '\n')}`, [TOKEN], 400);
    expect(tail).toBe(`token: *** *** ${TOKEN.slice(60)}`);
    expect(readablePieces(tail)).toEqual([]);
  });

  it.each(['Authorization', 'authorization', 'AUTHORIZATION', 'Bearer', 'bearer', 'BEARER', 'bEaReR'])('quotes nothing after "%s"', (word) => {
    const result = excerpt(`{"seen":"${word}: something else","next":"not shown"}`, []);
    expect(result).toBe(`{"seen":"${word}`);
  });

  it('finds the words escaped, and cuts at the first', () => {
    expect(excerpt('{"h":"\\u0062earer x","a":"Authorization"}')).toBe('{"h":"\\u0062earer');
    expect(excerpt('GET /?h=Authorization%3A%20Bearer%20x')).toBe('GET /?h=Authorization');
  });

  it('masks before it cuts: a token holding "Bearer" is masked whole', () => {
    const token = 'Qm3pZr8sBearerXy7Kd2Lw9Vt';
    expect(excerpt(`{"t":"${token}"}`, [token])).toBe('{"t":"***');
  });

  it('masks a secret shorter than a piece only where it occurs whole', () => {
    expect(excerpt('{"a":"s3cr3t","b":"s3cr"}', ['s3cr3t'])).toBe('{"a":"***","b":"s3cr"}');
  });

  it('shows nothing of a token that runs past the end of the part it scans', () => {
    // Masked copies shrink to "***", so the excerpt reaches the end of the scanned window,
    // where a copy is cut 3 characters in: too short to be recognised as a piece, so the
    // characters before the window's end are not shown at all.
    const token = 'Xa8Kp3Wz7Qm2Lr5Ts9Vb4Nc';
    expect(token).toHaveLength(23);
    const copies = Array.from({ length: 40 }, () => token).join(' ');
    // The window is 400 + 10 * 23 = 630 characters; copies start every 24 from 11.
    const body = `${'p'.repeat(11)}${copies}`;
    expect((630 - 11) % 24).toBe(19);
    const shifted = `${'p'.repeat(27)}${copies}`;
    expect((630 - 27) % 24).toBe(3);
    for (const text of [body, shifted]) {
      const result = excerpt(text, [token], 400);
      expect(result.replace(/^p+/, '')).toMatch(/^(\*\*\*| )*$/);
    }
  });

  it('reads no more of a 300 KB body than its start', () => {
    const body = `{"error":"${'x'.repeat(300_000)}"}`;
    const started = performance.now();
    expect(excerpt(body, [TOKEN])).toHaveLength(EXCERPT_CHARS);
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('turns control characters into blanks', () => {
    expect(excerpt('{"a":"x\u001b[31my\u0000z"}')).toBe('{"a":"x [31my z"}');
  });
});

describe('what is quoted', () => {
  it.each([
    ['application/json', '{"a":1}', true],
    ['application/json; charset=utf-8', '[]', true],
    ['application/problem+json', '{"title":"x"}', true],
    ['APPLICATION/JSON', 'null', true],
    ['application/json', 'garbage{"a":', false],
    ['application/json', '', false],
    ['text/html', '{"a":1}', false],
    ['text/plain', '{"a":1}', false],
    ['application/jsonp', '{"a":1}', false],
    ['', '{"a":1}', false],
  ])('%s with %j: quoted %s', (type, body, expected) => {
    expect(isJsonAnswer(type, body)).toBe(expected);
  });

  it('names an answer it does not quote by its type and length, the type itself cut and masked', () => {
    expect(unquoted('<html>Bearer x</html>', 'text/html; charset=utf-8', [TOKEN])).toBe('text/html; charset=utf-8, 21 characters, not quoted');
    expect(unquoted('x', '', [])).toBe('no content-type, 1 character, not quoted');
    expect(unquoted('xy', `text/plain; t=${TOKEN}`, [TOKEN])).toBe('text/plain; t=***, 2 characters, not quoted');
    expect(unquoted('x', `text/plain; ${'p'.repeat(200)}`, []).length).toBeLessThan(120);
  });
});

describe('holdsPiece', () => {
  it('finds a secret, a piece of it, or an encoding of it; not a shorter fragment', () => {
    const secret = 'demo-secret-change-me';
    expect(holdsPiece(secret, [secret])).toBe(true);
    expect(holdsPiece('x_secret-chan_y', [secret])).toBe(true);
    expect(holdsPiece('demo%2Dsecret', [secret])).toBe(true);
    expect(holdsPiece('secret', [secret])).toBe(false);
    expect(holdsPiece('invalid_client', [secret])).toBe(false);
  });
});

describe('failureName', () => {
  it('names a thrown error by its class, never its message', () => {
    const error = new TypeError(`Headers.append: "Bearer ${TOKEN.slice(0, 20)}\nrest" is an invalid header value.`);
    expect(failureName(error)).toBe('TypeError');
  });

  it("keeps undici's fixed messages and the system code of the cause", () => {
    expect(failureName(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) }))).toBe(
      'fetch failed (ECONNREFUSED)',
    );
    expect(failureName(new TypeError('terminated'))).toBe('terminated');
    expect(failureName(Object.assign(new Error('x'), { name: 'not a name: secret' }))).toBe('unnamed error');
    expect(failureName('a string')).toBe('string');
  });
});
