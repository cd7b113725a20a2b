import type { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type Platform, type SimulatorOptions } from './simulator.ts';
import { startSsm, type SsmServer } from './ssm-server.ts';
import type { TokenServerOptions } from './token-server.ts';

/**
 * What is used here of s3rver, from its maintained fork (docs/dependencies.md says why),
 * which ships no typings. A Koa app, and so an EventEmitter.
 */
interface S3rverServer extends EventEmitter {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
interface S3rverOptions {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string; configs: string[] }[];
  allowMismatchedSignatures: boolean;
}
const S3rver = createRequire(import.meta.url)('@20minutes/s3rver') as new (options: S3rverOptions) => S3rverServer;

export const DEMO = {
  bucket: 'thingpark-snapshots',
  clientIdParam: '/thingpark-exporter/client-id',
  clientSecretParam: '/thingpark-exporter/client-secret',
  clientId: 'demo-exporter',
  clientSecret: 'demo-secret-change-me',
  region: 'eu-west-1',
} as const;

export interface StandIns {
  platform: Platform;
  ssm: SsmServer;
  s3Url: string;
  /** Object writes and deletes, in the order S3 applied them. */
  s3Events: { event: string; key: string }[];
  /** The exporter's environment pointing at the stand-ins (plus the SDK's own variables). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface StandInOptions {
  simulator?: Partial<SimulatorOptions>;
  token?: Partial<TokenServerOptions>;
}

/**
 * Everything the exporter talks to, on 127.0.0.1: the ThingPark simulator with its
 * Keycloak-path token server, an SSM endpoint seeded with the demo credentials, and s3rver
 * with the snapshot bucket. The exporter reaches them only through its documented
 * environment and the SDK's standard endpoint variables.
 */
export async function startStandIns(options: StandInOptions = {}): Promise<StandIns> {
  const platform = await startPlatform(options.simulator, {
    clientId: DEMO.clientId,
    clientSecret: DEMO.clientSecret,
    ...options.token,
  });
  const ssm = await startSsm();
  ssm.put(DEMO.clientIdParam, options.token?.clientId ?? DEMO.clientId);
  ssm.put(DEMO.clientSecretParam, options.token?.clientSecret ?? DEMO.clientSecret, 'SecureString');

  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: DEMO.bucket, configs: [] }],
    // The fork checks SigV4 signatures, but over a bucket's path without the trailing slash
    // the SDK signs, so it would refuse every ListObjectsV2 and DeleteObjects. s3rver 3.7
    // never checked SigV4 at all; an unknown access key is still refused.
    allowMismatchedSignatures: true,
  });
  const s3Events: StandIns['s3Events'] = [];
  s3rver.on('event', (event: { Records: { eventName: string; s3: { object: { key: string } } }[] }) => {
    for (const record of event.Records) s3Events.push({ event: record.eventName, key: decodeURIComponent(record.s3.object.key) });
  });
  const { port } = await s3rver.run();
  const s3Url = `http://127.0.0.1:${port}`;

  return {
    platform,
    ssm,
    s3Url,
    s3Events,
    env: {
      THINGPARK_BASE_URL: platform.url,
      THINGPARK_CLIENT_ID_PARAM: DEMO.clientIdParam,
      THINGPARK_CLIENT_SECRET_PARAM: DEMO.clientSecretParam,
      SNAPSHOT_BUCKET: DEMO.bucket,
      AWS_REGION: DEMO.region,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_ENDPOINT_URL_S3: s3Url,
      AWS_ENDPOINT_URL_SSM: ssm.url,
      // s3rver refuses aws-chunked bodies with a checksum trailer; send plain bodies, as S3 also accepts.
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    },
    async stop() {
      await Promise.allSettled([platform.close(), ssm.close(), s3rver.close()]);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** A loopback port nothing listens on: connecting to it is refused at once (ECONNREFUSED). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
