'use strict';
// Issue 25, point 7: the app team's quick start of README.md, run as written.  The fenced blocks
// of "## Quick start for an app team" are taken out of the README literally — the sh blocks run
// with bash, the two js blocks become lib/db.js and lib/mentors.js of a scratch app — and then
// the app does what the README says it does: cached reads, a revoke that this instance serves
// at once (drop at commit) and the other instance after the notification, fresh reads, and the
// app summary.  The root README's first example (Install) runs as written too.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Client } = require('pg');

const root = path.join(__dirname, '..');
const haveServer = Boolean(process.env.PGHOST);

function psqlPath() {
  const candidates = [];
  if (process.env.PG_CONFIG) {
    try {
      candidates.push(
        path.join(execFileSync(process.env.PG_CONFIG, ['--bindir'], { encoding: 'utf8' }).trim(), 'psql'),
      );
    } catch (_) {
      /* the PATH's */
    }
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) candidates.push(path.join(dir, 'psql'));
  return candidates.find((p) => fs.existsSync(p)) ?? null;
}
const psql = haveServer ? psqlPath() : null;
const skip = !haveServer ? 'PGHOST not set: no test server' : psql === null ? 'psql not found' : false;

// The fenced blocks (language, text) of the section under `heading` in a Markdown file.
function blocks(file, heading) {
  const text = fs.readFileSync(file, 'utf8');
  const at = heading === null ? 0 : text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `${heading} in ${file}`);
  const rest = text.slice(at + 1);
  const next = heading === null ? -1 : rest.indexOf('\n## ', 1);
  const section = next < 0 ? rest : rest.slice(0, next);
  const out = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m; (m = re.exec(section)) !== null;) out.push({ lang: m[1], text: m[2] });
  return out;
}

function databaseUrl() {
  return (
    `postgresql://${encodeURIComponent(process.env.PGUSER ?? 'postgres')}@/${process.env.PGDATABASE}` +
    `?host=${encodeURIComponent(process.env.PGHOST)}&port=${process.env.PGPORT ?? 5432}`
  );
}

function sh(script, env) {
  const bin = path.dirname(psql);
  return execFileSync('bash', ['-euo', 'pipefail', '-c', script], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, ...env },
  });
}

async function until(cond, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the quick start for an app team works as written', { skip, timeout: 120000 }, async (t) => {
  const env = { DATABASE_URL: databaseUrl() };
  const admin = new Client();
  await admin.connect();
  const policyDb = (await admin.query("SELECT current_setting('poolguard.database') AS d")).rows[0].d;
  const pol = new Client({ database: policyDb });
  await pol.connect();
  const app = path.join(__dirname, 'tmp-quickstart');
  t.after(async () => {
    await pol
      .query("DELETE FROM poolguard.policy WHERE name IN ('next-app', 'pg_poolguard listeners')")
      .catch(() => {});
    await admin.query('DROP TABLE IF EXISTS mentor_assignment').catch(() => {});
    await pol.end();
    await admin.end();
    fs.rmSync(app, { recursive: true, force: true });
  });
  // A server as a new team finds it: no pg_poolguard in either database yet.
  await pol.query('DROP EXTENSION IF EXISTS pg_poolguard CASCADE');
  await admin.query('DROP EXTENSION IF EXISTS pg_poolguard CASCADE; DROP TABLE IF EXISTS mentor_assignment');

  // The root README's first example, in poolguard.database, as written.
  const [install] = blocks(path.join(root, '..', '..', 'README.md'), null).filter((b) => b.lang === 'sql');
  assert.match(install.text, /CREATE EXTENSION pg_poolguard;/);
  const out = sh(`psql -X -v ON_ERROR_STOP=1 -d "$PGDB" <<'SQL'\n${install.text}SQL\n`, { PGDB: policyDb });
  assert.match(out, /INSERT 0 1/);
  await pol.query("DELETE FROM poolguard.policy WHERE name = 'next-app'");

  const qs = blocks(path.join(root, 'README.md'), '## Quick start for an app team');
  assert.deepEqual(
    qs.map((b) => b.lang),
    ['sh', 'js', 'js', 'sh'],
    'the quick start: setup, lib/db.js, lib/mentors.js, summary',
  );
  // 1. The database: both CREATE EXTENSIONs, the policies, the table and its trigger.
  sh(qs[0].text, env);
  assert.equal(
    (
      await pol.query(
        "SELECT count(*)::int AS n FROM poolguard.policy WHERE name IN ('next-app', 'pg_poolguard listeners')",
      )
    ).rows[0].n,
    2,
  );
  assert.equal(
    (await admin.query("SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_poolguard'")).rows[0].n,
    1,
  );
  await admin.query('INSERT INTO mentor_assignment VALUES (1, 10), (1, 11), (2, 20)');

  // 2 and 3. The app's modules, as written, in two instances (each its own module instances).
  fs.mkdirSync(path.join(app, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(app, 'lib', 'db.js'), qs[1].text);
  fs.writeFileSync(path.join(app, 'lib', 'mentors.js'), qs[2].text);
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = env.DATABASE_URL;
  const load = () => {
    for (const f of ['db.js', 'mentors.js']) delete require.cache[path.join(app, 'lib', f)];
    const db = require(path.join(app, 'lib', 'db.js'));
    return { db, mentors: require(path.join(app, 'lib', 'mentors.js')) };
  };
  const a = load();
  const b = load();
  if (saved === undefined) delete process.env.DATABASE_URL;
  else process.env.DATABASE_URL = saved;
  t.after(async () => {
    for (const i of [a, b]) {
      await i.db.cache.stop();
      await i.db.pool.end();
    }
  });
  assert.notEqual(a.db.cache, b.db.cache);
  assert.equal(a.db.cache.started, false, 'importing connected nothing');
  assert.equal(a.db.pool.options.max, 5, 'poolSizing: 10 connections for 2 instances');
  assert.equal(a.db.cache.listenerSource, 'pool');

  assert.deepEqual(await a.mentors.schoolsOf(1), [10, 11]);
  assert.deepEqual(await b.mentors.schoolsOf(1), [10, 11]);
  assert.deepEqual(await b.mentors.schoolsOf(1), [10, 11]);
  assert.equal(b.db.cache.stats.hits, 1, 'cached');
  assert.ok(a.db.cache.listening && b.db.cache.listening, 'the first get() started both listeners');
  assert.equal(await b.mentors.mayAccess(1, 11), true);

  // The revoke, on instance A: A serves the revoked state as soon as revoke() returns ...
  await a.mentors.revoke(1, 11);
  assert.deepEqual(await a.mentors.schoolsOf(1), [10], 'the writing instance: at commit');
  // ... B's fresh read at once, and its cached path after the notification.
  assert.equal(await b.mentors.mayAccess(1, 11), false, 'a fresh read on the other instance: at once');
  await until(
    async () => (await b.mentors.schoolsOf(1)).length === 1,
    "B's cached path drops it after the notification",
  );

  // 4. The summary, as written.
  const summary = sh(qs[3].text, env);
  assert.match(summary, /application_name/);
  assert.match(summary, /next-app/);
  const row = (
    await admin.query(`SELECT sessions_now, policies, invalidations_published
                                    FROM poolguard.app_summary WHERE application_name = 'next-app'`)
  ).rows[0];
  assert.ok(Number(row.sessions_now) >= 1, 'the app is connected');
  assert.deepEqual(row.policies, ['next-app']);
  assert.ok(Number(row.invalidations_published) >= 1, "the app's commits published its invalidations");
});
