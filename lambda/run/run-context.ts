import type { Logger } from '@aws-lambda-powertools/logger';
import type { S3Client } from '@aws-sdk/client-s3';
import type { TokenCache } from '../auth/token-cache.ts';
import type { Config } from '../common/config.ts';

/** What a run is handed and may keep across runs: the configuration, the clients, the token. */
export interface RunServices {
  config: Config;
  s3: S3Client;
  tokens: TokenCache;
}

/** What sets one run apart from another. */
export interface RunOptions {
  runId: string;
  /** Unique to this invocation; names its data files and its marker. */
  attempt: string;
  /** Milliseconds left before the Lambda's hard timeout. */
  remainingMs: () => number;
  logger: Logger;
}
