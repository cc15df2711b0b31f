'use strict';
// pg-poolguard-cache/next: the 'use cache' handler (cacheHandlers) and the ISR handler
// (cacheHandler) as Next.js 16 calls them, two "instances" (two cores) against a real server.
// Connection: the PG* environment variables; the database tests are skipped without PGHOST.
// Waits poll for their condition with a deadline.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('pg');
const { createCacheHandler, createIncrementalCacheHandler, tagScope, NextCacheCore } = require('../next');

const skip = process.env.PGHOST ? false : 'PGHOST not set: no test server';
const DEADLINE_MS = 60000;

async function until(what, fn) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`not reached within ${DEADLINE_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function entry(text, { tags = [], revalidate = 300, expire = 3600, timestamp = Date.now() } = {}) {
  const bytes = new TextEncoder().encode(text);
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(bytes);
        c.close();
      },
    }),
    tags,
    stale: 0,
    timestamp,
    revalidate,
    expire,
  };
}

async function text(e) {
  return e === undefined ? undefined : new Response(e.value).text();
}

test('tag scopes: short tags as is, long ones hashed (within 63 bytes)', () => {
  assert.equal(tagScope('mentor_1'), 'tag:mentor_1');
  const long = tagScope('_N_T_/' + 'x'.repeat(100));
  assert.match(long, /^tag#[0-9a-f]{56}$/);
  assert.ok(Buffer.byteLength(long) <= 63);
  assert.notEqual(tagScope('_N_T_/' + 'x'.repeat(100)), tagScope('_N_T_/' + 'x'.repeat(101)));
});

test("'use cache' handler: bounded in bytes and entries (no database during next build)", async () => {
  const h = createCacheHandler({ core: new NextCacheCore({ building: true, maxBytes: 1000, maxEntries: 3 }) });
  await h.set('a', Promise.resolve(entry('x'.repeat(100))));
  assert.equal(await text(await h.get('a', [])), 'x'.repeat(100));
  assert.equal(await text(await h.get('a', [])), 'x'.repeat(100), 'served again (the stream is not consumed)');
  for (const k of ['b', 'c', 'd']) await h.set(k, Promise.resolve(entry(k)));
  assert.equal(await h.get('a', []), undefined, 'the least recently used entry went (4 > maxEntries 3)');
  await h.set('big', Promise.resolve(entry('y'.repeat(2000))));
  assert.equal(await h.get('big', []), undefined, 'larger than maxBytes: not stored');
  await h.set('e', Promise.resolve(entry('z'.repeat(700))));
  assert.ok(h.core.bytes <= 1000, `bytes ${h.core.bytes} <= 1000`);
  // A local updateTags during the build expires at once; nothing connects.
  await h.set('t', Promise.resolve(entry('t', { tags: ['items'], timestamp: Date.now() - 10 })));
  await h.updateTags(['items']);
  assert.equal(await h.get('t', []), undefined);
  assert.ok((await h.getExpiration(['items'])) > 0);
  assert.equal(await h.getExpiration(['other']), 0);
  assert.equal(h.core.cache, null, 'no listener during the build');
});

test('two instances through the database', { skip }, async (t) => {
  const admin = new Client();
  await admin.connect();
  await admin.query(`
    CREATE EXTENSION IF NOT EXISTS pg_poolguard;
    DROP TABLE IF EXISTS next_assignments;
    CREATE TABLE next_assignments (mentor_id int, school_id int, PRIMARY KEY (mentor_id, school_id));
    SELECT poolguard.track_table('next_assignments');`);
  const cores = ['a', 'b'].map(() => new NextCacheCore({ tables: { next_assignments: ['mentor-schools'] } }));
  const [ua, ub] = cores.map((core) => createCacheHandler({ core }));
  const [IsrA, IsrB] = cores.map((core) => createIncrementalCacheHandler({ core }));
  t.after(async () => {
    for (const c of cores) await c.stop();
    await admin.query('DROP TABLE IF EXISTS next_assignments');
    await admin.end();
  });

  await t.test("updateTags on one instance expires the tag on both ('use cache')", async () => {
    await ua.refreshTags();
    await ub.refreshTags();
    const ts = Date.now() - 5;
    await ua.set('page', Promise.resolve(entry('A', { tags: ['mentor_1'], timestamp: ts })));
    await ub.set('page', Promise.resolve(entry('B', { tags: ['mentor_1'], timestamp: ts })));
    assert.equal(await text(await ua.get('page', [])), 'A');
    assert.equal(await text(await ub.get('page', [])), 'B');
    await ub.updateTags(['mentor_1']);
    assert.equal(await ub.get('page', []), undefined, 'the publishing instance at once');
    await until('instance a expires the tag', async () => (await ua.get('page', [])) === undefined);
    assert.ok((await ua.getExpiration(['mentor_1'])) >= ts);
  });

  await t.test('a committed change to a tracked table expires table:<name> and the mapped tags', async () => {
    const ts = Date.now() - 5;
    await ua.set('by-table', Promise.resolve(entry('1', { tags: ['table:next_assignments'], timestamp: ts })));
    await ua.set('by-map', Promise.resolve(entry('2', { tags: ['mentor-schools'], timestamp: ts })));
    await ua.set('other', Promise.resolve(entry('3', { tags: ['unrelated'], timestamp: ts })));
    await admin.query('INSERT INTO next_assignments VALUES (1, 1)');
    await until(
      'both tags expire',
      async () => (await ua.get('by-table', [])) === undefined && (await ua.get('by-map', [])) === undefined,
    );
    assert.equal(await text(await ua.get('other', [])), '3');
  });

  await t.test('updateTags with durations marks the entry stale (revalidate -1) elsewhere', async () => {
    const ts = Date.now() - 5;
    await ua.set('swr', Promise.resolve(entry('S', { tags: ['swr_tag'], timestamp: ts })));
    await ub.updateTags(['swr_tag'], { expire: 3600 });
    await until('instance a sees the tag stale', async () => (await ua.get('swr', []))?.revalidate === -1);
  });

  await t.test(
    'ISR handler: revalidateTag from another instance; an expiry during a render is not stored',
    async () => {
      const a = new IsrA({});
      const b = new IsrB({});
      const page = {
        kind: 'APP_ROUTE',
        body: Buffer.from('v1'),
        status: 200,
        headers: { 'x-next-cache-tags': 'route_tag,_N_T_/api' },
      };
      assert.equal(await a.get('/api', { kind: 'APP_ROUTE' }), null);
      await a.set('/api', page, {});
      assert.equal(
        (await new IsrA({}).get('/api', {})).value.body.toString(),
        'v1',
        'shared by the per-request instances',
      );
      await b.revalidateTag('route_tag');
      await until('instance a drops the route', async () => (await a.get('/api', {})) === null);
      // The render that follows the miss started before this expiry: not stored.
      await b.revalidateTag(['_N_T_/api']);
      await until(
        'instance a received the expiry',
        () => cores[0].expiredAt(['_N_T_/api']) > 0 && cores[0].stats.received > 0,
      );
      await a.set('/api', page, {});
      assert.equal(await a.get('/api', {}), null, 'stored data could predate the change');
      assert.ok(cores[0].stats.notStored >= 1);
    },
  );
});
