import { checkUrl, DEFAULTS, isGiven, noProblems, readChoice, readInteger, readKeyPrefix, readText, TOKEN_PATH, type Env, type Problems } from './env.ts';
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
  /** Where offset paging starts; undefined: learned from the platform (devices-api.ts `firstPageIndex`). */
  firstPageIndex?: number;
  /** `auto`: cursor mode where the platform has it, offsets where not; `offset`: offsets always. */
  paging: 'auto' | 'offset';
  concurrency: number;
  maxConcurrency: number;
  requestTimeoutMs: number;
  maxRetries: number;
  /** S3 and SSM clients (common/aws-clients.ts). */
  awsConnectTimeoutMs: number;
  awsRequestTimeoutMs: number;
  runRetryBudget: number;
  tokenRenewMarginSeconds: number;
  fileMaxBytes: number;
  deadlineMarginSeconds: number;
  checkpointMarginSeconds: number;
  maxSlices: number;
  maxRunMinutes: number;
}

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

/** The function's configuration, from the variables of env.ts; every problem is reported at once. */
export function loadConfig(env: Env = process.env): Config {
  const problems = noProblems();
  const baseRaw = readText(env, 'THINGPARK_BASE_URL', problems).replace(/\/+$/, '');
  const baseUrl = checkUrl('THINGPARK_BASE_URL', baseRaw || 'https://missing.invalid', problems);
  const tokenRaw = readText(env, 'THINGPARK_TOKEN_URL', problems);
  // Derived from the base URL unless given; a missing base URL is already reported.
  const tokenUrl = tokenRaw || baseRaw ? checkUrl('THINGPARK_TOKEN_URL', tokenRaw || `${baseRaw}${TOKEN_PATH}`, problems) : baseUrl;
  const tokenAuth = readChoice(env, 'THINGPARK_TOKEN_AUTH', problems);
  const prefix = readKeyPrefix(env, 'SNAPSHOT_PREFIX', problems);

  const config: Config = {
    baseUrl,
    tokenUrl,
    tokenAuth,
    clientIdParam: readText(env, 'THINGPARK_CLIENT_ID_PARAM', problems),
    clientSecretParam: readText(env, 'THINGPARK_CLIENT_SECRET_PARAM', problems),
    credentialsCacheSeconds: readInteger(env, 'THINGPARK_CREDENTIALS_CACHE_SECONDS', problems),
    bucket: readText(env, 'SNAPSHOT_BUCKET', problems),
    prefix,
    pageSize: readInteger(env, 'THINGPARK_PAGE_SIZE', problems),
    // Unset: learned from the platform, which the spec says counts from 1 and older deployments from 0.
    ...(isGiven(env, 'THINGPARK_FIRST_PAGE_INDEX') ? { firstPageIndex: readInteger(env, 'THINGPARK_FIRST_PAGE_INDEX', problems) } : {}),
    paging: readChoice(env, 'THINGPARK_PAGING', problems),
    concurrency: readInteger(env, 'THINGPARK_CONCURRENCY', problems),
    maxConcurrency: readInteger(env, 'THINGPARK_MAX_CONCURRENCY', problems),
    requestTimeoutMs: readInteger(env, 'THINGPARK_REQUEST_TIMEOUT_MS', problems),
    maxRetries: readInteger(env, 'THINGPARK_MAX_RETRIES', problems),
    awsConnectTimeoutMs: readInteger(env, 'RUN_AWS_CONNECT_TIMEOUT_MS', problems),
    awsRequestTimeoutMs: readInteger(env, 'RUN_AWS_REQUEST_TIMEOUT_MS', problems),
    runRetryBudget: readInteger(env, 'RUN_RETRY_BUDGET', problems),
    tokenRenewMarginSeconds: readInteger(env, 'TOKEN_RENEW_MARGIN_SECONDS', problems),
    fileMaxBytes: readInteger(env, 'SNAPSHOT_FILE_MAX_BYTES', problems),
    deadlineMarginSeconds: readInteger(env, 'RUN_DEADLINE_MARGIN_SECONDS', problems),
    checkpointMarginSeconds: readInteger(env, 'RUN_CHECKPOINT_MARGIN_SECONDS', problems),
    maxSlices: readInteger(env, 'RUN_MAX_SLICES', problems),
    maxRunMinutes: readInteger(env, 'RUN_MAX_MINUTES', problems),
  };
  checkWindow(config, isGiven(env, 'THINGPARK_MAX_CONCURRENCY'), problems);
  if (problems.list.length > 0) throw new ConfigError(problems.list);
  return config;
}

/**
 * The window's start, its ceiling and the page size, together. A ceiling given is checked
 * as given; the default one fits the memory bound (MAX_CONCURRENCY_TIMES_PAGE_SIZE) and
 * starts no lower than the window does, so only the start can break the bound.
 */
function checkWindow(config: Config, ceilingGiven: boolean, problems: Problems): void {
  if (!ceilingGiven) {
    const fitting = Math.floor(MAX_CONCURRENCY_TIMES_PAGE_SIZE / Math.max(1, config.pageSize));
    config.maxConcurrency = Math.max(config.concurrency, Math.min(DEFAULTS.THINGPARK_MAX_CONCURRENCY, fitting));
  }
  const bound = ceilingGiven ? 'THINGPARK_MAX_CONCURRENCY' : 'THINGPARK_CONCURRENCY';
  // Variables already reported are left out, so that these checks do not pile onto them.
  const windowValid = !problems.invalid.has('THINGPARK_CONCURRENCY') && !problems.invalid.has('THINGPARK_MAX_CONCURRENCY');
  if (windowValid && config.concurrency > config.maxConcurrency) {
    problems.list.push(
      `THINGPARK_CONCURRENCY (where the window starts) must be at most THINGPARK_MAX_CONCURRENCY (its ceiling), ` +
        `got ${config.concurrency} > ${config.maxConcurrency}: lower THINGPARK_CONCURRENCY or raise THINGPARK_MAX_CONCURRENCY`,
    );
  }
  const held = config.maxConcurrency * config.pageSize;
  if (windowValid && !problems.invalid.has('THINGPARK_PAGE_SIZE') && held > MAX_CONCURRENCY_TIMES_PAGE_SIZE) {
    problems.list.push(
      `${bound} x THINGPARK_PAGE_SIZE must be at most ${MAX_CONCURRENCY_TIMES_PAGE_SIZE} to bound the pages held in memory, ` +
        `got ${config.maxConcurrency} x ${config.pageSize} = ${held}: lower ${bound} or THINGPARK_PAGE_SIZE`,
    );
  }
}
