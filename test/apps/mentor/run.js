'use strict';
// The real-app proof of issue 21: this Next.js 16 App Router app (Prisma 7 + adapter-pg +
// pg-poolguard-cache/prisma), built with `next build` (no database reachable), two `next start`
// instances, the mentor-assignment case under load, REVOKES revokes (half through Prisma on one of
// the instances, half by raw SQL from another connection).
//
// Asserted (the exit code): every revoke is dropped by each instance, and no request that started
// after its instance dropped the revoked entry was served the revoked authorization (through the
// cached path, no bypass).  Measured, never asserted (the machine may be slow and loaded): the
// drop latency (commit → drop, timestamps taken in the instances; the commit's time is taken just
// before the revoking statement is sent, so the figure is an upper bound), hit rate, database
// queries saved, request latency vs the same load without cacheStrategy.  They are printed as
// JSON (and written to RESULT_FILE when set).
//
// Connection: PG* variables (a superuser; scripts/test.sh points them at its cluster).
// Usage: node run.js   (after npm ci here; REVOKES=200 LOADERS=4 BASELINE_REQUESTS=2000)
const { spawn, execFileSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const fs = require('node:fs');
const { Client } = require('pg');

const APP = __dirname;
const REVOKES = Number(process.env.REVOKES ?? 200);
const LOADERS = Number(process.env.LOADERS ?? 4);
const BASELINE_REQUESTS = Number(process.env.BASELINE_REQUESTS ?? 2000);
const MENTORS = 20;
const SCHOOLS = 20;
const DATABASE = process.env.APP_DATABASE ?? 'poolguard_mentor_app';
const DEADLINE_MS = Number(process.env.PG_TEST_TIMEOUT_DEFAULT ?? 180) * 1000;

function log(...args) {
  console.error(`[mentor-app ${new Date().toISOString()}]`, ...args);
}

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

async function until(what, fn) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (_) { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`not reached within ${DEADLINE_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function quantile(xs, q) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

// A DATABASE_URL for the instances: the PG* variables (a socket directory as host= parameter).
function databaseUrl() {
  const host = process.env.PGHOST ?? 'localhost';
  const port = process.env.PGPORT ?? '5432';
  const user = encodeURIComponent(process.env.PGUSER ?? 'postgres');
  const params = new URLSearchParams({ connection_limit: '4', pool_timeout: '10' });
  if (host.startsWith('/')) return `postgresql://${user}@localhost:${port}/${DATABASE}?host=${encodeURIComponent(host)}&${params}`;
  return `postgresql://${user}@${host}:${port}/${DATABASE}?${params}`;
}

// The invalidation key track_table() publishes for a mentor_assignments row (composite key).
function rowKey(r) {
  return JSON.stringify([String(r.m), String(r.s)]);
}

async function main() {
  const children = [];
  const admin = new Client({ database: process.env.PGDATABASE ?? 'postgres' });
  await admin.connect();
  let db;
  const cleanup = async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    if (db) await db.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
  };
  try {
    // ---- the database: tables, data, tracking ----
    await admin.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${DATABASE}`);
    db = new Client({ database: DATABASE });
    await db.connect();
    await db.query(`
      CREATE EXTENSION pg_poolguard;
      CREATE TABLE mentors (id int PRIMARY KEY, name text NOT NULL);
      CREATE TABLE schools (id int PRIMARY KEY, name text NOT NULL);
      CREATE TABLE mentor_assignments (mentor_id int REFERENCES mentors, school_id int REFERENCES schools,
                                       PRIMARY KEY (mentor_id, school_id));
      INSERT INTO mentors SELECT i, 'mentor ' || i FROM generate_series(1, ${MENTORS}) i;
      INSERT INTO schools SELECT i, 'school ' || i FROM generate_series(1, ${SCHOOLS}) i;
      INSERT INTO mentor_assignments SELECT m, s FROM generate_series(1, ${MENTORS}) m, generate_series(1, ${SCHOOLS}) s;
      SELECT poolguard.track_table('mentors');
      SELECT poolguard.track_table('schools');
      SELECT poolguard.track_table('mentor_assignments');`);

    // ---- generate, build (no database reachable: no DATABASE_URL, no PG*) ----
    const quiet = { PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1', NEXT_TELEMETRY_DISABLED: '1' };
    log('prisma generate');
    execFileSync(process.execPath, [require.resolve('prisma/build/index.js', { paths: [APP] }), 'generate'], {
      cwd: APP, stdio: 'pipe',
      env: { ...process.env, ...quiet, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath },
    });
    log('next build');
    const buildEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', ...quiet };
    execFileSync(process.execPath, [require.resolve('next/dist/bin/next', { paths: [APP] }), 'build'],
                 { cwd: APP, stdio: ['ignore', 'ignore', 'inherit'], env: buildEnv });

    // ---- two instances ----
    const url = databaseUrl();
    const ports = [await freePort(), await freePort()];
    for (const port of ports) {
      const child = spawn(process.execPath, [require.resolve('next/dist/bin/next', { paths: [APP] }), 'start', '-p', String(port), '-H', '127.0.0.1'],
                          { cwd: APP, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...quiet, DATABASE_URL: url } });
      child.stderr.on('data', (d) => process.stderr.write(`[instance ${port}] ${d}`));
      children.push(child);
    }
    const base = ports.map((p) => `http://127.0.0.1:${p}`);
    for (const b of base) {
      await until(`${b} serves with its listener connected`, async () => (await (await fetch(`${b}/api/stats`)).json()).listening);
    }
    log('two instances listening on', ports.join(', '));

    // ---- load with revokes ----
    const pairs = [];
    for (let m = 1; m <= MENTORS; m++) for (let s = 1; s <= SCHOOLS; s++) pairs.push([m, s]);
    // Deterministic shuffle: the revoked pairs spread over every mentor.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = pairs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [pairs[i], pairs[j]] = [pairs[j], pairs[i]];
    }
    const revoked = pairs.slice(0, REVOKES);
    const revokedKey = new Map();   // "m,s" -> revoke index
    const revokes = [];             // { m, s, via, before, after, instance }
    const requests = [];            // { instance, m, s, allowed, startedAt, ms, cached }
    let loading = true;

    async function request(i, m, s, cached) {
      const t0 = Date.now();
      const res = await fetch(`${base[i]}/api/authz?mentor=${m}&school=${s}${cached ? '' : '&cache=0'}`);
      if (!res.ok) throw new Error(`authz ${res.status}`);
      const body = await res.json();
      requests.push({ instance: i, m, s, allowed: body.allowed, startedAt: body.startedAt, ms: Date.now() - t0, cached });
    }
    // Bursty readers: every mentor's list, the revoked pairs most often (they are the ones that matter).
    async function loader(n) {
      let k = n;
      while (loading) {
        const pair = k % 2 === 0 ? revoked[Math.floor(rand() * revoked.length)] : pairs[Math.floor(rand() * pairs.length)];
        await request(k % 2, pair[0], pair[1], true);
        k++;
      }
    }
    const loaders = Array.from({ length: LOADERS }, (_, n) => loader(n));
    for (let r = 0; r < revoked.length; r++) {
      const [m, s] = revoked[r];
      revokedKey.set(`${m},${s}`, r);
      if (r % 2 === 0) {
        const i = (r / 2) % 2;
        const res = await fetch(`${base[i]}/api/revoke`, { method: 'POST', body: JSON.stringify({ mentor: m, school: s }),
                                                           headers: { 'content-type': 'application/json' } });
        if (!res.ok) throw new Error(`revoke ${res.status}`);
        const { before, after } = await res.json();
        revokes.push({ m, s, via: 'prisma', instance: i, before, after });
      } else {
        const before = Date.now();
        await db.query('DELETE FROM mentor_assignments WHERE mentor_id = $1 AND school_id = $2', [m, s]);
        revokes.push({ m, s, via: 'sql', before, after: Date.now() });
      }
      // Reads of the revoked pair right after the commit, on both instances.
      await Promise.all([request(0, m, s, true), request(1, m, s, true)]);
    }
    // Every instance has received every revoke's invalidation (or resynced) before the load ends.
    const stats = [];
    for (const [i, b] of base.entries()) {
      stats[i] = await until(`instance ${i} received the last revoke`, async () => {
        const st = await (await fetch(`${b}/api/stats`)).json();
        const last = revokes[revokes.length - 1];
        return st.drops.some((d) => d.at >= last.before && (d.resync || d.keys.includes(rowKey(last)))) ? st : null;
      });
    }
    loading = false;
    await Promise.all(loaders);

    // ---- the same load without cacheStrategy (latency baseline) ----
    const cachedRequests = requests.filter((q) => q.cached);
    const baseline = [];
    {
      const per = Math.ceil(BASELINE_REQUESTS / LOADERS);
      await Promise.all(Array.from({ length: LOADERS }, async (_, n) => {
        for (let k = 0; k < per; k++) {
          const [m, s] = pairs[Math.floor(rand() * pairs.length)];
          const t0 = Date.now();
          const res = await fetch(`${base[(n + k) % 2]}/api/authz?mentor=${m}&school=${s}&cache=0`);
          await res.json();
          baseline.push(Date.now() - t0);
        }
      }));
    }
    // And with the cache, the same number of requests after the revokes (steady state).
    const steady = [];
    {
      const per = Math.ceil(BASELINE_REQUESTS / LOADERS);
      await Promise.all(Array.from({ length: LOADERS }, async (_, n) => {
        for (let k = 0; k < per; k++) {
          const [m, s] = pairs[Math.floor(rand() * pairs.length)];
          const t0 = Date.now();
          const res = await fetch(`${base[(n + k) % 2]}/api/authz?mentor=${m}&school=${s}`);
          await res.json();
          steady.push(Date.now() - t0);
        }
      }));
    }
    const final = [];
    for (const [i, b] of base.entries()) final[i] = await (await fetch(`${b}/api/stats`)).json();

    // ---- analysis ----
    const dropLatencies = [[], []];
    const missingDrops = [];
    // The first drop on each instance at or after the revoke's start that carries its row key (or
    // a resync): its own notification, or the writer's drop at commit.
    const firstDrop = revokes.map((r) => final.map((st) => st.drops
      .filter((d) => d.at >= r.before && (d.resync || d.keys.includes(rowKey(r))))
      .map((d) => d.at).sort((a, b) => a - b)[0]));
    revokes.forEach((r, k) => {
      for (let i = 0; i < 2; i++) {
        if (firstDrop[k][i] === undefined) missingDrops.push({ revoke: k, instance: i });
        else dropLatencies[i].push(firstDrop[k][i] - r.before);
      }
    });
    const violations = [];
    let checked = 0;
    for (const q of cachedRequests) {
      const k = revokedKey.get(`${q.m},${q.s}`);
      if (k === undefined) continue;
      const dropped = firstDrop[k][q.instance];
      if (dropped === undefined || q.startedAt < dropped) continue;
      checked++;
      if (q.allowed) violations.push({ ...q, droppedAt: dropped, revoke: revokes[k] });
    }
    const all = dropLatencies.flat();
    const hits = final.reduce((a, st) => a + st.stats.hits, 0);
    const misses = final.reduce((a, st) => a + st.stats.misses, 0);
    const result = {
      revokes: revokes.length,
      viaPrisma: revokes.filter((r) => r.via === 'prisma').length,
      viaSql: revokes.filter((r) => r.via === 'sql').length,
      requests: cachedRequests.length,
      requestsAfterDropChecked: checked,
      violations: violations.length,
      missingDrops: missingDrops.length,
      dropLatencyMs: {
        p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: quantile(all, 1),
        perInstance: dropLatencies.map((xs) => ({ p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: quantile(xs, 1) })),
        byVia: ['prisma', 'sql'].map((via) => {
          const xs = revokes.flatMap((r, k) => (r.via === via ? dropLatencies.map((l, i) => firstDrop[k][i] - r.before) : []))
            .filter((x) => Number.isFinite(x));
          return { via, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
        }),
      },
      // Where the time goes: the revoking statement itself (sent → its COMMIT acknowledged to the
      // writer), and each instance's drop measured from that acknowledgement instead of from the
      // statement's start (a lower bound of commit → drop; negative when the drop came first).
      writeMs: (() => {
        const xs = revokes.map((r) => r.after - r.before);
        return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: quantile(xs, 1) };
      })(),
      dropAfterAckMs: (() => {
        const xs = revokes.flatMap((r, k) => firstDrop[k].filter((d) => d !== undefined).map((d) => d - r.after));
        return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: quantile(xs, 1) };
      })(),
      hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
      cachedReads: hits + misses,
      databaseQueries: misses,
      queriesSaved: hits + misses > 0 ? 1 - misses / (hits + misses) : null,
      latencyMs: {
        cached: { requests: steady.length, p50: quantile(steady, 0.5), p99: quantile(steady, 0.99) },
        noCache: { requests: baseline.length, p50: quantile(baseline, 0.5), p99: quantile(baseline, 0.99) },
        duringRevokes: { p50: quantile(cachedRequests.map((q) => q.ms), 0.5), p99: quantile(cachedRequests.map((q) => q.ms), 0.99) },
      },
      instanceStats: final.map((st) => st.stats),
      rawDropLatenciesMs: dropLatencies,
      rawWriteMs: revokes.map((r) => r.after - r.before),
    };
    if (process.env.RESULT_FILE) fs.writeFileSync(process.env.RESULT_FILE, JSON.stringify(result, null, 2));
    const { rawDropLatenciesMs, rawWriteMs, ...summary } = result;
    console.log(JSON.stringify(summary));
    if (violations.length > 0) console.error('violations (first 5):', JSON.stringify(violations.slice(0, 5)));
    const ok = violations.length === 0 && missingDrops.length === 0 && checked > 0;
    await cleanup();
    return ok;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

main().then((ok) => process.exit(ok ? 0 : 1), (err) => {
  console.error(err);
  process.exit(1);
});
