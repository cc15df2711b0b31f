// ESLint flat config (eslint 9): the package's CommonJS and ES module entries and its tests.
// Formatting is prettier's (npm run format); this checks correctness only.
'use strict';

const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
  { ignores: ['node_modules/**', 'test/prisma/generated/**', '**/.next/**'] },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'commonjs', globals: { ...globals.node } },
  },
  {
    // Next.js apps under test/apps are ES modules (app router, bundled by next build).
    files: ['**/*.mjs', 'test/apps/*/app/**/*.js', 'test/apps/*/lib/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.node } },
  },
  {
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
];
