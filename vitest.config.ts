import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A passing test's output is held back, a failing one's printed (test/support/quiet-output.ts).
    setupFiles: ['test/support/quiet-output.ts'],
    // Tests start real servers (s3rver, oidc-provider, the simulator) and CDK synths bundle
    // with esbuild: generous limits, still bounded.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The suites mostly wait on local sockets and timers, not CPU: two workers on two
    // cores halve the wall time.
    maxWorkers: 2,
    env: {
      // The AWS SDK's notice that its releases from 2027 need Node 22: nine lines per test
      // process on Node 20, which the tests support by design (README, "Node.js versions").
      // Set for the tests only; the function runs on Node 22 or 24, where it never shows.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  },
});
