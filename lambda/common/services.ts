import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from './config.ts';

/**
 * The services a warm context builds once (lambda/services.ts) and hands to what it runs:
 * here, below the run and the curation alike, so that neither reaches into the other for them.
 */

/** A valid access token when asked, kept between runs: what the platform client needs of the token cache (auth/token-cache.ts). */
export interface AccessTokens {
  get(): Promise<string>;
  /** Drops the token the platform refused, unless another caller already replaced it. */
  invalidate(value: string): void;
  /** Grants made since the context started; a run reports the difference. */
  readonly grants: number;
}

/** What a curation is handed: the configuration, the S3 client, the metrics it publishes to. */
export interface CurateServices {
  config: Config;
  s3: S3Client;
  metrics: Metrics;
}

/** What an export is handed, and may keep across runs: a curation's services and the token. */
export interface RunServices extends CurateServices {
  tokens: AccessTokens;
}
