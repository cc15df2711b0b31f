'use strict';
// Notifications are untrusted input: anyone who may connect may NOTIFY on any channel.  The cache
// must survive every malformed or forged payload (no exception may reach the pg client's event
// emission: that takes the process down), keep its entries, count and report the rejections, and
// apply only what this database's publishers sent.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { Client, Pool } = require('pg');
const { PoolguardCache, parsePayload } = require('..');

const PUBLISHER = 4242;
const CHANNEL = 'poolguard_invalidate';

// The payloads of the issue, and more of the same kind.
const MALFORMED = [
  ['1', 'shape'],
  ['[null]', 'shape'],
  ['[{}]', 'shape'],
  ['{"scope":"mentor"}', 'shape'],
  ['[{"scope":"mentor","key":"1","generation":"abc"}]', 'type'],
  ['[{"scope":"mentor","key":"1"}]', 'shape'],
  ['', 'json'],
  ['not json', 'json'],
  ['[]', 'shape'],
  ['[1,2,3]', 'shape'],
  ['[[]]', 'shape'],
  ['"mentor"', 'shape'],
  ['null', 'shape'],
  ['[{"scope":"mentor","key":"1","generation":-5}]', 'type'],
  ['[{"scope":"mentor","key":"1","generation":1.5}]', 'type'],
  ['[{"scope":"mentor","key":"1","generation":1e300}]', 'type'],
  ['[{"scope":"mentor","key":"1","generation":null}]', 'type'],
  ['[{"scope":42,"key":"1","generation":5}]', 'type'],
  ['[{"scope":"mentor","key":42,"generation":5}]', 'type'],
  ['[{"scope":"mentor","key":{"a":1},"generation":5}]', 'type'],
  ['[{"scope":"","key":"1","generation":5}]', 'size'],
  [`[{"scope":"${'s'.repeat(64)}","key":"1","generation":5}]`, 'size'],
  [`[{"scope":"mentor","key":"${'k'.repeat(1001)}","generation":5}]`, 'size'],
  [`[{"scope":"mentor","key":"1","generation":5,"pad":"${'p'.repeat(8000)}"}]`, 'size'],
  ['[{"scope":"mentor","key":"1","generation":5,"extra":true}]', 'shape'],
  ['[{"__proto__":{"polluted":true},"scope":"mentor","key":"1","generation":5}]', 'shape'],
  ['[{"scope":"mentor","key":null,"generation":5,"resync":"yes"}]', 'shape'],
  ['[{"scope":"mentor","key":null,"generation":5,"resync":true}]', 'shape'],
  ['[{"scope":"mentor","key":"1","generation":5},{"scope":"mentor","key":null,"generation":"x"}]', 'type'],
];

// A stand-in for the LISTEN connection (pg.Client): answers LISTEN, set_config and publisher_pids().
class FakeListener extends EventEmitter {
  constructor(publishers) {
    super();
    this.publishers = publishers;
    this.lookups = 0;
  }

  async query(text) {
    if (/publisher_pids/.test(text)) {
      this.lookups++;
      return { rows: this.publishers.map((pid) => ({ pid })) };
    }
    return { rows: [] };
  }

  async end() {}

  notify(payload, processId = PUBLISHER, channel = CHANNEL) {
    this.emit('notification', { processId, channel, payload });
  }
}

// A pool whose cache_generation answers from a map (default 1).
function fakePool(generations = new Map()) {
  return {
    calls: 0,
    generations,
    async query(text, [scope, key]) {
      this.calls++;
      return { rows: [{ g: String(generations.get(`${scope}/${key}`) ?? 1) }] };
    },
  };
}

async function fakeCache(options = {}) {
  const listener = new FakeListener(options.publishers ?? [PUBLISHER]);
  const pool = fakePool();
  const cache = new PoolguardCache({ pool, connect: async () => listener, senderLookupIntervalMs: 50, ...options });
  await cache.start();
  for (let i = 0; i < 5; i++) await cache.get('mentor', String(i), async () => `v${i}`);
  await cache.get('school', '1', async () => 'school');
  return { cache, listener, pool };
}

// A generous deadline: the machine may be slow and busy.
async function until(cond, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function assertAllCached(cache) {
  const hits = cache.stats.hits;
  for (let i = 0; i < 5; i++) {
    assert.equal(await cache.get('mentor', String(i), async () => assert.fail('reloaded')), `v${i}`);
  }
  assert.equal(await cache.get('school', '1', async () => assert.fail('reloaded')), 'school');
  assert.equal(cache.stats.hits, hits + 6, 'served from cache, without a re-check');
}

test('malformed payloads, even from the publisher, throw nothing and change nothing', async () => {
  const { cache, listener } = await fakeCache();
  const warnings = [];
  cache.on('warning', (w) => warnings.push(w));
  for (const [payload] of MALFORMED) {
    assert.doesNotThrow(() => listener.notify(payload), `payload ${payload.slice(0, 60)}`);
  }
  assert.doesNotThrow(() => listener.emit('notification', { processId: PUBLISHER, channel: CHANNEL }));
  assert.doesNotThrow(() => listener.emit('notification', null));
  assert.equal(cache.stats.rejected, MALFORMED.length + 1);
  for (const [payload, kind] of MALFORMED) {
    assert.throws(
      () => parsePayload(payload),
      (e) => e.kind === kind,
      `kind of ${payload.slice(0, 60)}`,
    );
  }
  const kinds = [...new Set(MALFORMED.map(([, k]) => k))].sort();
  assert.deepEqual(warnings.map((w) => w.kind).sort(), kinds, 'one warning per kind');
  assert.equal(cache.stats.notifications, 0);
  assert.equal(cache.entries.size, 6);
  assert.equal({}.polluted, undefined, 'no prototype pollution');
  await assertAllCached(cache);
  await cache.stop();
});

test('valid-looking items and a resync from a sender that is no publisher are ignored', async () => {
  const { cache, listener } = await fakeCache();
  const warnings = [];
  cache.on('warning', (w) => warnings.push(w));
  const forger = 777;
  listener.notify('[{"scope":"mentor","key":"1","generation":9007199254740991}]', forger);
  listener.notify('[{"scope":"mentor","key":null,"generation":9007199254740991}]', forger);
  listener.notify('[{"scope":null,"key":null,"generation":1,"resync":true}]', forger);
  await until(() => cache.stats.rejected === 3, 'three rejections');
  assert.deepEqual(cache.stats.rejectedByKind, { sender: 3 });
  assert.deepEqual(
    warnings.map((w) => w.kind),
    ['sender'],
  );
  assert.equal(cache.stats.resyncs, 0);
  await assertAllCached(cache);

  // The publisher's own notification is applied at once.
  listener.notify('[{"scope":"mentor","key":"1","generation":5}]');
  assert.equal(cache.entries.size, 5, 'the publisher invalidated mentor/1');
  await cache.stop();
});

test('a publisher that started after the last look-up is recognised by the next one', async () => {
  const { cache, listener } = await fakeCache();
  listener.publishers = [PUBLISHER + 1]; // the old publisher exited, a new one runs
  listener.notify('[{"scope":"mentor","key":null,"generation":5}]', PUBLISHER + 1);
  await until(() => cache.stats.notifications === 1, 'the held notification applied');
  assert.equal(cache.entries.size, 1, 'whole scope dropped, school kept');
  assert.equal(cache.stats.rejected, 0);
  await cache.stop();
});

test('a flood of forged senders costs a bounded number of publisher look-ups', async () => {
  const { cache, listener } = await fakeCache({ senderLookupIntervalMs: 200 });
  const before = listener.lookups;
  const started = Date.now();
  for (let i = 0; i < 2000; i++) listener.notify('[{"scope":"mentor","key":"1","generation":5}]', 10000 + i);
  await until(() => cache.stats.rejected === 2000, 'all forged notifications rejected');
  const elapsed = Date.now() - started;
  const lookups = listener.lookups - before;
  assert.ok(lookups <= 2 + elapsed / 200, `${lookups} look-ups in ${elapsed} ms`);
  await assertAllCached(cache);
  await cache.stop();
});

test('too many held notifications: the oldest go, and entries are re-checked instead of trusted', async () => {
  const { cache, listener, pool } = await fakeCache({ maxHeldNotifications: 10, senderLookupIntervalMs: 100000 });
  cache.lastLookupAt = Date.now(); // the next look-up is far away
  for (let i = 0; i < 11; i++) listener.notify('[{"scope":"mentor","key":"1","generation":5}]', 555);
  assert.equal(cache.stats.rejectedByKind.overflow, 1);
  const calls = pool.calls;
  assert.equal(await cache.get('mentor', '0', async () => assert.fail('reloaded')), 'v0');
  assert.equal(pool.calls, calls + 1, 'one re-check, no reload');
  await cache.stop();
});

test('a resync keeps the entries and has them re-checked; a storm costs O(1) per resync', async () => {
  const { cache, listener, pool } = await fakeCache();
  const events = [];
  cache.on('resync', (g) => events.push(g));
  for (let g = 1; g <= 10000; g++) listener.notify(`[{"scope":null,"key":null,"generation":${g},"resync":true}]`);
  assert.equal(cache.stats.resyncs, 10000);
  assert.equal(events.length, 1, "'resync' events are rate-limited");
  assert.equal(cache.entries.size, 6, 'nothing dropped');
  // O(1) per resync is what the counts below show (one re-check, nothing dropped), not a time.
  const calls = pool.calls;
  await Promise.all([1, 2, 3].map(() => cache.get('mentor', '1', async () => assert.fail('reloaded'))));
  assert.equal(pool.calls, calls + 1, 'concurrent gets share one re-check');
  // The generation moved while it was stale: the re-check reloads.
  pool.generations.set('mentor/2', 7);
  listener.notify('[{"scope":null,"key":null,"generation":10001,"resync":true}]');
  assert.equal(await cache.get('mentor', '2', async () => 'fresh'), 'fresh');
  assert.equal(cache.stats.staleOnRecheck, 1);
  await cache.stop();
});

test("a throwing 'invalidation' or 'warning' listener does not reach the pg client", async () => {
  const { cache, listener } = await fakeCache();
  cache.on('invalidation', () => {
    throw new Error('app bug');
  });
  cache.on('warning', () => {
    throw new Error('app bug in warning');
  });
  assert.doesNotThrow(() => listener.notify('[{"scope":"mentor","key":"1","generation":5}]'));
  assert.doesNotThrow(() => listener.notify('1'));
  assert.equal(cache.entries.size, 5);
  await cache.stop();
});

// ---- against the server: real NOTIFYs from an unprivileged role ----

const haveServer = Boolean(process.env.PGHOST);
const skip = haveServer ? false : 'PGHOST not set: no test server';

test(
  'forged NOTIFYs from another role: the cache survives, keeps its entries, still hears the publisher',
  { skip },
  async (t) => {
    const admin = new Client();
    await admin.connect();
    await admin.query(`CREATE EXTENSION IF NOT EXISTS pg_poolguard;
                     DROP ROLE IF EXISTS poolguard_forger; CREATE ROLE poolguard_forger LOGIN;`);
    const pool = new Pool({ max: 2, application_name: 'hardening-app' });
    pool.on('error', () => {});
    const cache = new PoolguardCache({ pool, backoff: { initialMs: 20, maxMs: 200 } }); // default listener
    const warnings = [];
    cache.on('warning', (w) => warnings.push(w.kind));
    await cache.start();
    const forger = new Client({ user: 'poolguard_forger' });
    await forger.connect();
    t.after(async () => {
      await forger.end();
      await cache.stop();
      await pool.end();
      await admin.query('DROP ROLE IF EXISTS poolguard_forger');
      await admin.end();
    });

    const listenerName = await admin.query('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [
      cache.listener.processID,
    ]);
    assert.equal(listenerName.rows[0].application_name, 'pg_poolguard listener', 'the listener names itself');

    for (let i = 0; i < 5; i++) await cache.get('mentor', String(i), async () => `v${i}`);
    await cache.get('school', '1', async () => 'school');

    const forged = [
      ...MALFORMED.map(([p]) => p).filter((p) => Buffer.byteLength(p) < 8000),
      '[{"scope":"mentor","key":"1","generation":9007199254740991}]',
      '[{"scope":"mentor","key":null,"generation":9007199254740991}]',
      '[{"scope":null,"key":null,"generation":1,"resync":true}]',
    ];
    for (const p of forged) await forger.query('SELECT pg_notify($1, $2)', [CHANNEL, p]);
    await until(() => cache.stats.rejected === forged.length, `${forged.length} rejections`, 10000);
    assert.equal(cache.stats.rejectedByKind.sender, 3, 'valid-looking forgeries rejected by sender');
    assert.ok(cache.listening, 'the listener is still up');
    assert.equal(cache.stats.resyncs, 0);
    assert.ok(warnings.includes('sender') && warnings.includes('json'));
    await assertAllCached(cache);

    // The real publisher (started on demand, unknown at LISTEN time) is still heard.
    const heard = new Promise((resolve) =>
      cache.on('invalidation', (items) => {
        if (items.some((i) => i.scope === 'mentor' && i.key === '1')) resolve();
      }),
    );
    await admin.query("SELECT poolguard.invalidate('mentor', '1')");
    await heard;
    assert.equal(await cache.get('mentor', '1', async () => 'reloaded'), 'reloaded');
    assert.equal(await cache.get('mentor', '2', async () => assert.fail('reloaded')), 'v2');
  },
);

test('without publisher_pids() (older pg_poolguard) notifications are accepted, with one warning', async () => {
  const listener = new FakeListener([]);
  listener.query = async (text) => {
    if (/publisher_pids/.test(text))
      throw Object.assign(new Error('function poolguard.publisher_pids() does not exist'), { code: '42883' });
    return { rows: [] };
  };
  const cache = new PoolguardCache({ pool: fakePool(), connect: async () => listener });
  const warnings = [];
  cache.on('warning', (w) => warnings.push(w.kind));
  await cache.start();
  await cache.get('mentor', '1', async () => 'v');
  listener.notify('[{"scope":"mentor","key":"1","generation":5}]', 99);
  assert.equal(cache.entries.size, 0, 'applied');
  assert.deepEqual(warnings, ['sender-check-unavailable']);
  await cache.stop();
});
