import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface StoredParameter {
  value: string;
  type: 'String' | 'SecureString';
  version: number;
}

export interface SsmServer {
  url: string;
  /** GetParameters calls answered, to check caching. */
  calls: number;
  /** Calls refused by `failNext`, to check an outage was met. */
  failed: number;
  put(name: string, value: string, type?: StoredParameter['type']): void;
  remove(name: string): void;
  /** Makes the next n calls fail with this status (5xx: the SDK retries them). */
  failNext(n: number, status?: number): void;
  close(): Promise<void>;
}

/**
 * SSM Parameter Store's GetParameter(s) over its real protocol (AWS JSON 1.1), enough for
 * the AWS SDK's SSMClient to run unchanged against 127.0.0.1 through AWS_ENDPOINT_URL_SSM.
 * Signatures are not checked; SecureStrings are returned only WithDecryption, as in AWS.
 */
export async function startSsm(): Promise<SsmServer> {
  const parameters = new Map<string, StoredParameter>();
  let failures = { left: 0, status: 500 };
  const state = { calls: 0, failed: 0 };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(body));
      };
      const target = String(req.headers['x-amz-target'] ?? '');
      if (failures.left > 0) {
        failures.left -= 1;
        state.failed += 1;
        answer(failures.status, { __type: 'InternalServerError', message: 'Simulated failure' });
        return;
      }
      const input = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { Names?: string[]; Name?: string; WithDecryption?: boolean };
      const render = (name: string) => {
        const stored = parameters.get(name) as StoredParameter;
        const hidden = stored.type === 'SecureString' && !input.WithDecryption;
        return {
          Name: name,
          Type: stored.type,
          Value: hidden ? 'AQICAHh-encrypted-blob' : stored.value,
          Version: stored.version,
          ARN: `arn:aws:ssm:eu-west-1:000000000000:parameter${name.startsWith('/') ? '' : '/'}${name}`,
          DataType: 'text',
        };
      };
      if (target === 'AmazonSSM.GetParameters') {
        state.calls += 1;
        const names = input.Names ?? [];
        answer(200, {
          Parameters: names.filter((name) => parameters.has(name)).map(render),
          InvalidParameters: names.filter((name) => !parameters.has(name)),
        });
      } else if (target === 'AmazonSSM.GetParameter') {
        state.calls += 1;
        const name = input.Name ?? '';
        if (parameters.has(name)) answer(200, { Parameter: render(name) });
        else answer(400, { __type: 'ParameterNotFound', message: `Parameter ${name} not found.` });
      } else {
        answer(400, { __type: 'UnknownOperationException', message: `Unsupported: ${target}` });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get calls() {
      return state.calls;
    },
    get failed() {
      return state.failed;
    },
    put(name, value, type = 'String') {
      const version = (parameters.get(name)?.version ?? 0) + 1;
      parameters.set(name, { value, type, version });
    },
    remove(name) {
      parameters.delete(name);
    },
    failNext(n, status = 500) {
      failures = { left: n, status };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
