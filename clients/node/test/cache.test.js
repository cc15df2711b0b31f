'use strict';
// Two app "instances" (each its own pool, listener and cache) against a real server with
// pg_poolguard.  Connection: the usual PG* environment variables (scripts/test.sh points them at
// a throwaway cluster); skipped when PGHOST is not set.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Pool, Client } = require('pg');
const { PoolguardCache } = require('..');

const haveServer = Boolean(process.env.PGHOST);
const skip = haveServer ? false : 'PGHOST not set: no test server';

function instance(options = {}) {
  const pool = new Pool({ max: 4 });
  const cache = new PoolguardCache({
    pool,
    connect: async () => {
      const c = new Client();
      await c.connect();
      return c;
    },
    backoff: { initialMs: 20, maxMs: 200 },
    ...options,
  });
  return { pool, cache };
}

// The app's query: which schools may this mentor see.
async function schoolsOf(pool, mentorId) {
  const res = await pool.query(
    'SELECT array_agg(school_id ORDER BY school_id) AS s FROM assignment WHERE mentor_id = $1',
    [mentorId],
  );
  return res.rows[0].s ?? [];
}

// Deadlines for what must happen: generous, the machine may be slow and busy (never asserted as a
// speed).
const WAIT_MS = 60000;

function once(emitter, event, timeoutMs = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

// Resolves when `cache` has received an invalidation for (scope, key) (or its scope).
function invalidationOf(cache, scope, key, timeoutMs = WAIT_MS) {
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

test('two instances: a committed change is never served stale after its notification', { skip }, async (t) => {
  const setup = new Client();
  await setup.connect();
  await setup.query(`
    CREATE EXTENSION IF NOT EXISTS pg_poolguard;
    DROP TABLE IF EXISTS assignment;
    CREATE TABLE assignment (mentor_id int, school_id int);
    INSERT INTO assignment VALUES (1, 10), (1, 11), (2, 20);
    CREATE TRIGGER assignment_invalidates AFTER INSERT OR UPDATE OR DELETE ON assignment
      FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('mentor', 'mentor_id');`);
  const a = instance();
  const b = instance();
  await a.cache.start();
  await b.cache.start();
  t.after(async () => {
    await a.cache.stop();
    await b.cache.stop();
    await a.pool.end();
    await b.pool.end();
    await setup.end();
  });

  let loads = 0;
  const load = (inst, m) => () => {
    loads++;
    return schoolsOf(inst.pool, m);
  };
  assert.deepEqual(await b.cache.get('mentor', 1, load(b, 1)), [10, 11]);
  assert.deepEqual(await b.cache.get('mentor', 1, load(b, 1)), [10, 11]);
  assert.equal(loads, 1, 'second read is a cache hit');
  assert.deepEqual(await b.cache.get('mentor', 2, load(b, 2)), [20]);

  // Each notification must arrive (within WAIT_MS); how fast is reported, not asserted.
  let maxLatencyMs = 0;
  for (let round = 0; round < 20; round++) {
    const notified = invalidationOf(b.cache, 'mentor', '1');
    const started = process.hrtime.bigint();
    // Instance A changes mentor 1's schools; the trigger invalidates ('mentor', '1').
    await a.pool.query('UPDATE assignment SET school_id = school_id + 100 WHERE mentor_id = 1 AND school_id = $1', [
      round === 0 ? 11 : 11 + 100 * round,
    ]);
    await notified;
    const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
    maxLatencyMs = Math.max(maxLatencyMs, latencyMs);
    assert.deepEqual(
      await b.cache.get('mentor', 1, load(b, 1)),
      [10, 111 + 100 * round],
      `round ${round}: B serves the committed data`,
    );
  }
  t.diagnostic(`slowest notification: ${maxLatencyMs.toFixed(0)} ms`);
  assert.equal(await b.cache.get('mentor', 2, load(b, 2)).then((v) => v[0]), 20);
  assert.ok(b.cache.stats.hits >= 2, 'untouched key stays cached');
  assert.ok(b.cache.stats.invalidated >= 20, 'each change dropped the entry');
});

test('a listener that was disconnected re-checks the generation before serving', { skip }, async (t) => {
  const setup = new Client();
  await setup.connect();
  await setup.query(`
    DROP TABLE IF EXISTS setting;
    CREATE TABLE setting (k text PRIMARY KEY, v text);
    INSERT INTO setting VALUES ('theme', 'light');`);
  const b = instance();
  await b.cache.start();
  t.after(async () => {
    await b.cache.stop();
    await b.pool.end();
    await setup.end();
  });
  const read = () => b.pool.query('SELECT v FROM setting WHERE k = $1', ['theme']).then((r) => r.rows[0].v);

  assert.equal(await b.cache.get('setting', 'theme', read), 'light');

  // Cut the listener; while it is away, the change and its notification happen.
  const disconnected = once(b.cache, 'disconnected');
  const pid = b.cache.listener.processID;
  await setup.query('SELECT pg_terminate_backend($1)', [pid]);
  await disconnected;
  await setup.query(`BEGIN; UPDATE setting SET v = 'dark' WHERE k = 'theme';
                     SELECT poolguard.invalidate('setting', 'theme'); COMMIT;`);
  const rechecks = b.cache.stats.rechecks;
  assert.equal(await b.cache.get('setting', 'theme', read), 'dark', 'not served stale while disconnected');
  assert.equal(b.cache.stats.rechecks, rechecks + 1, 'the entry was re-checked');

  // It reconnects (backoff) and serves from cache again once re-checked.
  await once(b.cache, 'listening');
  assert.equal(await b.cache.get('setting', 'theme', read), 'dark');
  const hits = b.cache.stats.hits;
  assert.equal(await b.cache.get('setting', 'theme', read), 'dark');
  assert.equal(b.cache.stats.hits, hits + 1, 'served from cache after reconnect');
  assert.ok(b.cache.stats.reconnects >= 1);
});

test('an invalidation during a load keeps the loaded value out of the cache', { skip }, async (t) => {
  const b = instance();
  const writer = new Client();
  await writer.connect();
  await b.cache.start();
  t.after(async () => {
    await b.cache.stop();
    await b.pool.end();
    await writer.end();
  });
  let calls = 0;
  const slowLoader = async () => {
    calls++;
    const notified = invalidationOf(b.cache, 'race', 'x');
    await writer.query("SELECT poolguard.invalidate('race', 'x')");
    await notified;
    return 'loaded-before-change';
  };
  assert.equal(await b.cache.get('race', 'x', slowLoader), 'loaded-before-change');
  assert.equal(await b.cache.get('race', 'x', async () => 'fresh'), 'fresh', 'not cached: reloaded');
  assert.equal(calls, 1);
});

test('scope-wide invalidation drops the scope; resync has every entry re-checked', { skip }, async (t) => {
  const b = instance();
  const writer = new Client();
  await writer.connect();
  await b.cache.start();
  t.after(async () => {
    await b.cache.stop();
    await b.pool.end();
    await writer.end();
  });
  await b.cache.get('school', '1', async () => 'one');
  await b.cache.get('school', '2', async () => 'two');
  await b.cache.get('other', '1', async () => 'other');
  const notified = invalidationOf(b.cache, 'school', null);
  await writer.query("SELECT poolguard.invalidate('school')");
  await notified;
  assert.equal(await b.cache.get('school', '1', async () => 'ONE'), 'ONE');
  assert.equal(await b.cache.get('school', '2', async () => 'TWO'), 'TWO');
  assert.equal(await b.cache.get('other', '1', async () => 'x'), 'other', 'other scopes stay');

  // A resync from the publisher (the one that sent the scope item): entries are kept and each is
  // re-checked with one cache_generation call before it is served again.
  const publisher = [...b.cache.publishers][0];
  assert.ok(publisher > 0, 'the publisher is known');
  const size = b.cache.entries.size;
  b.cache._onNotification({
    channel: 'poolguard_invalidate',
    processId: publisher,
    payload: '[{"scope":null,"key":null,"generation":1,"resync":true}]',
  });
  assert.equal(b.cache.stats.resyncs, 1);
  assert.equal(b.cache.entries.size, size, 'resync drops nothing');
  const rechecks = b.cache.stats.rechecks;
  assert.equal(await b.cache.get('other', '1', async () => 'x'), 'other');
  assert.equal(b.cache.stats.rechecks, rechecks + 1, 'but has the entry re-checked');
});
