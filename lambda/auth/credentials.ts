import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { CredentialsError } from '../common/errors.ts';

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
}

export interface CredentialsSource {
  /** Cached for the configured time; `fresh` re-reads SSM (after the platform rejected the client). */
  get(options?: { fresh?: boolean }): Promise<ClientCredentials>;
  readonly parameterNames: readonly [string, string];
}

/**
 * Reads both parameters in one decrypted GetParameters call. The provider keeps them in the
 * warm context for `maxAgeSeconds`, so a rotated secret is picked up within that time.
 */
export function ssmCredentials(
  names: { clientIdParam: string; clientSecretParam: string },
  maxAgeSeconds: number,
  provider: SSMProvider = new SSMProvider(),
): CredentialsSource {
  const { clientIdParam, clientSecretParam } = names;
  return {
    parameterNames: [clientIdParam, clientSecretParam],
    async get(options = {}) {
      if (options.fresh) provider.clearCache();
      let values: Record<string, unknown>;
      try {
        values = await provider.getParametersByName(
          { [clientIdParam]: {}, [clientSecretParam]: {} },
          { decrypt: true, maxAge: maxAgeSeconds, throwOnError: false },
        );
      } catch (error) {
        throw new CredentialsError(
          `Could not read SSM parameters ${clientIdParam} and ${clientSecretParam}: ${describe(error)}. ` +
            'Check that they exist in this region and that the function may call ssm:GetParameters and kms:Decrypt.',
          { cause: error },
        );
      }
      const missing = [clientIdParam, clientSecretParam].filter((name) => {
        const value = values[name];
        return typeof value !== 'string' || value.trim() === '';
      });
      if (missing.length > 0) {
        throw new CredentialsError(
          `SSM parameter${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing or empty. ` +
            'Create them with `aws ssm put-parameter` (the secret as a SecureString) or fix ' +
            'THINGPARK_CLIENT_ID_PARAM / THINGPARK_CLIENT_SECRET_PARAM.',
        );
      }
      return {
        clientId: (values[clientIdParam] as string).trim(),
        clientSecret: (values[clientSecretParam] as string).trim(),
      };
    },
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
