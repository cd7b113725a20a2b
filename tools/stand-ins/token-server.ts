import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type Provider from 'oidc-provider';

/**
 * oidc-provider's development notices, written with console.warn: when the module loads
 * ("Unsupported runtime" below Node 22), each time a provider is built (the in-memory
 * adapter, the quick-start signing keys), and once on a request whose body stream is no
 * longer readable (a fault delayed it past its client's timeout). All are true of a test stand-in by design, and they came out about a
 * hundred times in a test run and in the demo's output. So, in a process that loads the
 * stand-in, lines that start (colours aside) with "oidc-provider WARNING:" are dropped, and
 * nothing else; the filter is in place before the module loads, to catch its first notice.
 */
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  // eslint-disable-next-line no-control-regex -- the ESC that starts an ANSI colour code is the very character to match
  if (typeof args[0] === 'string' && /^(\x1b\[[\d;]*m)?oidc-provider WARNING:/.test(args[0])) return;
  warn.apply(console, args);
};
const { default: OidcProvider } = await import('oidc-provider');

export const TOKEN_PATH = '/users-auth/protocol/openid-connect/token';

export interface TokenServerOptions {
  clientId: string;
  clientSecret: string;
  /** Lifetime of each access token, in seconds. */
  lifetimeSeconds: number;
  /** How the client authenticates; Keycloak accepts both. */
  authMethod?: 'client_secret_post' | 'client_secret_basic';
  /** Replaces (or delays) the answer to a token request; see `TokenServer.fault`. */
  fault?: (request: TokenRequest) => TokenFault | undefined;
}

/** One token request as the server saw it, for fault rules to match on. */
export interface TokenRequest {
  /** 1 for the first token request this server received, 2 for the next, ... */
  attempt: number;
}

/** What a fault rule makes the token endpoint do instead of (or before) granting. */
export interface TokenFault {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long first; with no status, body or destroy, then answer normally. */
  delayMs?: number;
  /** Drop the connection without an answer. */
  destroy?: boolean;
  /**
   * Grant this access token instead of one of the provider's: a 200 token response
   * (Bearer, `lifetimeSeconds`) that `verify` then accepts like an issued token, so that a
   * token of a chosen shape can reach the device API.
   */
  accessToken?: string;
}

/**
 * The platform's Keycloak token endpoint, played by oidc-provider: a real client-credentials
 * grant with a real secret check, opaque tokens with a configurable lifetime. Rotating the
 * secret builds a new provider; tokens the old one issued stay valid unless revoked, as they
 * do in Keycloak.
 */
export class TokenServer {
  grants = 0;
  /** Token requests received, granted or not (faulted, rejected client, ...). */
  requests = 0;
  lifetimeSeconds: number;
  /** Mutable at run time, like the simulator's options. */
  fault: TokenServerOptions['fault'];
  readonly #issuer: string;
  readonly #clientId: string;
  readonly #authMethod: 'client_secret_post' | 'client_secret_basic';
  #current: Provider;
  #previous: Provider[] = [];
  /** Tokens granted through a fault's `accessToken`, with their expiry (epoch ms). */
  #chosen = new Map<string, number>();

  constructor(issuer: string, options: TokenServerOptions) {
    this.#issuer = issuer;
    this.#clientId = options.clientId;
    this.#authMethod = options.authMethod ?? 'client_secret_post';
    this.lifetimeSeconds = options.lifetimeSeconds;
    this.fault = options.fault;
    this.#current = this.#build(options.clientSecret);
  }

  /** Serves the token route; counts the requests and the grants it issued; plays faults. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (!req.url?.startsWith(TOKEN_PATH)) {
      // Koa answers its own errors: the promise its handler returns never rejects.
      void this.#current.callback()(req, res);
      return;
    }
    this.requests += 1;
    res.on('finish', () => {
      if (res.statusCode === 200) this.grants += 1;
    });
    const fault = this.fault?.({ attempt: this.requests });
    if (!fault) {
      void this.#current.callback()(req, res);
      return;
    }
    void (async () => {
      if (fault.delayMs) await sleep(fault.delayMs);
      if (fault.destroy) {
        req.socket.destroy();
      } else if (fault.accessToken !== undefined) {
        this.#chosen.set(fault.accessToken, Date.now() + this.lifetimeSeconds * 1000);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...fault.headers });
        res.end(JSON.stringify({ access_token: fault.accessToken, token_type: 'Bearer', expires_in: this.lifetimeSeconds }));
      } else if (fault.status !== undefined || fault.body !== undefined) {
        res.writeHead(fault.status ?? 200, { 'content-type': 'application/json', ...fault.headers });
        res.end(fault.body ?? '');
      } else {
        void this.#current.callback()(req, res);
      }
    })();
  }

  /** True for a token this server issued that has not expired or been revoked. */
  async verify(token: string): Promise<boolean> {
    if ((this.#chosen.get(token) ?? 0) > Date.now()) return true;
    for (const provider of [this.#current, ...this.#previous]) {
      const found = await provider.ClientCredentials.find(token);
      if (found && (found.exp ?? 0) * 1000 > Date.now()) return true;
    }
    return false;
  }

  /** An administrator rotates the secret; `revoke` also invalidates every token issued so far. */
  rotateSecret(clientSecret: string, { revoke = false } = {}): void {
    if (!revoke) this.#previous.push(this.#current);
    else {
      this.#previous = [];
      this.#chosen.clear();
    }
    this.#current = this.#build(clientSecret);
  }

  #build(clientSecret: string): Provider {
    const provider = new OidcProvider(this.#issuer, {
      clients: [
        {
          client_id: this.#clientId,
          client_secret: clientSecret,
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          token_endpoint_auth_method: this.#authMethod,
        },
      ],
      features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
      routes: { token: TOKEN_PATH },
      clockTolerance: 0,
      ttl: { ClientCredentials: () => this.lifetimeSeconds },
    });
    return provider;
  }
}
