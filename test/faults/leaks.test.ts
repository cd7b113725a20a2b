import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { AdaptiveWindow } from '../../lambda/platform/adaptive-window.ts';
import { pageFetcher } from '../../lambda/platform/devices-api.ts';
import { TokenCache } from '../../lambda/auth/token-cache.ts';
import { RetryBudget, retrying } from '../../lambda/common/retry.ts';
import type { Fault } from '../../tools/stand-ins/simulator.ts';
import type { TokenFault } from '../../tools/stand-ins/token-server.ts';
import { DEMO, describeError, exporter, freshPrefix, invoke, leaks, position, reset, useHarness, type Outcome } from './harness.ts';
import { putDirect } from './s3-proxy.ts';

const h = useHarness();

/** Everything an invocation left for an operator to read: its output and its error, causes included. */
const readable = (outcome: Outcome) => `${outcome.output}\n${describeError(outcome.error)}`;

/**
 * Every 8-character piece of each secret found in the text: a search that does not share
 * the masking's own decoding, so a piece left readable in any form is counted.
 */
function pieces(text: string, secrets: string[], size = 8): string[] {
  const wanted = new Set<string>();
  for (const secret of secrets) {
    for (let i = 0; i + size <= secret.length; i += 1) wanted.add(secret.slice(i, i + size));
  }
  const found: string[] = [];
  for (let i = 0; i + size <= text.length; i += 1) {
    const window = text.slice(i, i + size);
    if (wanted.has(window)) found.push(window);
  }
  return found;
}

/** As a MalformedPageError's message shows an excerpt: JSON-quoted. */
const quoted = (text: string) => JSON.stringify(text).slice(1, -1);

/** A token and the forms a proxy or a debug page may echo it in. */
function forms(token: string): string[] {
  const encoded = encodeURIComponent(token);
  return [token, encoded, encoded.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()), token.replaceAll('/', '\\/')];
}

/**
 * An opaque token with every character RFC 6750 allows outside letters and digits, each
 * "+" and "/" far enough apart that the runs between them are longer than a masked piece:
 * what an encoded echo would leave readable if only the exact token were masked.
 */
function opaqueToken(): string {
  const runs = Array.from({ length: 6 }, () => randomBytes(9).toString('base64url').replace(/[-_]/g, 'x'));
  return `${runs[0]}+${runs[1]}/${runs[2]}+${runs[3]}/${runs[4]}.${runs[5]}~==`;
}

/** Cut into lines of `width`, as a proxy's debug page or a mail-style wrapper would. */
function wrap(text: string, width: number, separator: string): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) lines.push(text.slice(i, i + width));
  return lines.join(separator);
}

async function withTokenFault(fault: TokenFault, env: Record<string, string> = {}) {
  const sim = await reset(h);
  sim.tokens.fault = () => fault;
  return { sim, outcome: await invoke(h, await exporter(h, freshPrefix(), env), {}) };
}

async function withPageFault(fault: (bearer: string) => Fault, env: Record<string, string> = {}, token?: string) {
  const sim = await reset(h, { fault: ({ pageIndex, bearer }) => (pageIndex === 1 ? fault(bearer) : undefined) });
  if (token !== undefined) sim.tokens.fault = () => ({ accessToken: token });
  return { sim, outcome: await invoke(h, await exporter(h, freshPrefix(), env), {}) };
}

describe('leaks: tokens that cannot be sent', () => {
  it('a granted token with a line break fails the run at the grant, naming the rule and not the token', async () => {
    const head = randomBytes(18).toString('base64url');
    const tail = randomBytes(18).toString('base64url');
    const { sim, outcome } = await withTokenFault({ accessToken: `${head}\n${tail}` });
    expect(outcome.error?.name).toBe('PlatformError');
    expect(outcome.error?.message).toMatch(/b64token/);
    expect(outcome.error?.message).toMatch(/line break at character 25/);
    expect(pieces(readable(outcome), [head, tail])).toEqual([]);
    expect(sim.stats.requests).toBe(0);
  });

  it('a granted token longer than 16 KiB fails the run at the grant, naming its length and not the token', async () => {
    const token = randomBytes(15_000).toString('base64url');
    const { sim, outcome } = await withTokenFault({ accessToken: token });
    expect(token).toHaveLength(20_000);
    expect(outcome.error?.name).toBe('PlatformError');
    expect(outcome.error?.message).toMatch(/20000 characters.*16384/);
    expect(pieces(readable(outcome), [token])).toEqual([]);
    expect(sim.stats.requests).toBe(0);
  });

  it("fetch refusing a request (not a network failure) is reported with the page and the error's class, not its message", async () => {
    // Past the grant's check only through a token cache fed by hand: the one way left for a
    // header value undici refuses to reach fetch.
    const head = randomBytes(18).toString('base64url');
    const tail = randomBytes(18).toString('base64url');
    const fetchPage = pageFetcher({
      baseUrl: new URL(h.platform.url),
      pageSize: 100,
      requestTimeoutMs: 1000,
      tokens: new TokenCache(async () => ({ accessToken: `${head}\n${tail}`, expiresIn: 300 }), 60),
      retry: retrying({ maxRetries: 1, budget: new RetryBudget(1) }),
      window: new AdaptiveWindow(1),
      stats: { requests: 0, throttled: 0, tokenRefusals: 0 },
    });
    const error = (await fetchPage(3, new AbortController().signal).catch((caught: unknown) => caught)) as Error;
    expect(error.name).toBe('PlatformError');
    expect(error.message).toMatch(/page 3/);
    expect(error.message).toMatch(/TypeError/);
    expect(pieces(describeError(error), [head, tail])).toEqual([]);
  });
});

describe('leaks: OAuth errors from the token endpoint', () => {
  const quotingRequest = JSON.stringify({
    error: `invalid_request client_id=${DEMO.clientId}&client_secret=${DEMO.clientSecret}&grant_type=client_credentials`,
    error_description: `could not parse client_secret=${DEMO.clientSecret}`,
  });

  it('a 400 whose error quotes the request is "unrecognised", and neither the secret nor the description is quoted', async () => {
    const { outcome } = await withTokenFault({ status: 400, body: quotingRequest });
    expect(outcome.error).toMatchObject({ name: 'PlatformError', status: 400 });
    expect(outcome.error?.message).toMatch(/HTTP 400 unrecognised/);
    expect(readable(outcome)).not.toContain('client_secret');
    expect(pieces(readable(outcome), [DEMO.clientSecret])).toEqual([]);
  });

  it('a 300 KB error is "unrecognised", not a 300,000-character message', async () => {
    const { outcome } = await withTokenFault({ status: 400, body: JSON.stringify({ error: 'x'.repeat(300_000) }) });
    expect(outcome.error).toMatchObject({ name: 'PlatformError', status: 400 });
    expect(outcome.error?.message).toMatch(/HTTP 400 unrecognised/);
    expect(outcome.error?.message.length).toBeLessThan(300);
    expect(outcome.output.length).toBeLessThan(50_000);
  });

  it('an error that looks like a code but is the client secret is "unrecognised"', async () => {
    const { outcome } = await withTokenFault({ status: 400, body: JSON.stringify({ error: DEMO.clientSecret }) });
    expect(outcome.error?.message).toMatch(/HTTP 400 unrecognised/);
    expect(pieces(readable(outcome), [DEMO.clientSecret])).toEqual([]);
  });

  it('a well-formed code is still named, its description is not', async () => {
    const { outcome } = await withTokenFault({ status: 400, body: '{"error":"invalid_scope","error_description":"scope thingpark-read not granted"}' });
    expect(outcome.error?.message).toMatch(/HTTP 400 invalid_scope/);
    expect(readable(outcome)).not.toContain('not granted');
  });

  const challenges: [string, number, string][] = [
    ['401 (a rejected client)', 401, 'ClientRejectedError'],
    ['400', 400, 'PlatformError'],
  ];
  it.each(challenges)('a WWW-Authenticate challenge on a %s whose error quotes the request is "unrecognised"', async (_name, status, expected) => {
    const { outcome } = await withTokenFault({
      status,
      headers: {
        'www-authenticate': `Basic realm="thingpark", error="client_secret=${DEMO.clientSecret}", error_description="bad client_secret=${DEMO.clientSecret}"`,
      },
      body: '',
    });
    expect(outcome.error?.name).toBe(expected);
    expect(outcome.error?.message).toMatch(new RegExp(`HTTP ${status} unrecognised`));
    expect(readable(outcome)).not.toContain('client_secret');
    expect(pieces(readable(outcome), [DEMO.clientSecret])).toEqual([]);
  });
});

describe('leaks: tokens echoed by device API answers', () => {
  it('a JSON page echoing the Authorization header is quoted up to "Authorization" and no further', async () => {
    const { sim, outcome } = await withPageFault((bearer) => ({
      status: 200,
      body: JSON.stringify({ debug: { headers: { Authorization: `Bearer ${bearer}`, 'X-Trace': 'after-the-cut' } } }),
    }));
    expect(pieces(readable(outcome), [...sim.stats.tokens])).toEqual([]);
    expect(outcome.error?.name).toBe('MalformedPageError');
    expect(outcome.error?.message).toContain(quoted('{"debug":{"headers":{"Authorization'));
    expect(readable(outcome)).not.toContain('after-the-cut');
  });

  it.each(['bearer', 'BEARER', 'Bearer', 'bEaReR'])('a JSON page quoting "%s <token>" is quoted up to that word and no further', async (word) => {
    const { sim, outcome } = await withPageFault((bearer) => ({
      status: 200,
      body: JSON.stringify({ seen: `auth=${word} ${bearer}`, next: 'after-the-cut' }),
    }));
    expect(pieces(readable(outcome), [...sim.stats.tokens])).toEqual([]);
    expect(outcome.error?.name).toBe('MalformedPageError');
    expect(outcome.error?.message).toContain(quoted(`{"seen":"auth=${word}`));
    expect(readable(outcome)).not.toContain('after-the-cut');
  });

  it('a 502 JSON page echoing the header in lower case: retried, then quoted up to "authorization"', async () => {
    const { sim, outcome } = await withPageFault(
      (bearer) => ({ status: 502, body: JSON.stringify({ error: 'upstream', request: { authorization: `bearer ${bearer}`, next: 'after-the-cut' } }) }),
      { THINGPARK_MAX_RETRIES: '1' },
    );
    expect(pieces(readable(outcome), [...sim.stats.tokens])).toEqual([]);
    expect(outcome.error).toMatchObject({ name: 'PlatformError', status: 502 });
    expect(outcome.error?.message).toContain('page 1: HTTP 502 {"error":"upstream","request":{"authorization');
    expect(readable(outcome)).not.toContain('after-the-cut');
  });

  const wrappings: [string, number, string][] = [
    ['LF every 16 characters', 16, '\n'],
    ['CRLF every 10 characters', 10, '\r\n'],
    ['a space every 12 characters', 12, ' '],
    ['an HTML line break every 20 characters', 20, '<br>'],
  ];
  it.each(wrappings)('a JSON page echoing the token wrapped (%s) shows no piece of it', async (_name, width, separator) => {
    const { sim, outcome } = await withPageFault((bearer) => ({
      status: 200,
      body: JSON.stringify({ message: 'token rejected', echo: wrap(bearer, width, separator) }),
    }));
    expect(pieces(readable(outcome), [...sim.stats.tokens])).toEqual([]);
    expect(outcome.error?.name).toBe('MalformedPageError');
    expect(outcome.error?.message).toContain(quoted('{"message":"token rejected","echo":"'));
  });

  // The last form is checked for pieces of the token only: a wrap may split an escape
  // ("%2" | "B"), and the few characters next to a split are not a piece of the token.
  const encodings: [string, (token: string) => string, (token: string) => string[]][] = [
    ['URL-encoded', (token) => encodeURIComponent(token), forms],
    ['URL-encoded in lower-case hex', (token) => encodeURIComponent(token).replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()), forms],
    ['JSON-escaped ("\\/")', (token) => token.replaceAll('/', '\\/'), forms],
    ['JSON-escaped ("\\u002b")', (token) => token.replace(/[+/=]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`), forms],
    ['wrapped after URL-encoding', (token) => wrap(encodeURIComponent(token), 24, '\\n'), (token) => [token]],
  ];
  it.each(encodings)('a JSON page echoing a token with "+", "/" and "=" %s shows no piece of it', async (_name, encode, checked) => {
    const token = opaqueToken();
    const { sim, outcome } = await withPageFault(
      () => ({ status: 200, body: `{"request":"GET /devices?access_token=${encode(token)}","next":"fine"}` }),
      {},
      token,
    );
    expect(pieces(readable(outcome), checked(token))).toEqual([]);
    expect([...sim.stats.tokens]).toContain(token);
    expect(outcome.error?.name).toBe('MalformedPageError');
    expect(outcome.error?.message).toContain(quoted('{"request":"GET /devices?access_token=***'));
  });

  const pages: [string, number, Record<string, string>, string][] = [
    ['a 200 HTML page', 200, {}, 'MalformedPageError'],
    ['a 502 HTML page', 502, { THINGPARK_MAX_RETRIES: '0' }, 'PlatformError'],
  ];
  it.each(pages)('%s echoing the token wrapped is described by its type and length, not quoted', async (_name, status, env, expected) => {
    let length = 0;
    const { sim, outcome } = await withPageFault((bearer) => {
      const body = `<html><body><pre>GET /devices\nAuthorization: Bearer\n${wrap(bearer, 16, '\n')}</pre></body></html>`;
      length = body.length;
      return { status, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
    }, env);
    expect(pieces(readable(outcome), [...sim.stats.tokens])).toEqual([]);
    expect(outcome.error?.name).toBe(expected);
    expect(outcome.error?.message).toContain('text/html; charset=utf-8');
    expect(outcome.error?.message).toContain(`${length} characters, not quoted`);
    expect(readable(outcome)).not.toContain('<pre>');
  });
});

describe('leaks: the check after each test', () => {
  it('finds a client secret printed and a token written since the last check, and names where', async () => {
    const sim = await reset(h);
    const prefix = freshPrefix();
    expect((await invoke(h, await exporter(h, prefix), {})).summary?.status).toBe('committed');
    const token = [...sim.stats.tokens][0] ?? '';
    expect(token).not.toBe('');
    const from = position(h);
    const key = `${prefix}stray/leak.json`;
    h.journal.push(`a log line quoting ${DEMO.clientSecret}`);
    await putDirect(h.proxy, DEMO.bucket, key, JSON.stringify({ bearer: token }));
    try {
      expect(await leaks(h, from, position(h))).toEqual([
        { where: 'printed, thrown or returned', what: 'client secret' },
        { where: key, what: 'platform token' },
      ]);
    } finally {
      // Planted, not leaked: taken back before the check after this test reads them.
      h.journal.splice(from.journal);
      await h.proxy.direct.send(new DeleteObjectCommand({ Bucket: DEMO.bucket, Key: key }));
    }
  });
});
