// @ts-check
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** Files a layer may not import, one entry per rule of docs/development.md's layering. */
const LAYERS = [
  { target: 'lambda', from: ['infra', 'tools', 'test'], message: 'The function is bundled alone: it cannot depend on the stack, the tools or the tests.' },
  { target: 'tools', from: 'test', message: 'The tools run from a clean checkout without the tests; what both need lives in tools/stand-ins/.' },
  {
    target: 'lambda/*/**',
    from: 'lambda/*.ts',
    message:
      "The files at lambda/'s top level (the handler, the requests' parse, the composition root) are the floor everything else stands on: nothing below imports them.",
  },
  { target: 'lambda/common', from: 'lambda', except: ['./common'], message: 'common/ sits below every other part of the function.' },
  {
    target: 'lambda/auth',
    from: ['lambda/platform', 'lambda/storage', 'lambda/run', 'lambda/curate'],
    message: 'auth/ sits below the platform client and knows nothing above it.',
  },
  {
    target: 'lambda/platform',
    from: ['lambda/storage', 'lambda/run', 'lambda/curate'],
    message: 'The platform client and storage know nothing of each other, nor of the run or curation.',
  },
  {
    target: 'lambda/storage',
    from: ['lambda/auth', 'lambda/platform', 'lambda/run', 'lambda/curate'],
    message: 'Storage and the platform client know nothing of each other, nor of the run or curation.',
  },
  { target: 'lambda/run', from: 'lambda/curate', message: 'Curation reads a committed run from S3; the run knows nothing of it.' },
  { target: 'lambda/curate', from: 'lambda/run', message: 'What the run and curation share lives below both (common/, storage/).' },
  {
    target: 'infra',
    from: 'lambda',
    except: [
      // The bucket layout the function writes is the one the stack grants, expires and guards.
      './storage/layout.ts',
      // The variable registry and the function's own checks, run at synth so a bad value fails before deploy.
      './common/env.ts',
      './common/config.ts',
      './common/errors.ts',
      './curate/settings.ts',
      // The curated tables' columns, which the Glue tables declare.
      './curate/columns.ts',
      './curate/changes.ts',
      './curate/snapshot-rows.ts',
      // The fleet signals' metric names and health states, which the fleet alarms and the dashboard name.
      './curate/fleet-metrics.ts',
      './curate/fleet-signals.ts',
    ],
    message:
      'The stack shares the layout, the variable registry, the curated columns and the fleet metrics with the function, nothing else (docs/development.md, Layout).',
  },
];

export default defineConfig(
  globalIgnores(['cdk.out/', 'node_modules/', '.demo/', '.bench/', 'coverage/']),
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // A leading underscore marks a binding as deliberately unused (`{ secret: _s, ...safe }`, `for (const _ of rows)`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // An aborted wait rejects with its AbortSignal's reason (typed any), as `throw signal.reason` and the platform's own APIs do.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true }],
    },
  },
  {
    plugins: { 'import-x': importX },
    settings: {
      // The code imports with explicit `.ts` extensions (allowImportingTsExtensions), which the node resolver finds as files.
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
      // no-cycle follows imports by parsing each file it reaches: .ts files need the TypeScript parser for that.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      // A cycle makes module order decide what is initialised first, and says two modules are one responsibility split in two.
      // Type-only imports are erased and cannot cycle at run time; packages are not followed (ignoreExternal), which keeps it fast.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // The layering docs/development.md states, held by CI rather than by review.
      // Paths are the repository's, wherever ESLint is started from.
      'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: LAYERS }],
    },
  },
  {
    // Functions in the function and the stack stay readable on one screen; each holds one step.
    files: ['lambda/**/*.ts', 'infra/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The tools' entry points read as scripts (a case table, a report), so they get more room, but not unbounded.
    files: ['tools/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 120, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Stand-ins are async to match the promise-returning APIs they replace, so a `throw` in one rejects as the real call would.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The synthesized stack's tests (test/infra/asset.test.ts runs the bundle and stays typed).
    files: ['test/infra/**/*.ts'],
    ignores: ['test/infra/asset.test.ts'],
    rules: {
      // CloudFormation template JSON is untyped by nature: the assertions on it check its shape, not the compiler.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Plain-JS config files are outside tsconfig.json, so there is no type information for them.
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
