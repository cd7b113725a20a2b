/**
 * What an error message may quote of an answer the platform sent. Proxies and debug pages
 * echo requests back, headers included, and not always verbatim: line-wrapped, URL-encoded,
 * JSON-escaped. So a body is quoted only when it is JSON (an HTML or text page is described
 * by its type and length), nothing after the words "authorization" or "bearer" is quoted,
 * and every run of characters that is a piece of a secret is masked, in whatever escaping.
 */

/** Characters of an excerpt at most: enough to recognise an error body, short for one log line. */
export const EXCERPT_CHARS = 120;

/** Characters of masked text an excerpt is taken from, before blanks collapse. */
const SCANNED_CHARS = 400;

/**
 * The shortest run masked as a piece of a secret. Long enough that ordinary text does not
 * match a random token by chance; short enough that a token wrapped at any usual width
 * leaves at most a few characters at each end of a line readable, not enough to use.
 */
export const MIN_PIECE = 8;

/** The longest escape one character may be written as here: `&#x10FFFF;` (`%2B`, `\u002B` are shorter). */
const MAX_ESCAPE_CHARS = 10;

/** Where the credentials of an echoed request start: nothing after these is quoted. */
const CREDENTIAL_WORDS = /authorization|bearer/;

/** True for an answer that says it is JSON and is: the only kind whose body is quoted. */
export function isJsonAnswer(contentType: string, body: string): boolean {
  if (!isJsonMediaType(contentType)) return false;
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

/** application/json and its structured-syntax kin (application/problem+json, ...). */
export function isJsonMediaType(contentType: string): boolean {
  return /^application\/(?:[\w.!#$&^-]+\+)?json\s*(?:;|$)/i.test(contentType.trim());
}

/** A header value such as a content-type, fit to name in a message: short, single-line, masked. */
export function headerValue(value: string, secrets: readonly string[] = []): string {
  return excerpt(value, secrets, 80);
}

/** How an answer that is not quoted is named instead: its content-type and length. */
export function unquoted(body: string, contentType: string, secrets: readonly string[] = []): string {
  const type = headerValue(contentType, secrets) || 'no content-type';
  return `${type}, ${characters(body.length)}, not quoted`;
}

export function characters(count: number): string {
  return `${count} character${count === 1 ? '' : 's'}`;
}

/** Messages undici gives its network failures, which quote nothing of the request. */
const FIXED_MESSAGES = new Set(['fetch failed', 'terminated', 'other side closed']);

/**
 * A thrown value named for a message without its own message, which may quote the request
 * (a header value fetch refused, say): its class, or one of undici's fixed messages, and
 * the system error code of its cause (ECONNRESET, ...).
 */
export function failureName(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  const message = error instanceof Error ? error.message : '';
  const label = FIXED_MESSAGES.has(message) ? message : /^[A-Za-z][\w$]{0,39}$/.test(name) ? name : 'unnamed error';
  const code = systemCode(error);
  return code === undefined ? label : `${label} (${code})`;
}

/**
 * The system or library code behind a failure (ECONNREFUSED, ENOTFOUND, CERT_HAS_EXPIRED,
 * UND_ERR_CONNECT_TIMEOUT, ...), wherever it sits: undici's "fetch failed" keeps it on its
 * cause, a TLS failure may nest it one cause further, and a connection tried on several
 * addresses keeps one per address in `errors`. A code is a name, never request data.
 */
export function systemCode(error: unknown): string | undefined {
  const pending: unknown[] = [error];
  for (let seen = 0; pending.length > 0 && seen < 8; seen += 1) {
    const current = pending.shift() as { code?: unknown; cause?: unknown; errors?: unknown } | undefined;
    if (typeof current !== 'object' || current === null) continue;
    if (typeof current.code === 'string' && /^[A-Z][A-Z0-9_]{1,39}$/.test(current.code)) return current.code;
    pending.push(current.cause);
    if (Array.isArray(current.errors)) pending.push(...(current.errors as unknown[]));
  }
  return undefined;
}

/**
 * A short, single-line start of `text` for an error message: cut after the first
 * "authorization" or "bearer" (any case, any escaping), each run of `MIN_PIECE` or more
 * characters that is a piece of one of `secrets` replaced with `***`.
 */
export function excerpt(text: string, secrets: readonly string[] = [], limit = EXCERPT_CHARS): string {
  const wanted = secrets.filter((secret) => secret.length > 0);
  const longest = wanted.reduce((max, secret) => Math.max(max, secret.length), 0);
  // Masked before it is cut: a cut through a secret would leave its start unmasked. The
  // window reaches far enough that a secret starting in the scanned part lies within it
  // whole, in any escaping.
  const window = text.slice(0, SCANNED_CHARS + longest * MAX_ESCAPE_CHARS);
  const { plain, starts } = decode(window);
  const masked = maskPieces(plain, wanted);

  let shown = plain.length;
  // A piece at the end of a cut window may go on past it, unseen: those units are not shown.
  if (window.length < text.length) shown = Math.max(0, shown - MIN_PIECE);
  const credentials = CREDENTIAL_WORDS.exec(plain.toLowerCase());
  if (credentials) shown = Math.min(shown, credentials.index + credentials[0].length);

  let out = '';
  for (let i = 0; i < shown && out.length < SCANNED_CHARS; i += 1) {
    if (!masked[i]) out += window.slice(starts[i], starts[i + 1]);
    else if (i === 0 || !masked[i - 1]) out += '***';
  }
  return out
    .slice(0, SCANNED_CHARS)
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim()
    .slice(0, limit);
}

/** True when `text` holds a piece of one of `secrets`, as `excerpt` would mask it. */
export function holdsPiece(text: string, secrets: readonly string[]): boolean {
  return maskPieces(
    decode(text).plain,
    secrets.filter((secret) => secret.length > 0),
  ).includes(true);
}

/**
 * The text with each escape a secret may be echoed in read as the character it stands for
 * (`%2B`, `\/`, `\u002B`, `&#43;`), one UTF-16 unit per unit of the text, and where each
 * unit starts in the text. Every decoded unit is one code unit, so pieces of a secret are
 * found by plain comparison.
 */
function decode(text: string): { plain: string; starts: number[] } {
  let plain = '';
  const starts: number[] = [];
  let i = 0;
  while (i < text.length) {
    starts.push(i);
    const [char, width] = escapeAt(text, i) ?? [text.charAt(i), 1];
    plain += char;
    i += width;
  }
  starts.push(text.length);
  return { plain, starts };
}

const JSON_SIMPLE_ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function escapeAt(text: string, i: number): [string, number] | undefined {
  const head = text.charAt(i);
  if (head === '%') {
    const match = /^%([0-9a-f]{2})/i.exec(text.slice(i, i + 3));
    if (match) return [String.fromCharCode(parseInt(match[1] as string, 16)), 3];
  } else if (head === '\\') {
    const next = text.charAt(i + 1);
    if (next === 'u') {
      const match = /^\\u([0-9a-f]{4})/i.exec(text.slice(i, i + 6));
      if (match) return [String.fromCharCode(parseInt(match[1] as string, 16)), 6];
    } else if (Object.hasOwn(JSON_SIMPLE_ESCAPES, next)) {
      return [JSON_SIMPLE_ESCAPES[next] as string, 2];
    }
  } else if (head === '&') {
    const match = /^&#(?:x([0-9a-f]{1,6})|([0-9]{1,7}));/i.exec(text.slice(i, i + MAX_ESCAPE_CHARS));
    if (match) {
      const code = match[1] !== undefined ? parseInt(match[1], 16) : Number(match[2]);
      if (code <= 0xffff) return [String.fromCharCode(code), match[0].length];
    }
  }
  return undefined;
}

/**
 * Marks every unit of `plain` inside a run of at least `MIN_PIECE` units that occurs in a
 * secret (the whole secret where it is shorter). One pass over the text with a set of the
 * secret's pieces of that length: a run is covered by its overlapping pieces, so a wrapped
 * token loses every line it shares with the text, whatever separates them.
 */
function maskPieces(plain: string, secrets: readonly string[]): boolean[] {
  const masked = new Array<boolean>(plain.length).fill(false);
  for (const secret of secrets) {
    const size = Math.min(MIN_PIECE, secret.length);
    const pieces = new Set<string>();
    for (let i = 0; i + size <= secret.length; i += 1) pieces.add(secret.slice(i, i + size));
    for (let i = 0; i + size <= plain.length; i += 1) {
      if (pieces.has(plain.slice(i, i + size))) masked.fill(true, i, i + size);
    }
  }
  return masked;
}
