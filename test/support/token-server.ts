import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider from 'oidc-provider';

export const TOKEN_PATH = '/users-auth/protocol/openid-connect/token';

export interface TokenServerOptions {
  clientId: string;
  clientSecret: string;
  /** Lifetime of each access token, in seconds. */
  lifetimeSeconds: number;
  /** How the client authenticates; Keycloak accepts both. */
  authMethod?: 'client_secret_post' | 'client_secret_basic';
}

/**
 * The platform's Keycloak token endpoint, played by oidc-provider: a real client-credentials
 * grant with a real secret check, opaque tokens with a configurable lifetime. Rotating the
 * secret builds a new provider; tokens the old one issued stay valid unless revoked, as they
 * do in Keycloak.
 */
export class TokenServer {
  grants = 0;
  lifetimeSeconds: number;
  readonly #issuer: string;
  readonly #clientId: string;
  readonly #authMethod: 'client_secret_post' | 'client_secret_basic';
  #current: Provider;
  #previous: Provider[] = [];

  constructor(issuer: string, options: TokenServerOptions) {
    this.#issuer = issuer;
    this.#clientId = options.clientId;
    this.#authMethod = options.authMethod ?? 'client_secret_post';
    this.lifetimeSeconds = options.lifetimeSeconds;
    this.#current = this.#build(options.clientSecret);
  }

  /** Serves the token route; counts the grants it issued. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url?.startsWith(TOKEN_PATH)) {
      res.on('finish', () => {
        if (res.statusCode === 200) this.grants += 1;
      });
    }
    this.#current.callback()(req, res);
  }

  /** True for a token this server issued that has not expired or been revoked. */
  async verify(token: string): Promise<boolean> {
    for (const provider of [this.#current, ...this.#previous]) {
      const found = await provider.ClientCredentials.find(token);
      if (found && (found.exp ?? 0) * 1000 > Date.now()) return true;
    }
    return false;
  }

  /** An administrator rotates the secret; `revoke` also invalidates every token issued so far. */
  rotateSecret(clientSecret: string, { revoke = false } = {}): void {
    if (!revoke) this.#previous.push(this.#current);
    else this.#previous = [];
    this.#current = this.#build(clientSecret);
  }

  #build(clientSecret: string): Provider {
    const provider = new Provider(this.#issuer, {
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
