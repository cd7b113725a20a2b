// @ts-check
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

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
