import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { testS3 } from '../../tools/inspect/snapshot.ts';

/** One request to the S3 stand-in, as a fault rule sees it. */
export interface S3Request {
  method: string;
  bucket: string;
  key: string;
  /** The query string without '?', e.g. "uploadId=...&partNumber=1" or "delete". */
  query: string;
  /** A conditional PutObject: which condition it carries. */
  condition?: { ifNoneMatch?: string; ifMatch?: string };
}

/**
 * Answer with this S3 error instead of applying the request, or, with `applied`, after
 * applying it (S3 stored the object and the client heard an error: a lost answer, which
 * the SDK retries); or, with `holdResponseMs`, apply it and hold the answer back that
 * long or until the client gives up on it (S3 stored the object, the client has not heard
 * yet), calling `held` once the answer is held, for a test to act at that moment; or, with
 * `applyAfterMs`, take the request and apply it only that much later, or with `applyWhen`
 * once that promise settles (an upload S3 completes after its client gave up on it),
 * calling `landed` once it is applied.
 */
export type S3Fault =
  | { status: number; code: string; applied?: boolean }
  | { holdResponseMs: number; held?: () => void }
  | { applyAfterMs: number; landed?: () => void }
  | { applyWhen: Promise<void>; landed?: () => void };

/**
 * What s3rver does not play: conditional writes and failures. A loopback proxy in front of
 * s3rver that forwards every request unchanged (headers too, so SigV4 signatures still
 * verify) except that
 * - a PutObject carrying If-None-Match: * or If-Match: <etag> is checked against the object
 *   and answered 412 PreconditionFailed when the condition fails, as S3 does; the check and
 *   the write are serialised per key, so they are one atomic compare-and-set;
 * - `rule`, if set, is asked first for every request: it may answer with an S3 error, or do
 *   something (e.g. write a competing object through `direct`) before the request proceeds.
 */
export interface S3Proxy {
  url: string;
  /** A client for s3rver itself, bypassing the proxy and its rule. */
  direct: S3Client;
  rule: ((request: S3Request) => Promise<S3Fault | undefined> | S3Fault | undefined) | undefined;
  /** False plays a store that accepts conditional writes without checking them (as s3rver does). */
  honourConditions: boolean;
  /** Every request seen, with the status answered. */
  log: (S3Request & { status: number })[];
  close(): Promise<void>;
}

export async function startS3Proxy(upstreamUrl: string): Promise<S3Proxy> {
  const upstream = new URL(upstreamUrl);
  const direct = testS3(upstreamUrl);
  const locks = new Map<string, Promise<void>>();

  const proxy: S3Proxy = {
    url: '',
    direct,
    rule: undefined,
    honourConditions: true,
    log: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) s3Error(res, 500, 'InternalError', String(error));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const ifNoneMatch = header(req, 'if-none-match');
    const ifMatch = header(req, 'if-match');
    // A PutObject (the SDK adds ?x-id=PutObject), not an UploadPart or a copy.
    const multipart = url.searchParams.has('uploadId') || url.searchParams.has('partNumber');
    const conditional = req.method === 'PUT' && !multipart && (ifNoneMatch !== undefined || ifMatch !== undefined);
    const request: S3Request = {
      method: req.method ?? 'GET',
      bucket: decodeURIComponent(bucket),
      key,
      query: url.search.slice(1),
      ...(conditional ? { condition: { ifNoneMatch, ifMatch } } : {}),
    };
    const record = (status: number) => proxy.log.push({ ...request, status });

    const fault = await proxy.rule?.(request);
    if (fault && 'status' in fault) {
      if (fault.applied) await forward(req, undefined);
      else req.resume();
      record(fault.status);
      s3Error(res, fault.status, fault.code, 'Simulated failure');
      return;
    }
    if (fault && ('applyAfterMs' in fault || 'applyWhen' in fault)) {
      const body = Buffer.concat(await req.toArray());
      await ('applyWhen' in fault ? fault.applyWhen : sleep(fault.applyAfterMs));
      record(await forward(req, res, undefined, body));
      fault.landed?.();
      return;
    }
    const hold = fault && 'holdResponseMs' in fault ? { ms: fault.holdResponseMs, held: fault.held } : undefined;
    if (!conditional || !proxy.honourConditions) {
      record(await forward(req, res, hold));
      return;
    }
    const lockKey = `${request.bucket}/${key}`;
    const previous = locks.get(lockKey) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    locks.set(lockKey, chained);
    await previous;
    try {
      const etag = await currentEtag(request.bucket, key);
      const failed = (ifNoneMatch === '*' && etag !== undefined) || (ifMatch !== undefined && (etag === undefined || etag !== ifMatch));
      if (failed) {
        req.resume();
        record(412);
        s3Error(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        return;
      }
      record(await forward(req, res, hold));
    } finally {
      release();
      if (locks.get(lockKey) === chained) locks.delete(lockKey);
    }
  }

  async function currentEtag(bucket: string, key: string): Promise<string | undefined> {
    try {
      return (await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag;
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
  }

  /** Sends the request (or its `body`, read already) to s3rver and its answer to `res`, or nowhere without one. */
  function forward(req: IncomingMessage, res: ServerResponse | undefined, hold?: { ms: number; held?: () => void }, body?: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const { expect: _expect, ...headers } = req.headers;
      const outgoing = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
        let relayed = false;
        const relay = () => {
          if (relayed) return;
          relayed = true;
          if (!res || res.destroyed) {
            answer.resume();
            resolve(answer.statusCode ?? 502);
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on('end', () => resolve(answer.statusCode ?? 502));
          answer.on('error', reject);
        };
        // Without a hold the answer is piped at once, before any of its data can flow unread.
        if (hold) {
          answer.pause();
          // Until the time is up, or the client gives up on the request: then nothing waits on it.
          const timer = setTimeout(relay, hold.ms);
          res?.once('close', () => {
            clearTimeout(timer);
            relay();
          });
          hold.held?.();
        } else {
          relay();
        }
      });
      outgoing.on('error', reject);
      if (body) outgoing.end(body);
      else req.pipe(outgoing);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** Writes an object straight into s3rver, as a competing writer would. */
export async function putDirect(proxy: S3Proxy, bucket: string, key: string, body: string): Promise<void> {
  await proxy.direct.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>proxy</RequestId></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
