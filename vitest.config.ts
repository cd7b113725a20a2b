import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers (s3rver, oidc-provider, the simulator) and CDK synths bundle
    // with esbuild: generous limits, still bounded.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The suites mostly wait on local sockets and timers, not CPU: two workers on two
    // cores halve the wall time.
    maxWorkers: 2,
  },
});
