'use strict';
// Issue 25, point 3: a Next.js app whose route module builds its pool and cache at module level
// (test/apps/next-build-offline, as the README writes it) builds with no database reachable — and
// without even trying one: the "database" during the build is a TCP port that counts connection
// attempts.  Then `next start` against the real server: the first request starts the listener
// lazily, from the pool's settings (DATABASE_URL), and the second is a cache hit.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

const root = path.join(__dirname, '..');
const app = path.join(__dirname, 'apps', 'next-build-offline');
const nextBin = path.join(root, 'node_modules', 'next', 'dist', 'bin', 'next');
const haveServer = Boolean(process.env.PGHOST);

function run(args, env, onLine) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [nextBin, ...args], {
      cwd: root,
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env },
    });
    let out = '';
    const take = (d) => {
      out += d;
      if (onLine) for (const l of String(d).split('\n')) onLine(l, child);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => resolve({ code, out }));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test(
  'next build with no database reachable succeeds and connects nowhere; next start then caches',
  { timeout: 600000 },
  async (t) => {
    // A port that accepts and counts connections, then closes them: any connection attempt of the
    // build (pool, listener, cache_generation) would show here.
    let attempts = 0;
    const trap = net.createServer((sock) => {
      attempts++;
      sock.destroy();
    });
    await new Promise((r) => trap.listen(0, '127.0.0.1', r));
    const trapPort = trap.address().port;
    t.after(() => trap.close());

    const build = await run(['build', app], {
      DATABASE_URL: `postgresql://app@127.0.0.1:${trapPort}/app`,
      PGHOST: '127.0.0.1',
      PGPORT: String(trapPort),
      PGDATABASE: 'app',
      PGUSER: 'app',
    });
    assert.equal(build.code, 0, `next build failed:\n${build.out}`);
    assert.match(build.out, /\/api\/schools/);
    assert.equal(attempts, 0, 'the build opened no database connection');

    if (!haveServer) {
      t.diagnostic('PGHOST not set: next start against a server skipped');
      return;
    }
    const { Client } = require('pg');
    const admin = new Client();
    await admin.connect();
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
    await admin.end();
    const host = process.env.PGHOST;
    const url =
      `postgresql://${encodeURIComponent(process.env.PGUSER ?? 'postgres')}@/${process.env.PGDATABASE}` +
      `?host=${encodeURIComponent(host)}&port=${process.env.PGPORT ?? 5432}`;
    const port = await freePort();
    let server;
    const ready = new Promise((resolve) => {
      run(
        ['start', app, '-p', String(port), '-H', '127.0.0.1'],
        // PG* point at the trap: only DATABASE_URL (through the pool's settings) leads to the server.
        { DATABASE_URL: url, PGHOST: '127.0.0.1', PGPORT: String(trapPort) },
        (line, child) => {
          server = child;
          if (/Ready in|started server|Local:/.test(line)) resolve();
        },
      );
    });
    t.after(() => server && server.kill('SIGTERM'));
    await ready;
    const get = async (q = '') => {
      const res = await fetch(`http://127.0.0.1:${port}/api/schools?mentor=7${q}`);
      assert.equal(res.status, 200, await res.clone().text());
      return res.json();
    };
    const first = await get();
    assert.equal(first.listenerSource, 'pool');
    assert.equal(first.listening, true, 'the first get() started the listener');
    assert.equal(first.stats.misses, 1);
    const second = await get();
    assert.equal(second.stats.hits, 1, 'the second request is served from the cache');
    const third = await get('&fresh=1');
    assert.equal(third.stats.freshHits, 1, 'a fresh read confirmed the cached value');
    assert.equal(attempts, 0, 'nothing went to the PG* settings');
  },
);
