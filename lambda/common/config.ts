import { ConfigError } from './errors.ts';

/** Everything the exporter is told by its environment, validated once per cold start. */
export interface Config {
  baseUrl: URL;
  tokenUrl: URL;
  tokenAuth: 'client_secret_post' | 'client_secret_basic';
  clientIdParam: string;
  clientSecretParam: string;
  credentialsCacheSeconds: number;
  bucket: string;
  prefix: string;
  pageSize: number;
  firstPageIndex: number;
  concurrency: number;
  maxConcurrency: number;
  requestTimeoutMs: number;
  maxRetries: number;
  runRetryBudget: number;
  tokenRenewMarginSeconds: number;
  fileMaxBytes: number;
  deadlineMarginSeconds: number;
  checkpointMarginSeconds: number;
}

type Env = Record<string, string | undefined>;

const TOKEN_PATH = '/users-auth/protocol/openid-connect/token';

/**
 * Defaults, each chosen for a reason:
 * - page size 1000: what Actility's public code uses; larger pages mean fewer requests
 *   against the fair-use budget, and the maximum is not documented, so we stay at a size
 *   seen to work.
 * - renew margin 60 s: longer than one request with its timeout, so a token never expires
 *   while a request that carries it is in flight; it is capped at half a token's lifetime
 *   (see auth/token-cache.ts) so very short lifetimes do not turn into a grant per request.
 * - concurrency 4: where the window starts, polite to a platform not yet heard from; it
 *   grows while latency holds and halves on every 429/503 (platform/adaptive-window.ts).
 * - max concurrency 32: the window's ceiling. At the default page size it is the most the
 *   memory bound below allows (32 x 1000). Measured (docs/performance.md): at 300 ms of
 *   latency a run used all of it and was fastest there; at 100 ms the run's own CPU held it
 *   to 12 to 16, so a ceiling only costs memory when the platform is slow and the run keeps
 *   up. With larger pages the default is lowered to what fits the bound, and never below
 *   THINGPARK_CONCURRENCY.
 * - credentials cached 300 s: a rotated secret is picked up within five minutes even on
 *   a warm container, and a rejected client re-reads at once anyway.
 * - 256 MiB of NDJSON per data file: gzip files are not splittable, so engines read one
 *   file per worker; a few tens of MB compressed is the size they read best.
 * - 30 s to checkpoint a run that continues in another invocation (run/export-run.ts):
 *   completing the open data file (its last parts) and storing the de-duplication set
 *   take a few seconds at ten million devices (about 44 MB of random refs, encoded and
 *   uploaded); the rest absorbs a slow S3 and its retries, and a slice still works 94 % of
 *   the 15 minutes.
 */
export const DEFAULTS = {
  THINGPARK_TOKEN_AUTH: 'client_secret_post',
  THINGPARK_CREDENTIALS_CACHE_SECONDS: 300,
  SNAPSHOT_PREFIX: 'thingpark/',
  THINGPARK_PAGE_SIZE: 1000,
  THINGPARK_FIRST_PAGE_INDEX: 0,
  THINGPARK_CONCURRENCY: 4,
  THINGPARK_MAX_CONCURRENCY: 32,
  THINGPARK_REQUEST_TIMEOUT_MS: 30_000,
  THINGPARK_MAX_RETRIES: 5,
  RUN_RETRY_BUDGET: 100,
  TOKEN_RENEW_MARGIN_SECONDS: 60,
  SNAPSHOT_FILE_MAX_BYTES: 256 * 1024 * 1024,
  RUN_DEADLINE_MARGIN_SECONDS: 20,
  RUN_CHECKPOINT_MARGIN_SECONDS: 30,
} as const;

/**
 * The most the window's ceiling (THINGPARK_MAX_CONCURRENCY) x THINGPARK_PAGE_SIZE may be.
 * The pager holds up to twice the window's reach in pages, never more than twice the
 * ceiling (see platform/ordered-pages.ts), so this keeps at most 64,000 parsed briefs in
 * memory: at about 2.5 KB each, about 160 MB of the 896 MB heap, which leaves room for the
 * de-duplication set, upload parts and garbage not yet collected. The defaults (a ceiling
 * of 32 x 1000) come near it only while the window is at its ceiling and the writer lags,
 * which the window does not let last: a window its run cannot fill comes back toward what
 * it uses (platform/adaptive-window.ts).
 */
export const MAX_CONCURRENCY_TIMES_PAGE_SIZE = 32_000;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  // Variables already reported, so that checks across variables do not pile onto them.
  const invalid = new Set<string>();
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) problems.push(`${name} is required`);
    return value ?? '';
  };
  const integer = (name: keyof typeof DEFAULTS, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') return DEFAULTS[name] as number;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      invalid.add(name);
    }
    return value;
  };
  const url = (name: string, raw: string): URL => {
    // Problems are logged: a value with "@" in it may hold a user:password, so it is not
    // echoed, not even the part that parses as a scheme ("user:secret@host").
    const shown = (value: string): string => (raw.includes('@') ? '' : `, got "${value}"`);
    let parsed: URL | undefined;
    try {
      parsed = new URL(raw);
    } catch {
      problems.push(`${name} must be an absolute URL${shown(raw)}`);
      return new URL('https://invalid.invalid');
    }
    if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
      problems.push(`${name} must use https:// (plain http:// is allowed only for loopback addresses)`);
    } else if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      problems.push(`${name} must be an http(s) URL${shown(parsed.protocol)}`);
    }
    // Userinfo would end up in fetch errors (logged) and in every manifest's source.baseUrl.
    if (parsed.username !== '' || parsed.password !== '') {
      problems.push(`${name} must not contain a user name or password: remove the "...@" before the host (credentials come from the SSM parameters)`);
    }
    // The devices path is appended to the base URL, so a query or fragment would swallow it;
    // an empty "?" or "#" counts too, as it would still be kept in the href.
    const [beforeFragment = ''] = parsed.href.split('#');
    if (beforeFragment.includes('?')) problems.push(`${name} must not have a query string: remove the "?" and everything after it`);
    if (parsed.href.includes('#')) problems.push(`${name} must not have a fragment: remove the "#" and everything after it`);
    return parsed;
  };

  const baseRaw = required('THINGPARK_BASE_URL').replace(/\/+$/, '');
  const baseUrl = url('THINGPARK_BASE_URL', baseRaw || 'https://missing.invalid');
  const tokenRaw = env.THINGPARK_TOKEN_URL?.trim();
  // Derived from the base URL unless given; a missing base URL is already reported.
  const tokenUrl = tokenRaw || baseRaw ? url('THINGPARK_TOKEN_URL', tokenRaw || `${baseRaw}${TOKEN_PATH}`) : baseUrl;
  const tokenAuth = env.THINGPARK_TOKEN_AUTH?.trim() || DEFAULTS.THINGPARK_TOKEN_AUTH;
  if (tokenAuth !== 'client_secret_post' && tokenAuth !== 'client_secret_basic') {
    problems.push(`THINGPARK_TOKEN_AUTH must be client_secret_post or client_secret_basic, got "${tokenAuth}"`);
  }
  const prefix = env.SNAPSHOT_PREFIX ?? DEFAULTS.SNAPSHOT_PREFIX;
  if (prefix !== '' && (!prefix.endsWith('/') || prefix.startsWith('/'))) {
    problems.push(`SNAPSHOT_PREFIX must be empty or end with "/" and not start with it, got "${prefix}"`);
  }

  const config: Config = {
    baseUrl,
    tokenUrl,
    tokenAuth: tokenAuth as Config['tokenAuth'],
    clientIdParam: required('THINGPARK_CLIENT_ID_PARAM'),
    clientSecretParam: required('THINGPARK_CLIENT_SECRET_PARAM'),
    credentialsCacheSeconds: integer('THINGPARK_CREDENTIALS_CACHE_SECONDS', 0, 86_400),
    bucket: required('SNAPSHOT_BUCKET'),
    prefix,
    pageSize: integer('THINGPARK_PAGE_SIZE', 1, 100_000),
    firstPageIndex: integer('THINGPARK_FIRST_PAGE_INDEX', 0, 1),
    concurrency: integer('THINGPARK_CONCURRENCY', 1, 64),
    maxConcurrency: integer('THINGPARK_MAX_CONCURRENCY', 1, 64),
    requestTimeoutMs: integer('THINGPARK_REQUEST_TIMEOUT_MS', 100, 900_000),
    maxRetries: integer('THINGPARK_MAX_RETRIES', 0, 20),
    runRetryBudget: integer('RUN_RETRY_BUDGET', 0, 100_000),
    tokenRenewMarginSeconds: integer('TOKEN_RENEW_MARGIN_SECONDS', 0, 3_600),
    fileMaxBytes: integer('SNAPSHOT_FILE_MAX_BYTES', 1024, 5 * 1024 ** 4),
    deadlineMarginSeconds: integer('RUN_DEADLINE_MARGIN_SECONDS', 0, 600),
    checkpointMarginSeconds: integer('RUN_CHECKPOINT_MARGIN_SECONDS', 1, 600),
  };
  // A ceiling given is checked as given; the default one fits the memory bound (see DEFAULTS)
  // and starts no lower than the window does, so only the start can break the bound.
  const ceilingGiven = (env.THINGPARK_MAX_CONCURRENCY?.trim() ?? '') !== '';
  if (!ceilingGiven) {
    const fitting = Math.floor(MAX_CONCURRENCY_TIMES_PAGE_SIZE / Math.max(1, config.pageSize));
    config.maxConcurrency = Math.max(config.concurrency, Math.min(DEFAULTS.THINGPARK_MAX_CONCURRENCY, fitting));
  }
  const bound = ceilingGiven ? 'THINGPARK_MAX_CONCURRENCY' : 'THINGPARK_CONCURRENCY';
  const windowValid = !invalid.has('THINGPARK_CONCURRENCY') && !invalid.has('THINGPARK_MAX_CONCURRENCY');
  if (windowValid && config.concurrency > config.maxConcurrency) {
    problems.push(
      `THINGPARK_CONCURRENCY (where the window starts) must be at most THINGPARK_MAX_CONCURRENCY (its ceiling), ` +
        `got ${config.concurrency} > ${config.maxConcurrency}: lower THINGPARK_CONCURRENCY or raise THINGPARK_MAX_CONCURRENCY`,
    );
  }
  const held = config.maxConcurrency * config.pageSize;
  if (windowValid && !invalid.has('THINGPARK_PAGE_SIZE') && held > MAX_CONCURRENCY_TIMES_PAGE_SIZE) {
    problems.push(
      `${bound} x THINGPARK_PAGE_SIZE must be at most ${MAX_CONCURRENCY_TIMES_PAGE_SIZE} to bound the pages held in memory, ` +
        `got ${config.maxConcurrency} x ${config.pageSize} = ${held}: lower ${bound} or THINGPARK_PAGE_SIZE`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Every variable loadConfig reads: the required ones, the derived token URL, and DEFAULTS. */
export const VARIABLES: readonly string[] = [
  'THINGPARK_BASE_URL',
  'THINGPARK_TOKEN_URL',
  'THINGPARK_CLIENT_ID_PARAM',
  'THINGPARK_CLIENT_SECRET_PARAM',
  'SNAPSHOT_BUCKET',
  ...Object.keys(DEFAULTS),
];

/**
 * The name families of VARIABLES. A name in one of them that loadConfig does not read is
 * almost always a misspelling, which would otherwise be ignored without a word while its
 * default applies (or, for a required variable, reported as missing with no hint why).
 */
export const VARIABLE_FAMILIES: readonly string[] = ['THINGPARK_', 'SNAPSHOT_', 'RUN_', 'TOKEN_'];

export interface UnknownVariable {
  name: string;
  /** The known variable closest to it, when one is close enough to be the one meant. */
  suggestion?: string;
  message: string;
}

/**
 * The variables of `env` that look like ours but are not read, each with the closest known
 * name. Pure, so the function (a warning on cold start) and the tools (before they start)
 * say the same thing.
 */
export function unknownVariables(env: Env = process.env): UnknownVariable[] {
  const unknown: UnknownVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    const upper = name.toUpperCase();
    if (VARIABLES.includes(name) || !VARIABLE_FAMILIES.some((family) => upper.startsWith(family))) continue;
    const suggestion = closestVariable(name);
    unknown.push({
      name,
      ...(suggestion === undefined ? {} : { suggestion }),
      message: `${name} is not a variable the exporter reads, so it is ignored` + (suggestion === undefined ? '' : `: did you mean ${suggestion}?`),
    });
  }
  return unknown;
}

/** The known variable nearest to `name` by edit distance (case aside), if near enough to be a typo. */
export function closestVariable(name: string, known: readonly string[] = VARIABLES): string | undefined {
  const upper = name.toUpperCase();
  // About one edit in three characters: a dropped "_" or letter, a swap, a wrong case; not
  // a different word that shares the family's prefix.
  const limit = Math.max(2, Math.ceil(name.length / 3));
  // A unit left off the end (RUN_DEADLINE_MARGIN for ..._SECONDS) is as near as one edit,
  // when only one name continues that way.
  const continued = known.filter((candidate) => candidate.toUpperCase().startsWith(`${upper}_`));
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = continued.length === 1 && continued[0] === candidate ? 1 : editDistance(upper, candidate.toUpperCase());
    if (distance <= limit && (best === undefined || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

/** Levenshtein distance: insertions, deletions and substitutions, one each. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(substitution, (previous[j] as number) + 1, (current[j - 1] as number) + 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
