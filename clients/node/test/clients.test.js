'use strict';
// Real clients against a real pg_poolguard: pg (node-postgres), postgres.js and Prisma (with
// @prisma/adapter-pg).  Each app process (test/apps/app.js) follows README.md's pool-settings
// guide (test/apps/guide.js) and must survive idle_timeout, idle_in_transaction_timeout,
// max_idle, evict_idle and cap refusals (53300) with zero unhandled errors (it would exit) and
// zero failed requests.  The cache's LISTEN connection, under the guide's listener policy, is
// never reaped.  Short limits keep it quick: idle_timeout 2 s, idle_in_transaction_timeout 1 s,
// poolguard.idle_grace 1 s (set with ALTER SYSTEM and restored afterwards).
//
// Needs the PG* environment of a superuser (scripts/test.sh points it at a throwaway cluster);
// skipped without PGHOST.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn, execFileSync } = require('node:child_process');
const { Client, Pool } = require('pg');
const { PoolguardCache } = require('..');
const { sleep } = require('./apps/guide');

const haveServer = Boolean(process.env.PGHOST);
const APP_ROLE = 'poolguard_guide_app';
const APP = path.join(__dirname, 'apps', 'app.js');
const root = path.join(__dirname, '..');

// Prisma 7 needs Node ^20.19 || ^22.12 || >= 24; `prisma generate` runs offline (see README).
function prismaSkip() {
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (!(maj > 22 || (maj === 22 && min >= 12) || (maj === 20 && min >= 19))) {
    return `Prisma 7 needs Node ^20.19 || ^22.12 || >=24 (this is ${process.versions.node})`;
  }
  return false;
}

let admin; // superuser, in the app database
let policyDb; // superuser, in poolguard.database (where poolguard.policy lives)

async function policies(...rows) {
  await policyDb.query(`DELETE FROM poolguard.policy WHERE name LIKE 'guide-%'`);
  for (const row of rows) await policyDb.query(`INSERT INTO poolguard.policy ${row}`);
  await policyDb.query('SELECT poolguard.reload()');
}

async function terminations(app, since, reason) {
  const res = await policyDb.query(
    `SELECT count(*)::int AS n FROM poolguard.terminations
      WHERE application_name = $1 AND at >= $2 AND ($3::text IS NULL OR reason = $3)`,
    [app, since, reason ?? null],
  );
  return res.rows[0].n;
}

// Runs test/apps/app.js; resolves with its exit status, output and RESULT.  onLine sees stdout lines.
function runApp(client, phase, opts, onLine = () => {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [APP, client, phase, JSON.stringify(opts)], {
      env: { ...process.env, PGUSER: APP_ROLE },
      cwd: root,
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, i));
        pending = pending.slice(i + 1);
      }
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code, signal) => {
      const m = /^RESULT (.*)$/m.exec(stdout);
      resolve({ code, signal, stdout, stderr, result: m ? JSON.parse(m[1]) : null });
    });
  });
}

// A generous deadline for what the server must do; the machine may be slow and busy.
const WAIT_MS = 120000;

// Polls `cond` (async) until it holds; fails saying what was not reached.
async function until(cond, what) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await cond())) {
    assert.ok(Date.now() < deadline, `not reached within ${WAIT_MS} ms: ${what}`);
    await sleep(50);
  }
}

// A file path the test creates to let a stalled app (app.js, opts.resumeFile) carry on.
let resumeCount = 0;
function resumeFile() {
  return path.join(os.tmpdir(), `poolguard-resume-${process.pid}-${++resumeCount}`);
}
function resume(file) {
  fs.writeFileSync(file, '');
}

async function rejected(policy) {
  const res = await policyDb.query(
    'SELECT coalesce(sum(rejected), 0)::int AS n FROM poolguard.policy_status WHERE policy = $1',
    [policy],
  );
  return res.rows[0].n;
}

function assertSurvived(run, what) {
  assert.equal(run.code, 0, `${what}: the app process exited with ${run.code} ${run.signal ?? ''}\n${run.stderr}`);
  assert.ok(run.result, `${what}: no RESULT line\n${run.stdout}\n${run.stderr}`);
  assert.equal(run.result.failed, 0, `${what}: failed requests: ${JSON.stringify(run.result.failures)}`);
  assert.ok(run.result.ok > 0, `${what}: no request succeeded`);
}

const APP_RULES = 'idle_timeout, idle_in_transaction_timeout, max_idle';

test(
  'real clients follow the pool-settings guide',
  { skip: haveServer ? false : 'PGHOST not set: no test server', timeout: 240000 },
  async (t) => {
    admin = new Client();
    await admin.connect();
    const db = (await admin.query("SELECT current_setting('poolguard.database') AS db")).rows[0].db;
    policyDb = new Client({ database: db });
    await policyDb.connect();
    t.after(async () => {
      await policyDb
        .query(`DELETE FROM poolguard.policy WHERE name LIKE 'guide-%' OR name = 'pg_poolguard listeners'`)
        .catch(() => {});
      await policyDb.query('SELECT poolguard.reload()').catch(() => {});
      await admin.query('ALTER SYSTEM RESET poolguard.enabled');
      await admin.query('ALTER SYSTEM RESET poolguard.idle_grace');
      await admin.query('SELECT pg_reload_conf()');
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${APP_ROLE}'`);
      await admin.query(`DROP ROLE IF EXISTS ${APP_ROLE}`).catch(() => {});
      await policyDb.end();
      await admin.end();
    });

    await admin.query(`DROP ROLE IF EXISTS ${APP_ROLE}; CREATE ROLE ${APP_ROLE} LOGIN;
                     CREATE EXTENSION IF NOT EXISTS pg_poolguard;`);
    await policyDb.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
    await admin.query('ALTER SYSTEM SET poolguard.enabled = on');
    await admin.query("ALTER SYSTEM SET poolguard.idle_grace = '1s'");
    await admin.query('SELECT pg_reload_conf()');
    const settled = Date.now() + WAIT_MS;
    while ((await policyDb.query("SELECT current_setting('poolguard.idle_grace') AS g")).rows[0].g !== '1s') {
      assert.ok(Date.now() < settled, 'configuration reloaded');
      await sleep(50);
    }
    // The guide's listener policy (clients/node/README.md, "The listener's own policy"), for the apps' role.
    await policyDb.query(`DELETE FROM poolguard.policy WHERE name = 'pg_poolguard listeners'`);
    await policyDb.query(`
INSERT INTO poolguard.policy (name, role_name, application_name, priority, idle_timeout, max_connections)
VALUES ('pg_poolguard listeners', '${APP_ROLE}', 'pg_poolguard listener', 100, '0', 20);`);
    for (const client of ['pg', 'postgres', 'prisma']) {
      const skip = client === 'prisma' ? prismaSkip() : false;
      await t.test(`${client}: follows the guide and survives every rule`, { skip }, async (t) => {
        const app = `guide-${client}`;
        if (client === 'prisma') {
          // Generates the client into node_modules; offline, the CLI only needs to be told where a
          // schema engine would be (generate never runs it).
          execFileSync(
            process.execPath,
            [
              require.resolve('prisma/build/index.js'),
              'generate',
              '--schema',
              path.join(__dirname, 'prisma', 'schema.prisma'),
            ],
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
        }
        const reaping = `(name, application_name, ${APP_RULES}) VALUES ('guide-${client}', '${app}', '2s', '1s', 1)`;

        await t.test('idle_timeout and max_idle: requests around the timeout boundary all succeed', async () => {
          await policies(reaping);
          const since = new Date();
          const run = await runApp(client, 'boundary', { app, max: 3, gapsMs: [300, 900, 1300, 1950, 2100, 2600] });
          assertSurvived(run, 'boundary');
          t.diagnostic(
            `boundary: ${run.result.ok} ok, ${run.result.retried} retried, ` +
              `${await terminations(app, since)} sessions ended by the server`,
          );
        });

        await t.test('a stalled instance: the server ends its idle sessions, it carries on', async () => {
          await policies(reaping);
          const since = new Date();
          // The app stays stalled until the server has ended one of its idle sessions.
          const file = resumeFile();
          const running = runApp(client, 'pause', { app, max: 3, resumeFile: file });
          await until(
            async () => (await terminations(app, since)) >= 1,
            'the server ended an idle session of the stalled app',
          );
          resume(file);
          const run = await running;
          fs.rmSync(file, { force: true });
          assertSurvived(run, 'pause');
          t.diagnostic(`pause: pool errors seen: ${JSON.stringify(run.result.poolErrors.slice(0, 1))}`);
        });

        // postgres.js 3.4.9 can misread the stream of a connection the server ended while the app
        // was stalled (Buffer offset errors, "unexpected result" or "Cannot set properties of null"
        // on the next requests), or crash the process (TypeError in connection.js nextWrite): a
        // client defect we report rather than hide, so there it is a todo (README.md says so).
        const idleTxTodo =
          client === 'postgres' ? 'postgres.js may misparse a connection ended by the server (client race)' : false;
        await t.test(
          'idle_in_transaction_timeout: the idle transaction fails, the process lives on',
          { todo: idleTxTodo },
          async () => {
            await policies(reaping);
            const since = new Date();
            // The transaction stays idle until the server has ended it.
            const file = resumeFile();
            const running = runApp(client, 'idle-tx', { app, max: 3, resumeFile: file });
            await until(
              async () => (await terminations(app, since, 'idle_in_transaction_timeout')) >= 1,
              'the server ended the idle transaction',
            );
            // ... and its backend has exited (the connection is closed at the server's end), so the
            // app's next statement meets a closed connection, as it would after any real pause.
            await until(
              async () =>
                (
                  await policyDb.query(
                    `SELECT count(*) = 0 AS ok FROM pg_stat_activity WHERE pid IN
                     (SELECT pid FROM poolguard.terminations WHERE application_name = $1 AND at >= $2)`,
                    [app, since],
                  )
                ).rows[0].ok,
              'the ended session exited',
            );
            resume(file);
            const run = await running;
            fs.rmSync(file, { force: true });
            assertSurvived(run, 'idle-tx');
            assert.ok(run.result.transactionError, 'the transaction left idle failed');
            assert.equal(await terminations(app, since, 'idle_in_transaction_timeout'), 1);
            if (client !== 'postgres') {
              // pg: the checked-out client's 'error' event (or the failed query) carries the reason;
              // Prisma: adapter-pg's onConnectionError.  (postgres.js hides it: CONNECTION_CLOSED.)
              const told = [run.result.transactionError, ...run.result.clientErrors].find((e) => e.code === '57P01');
              assert.ok(told, 'the app saw 57P01');
              assert.match(
                told.detail ?? '',
                new RegExp(
                  `it was idle in a transaction for [\\d.]+ s, and policy "${app}" ends sessions idle in a transaction for longer than 1 s`,
                ),
              );
            }
            t.diagnostic(
              `idle-tx: the app saw ${JSON.stringify(run.result.transactionError)}; ` +
                `client errors ${JSON.stringify(run.result.clientErrors.slice(0, 1))}`,
            );
          },
        );

        for (const onLimit of ['evict_idle', 'reject']) {
          await t.test(
            `cap (on_limit ${onLimit}): the other instance's logins wait and retry, nobody crashes`,
            async () => {
              await policies(`(name, application_name, max_connections, on_limit)
                          VALUES ('guide-${client}', '${app}', 3, '${onLimit}')`);
              const since = new Date();
              const refusedBefore = await rejected(`guide-${client}`);
              let ready;
              const readyP = new Promise((r) => {
                ready = r;
              });
              // The stalled instance holds its 3 connections until the server has acted on the other
              // instance's logins (evicted one of its idle sessions, or refused a login).
              const file = resumeFile();
              const sleeper = runApp(
                client,
                'sleeper',
                { app, max: 3, resumeFile: file },
                (l) => l === 'READY' && ready(),
              );
              await readyP;
              const mainRun = runApp(client, 'main', { app, max: 3, durationMs: 2500 });
              if (onLimit === 'evict_idle') {
                await until(
                  async () => (await terminations(app, since, 'evict_idle')) >= 1,
                  'a login evicted an idle session of the stalled instance',
                );
              } else {
                await until(
                  async () => (await rejected(`guide-${client}`)) > refusedBefore,
                  'a login was refused at the cap',
                );
              }
              resume(file);
              const main = await mainRun;
              const slept = await sleeper;
              fs.rmSync(file, { force: true });
              assertSurvived(main, `${onLimit}: the instance that logs in`);
              assertSurvived(slept, `${onLimit}: the stalled instance`);
              const codes = main.result.retriedErrors.map((e) => e.code);
              if (onLimit === 'evict_idle') {
                assert.ok(
                  (await terminations(app, since, 'evict_idle')) >= 1,
                  'idle sessions of the stalled instance were evicted',
                );
              } else {
                assert.equal(await terminations(app, since), 0, 'reject ends nobody');
                assert.ok(main.result.retried >= 1, 'logins were refused at the cap and retried');
                if (client !== 'prisma') assert.ok(codes.includes('53300'), `53300 seen by the client (${codes})`);
              }
              t.diagnostic(
                `${onLimit}: ${main.result.ok} ok, ${main.result.retried} retried; the retried errors looked like ` +
                  `${JSON.stringify(main.result.retriedErrors.slice(0, 1))}`,
              );
            },
          );
        }
      });
    }

    await t.test(
      "pg without pool.on('error') (against the guide) dies when the server ends an idle client",
      async () => {
        await policies(
          `(name, application_name, ${APP_RULES}) VALUES ('guide-unguarded', 'guide-unguarded', '1s', '1s', 1)`,
        );
        // It dies as soon as the server ends an idle client; it waits far longer than that takes.
        const run = await runApp('pg', 'unguarded', {
          app: 'guide-unguarded',
          max: 2,
          idleCloseMs: 600000,
          waitMs: WAIT_MS,
        });
        assert.notEqual(run.code, 0, 'the process crashed');
        assert.match(run.stderr, /terminating connection due to administrator command/);
      },
    );

    await t.test("the cache's listener is not reaped under the guide's listener policy", async () => {
      // The app role's sessions are reaped after 1 s idle, and at most one may stay idle.
      await policies(`(name, role_name, ${APP_RULES}) VALUES ('guide-app-role', '${APP_ROLE}', '1s', '1s', 1)`);
      const pool = new Pool({ user: APP_ROLE, application_name: 'guide-cache-app', max: 2, idleTimeoutMillis: 500 });
      pool.on('error', () => {});
      const cache = new PoolguardCache({
        pool,
        connect: async ({ application_name }) => {
          const c = new Client({ user: APP_ROLE, application_name });
          await c.connect();
          return c;
        },
        backoff: { initialMs: 50, maxMs: 200 },
      });
      let disconnects = 0;
      cache.on('disconnected', () => disconnects++);
      await cache.start();
      try {
        const pid = cache.listener.processID;
        const seen = await admin.query('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [pid]);
        assert.equal(seen.rows[0].application_name, 'pg_poolguard listener');
        await cache.get('guide', '1', async () => 'v');
        // Three idle_timeouts of idling, and the worker scanned after that (not a sleep).
        await until(
          async () =>
            (
              await admin.query(
                "SELECT state = 'idle' AND state_change < now() - interval '3 s' AS ok FROM pg_stat_activity WHERE pid = $1",
                [pid],
              )
            ).rows[0]?.ok === true,
          'the listener idle for 3 s',
        );
        const scans = (await policyDb.query('SELECT scans FROM poolguard.stats')).rows[0].scans;
        await until(
          async () =>
            (await policyDb.query('SELECT scans > $1::bigint + 1 AS ok FROM poolguard.stats', [scans])).rows[0].ok,
          'two more scans of the worker',
        );
        assert.equal(disconnects, 0, 'the listener was never ended');
        assert.equal(cache.listener.processID, pid, 'same listener connection');
        const row = await admin.query('SELECT policy, verdict FROM poolguard.sessions WHERE pid = $1', [pid]);
        assert.equal(row.rows[0].policy, 'pg_poolguard listeners');

        // Without the listener policy the same listener is reaped (what the policy prevents).
        await policyDb.query(`UPDATE poolguard.policy SET enabled = false WHERE name = 'pg_poolguard listeners'`);
        await policyDb.query('SELECT poolguard.reload()');
        await until(async () => disconnects >= 1, 'without its policy the listener is ended by idle_timeout');
      } finally {
        await policyDb.query(`UPDATE poolguard.policy SET enabled = true WHERE name = 'pg_poolguard listeners'`);
        await policyDb.query('SELECT poolguard.reload()');
        await cache.stop();
        await pool.end();
      }
    });
  },
);
