/**
 * Every environment variable the function reads, each once: its name, family, meaning,
 * default and check. The function's configuration (config.ts) and curation's settings
 * (curate/settings.ts) read their variables through it, the stack checks functionEnvironment
 * against it (infra/settings.ts), the misspelling check below matches names to it, and
 * docs/configuration.md's table lists exactly these variables.
 */

/** The environment, or a part of it: `process.env`, a context's overrides, a test's values. */
export type Env = Record<string, string | undefined>;

type Family = 'platform' | 'credentials' | 'token' | 'paging' | 'run' | 'storage' | 'curate' | 'powertools';

/** How a value is read and checked; the message of each check names the variable. */
type Check =
  | { kind: 'text' }
  | { kind: 'url' }
  | { kind: 'key-prefix' }
  | { kind: 'field-list' }
  | { kind: 'choice'; values: readonly string[] }
  | { kind: 'integer'; min: number; max: number; note?: string };

interface Variable {
  family: Family;
  /** One line; docs/configuration.md says more. */
  meaning: string;
  check: Check;
  /** What applies when it is unset. */
  default?: string | number;
  /** Instead of a default: how the value is derived from another variable when it is unset. */
  derived?: string;
  /** Instead of a default: nothing applies, so it must be set. */
  required?: true;
  /** Set by the stack from its context and resources, so functionEnvironment may not set it. */
  setByStack?: true;
}

const text = { kind: 'text' } as const;
const url = { kind: 'url' } as const;
const integer = <Min extends number, Max extends number>(min: Min, max: Max, note?: string) => ({ kind: 'integer', min, max, note }) as const;

/** Where Keycloak serves the token endpoint under the platform root. */
export const TOKEN_PATH = '/users-auth/protocol/openid-connect/token';

/**
 * The variables, in the order docs/configuration.md lists them. Defaults, each chosen for a
 * reason:
 * - paging auto: cursor mode, which the spec says skips no device, wherever the platform
 *   has it; offsets (capped, and verified against the previous run) only where it has not.
 * - page size 1000: what Actility's public code uses; larger pages mean fewer requests
 *   against the fair-use budget, and the maximum is not documented, so we stay at a size
 *   seen to work.
 * - renew margin 60 s: longer than one request with its timeout, so a token never expires
 *   while a request that carries it is in flight; it is capped at half a token's lifetime
 *   (see auth/token-cache.ts) so very short lifetimes do not turn into a grant per request.
 * - concurrency 4: where the window starts, polite to a platform not yet heard from; it
 *   grows while latency holds and halves on every 429/503 (platform/adaptive-window.ts).
 * - max concurrency 32: the window's ceiling. At the default page size it is the most the
 *   memory bound allows (32 x 1000, config.ts's MAX_CONCURRENCY_TIMES_PAGE_SIZE). Measured
 *   (docs/performance.md): at 300 ms of latency a run used all of it and was fastest there;
 *   at 100 ms the run's own CPU held it to 12 to 16, so a ceiling only costs memory when the
 *   platform is slow and the run keeps up. With larger pages the default is lowered to what
 *   fits the bound, and never below THINGPARK_CONCURRENCY.
 * - credentials cached 300 s: a rotated secret is picked up within five minutes even on
 *   a warm container, and a rejected client re-reads at once anyway.
 * - 256 MiB of NDJSON per data file: gzip files are not splittable, so engines read one
 *   file per worker; a few tens of MB compressed is the size they read best.
 * - 30 s to checkpoint a run that continues in another invocation (run/export-run.ts):
 *   completing the open data file (its last parts) and storing the de-duplication set
 *   take a few seconds at ten million devices (about 44 MB of random refs, encoded and
 *   uploaded); the rest absorbs a slow S3 and its retries, and a slice still works 94 % of
 *   the 15 minutes.
 * - compared fields: the configuration and state of a device that the platform's public
 *   code names (health, name, model, subscription, routing profile, alarm level). Telemetry
 *   changes on nearly every uplink and would make nearly every device `changed`.
 * - S3 and SSM: 5 s to connect, which in a region takes milliseconds; 30 s from a request's
 *   send to its answer, which covers a 5 MiB part or a checkpoint's few tens of MB sent at
 *   Lambda's usual S3 throughput many times over. With the SDK's 3 attempts a frozen
 *   endpoint costs a call at most about 90 s (docs/failure-behaviour.md#frozen-endpoints).
 * - 300 s left to curate inline: curating a million simulated devices took 45 s (52 s of
 *   CPU on two cores) in the benchmark (docs/performance.md#curation); the function's
 *   1024 MB give about 0.6 of a core, so about 90 s, and 300 s leaves room for fleets of
 *   about three million devices and a slow S3. A run that does not fit is skipped (and
 *   alarmed) rather than stopped at the deadline, and curated by `{"curate": "<runId>"}`.
 * - silent after 24 hours: most LoRaWAN devices report from every few minutes to a few
 *   times a day, so a day without an uplink is unusual for nearly all of them; a fleet of
 *   daily or weekly reporters sets its own rhythm.
 */
export const VARIABLES = {
  THINGPARK_BASE_URL: { family: 'platform', meaning: 'platform root', check: url, required: true, setByStack: true },
  THINGPARK_TOKEN_URL: { family: 'token', meaning: 'token endpoint', check: url, derived: `\${THINGPARK_BASE_URL}${TOKEN_PATH}` },
  THINGPARK_TOKEN_AUTH: {
    family: 'token',
    meaning: 'how the client authenticates to the token endpoint',
    check: { kind: 'choice', values: ['client_secret_post', 'client_secret_basic'] },
    default: 'client_secret_post',
  },
  THINGPARK_CLIENT_ID_PARAM: { family: 'credentials', meaning: 'SSM parameter holding the client id', check: text, required: true, setByStack: true },
  THINGPARK_CLIENT_SECRET_PARAM: {
    family: 'credentials',
    meaning: 'SSM SecureString holding the client secret',
    check: text,
    required: true,
    setByStack: true,
  },
  THINGPARK_CREDENTIALS_CACHE_SECONDS: {
    family: 'credentials',
    meaning: 'how long a warm context keeps the credentials',
    check: integer(0, 86_400),
    default: 300,
  },
  SNAPSHOT_BUCKET: { family: 'storage', meaning: 'target bucket', check: text, required: true, setByStack: true },
  SNAPSHOT_PREFIX: {
    family: 'storage',
    meaning: 'key prefix of everything the function writes',
    check: { kind: 'key-prefix' },
    default: 'thingpark/',
    setByStack: true,
  },
  THINGPARK_PAGE_SIZE: { family: 'paging', meaning: 'devices per page', check: integer(1, 100_000), default: 1000 },
  THINGPARK_PAGING: {
    family: 'paging',
    meaning: 'cursor mode where the platform has it (auto), or offsets always',
    check: { kind: 'choice', values: ['auto', 'offset'] },
    default: 'auto',
  },
  THINGPARK_FIRST_PAGE_INDEX: {
    family: 'paging',
    meaning: 'offset paging: the index of the first page',
    check: integer(0, 1, 'or unset, to learn it from the platform'),
    derived: 'learned from the platform',
  },
  THINGPARK_CONCURRENCY: { family: 'paging', meaning: 'page requests in flight at the start of a run', check: integer(1, 64), default: 4 },
  THINGPARK_MAX_CONCURRENCY: { family: 'paging', meaning: 'the most page requests in flight the window may grow to', check: integer(1, 64), default: 32 },
  THINGPARK_REQUEST_TIMEOUT_MS: { family: 'platform', meaning: 'timeout of one HTTP request', check: integer(100, 900_000), default: 30_000 },
  THINGPARK_MAX_RETRIES: { family: 'platform', meaning: 'retries of one request, page or token', check: integer(0, 20), default: 5 },
  RUN_AWS_CONNECT_TIMEOUT_MS: { family: 'run', meaning: 'S3 and SSM: time to open a connection', check: integer(100, 60_000), default: 5_000 },
  RUN_AWS_REQUEST_TIMEOUT_MS: {
    family: 'run',
    meaning: "S3 and SSM: time from a request's send to its answer's headers",
    check: integer(100, 600_000),
    default: 30_000,
  },
  RUN_RETRY_BUDGET: { family: 'run', meaning: 'page-request retries allowed for a whole run', check: integer(0, 100_000), default: 100 },
  TOKEN_RENEW_MARGIN_SECONDS: { family: 'token', meaning: 'renew a token this long before it expires', check: integer(0, 3_600), default: 60 },
  SNAPSHOT_FILE_MAX_BYTES: { family: 'storage', meaning: 'NDJSON bytes per data file', check: integer(1024, 5 * 1024 ** 4), default: 256 * 1024 * 1024 },
  RUN_DEADLINE_MARGIN_SECONDS: { family: 'run', meaning: 'stop this long before the Lambda timeout', check: integer(0, 600), default: 20 },
  RUN_CHECKPOINT_MARGIN_SECONDS: {
    family: 'run',
    meaning: 'checkpoint a run that will not finish this long before the deadline',
    check: integer(1, 600),
    default: 30,
  },
  RUN_MAX_SLICES: {
    family: 'run',
    meaning: 'fail a continued run (RUN_SLICE_LIMIT) that would need more invocations than this',
    check: integer(1, 1_000),
    default: 48,
  },
  RUN_MAX_MINUTES: {
    family: 'run',
    meaning: 'fail a continued run (RUN_TIME_LIMIT) this long after its first invocation started',
    check: integer(15, 1_440),
    default: 720,
  },
  CURATE_CHANGE_FIELDS: {
    family: 'curate',
    meaning: 'top-level brief fields whose change makes a device changed',
    check: { kind: 'field-list' },
    default: 'healthState,name,model,networkSubscription,appServersRoutingProfile,alarmLevel',
  },
  CURATE_INLINE_MIN_REMAINING_SECONDS: {
    family: 'curate',
    meaning: "curate a run in its export's invocation only when this long is left",
    check: integer(0, 900, '900 never curates inline'),
    default: 300,
  },
  CURATE_SILENT_AFTER_HOURS: {
    family: 'curate',
    meaning: "a device whose last uplink is older than this at the run's time is silent",
    check: integer(1, 8_760),
    default: 24,
  },
  POWERTOOLS_SERVICE_NAME: { family: 'powertools', meaning: 'service of the logs and metrics', check: text, default: 'thingpark-exporter', setByStack: true },
  POWERTOOLS_METRICS_NAMESPACE: { family: 'powertools', meaning: 'namespace of the metrics', check: text, default: 'ThingParkExporter', setByStack: true },
  POWERTOOLS_LOG_LEVEL: { family: 'powertools', meaning: 'the lowest level logged', check: text, default: 'INFO' },
} as const satisfies Record<string, Variable>;

export type VariableName = keyof typeof VARIABLES;

type Entry<N extends VariableName> = (typeof VARIABLES)[N];
type NameOf<K extends Check['kind']> = { [N in VariableName]: Entry<N>['check']['kind'] extends K ? N : never }[VariableName];
type DefaultOf<N extends VariableName> = Entry<N> extends { default: infer D } ? D : never;

export const VARIABLE_NAMES = Object.keys(VARIABLES) as VariableName[];

/** Each variable's default by name, for the variables that have one. */
export const DEFAULTS = Object.fromEntries(
  Object.entries(VARIABLES).flatMap(([name, variable]) => ('default' in variable ? [[name, variable.default]] : [])),
) as { [N in VariableName as [DefaultOf<N>] extends [never] ? never : N]: DefaultOf<N> };

function variable(name: VariableName): Variable {
  return VARIABLES[name];
}

/** What reading the environment found wrong, all at once; `invalid` holds the variables already reported. */
export interface Problems {
  list: string[];
  invalid: Set<string>;
}

export function noProblems(): Problems {
  return { list: [], invalid: new Set() };
}

function report(problems: Problems, name: string, problem: string): void {
  problems.list.push(problem);
  problems.invalid.add(name);
}

/** Whether the variable is given: set to something other than blanks. */
export function isGiven(env: Env, name: VariableName): boolean {
  return (env[name]?.trim() ?? '') !== '';
}

/** A text variable, trimmed; its default when blank, or a problem when it is required. */
export function readText(env: Env, name: NameOf<'text' | 'url' | 'field-list'>, problems: Problems): string {
  const value = env[name]?.trim();
  if (value) return value;
  const entry = variable(name);
  if (entry.required) report(problems, name, `${name} is required`);
  return typeof entry.default === 'string' ? entry.default : '';
}

/** An integer variable in its range; its default when blank (0 for one without: read those only when given). */
export function readInteger(env: Env, name: NameOf<'integer'>, problems: Problems): number {
  const entry = VARIABLES[name];
  const { check } = entry;
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return 'default' in entry ? entry.default : 0;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < check.min || value > check.max) {
    const note = 'note' in check && check.note ? ` (${check.note})` : '';
    report(problems, name, `${name} must be an integer from ${check.min} to ${check.max}${note}, got "${raw}"`);
  }
  return value;
}

export function readChoice<N extends NameOf<'choice'>>(env: Env, name: N, problems: Problems): Entry<N>['check']['values'][number] {
  const { check, default: fallback } = VARIABLES[name];
  const value = env[name]?.trim() || fallback;
  if (!(check.values as readonly string[]).includes(value)) report(problems, name, `${name} must be ${check.values.join(' or ')}, got "${value}"`);
  return value as Entry<N>['check']['values'][number];
}

/**
 * A key prefix the stack can grant and guard exactly: folders of letters, digits, `_`, `.`
 * and `-`, each ending in `/`, none of them `.` or `..`. The stack writes the prefix into
 * IAM resources and bucket-policy statements, where `*` and `?` are wildcards and `${...}` a
 * policy variable: such a prefix would grant far more than its folder.
 */
const KEY_PREFIX = /^(?:(?!\.\.?\/)[A-Za-z0-9_.-]{1,255}\/){1,16}$/;

/** Whether a prefix is empty or a safe one (KEY_PREFIX). */
export function isSafeKeyPrefix(prefix: string): boolean {
  return prefix === '' || KEY_PREFIX.test(prefix);
}

/** A key prefix, as given (not trimmed: a blank would be part of every key); empty is a valid prefix. */
export function readKeyPrefix(env: Env, name: NameOf<'key-prefix'>, problems: Problems): string {
  const prefix = env[name] ?? VARIABLES[name].default;
  if (!isSafeKeyPrefix(prefix)) {
    report(
      problems,
      name,
      `${name} must be empty or folders of letters, digits, "_", "." and "-" each ending in "/" (no "*", "?", "$", "." or ".." folder), got "${prefix}"`,
    );
  }
  return prefix;
}

const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A comma-separated list of top-level field names, each trimmed. */
export function readFieldList(env: Env, name: NameOf<'field-list'>, problems: Problems): string[] {
  const raw = readText(env, name, problems);
  const fields = raw.split(',').map((field) => field.trim());
  if (fields.some((field) => !FIELD.test(field))) {
    report(problems, name, `${name} must be a comma-separated list of top-level brief field names (letters, digits, "_"), got "${raw}"`);
  }
  return fields;
}

/**
 * An absolute http(s) URL the function sends requests to, checked as `name` (a URL derived
 * from another variable is checked as the variable it stands for).
 */
export function checkUrl(name: NameOf<'url'>, raw: string, problems: Problems): URL {
  // Problems are logged: a value with "@" in it may hold a user:password, so it is not
  // echoed, not even the part that parses as a scheme ("user:secret@host").
  const shown = (value: string): string => (raw.includes('@') ? '' : `, got "${value}"`);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    report(problems, name, `${name} must be an absolute URL${shown(raw)}`);
    return new URL('https://invalid.invalid');
  }
  if (parsed.protocol === 'http:' && !isLoopback(parsed.hostname)) {
    report(problems, name, `${name} must use https:// (plain http:// is allowed only for loopback addresses)`);
  } else if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    report(problems, name, `${name} must be an http(s) URL${shown(parsed.protocol)}`);
  }
  // Userinfo would end up in fetch errors (logged) and in every manifest's source.baseUrl.
  if (parsed.username !== '' || parsed.password !== '') {
    report(problems, name, `${name} must not contain a user name or password: remove the "...@" before the host (credentials come from the SSM parameters)`);
  }
  // The devices path is appended to the base URL, so a query or fragment would swallow it;
  // an empty "?" or "#" counts too, as it would still be kept in the href.
  const [beforeFragment = ''] = parsed.href.split('#');
  if (beforeFragment.includes('?')) report(problems, name, `${name} must not have a query string: remove the "?" and everything after it`);
  if (parsed.href.includes('#')) report(problems, name, `${name} must not have a fragment: remove the "#" and everything after it`);
  return parsed;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** The exporter's own variables: Powertools reads many more of its family than are listed here. */
const OWN_VARIABLES: readonly string[] = VARIABLE_NAMES.filter((name) => VARIABLES[name].family !== 'powertools');

/**
 * The name prefixes of the exporter's own variables (THINGPARK_, SNAPSHOT_, RUN_, TOKEN_,
 * CURATE_). A name with one of them that the exporter does not read is almost always a
 * misspelling, which would otherwise be ignored without a word while its default applies
 * (or, for a required variable, reported as missing with no hint why).
 */
export const VARIABLE_FAMILIES: readonly string[] = [...new Set(OWN_VARIABLES.map((name) => name.slice(0, name.indexOf('_') + 1)))];

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
    if (OWN_VARIABLES.includes(name) || !VARIABLE_FAMILIES.some((family) => upper.startsWith(family))) continue;
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
export function closestVariable(name: string, known: readonly string[] = OWN_VARIABLES): string | undefined {
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
