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
    'CHANGELOG.md',
    'README.md',
    'index.d.mts',
    'index.d.ts',
    'index.js',
    'index.mjs',
    'load_pg.js',
    'lru.js',
    'next.d.ts',
    'next.js',
    'package.json',
    'prisma.d.ts',
    'prisma.js',
  ]);
  const pkg = require('../package.json');
  for (const target of [
    pkg.main,
    pkg.types,
    ...Object.values(pkg.exports['.']).flatMap((c) => Object.values(c)),
    ...Object.values(pkg.exports['./prisma']),
    ...Object.values(pkg.exports['./next']),
  ]) {
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

// A fresh app installs the packed tarball (and, separately, a `file:` copy of the package with no
// node_modules of its own) next to its own pg, and every entry loads and finds pg.  The app's pg
// comes from the npm registry: inside make test-all's chroots (POOLGUARD_DEPS_READY=1) there is
// none — they get the host's node_modules and do not share its TLS trust — so the host's run of
// the suite is the one that installs.
const noRegistry =
  process.env.POOLGUARD_DEPS_READY === '1' ? 'make test-all chroot: no npm registry (the host run installs)' : false;
test('the npm pack tarball and a file: install work in a fresh app', { skip: noRegistry }, () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'poolguard-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
      cwd: root,
      encoding: 'utf8',
    });
    const packs = JSON.parse(out);
    const tarball = path.join(work, (Array.isArray(packs) ? packs[0] : Object.values(packs)[0]).filename);
    // The file: source: the tarball's contents, without node_modules.
    const src = path.join(work, 'src');
    fs.mkdirSync(src);
    execFileSync('tar', ['-xzf', tarball, '-C', src, '--strip-components=1']);
    const pgVersion = require('pg/package.json').version;
    const probe = `
      const assert = require('node:assert');
      const cache = require('pg-poolguard-cache');
      const { withPoolguardCache, prismaPoolConfig } = require('pg-poolguard-cache/prisma');
      const { NextCacheCore, createCacheHandler, createIncrementalCacheHandler } = require('pg-poolguard-cache/next');
      assert.equal(typeof cache.PoolguardCache, 'function');
      assert.equal(typeof withPoolguardCache({}), 'function');
      assert.equal(prismaPoolConfig('postgresql://h/d?connection_limit=2').config.max, 2);
      assert.equal(typeof createCacheHandler().get, 'function');
      assert.equal(typeof createIncrementalCacheHandler(), 'function');
      // Lazily loads pg (from the app when the package has none of its own); nobody listens on port 1.
      const core = new NextCacheCore({ connectionString: 'postgresql://nobody@127.0.0.1:1/none' });
      core.ensureStarted().then(async (live) => {
        assert.equal(live, false);
        assert.equal(typeof core.pool.query, 'function');
        await core.stop();
        console.log('ok');
      });`;
    for (const [name, spec] of [
      ['tarball', tarball],
      ['file', `file:${src}`],
    ]) {
      const app = path.join(work, `app-${name}`);
      fs.mkdirSync(app);
      fs.writeFileSync(
        path.join(app, 'package.json'),
        JSON.stringify({ name: `app-${name}`, private: true, version: '1.0.0' }),
      );
      execFileSync(
        'npm',
        ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', spec, `pg@${pgVersion}`],
        { cwd: app, encoding: 'utf8' },
      );
      fs.writeFileSync(path.join(app, 'probe.js'), probe);
      const res = execFileSync(process.execPath, ['probe.js'], {
        cwd: app,
        encoding: 'utf8',
        env: { ...process.env, DATABASE_URL: '' },
      });
      assert.equal(res.trim(), 'ok', `${name} install`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
