'use strict';
// What `npm pack` ships, and that both entries (CommonJS and ESM) and their types work as an app
// imports them (by package name, through package.json "exports").
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.join(__dirname, '..');

test('npm pack ships the entries, their types, the LRU and the README — and nothing else', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  // npm up to 11 prints an array of packs; npm 12 an object keyed by package name.
  const packs = JSON.parse(out);
  const pack = Array.isArray(packs) ? packs[0] : Object.values(packs)[0];
  const files = pack.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    'README.md',
    'index.d.mts',
    'index.d.ts',
    'index.js',
    'index.mjs',
    'lru.js',
    'package.json',
  ]);
  const pkg = require('../package.json');
  for (const target of [pkg.main, pkg.types, ...Object.values(pkg.exports['.']).flatMap((c) => Object.values(c))]) {
    assert.ok(files.includes(target.replace(/^\.\//, '')), `${target} is packed`);
  }
});

test('require() and import() of the package give the same classes', async () => {
  const cjs = require('pg-poolguard-cache');
  const esm = await import('pg-poolguard-cache');
  assert.equal(typeof cjs.PoolguardCache, 'function');
  assert.equal(esm.PoolguardCache, cjs.PoolguardCache);
  assert.equal(esm.default.PoolguardCache, cjs.PoolguardCache);
  assert.equal(esm.LruTtl, cjs.LruTtl);
});

test('the type declarations compile against TypeScript usage of both entries', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types', 'tsconfig.json')], {
      cwd: root,
      encoding: 'utf8',
    });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
});
