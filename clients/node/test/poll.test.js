'use strict';
// mode 'poll' (poolguard.invalidations_since() long polls instead of LISTEN) and the `replica`
// option, against a real PgBouncer in transaction mode: the setup of serverless apps, where no
// connection can LISTEN.  PgBouncer (Debian's package; scripts/test.sh installs it) is started on
// a free port as the postgres OS user, in front of the test server (PG* environment).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { Pool, Client } = require('pg');
const { PoolguardCache } = require('..');

const PGBOUNCER = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => fs.existsSync(p));
const skip = !process.env.PGHOST
  ? 'PGHOST not set: no test server'
  : !PGBOUNCER
    ? 'pgbouncer is not installed (scripts/test.sh installs it)'
    : false;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts PgBouncer (transaction pooling) in front of the PG* server; resolves { port, stop }.
async function startPgBouncer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolguard-pgbouncer-'));
  const port = await freePort();
  const server = process.env.PGHOST.startsWith('/')
    ? `host=${process.env.PGHOST} port=${process.env.PGPORT ?? 5432}`
    : `host=${process.env.PGHOST} port=${process.env.PGPORT ?? 5432}`;
  fs.writeFileSync(path.join(dir, 'users.txt'), '"postgres" ""\n');
  fs.writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    `[databases]
* = ${server}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${dir}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 50
ignore_startup_parameters = extra_float_digits,options
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`,
  );
  let cmd = PGBOUNCER;
  let args = [path.join(dir, 'pgbouncer.ini')];
  if (process.getuid && process.getuid() === 0) {
    // PgBouncer refuses to run as root: as the postgres OS user, like the server.
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    fs.chownSync(dir, uid, gid);
    for (const f of fs.readdirSync(dir)) fs.chownSync(path.join(dir, f), uid, gid);
    args = ['-u', 'postgres', '--', cmd, ...args];
    cmd = 'runuser';
  }
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const deadline = Date.now() + 60000;
  for (;;) {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: process.env.PGDATABASE });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      break;
    } catch (err) {
      await c.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) {
        const log = fs.existsSync(path.join(dir, 'pgbouncer.log'))
          ? fs.readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8')
          : '';
        child.kill('SIGTERM');
        throw new Error(`pgbouncer did not start: ${err.message}\n${stderr}\n${log}`);
      }
      await sleep(100);
    }
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function invalidationOf(cache, scope, key, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cache.off('invalidation', on);
      reject(new Error(`no invalidation of ${scope}/${key} within ${timeoutMs} ms`));
    }, timeoutMs);
    function on(items) {
      if (items.some((i) => i.resync || (i.scope === scope && (i.key === null || i.key === key)))) {
        clearTimeout(t);
        cache.off('invalidation', on);
        resolve(items);
      }
    }
    cache.on('invalidation', on);
  });
}

test('options: mode and replica are validated', () => {
  const pool = { query: async () => ({ rows: [] }) };
  assert.throws(() => new PoolguardCache({ pool, mode: 'push' }), /mode must be 'listen' or 'poll'/);
  assert.throws(() => new PoolguardCache({ pool, replica: pool }), /replica needs mode 'poll'/);
  assert.throws(() => new PoolguardCache({ pool, mode: 'poll', replica: {} }), /replica must be a pool/);
  assert.throws(() => new PoolguardCache({ pool, mode: 'poll', pollWaitMs: -1 }), /pollWaitMs/);
});

test('replica: generations and polls go to the replica, not the primary', async () => {
  const seen = { primary: [], replica: [] };
  const fake = (name) => ({
    query: async (sql) => {
      seen[name].push(sql);
      if (sql.includes('invalidations_since'))
        return { rows: [{ kind: 'resync', generation: '100', scope: null, key: null }] };
      return { rows: [{ g: '100' }] };
    },
  });
  const cache = new PoolguardCache({ pool: fake('primary'), replica: fake('replica'), mode: 'poll', pollWaitMs: 0 });
  await cache.start();
  assert.equal(await cache.get('s', 'k', async () => 'v'), 'v');
  await cache.stop();
  assert.equal(seen.primary.length, 0, 'nothing is read from the primary');
  assert.ok(seen.replica.some((q) => q.includes('cache_generation')));
  assert.ok(seen.replica.some((q) => q.includes('invalidations_since')));
});

test('poll mode through PgBouncer in transaction mode stays correct', { skip, timeout: 300000 }, async () => {
  const bouncer = await startPgBouncer();
  const admin = new Client();
  await admin.connect();
  const pool = new Pool({
    host: '127.0.0.1',
    port: bouncer.port,
    user: 'postgres',
    database: process.env.PGDATABASE,
    max: 3,
  });
  let cache;
  try {
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
    await admin.query(
      'DROP TABLE IF EXISTS poll_t; CREATE TABLE poll_t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO poll_t VALUES (1, 0)',
    );
    cache = new PoolguardCache({ pool, mode: 'poll', pollWaitMs: 2000, backoff: { initialMs: 20, maxMs: 200 } });
    await cache.start();
    const load = async () => (await pool.query('SELECT v FROM poll_t WHERE id = 1')).rows[0].v;

    let expected = 0;
    for (let round = 0; round < 20; round++) {
      assert.equal(await cache.get('poll_t', '1', load), expected, `round ${round}: the cached value is current`);
      assert.equal(await cache.get('poll_t', '1', load), expected, `round ${round}: served from the cache`);
      const arrived = invalidationOf(cache, 'poll_t', '1');
      await admin.query('BEGIN');
      await admin.query('UPDATE poll_t SET v = v + 1 WHERE id = 1');
      await admin.query("SELECT poolguard.invalidate('poll_t', '1')");
      await admin.query('COMMIT');
      expected++;
      await arrived;
      assert.equal(await cache.get('poll_t', '1', load), expected, `round ${round}: reloaded after the invalidation`);
    }
    assert.ok(cache.stats.hits >= 20, 'hits were served from the cache');
    assert.ok(cache.stats.polls > 20, 'it polled (through the pooler)');

    // Under concurrent writes and reads: once the writes stop, the cache converges on the data.
    const writer = (async () => {
      for (let i = 0; i < 50; i++) {
        await admin.query(
          "BEGIN; UPDATE poll_t SET v = v + 1 WHERE id = 1; SELECT poolguard.invalidate('poll_t', '1'); COMMIT",
        );
      }
    })();
    const readers = Array.from({ length: 3 }, async () => {
      for (let i = 0; i < 50; i++) await cache.get('poll_t', '1', load);
    });
    await Promise.all([writer, ...readers]);
    const final = (await admin.query('SELECT v FROM poll_t WHERE id = 1')).rows[0].v;
    const deadline = Date.now() + 60000;
    let got;
    while ((got = await cache.get('poll_t', '1', load)) !== final && Date.now() < deadline) await sleep(20);
    assert.equal(got, final, 'the cache converges on the committed value');
  } finally {
    if (cache) await cache.stop();
    await pool.end().catch(() => {});
    await admin.query('DROP TABLE IF EXISTS poll_t').catch(() => {});
    await admin.end();
    await bouncer.stop();
  }
});
