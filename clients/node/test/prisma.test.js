'use strict';
// pg-poolguard-cache/prisma against a real server: two app "instances" (each its own
// PrismaClient + adapter-pg, extended with withPoolguardCache) on the mentor-assignment tables,
// tracked with poolguard.track_table().  Connection: the PG* environment variables (scripts/test.sh
// points them at a throwaway cluster); skipped without PGHOST or on a Node that Prisma 7 rejects.
// Nothing here waits for time to pass: each wait polls for its condition with a deadline.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Client } = require('pg');
const { withPoolguardCache, prismaPoolConfig, stableStringify } = require('../prisma');

function prismaSkip() {
  if (!process.env.PGHOST) return 'PGHOST not set: no test server';
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (!(maj > 22 || (maj === 22 && min >= 12) || (maj === 20 && min >= 19))) {
    return `Prisma 7 needs Node ^20.19 || ^22.12 || >=24 (this is ${process.versions.node})`;
  }
  return false;
}
const skip = prismaSkip();
const root = path.join(__dirname, '..');
const DEADLINE_MS = 60000;

async function until(what, fn) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`not reached within ${DEADLINE_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let admin;
let PrismaClient;
let PrismaPg;
const apps = [];

function instance(options = {}) {
  const base = new PrismaClient({ adapter: new PrismaPg({ max: 3 }) });
  const warnings = [];
  const prisma = base.$extends(withPoolguardCache({ onWarning: (m, kind) => warnings.push(kind), ...options }));
  apps.push({ base, prisma });
  return { prisma, warnings };
}

// The schools a mentor may access, through the cached path.
async function schoolsOf(prisma, mentorId, strategy = { ttl: 300 }) {
  const rows = await prisma.mentorAssignment.findMany({
    where: { mentorId },
    orderBy: { schoolId: 'asc' },
    cacheStrategy: strategy,
  });
  return rows.map((r) => r.schoolId);
}

test('prismaPoolConfig maps engine parameters to pg.Pool settings', () => {
  const { config, mapped, ignored } = prismaPoolConfig(
    'postgresql://u:secret@db:5432/app?connection_limit=3&pool_timeout=5&connect_timeout=4&schema=s&sslmode=require',
  );
  assert.equal(config.max, 3);
  assert.equal(config.connectionTimeoutMillis, 4000); // the smaller of pool_timeout and connect_timeout
  assert.equal(config.connectionString, 'postgresql://u:secret@db:5432/app?sslmode=require');
  assert.deepEqual(mapped.map((m) => m.param).sort(), ['connect_timeout', 'connection_limit', 'pool_timeout']);
  assert.deepEqual(
    ignored.map((m) => m.param),
    ['schema'],
  );
  assert.throws(() => prismaPoolConfig('not a url'), /not a valid URL/);
  assert.deepEqual(prismaPoolConfig(''), { config: {}, mapped: [], ignored: [] });
});

test('normalized args: key order and value types', () => {
  assert.equal(
    stableStringify({ where: { a: 1, b: 2 }, take: 3 }),
    stableStringify({ take: 3, where: { b: 2, a: 1 } }),
  );
  assert.notEqual(stableStringify({ where: { a: 1n } }), stableStringify({ where: { a: '1' } }));
  assert.notEqual(
    stableStringify({ where: { d: new Date(0) } }),
    stableStringify({ where: { d: '1970-01-01T00:00:00.000Z' } }),
  );
});

test('withPoolguardCache with Prisma 7 + adapter-pg', { skip }, async (t) => {
  execFileSync(
    process.execPath,
    [require.resolve('prisma/build/index.js'), 'generate', '--schema', path.join(__dirname, 'prisma', 'cache.prisma')],
    {
      cwd: root,
      stdio: 'pipe',
      env: {
        ...process.env,
        PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
        CHECKPOINT_DISABLE: '1',
      },
    },
  );
  ({ PrismaClient } = require('./prisma/generated/cache'));
  await t.test('types: cacheStrategy on the generated client, typed results, no any', () => {
    try {
      execFileSync(
        process.execPath,
        [require.resolve('typescript/bin/tsc'), '-p', path.join(__dirname, 'types', 'tsconfig.prisma.json')],
        { cwd: root, encoding: 'utf8' },
      );
    } catch (err) {
      assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
    }
  });
  ({ PrismaPg } = require('@prisma/adapter-pg'));
  admin = new Client();
  await admin.connect();
  await admin.query(`
    DROP TABLE IF EXISTS mentor_assignments, mentors, schools;
    CREATE EXTENSION IF NOT EXISTS pg_poolguard;
    CREATE TABLE mentors (id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE schools (id int PRIMARY KEY, name text NOT NULL);
    CREATE TABLE mentor_assignments (mentor_id int REFERENCES mentors, school_id int REFERENCES schools,
                                     PRIMARY KEY (mentor_id, school_id));
    INSERT INTO mentors SELECT i, 'mentor ' || i FROM generate_series(1, 5) i;
    INSERT INTO schools SELECT i, 'school ' || i FROM generate_series(1, 5) i;
    INSERT INTO mentor_assignments VALUES (1, 1), (1, 2), (2, 3);
    SELECT poolguard.track_table('mentors');
    SELECT poolguard.track_table('schools');
    SELECT poolguard.track_table('mentor_assignments');`);
  t.after(async () => {
    for (const a of apps) {
      await a.prisma.$poolguard.stop();
      await a.base.$disconnect();
    }
    await admin.query('DROP TABLE IF EXISTS mentor_assignments, mentors, schools');
    await admin.end();
  });

  const a = instance();
  const b = instance();

  await t.test('a repeated read is served from the cache', async () => {
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1, 2]);
    const hits = a.prisma.$poolguard.stats.hits;
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1, 2]);
    assert.equal(a.prisma.$poolguard.stats.hits, hits + 1);
    // Without cacheStrategy nothing is cached.
    const misses = a.prisma.$poolguard.stats.misses;
    await a.prisma.mentorAssignment.findMany({ where: { mentorId: 1 } });
    assert.equal(a.prisma.$poolguard.stats.misses, misses);
  });

  await t.test('a revoke by raw SQL from another connection drops the entry on both instances', async () => {
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1, 2]);
    assert.deepEqual(await schoolsOf(b.prisma, 1), [1, 2]);
    const dropped = [a, b].map((x) => x.prisma.$poolguard.stats.invalidated);
    await admin.query('DELETE FROM mentor_assignments WHERE mentor_id = 1 AND school_id = 2');
    for (const [i, x] of [a, b].entries()) {
      await until(`instance ${i} drops the entry`, () => x.prisma.$poolguard.stats.invalidated > dropped[i]);
      // Any request after the drop reads the revoke.
      assert.deepEqual(await schoolsOf(x.prisma, 1), [1]);
    }
  });

  await t.test('include: a change to a related table drops the entry', async () => {
    const read = (p) =>
      p.mentor.findUnique({
        where: { id: 2 },
        include: { assignments: { include: { school: true } } },
        cacheStrategy: { ttl: 300 },
      });
    assert.equal((await read(a.prisma)).assignments[0].school.name, 'school 3');
    const dropped = a.prisma.$poolguard.stats.invalidated;
    await admin.query(`UPDATE schools SET name = 'renamed' WHERE id = 3`);
    await until('the schools change drops the mentor entry', () => a.prisma.$poolguard.stats.invalidated > dropped);
    assert.equal((await read(a.prisma)).assignments[0].school.name, 'renamed');
  });

  await t.test('the writing instance drops its own entries at once; the other one by notification', async () => {
    assert.deepEqual(await schoolsOf(a.prisma, 2), [3]);
    assert.deepEqual(await schoolsOf(b.prisma, 2), [3]);
    const dropped = b.prisma.$poolguard.stats.invalidated;
    await a.prisma.mentorAssignment.delete({ where: { mentorId_schoolId: { mentorId: 2, schoolId: 3 } } });
    assert.deepEqual(await schoolsOf(a.prisma, 2), [], 'the writer never serves its revoked entry');
    await until('instance b drops the entry', () => b.prisma.$poolguard.stats.invalidated > dropped);
    assert.deepEqual(await schoolsOf(b.prisma, 2), []);
  });

  await t.test("a where on a key column listens to those rows only (another mentor's change keeps it)", async () => {
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1]);
    const seen = (scope, key) =>
      new Promise((resolve) => {
        const on = (items) => {
          if (items.some((i) => i.scope === scope && i.key === key)) {
            a.prisma.$poolguard.cache.off('invalidation', on);
            resolve();
          }
        };
        a.prisma.$poolguard.cache.on('invalidation', on);
      });
    const arrived = seen('mentor_assignments', '["4","1"]');
    await admin.query('INSERT INTO mentor_assignments VALUES (4, 1)');
    await arrived;
    const hits = a.prisma.$poolguard.stats.hits;
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1]);
    assert.equal(a.prisma.$poolguard.stats.hits, hits + 1, "mentor 4's row left mentor 1's list cached");
    // A row moving from mentor 4 to mentor 1: its old and new keys are both published.
    const dropped = a.prisma.$poolguard.stats.invalidated;
    await admin.query(
      'UPDATE mentor_assignments SET mentor_id = 1, school_id = 3 WHERE mentor_id = 4 AND school_id = 1',
    );
    await until("mentor 1's list is dropped", () => a.prisma.$poolguard.stats.invalidated > dropped);
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1, 3]);
    // The writer's own Prisma write drops it at once as well.
    const deleted = seen('mentor_assignments', '["1","3"]');
    await a.prisma.mentorAssignment.delete({ where: { mentorId_schoolId: { mentorId: 1, schoolId: 3 } } });
    assert.deepEqual(await schoolsOf(a.prisma, 1), [1]);
    // Its notification still comes (it drops the table's entries too): wait for it here, or on a
    // slow machine it drops what the next subtest has just cached.
    await deleted;
  });

  await t.test('count, aggregate and groupBy are cached and dropped', async () => {
    const count = () => a.prisma.mentorAssignment.count({ cacheStrategy: { ttl: 300 } });
    const agg = () => a.prisma.mentorAssignment.aggregate({ _max: { schoolId: true }, cacheStrategy: { ttl: 300 } });
    const grouped = () =>
      a.prisma.mentorAssignment.groupBy({
        by: ['mentorId'],
        _count: { _all: true },
        orderBy: { mentorId: 'asc' },
        cacheStrategy: { ttl: 300 },
      });
    const before = [await count(), (await agg())._max.schoolId, (await grouped()).length];
    const hits = a.prisma.$poolguard.stats.hits;
    await count();
    await agg();
    await grouped();
    assert.equal(a.prisma.$poolguard.stats.hits, hits + 3);
    const dropped = a.prisma.$poolguard.stats.invalidated;
    await admin.query('INSERT INTO mentor_assignments VALUES (3, 5)');
    await until('the insert drops the three entries', () => a.prisma.$poolguard.stats.invalidated >= dropped + 3);
    assert.deepEqual(
      [await count(), (await agg())._max.schoolId, (await grouped()).length],
      [before[0] + 1, 5, before[2] + 1],
    );
  });

  await t.test(
    'tags: $poolguard.invalidate({ tags }) drops on every instance; in a transaction, at its commit',
    async () => {
      const read = (p) =>
        p.mentor.findMany({
          where: { id: { lte: 2 } },
          orderBy: { id: 'asc' },
          cacheStrategy: { ttl: 300, tags: ['mentor_list'] },
        });
      await read(a.prisma);
      await read(b.prisma);
      const dropped = a.prisma.$poolguard.stats.invalidated;
      await b.prisma.$poolguard.invalidate({ tags: ['mentor_list'] });
      await until('instance a drops the tagged entry', () => a.prisma.$poolguard.stats.invalidated > dropped);
      // A rolled-back transaction publishes nothing (the local drop on b is only b's).
      await read(a.prisma);
      const hits = a.prisma.$poolguard.stats.hits;
      await assert.rejects(
        b.prisma.$transaction(async (tx) => {
          await b.prisma.$poolguard.invalidate({ tags: ['mentor_list'] }, tx);
          throw new Error('roll back');
        }),
        /roll back/,
      );
      await read(a.prisma);
      assert.equal(a.prisma.$poolguard.stats.hits, hits + 1, 'still cached after the rollback');
      const dropped2 = a.prisma.$poolguard.stats.invalidated;
      await b.prisma.$transaction(async (tx) => {
        await tx.mentor.update({ where: { id: 5 }, data: { name: 'five' } });
        await b.prisma.$poolguard.invalidate({ tags: ['mentor_list'] }, tx);
      });
      await until('instance a drops it at the commit', () => a.prisma.$poolguard.stats.invalidated > dropped2);
    },
  );

  await t.test('fresh: true confirms generations before serving (closes the notification window)', async () => {
    const c = instance();
    assert.deepEqual(await schoolsOf(c.prisma, 1, { ttl: 300, fresh: true }), [1]);
    // Deaf instance: notifications no longer reach the cache (the window between commit and
    // notification, held open).
    c.prisma.$poolguard.cache.removeAllListeners('invalidation');
    await admin.query('INSERT INTO mentor_assignments VALUES (1, 4)');
    assert.deepEqual(await schoolsOf(c.prisma, 1, { ttl: 300 }), [1], 'a plain read is served the cached value');
    assert.deepEqual(await schoolsOf(c.prisma, 1, { ttl: 300, fresh: true }), [1, 4], 'a fresh read is not');
    assert.ok(c.prisma.$poolguard.stats.freshStale >= 1);
    // Concurrent fresh reads share one generation query.
    const batches = c.prisma.$poolguard.stats.freshBatches;
    await Promise.all([1, 2, 3].map((m) => schoolsOf(c.prisma, m, { ttl: 300, fresh: true })));
    assert.equal(c.prisma.$poolguard.stats.freshBatches, batches + 1);
  });

  await t.test('reads in a transaction are not cached; bad cacheStrategy is refused', async () => {
    const misses = a.prisma.$poolguard.stats.misses;
    await a.prisma.$transaction(async (tx) => {
      await tx.mentor.findMany({ cacheStrategy: { ttl: 60 } });
    });
    assert.equal(a.prisma.$poolguard.stats.misses, misses);
    await assert.rejects(a.prisma.mentor.findMany({ cacheStrategy: { ttl: -1 } }), /ttl/);
    await assert.rejects(a.prisma.mentor.findMany({ cacheStrategy: { tags: ['bad tag'] } }), /tags/);
    await assert.rejects(a.prisma.mentor.findMany({ cacheStrategy: { tll: 1 } }), /unknown option "tll"/);
  });

  await t.test('ttl then swr: stale served while one background load refreshes', async () => {
    let now = 1e12;
    const c = instance({ now: () => now });
    const read = () => c.prisma.school.findUnique({ where: { id: 1 }, cacheStrategy: { ttl: 1, swr: 60 } });
    assert.equal((await read()).name, 'school 1');
    c.prisma.$poolguard.cache.removeAllListeners('invalidation'); // only time decides here
    await admin.query(`UPDATE schools SET name = 'one' WHERE id = 1`);
    now += 2000;
    assert.equal((await read()).name, 'school 1', 'stale within swr');
    assert.equal(c.prisma.$poolguard.stats.staleServed, 1);
    await until('the background load stores the new value', async () => (await read()).name === 'one');
    now += 120000;
    const misses = c.prisma.$poolguard.stats.misses;
    await read();
    assert.equal(c.prisma.$poolguard.stats.misses, misses + 1, 'past ttl + swr: loaded again');
  });

  await t.test('warns about engine pool parameters and untracked tables', async () => {
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgresql://u@h/db?connection_limit=3&pool_timeout=5';
    try {
      const c = instance({
        connect: async () => {
          const x = new Client();
          await x.connect();
          return x;
        },
      });
      await admin.query("SELECT poolguard.untrack_table('schools')");
      await c.prisma.mentor.findMany({ cacheStrategy: { ttl: 1 } }); // starts the listener, reads tracked_tables
      await until('tracked tables read', async () => {
        await c.prisma.school.findMany({ cacheStrategy: { ttl: 1 } });
        return c.warnings.some((k) => k.startsWith('untracked:'));
      });
      assert.ok(c.warnings.includes('engine-params'), `warnings: ${c.warnings}`);
      assert.ok(c.warnings.includes('untracked:table:schools'), `warnings: ${c.warnings}`);
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
      await admin.query("SELECT poolguard.track_table('schools')");
    }
  });
});
