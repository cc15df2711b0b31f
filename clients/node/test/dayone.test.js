'use strict';
// Issue 25 (what trips an app team on day one) and issue 21 point 4 (reads that cannot be stale),
// one test per point:
//   1. a database without the extension: an error that says which CREATE EXTENSION to run where;
//   2. the listener's connection settings: connectionString, the pool's own, DATABASE_URL, PG*;
//   3. lazy start: nothing connects before the first get() (next.test.js: a Next.js build);
//   4. sizing: poolSizing() counts the listener (and the poll), proven against a real cap;
//   5. per-call bypass and refresh;
//   21.4 fresh reads (one batched cache_generation round trip) and the writer's own drop at commit.
// Connection: the PG* environment (scripts/test.sh); database-backed tests are skipped without PGHOST.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { Pool, Client } = require('pg');
const { PoolguardCache, PoolguardSetupError, poolSizing, toQueryable } = require('..');

const haveServer = Boolean(process.env.PGHOST);
const skip = haveServer ? false : 'PGHOST not set: no test server';
const NOEXT_DB = 'node_client_noext';
const OTHER_DB = 'node_client_other';
// A channel nobody publishes on: a cache that LISTENs there never hears a notification, so what
// it serves after a commit is what the per-call options and the local drop make it serve.
const DEAF = 'poolguard_nobody_sends_here';
const SIZED_ROLE = 'dayone_app'; // caps never count superusers

async function admin(database) {
  const c = new Client(database ? { database } : {});
  await c.connect();
  return c;
}

async function ensureDatabase(name, withExtension) {
  const a = await admin();
  try {
    const { rowCount } = await a.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) await a.query(`CREATE DATABASE ${name}`);
  } finally {
    await a.end();
  }
  const c = await admin(name);
  try {
    await c.query(
      withExtension ? 'CREATE EXTENSION IF NOT EXISTS pg_poolguard' : 'DROP EXTENSION IF EXISTS pg_poolguard',
    );
  } finally {
    await c.end();
  }
}

// A stand-in LISTEN client (no server) that records that it was made.
class FakeListener extends EventEmitter {
  async query(text) {
    return { rows: /publisher_pids/.test(text) ? [] : [] };
  }

  async end() {}
}

function countingPool(inner) {
  const p = {
    queries: [],
    query(text, values) {
      p.queries.push(text);
      return inner.query(text, values);
    },
  };
  return p;
}

test(
  '1. a database without pg_poolguard: the error names the CREATE EXTENSION and the database',
  { skip },
  async (t) => {
    await ensureDatabase(NOEXT_DB, false);
    const pool = new Pool({ database: NOEXT_DB, max: 2 });
    const cache = new PoolguardCache({ pool, autoStart: false });
    t.after(() => pool.end());
    for (const call of [
      () => cache.get('mentor', 1, () => 'v'),
      () => cache.generation('mentor', '1'),
      () => cache.generations([['mentor', '1']]),
      () => cache.invalidate(pool, 'mentor', '1'),
    ]) {
      await assert.rejects(call, (err) => {
        assert.ok(err instanceof PoolguardSetupError, `a PoolguardSetupError, not ${err}`);
        assert.equal(err.code, 'POOLGUARD_NOT_INSTALLED');
        assert.equal(err.database, NOEXT_DB);
        assert.equal(err.fix, 'CREATE EXTENSION pg_poolguard;');
        assert.match(err.message, new RegExp(`run CREATE EXTENSION pg_poolguard; in database "${NOEXT_DB}"`));
        assert.equal(err.cause.code, '3F000');
        return true;
      });
    }
    // The listener says so too, at start (it would never hear anything there).
    const listening = new PoolguardCache({ pool, backoff: { initialMs: 60000, maxMs: 60000 } });
    await assert.rejects(listening.start(), (err) => err instanceof PoolguardSetupError && err.database === NOEXT_DB);
    await listening.stop();
    // And once created there (poolguard.database is another database), it works.
    await ensureDatabase(NOEXT_DB, true);
    assert.equal(await cache.get('mentor', 1, () => 'v'), 'v');
    await ensureDatabase(NOEXT_DB, false);
  },
);

test(
  "2. the listener connects with connectionString, else the pool's settings, else DATABASE_URL, else PG*",
  { skip },
  async (t) => {
    await ensureDatabase(OTHER_DB, true);
    const saved = process.env.DATABASE_URL;
    t.after(() => {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    });
    const url = (db) =>
      `postgresql://${encodeURIComponent(process.env.PGUSER ?? 'postgres')}@/${db}` +
      `?host=${encodeURIComponent(process.env.PGHOST)}&port=${process.env.PGPORT ?? 5432}`;
    const listenerDb = async (cache) => {
      await cache.start();
      const res = await cache.listener.query(
        "SELECT current_database() AS d, current_setting('application_name') AS a",
      );
      await cache.stop();
      return res.rows[0];
    };
    const pools = [];
    t.after(() => Promise.all(pools.map((p) => p.end())));
    const pool = (cfg) => {
      const p = new Pool({ max: 1, ...cfg });
      pools.push(p);
      return p;
    };

    delete process.env.DATABASE_URL;
    // A pg.Pool configured by a connection string (Prisma / Next.js apps): the listener follows it.
    let cache = new PoolguardCache({ pool: pool({ connectionString: url(OTHER_DB) }) });
    assert.equal(cache.listenerSource, 'pool');
    assert.deepEqual(await listenerDb(cache), { d: OTHER_DB, a: 'pg_poolguard listener' });
    // ... or by fields.
    cache = new PoolguardCache({ pool: pool({ database: OTHER_DB }) });
    assert.equal((await listenerDb(cache)).d, OTHER_DB);
    // An explicit connectionString wins over the pool.
    cache = new PoolguardCache({ pool: pool({ database: OTHER_DB }), connectionString: url(process.env.PGDATABASE) });
    assert.equal(cache.listenerSource, 'connectionString');
    assert.equal((await listenerDb(cache)).d, process.env.PGDATABASE);
    // A handle the cache cannot read settings from: DATABASE_URL, before PG*.
    const plain = { query: (text, values) => pools[0].query(text, values) };
    process.env.DATABASE_URL = url(OTHER_DB);
    cache = new PoolguardCache({ pool: plain });
    assert.equal(cache.listenerSource, 'DATABASE_URL');
    assert.equal((await listenerDb(cache)).d, OTHER_DB);
    delete process.env.DATABASE_URL;
    cache = new PoolguardCache({ pool: plain });
    assert.equal(cache.listenerSource, 'PG*');
    assert.equal((await listenerDb(cache)).d, process.env.PGDATABASE);
    // postgres.js: its sql's options (and queries through sql.unsafe).
    let postgres;
    try {
      postgres = require('postgres');
    } catch (_) {
      t.diagnostic('postgres.js not installed: skipped');
      return;
    }
    const sql = postgres({
      host: process.env.PGHOST,
      port: Number(process.env.PGPORT ?? 5432),
      database: OTHER_DB,
      username: process.env.PGUSER ?? 'postgres',
      max: 1,
    });
    t.after(() => sql.end());
    cache = new PoolguardCache({ pool: sql });
    assert.equal(cache.listenerSource, 'pool');
    assert.equal((await listenerDb(cache)).d, OTHER_DB);
    assert.equal(typeof (await cache.generation('mentor', '1')), 'bigint');
  },
);

test('2. a Prisma client is adapted through $queryRawUnsafe', async () => {
  const calls = [];
  const prisma = {
    $queryRawUnsafe: async (text, ...values) => {
      calls.push([text, values]);
      return [{ g: 7n }];
    },
  };
  const q = toQueryable(prisma);
  assert.deepEqual(await q.query('SELECT $1', [1]), { rows: [{ g: 7n }] });
  assert.deepEqual(calls, [['SELECT $1', [1]]]);
  const cache = new PoolguardCache({ pool: prisma, connect: async () => new FakeListener() });
  assert.equal(await cache.generation('mentor', '1'), 7n);
  await cache.stop();
});

test('3. lazy start: constructing connects nothing; the first get() starts the listener, once', async () => {
  let connects = 0;
  let queries = 0;
  const pool = {
    query: async () => {
      queries++;
      return { rows: [{ g: '1' }] };
    },
  };
  const cache = new PoolguardCache({
    pool,
    connect: async () => {
      connects++;
      return new FakeListener();
    },
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(connects + queries, 0, 'nothing connected or queried before the first get()');
  assert.equal(cache.started, false);
  const values = await Promise.all([1, 2, 3].map((k) => cache.get('s', k, async () => k)));
  assert.deepEqual(values, [1, 2, 3]);
  assert.equal(connects, 1, 'concurrent first gets share one start');
  assert.equal(cache.listening, true);
  await cache.start(); // idempotent
  assert.equal(connects, 1);
  await cache.get('s', 1, async () => assert.fail('cached'));
  assert.equal(cache.stats.hits, 1);
  await cache.stop();

  // autoStart false: get() works without a listener (re-checking each time) and connects none.
  let c2 = 0;
  const manual = new PoolguardCache({
    pool,
    autoStart: false,
    connect: async () => {
      c2++;
      return new FakeListener();
    },
  });
  await manual.get('s', 1, async () => 1);
  assert.equal(c2, 0);
});

test('3. a listener that cannot connect does not fail the first get()', async () => {
  const pool = { query: async () => ({ rows: [{ g: '1' }] }) };
  const cache = new PoolguardCache({
    pool,
    backoff: { initialMs: 60000, maxMs: 60000 },
    connect: async () => {
      throw new Error('ECONNREFUSED');
    },
  });
  const errors = [];
  cache.on('reconnectError', (e) => errors.push(e.message));
  assert.equal(await cache.get('s', 1, async () => 'v'), 'v');
  assert.deepEqual(errors, ['ECONNREFUSED']);
  await cache.stop();
});

test('4. poolSizing counts the listener (and the poll in poll mode)', () => {
  assert.deepEqual(poolSizing({ maxConnections: 10, instances: 2 }), {
    poolMax: 4,
    perInstance: 5,
    total: 10,
    counted: 10,
    concurrentQueries: 4,
  });
  assert.deepEqual(poolSizing({ maxConnections: 10, instances: 2, listenerCounted: false }), {
    poolMax: 5,
    perInstance: 6,
    total: 12,
    counted: 10,
    concurrentQueries: 5,
  });
  assert.deepEqual(poolSizing({ maxConnections: 10, instances: 2, mode: 'poll' }), {
    poolMax: 5,
    perInstance: 5,
    total: 10,
    counted: 10,
    concurrentQueries: 4,
  });
  assert.throws(() => poolSizing({ maxConnections: 2, instances: 2 }), RangeError);
  assert.throws(() => poolSizing({ maxConnections: 0, instances: 1 }), RangeError);
});

test(
  '4. sized by poolSizing, two instances with listeners saturate a capped policy without one refusal',
  { skip },
  async (t) => {
    const a = await admin(process.env.PGDATABASE);
    const pgdb = await admin('postgres');
    const policyDb = (await a.query("SELECT current_setting('poolguard.database') AS d")).rows[0].d;
    const pol = policyDb === process.env.PGDATABASE ? a : await admin(policyDb);
    await pol.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
    await a.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
    await pgdb.query('ALTER SYSTEM SET poolguard.enabled = on');
    await pgdb.query('SELECT pg_reload_conf()');
    await pol.query("DELETE FROM poolguard.policy WHERE name = 'dayone-sized'");
    // The app and its listeners match one policy (application_name 'sized-app...'), capped at 6.
    await pol.query(`INSERT INTO poolguard.policy (name, application_name, priority, idle_timeout, idle_in_transaction_timeout, max_connections)
                   VALUES ('dayone-sized', 'sized-app%', 200, '0', '0', 6)`);
    await pol.query('SELECT poolguard.reload()').catch(() => {});
    await a.query(`DROP ROLE IF EXISTS ${SIZED_ROLE}; CREATE ROLE ${SIZED_ROLE} LOGIN`);
    const instances = [];
    t.after(async () => {
      for (const i of instances) {
        await i.cache.stop();
        await i.pool.end();
      }
      await pol.query("DELETE FROM poolguard.policy WHERE name = 'dayone-sized'");
      await a.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${SIZED_ROLE}'`);
      await a.query(`DROP ROLE IF EXISTS ${SIZED_ROLE}`).catch(() => {});
      await pgdb.query('ALTER SYSTEM RESET poolguard.enabled');
      await pgdb.query('SELECT pg_reload_conf()');
      if (pol !== a) await pol.end();
      await a.end();
      await pgdb.end();
    });
    // The cap is enforced at login: wait until a login over it is refused (the policy is loaded).
    const deadline = Date.now() + 20000;
    for (;;) {
      const probes = [];
      let refused = false;
      try {
        for (let i = 0; i < 7; i++) {
          const c = new Client({ user: SIZED_ROLE, application_name: 'sized-app probe' });
          probes.push(c);
          await c.connect();
        }
      } catch (err) {
        refused = err.code === '53300';
      }
      await Promise.all(probes.map((c) => c.end().catch(() => {})));
      if (refused) break;
      if (Date.now() > deadline) assert.fail('the cap of 6 never took effect');
      await new Promise((r) => setTimeout(r, 100));
    }
    const { poolMax } = poolSizing({ maxConnections: 6, instances: 2 });
    assert.equal(poolMax, 2);
    const refusals = [];
    for (let i = 0; i < 2; i++) {
      const pool = new Pool({ user: SIZED_ROLE, max: poolMax, application_name: 'sized-app', idleTimeoutMillis: 0 });
      pool.on('error', () => {});
      const cache = new PoolguardCache({ pool, listenerApplicationName: 'sized-app listener' });
      instances.push({ pool, cache });
    }
    // Each instance: its listener (lazily, at the first get) and every pool connection busy at once.
    await Promise.all(
      instances.map(async ({ pool, cache }, n) => {
        for (let round = 0; round < 3; round++) {
          await Promise.all(
            Array.from({ length: poolMax * 2 }, (_, k) =>
              cache
                .get('sized', `${n}-${round}-${k}`, () => pool.query('SELECT pg_sleep(0.05)'))
                .catch((err) => refusals.push(err.code ?? err.message)),
            ),
          );
        }
      }),
    );
    assert.deepEqual(refusals, [], 'no login was refused');
    assert.ok(
      instances.every((i) => i.cache.listening),
      'both listeners are up',
    );
    const counted = (await pol.query("SELECT sessions AS n FROM poolguard.policy_status WHERE policy = 'dayone-sized'"))
      .rows[0];
    assert.equal(Number(counted.n), 6, 'pools + listeners fill the cap exactly');
    // The old rule (pool max × instances = the cap) leaves no room for the listeners: one more
    // login of this app is refused now.
    const extra = new Client({ user: SIZED_ROLE, application_name: 'sized-app' });
    await assert.rejects(extra.connect(), (err) => err.code === '53300');
  },
);

test('5. per-call bypass and refresh', async () => {
  let generation = 1;
  const pool = { query: async () => ({ rows: [{ g: String(generation) }] }) };
  const cache = new PoolguardCache({ pool, connect: async () => new FakeListener() });
  let loads = 0;
  const load = async () => ++loads;
  assert.equal(await cache.get('s', 'k', load), 1);
  assert.equal(await cache.get('s', 'k', load), 1, 'cached');
  assert.equal(await cache.get('s', 'k', load, { bypass: true }), 2, 'bypass loads ...');
  assert.equal(await cache.get('s', 'k', load), 1, '... and leaves the entry alone');
  assert.equal(await cache.get('s', 'k', load, { refresh: true }), 3, 'refresh loads ...');
  assert.equal(await cache.get('s', 'k', load), 3, '... and stores');
  assert.equal(cache.stats.bypasses, 1);
  assert.equal(cache.stats.refreshes, 1);
  await assert.rejects(cache.get('s', 'k', load, { consistency: 'eventual' }), TypeError);
  generation = 2;
  await cache.stop();
});

// Two instances sharing a table; B's listener hears nothing (DEAF), so only fresh reads and local
// drops can make it serve a committed change.
async function freshSetup(t) {
  const setup = await admin();
  await setup.query(`
    CREATE EXTENSION IF NOT EXISTS pg_poolguard;
    DROP TABLE IF EXISTS dayone_grant;
    CREATE TABLE dayone_grant (mentor_id int, school_id int);
    INSERT INTO dayone_grant SELECT m, m * 10 FROM generate_series(1, 50) m;
    CREATE TRIGGER dayone_grant_invalidates AFTER INSERT OR UPDATE OR DELETE ON dayone_grant
      FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('grant', 'mentor_id');`);
  const pool = new Pool({ max: 4 });
  const counted = countingPool(pool);
  const cache = new PoolguardCache({
    pool: counted,
    channel: DEAF,
    connectionString: undefined,
    connect: async ({ application_name }) => {
      const c = new Client({ application_name });
      await c.connect();
      return c;
    },
  });
  t.after(async () => {
    await cache.stop();
    await pool.end();
    await setup.end();
  });
  const read = (m) => () =>
    pool
      .query('SELECT array_agg(school_id ORDER BY school_id) AS s FROM dayone_grant WHERE mentor_id = $1', [m])
      .then((r) => r.rows[0].s ?? []);
  return { setup, pool, counted, cache, read };
}

test(
  '21.4 fresh: a cached value is served only once its generation is confirmed; one round trip per batch',
  { skip },
  async (t) => {
    const { setup, counted, cache, read } = await freshSetup(t);
    for (let m = 1; m <= 50; m++) assert.deepEqual(await cache.get('grant', m, read(m)), [m * 10]);
    // Revoke mentor 7's school from another connection; B hears nothing.
    await setup.query('DELETE FROM dayone_grant WHERE mentor_id = 7');
    assert.deepEqual(
      await cache.get('grant', 7, read(7)),
      [70],
      'the cached path serves the revoked grant (the window)',
    );
    counted.queries.length = 0;
    // 50 concurrent fresh reads: one cache_generation round trip, and the revoked one reloaded.
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => cache.get('grant', i + 1, read(i + 1), { fresh: true })),
    );
    assert.deepEqual(results[6], [], 'the fresh read does not serve the revoked grant');
    for (let m = 1; m <= 50; m++) if (m !== 7) assert.deepEqual(results[m - 1], [m * 10]);
    const generationQueries = counted.queries.filter((q) => /cache_generation/.test(q));
    // One batch for the 50 confirmations, plus the reload's own generation read (rule 1).
    assert.equal(generationQueries.filter((q) => /unnest/.test(q)).length, 1, 'one batched round trip');
    assert.equal(generationQueries.length, 2);
    assert.equal(cache.stats.freshBatches, 1);
    assert.equal(cache.stats.freshHits, 49);
    assert.equal(cache.stats.freshStale, 1);
    assert.deepEqual(await cache.get('grant', 7, read(7), { consistency: 'strong' }), []);
  },
);

test('21.4 the writing instance drops its own entries at commit, without the notification', { skip }, async (t) => {
  const { pool, cache, read } = await freshSetup(t);
  assert.deepEqual(await cache.get('grant', 8, read(8)), [80]);
  assert.deepEqual(await cache.get('grant', 9, read(9)), [90]);
  // transaction(): BEGIN, your writes, tx.invalidate(), COMMIT, then the local drop.
  let during;
  await cache.transaction(
    async (tx) => {
      await tx.query('UPDATE dayone_grant SET school_id = 81 WHERE mentor_id = 8');
      await tx.invalidate('grant', 8);
      // Another request of this instance before the COMMIT: it reads the old row, and is not cached.
      during = await cache.get('grant', 8, read(8));
    },
    { pool },
  );
  assert.deepEqual(during, [80]);
  assert.deepEqual(await cache.get('grant', 8, read(8)), [81], 'served the committed value at once');
  assert.equal(cache.stats.notifications, 0, 'no notification was involved');
  // invalidate() on your own transaction's client, then committed() / rolledBack().
  const client = await pool.connect();
  await client.query('BEGIN');
  await client.query('UPDATE dayone_grant SET school_id = 91 WHERE mentor_id = 9');
  const pending = await cache.invalidate(client, 'grant', 9);
  assert.equal(cache.entries.peek('grant\u00009'), undefined, 'dropped at once');
  assert.deepEqual(await cache.get('grant', 9, read(9)), [90], 'before the commit: the old row ...');
  assert.equal(cache.entries.peek('grant\u00009'), undefined, '... not cached');
  await client.query('COMMIT');
  pending.committed();
  client.release();
  assert.deepEqual(await cache.get('grant', 9, read(9)), [91]);
  assert.deepEqual(await cache.get('grant', 9, async () => assert.fail('cached again')), [91]);
  // A failing transaction: ROLLBACK, nothing dropped for good, the key cacheable again.
  await assert.rejects(
    cache.transaction(
      async (tx) => {
        await tx.invalidate('grant', 9);
        throw new Error('app error');
      },
      { pool },
    ),
    /app error/,
  );
  assert.deepEqual(await cache.get('grant', 9, read(9)), [91]);
  assert.deepEqual(await cache.get('grant', 9, async () => assert.fail('cached again')), [91]);
});
