'use strict';
// An app process that follows the pool-settings guide (test/apps/guide.js), with one of three
// clients: pg (node-postgres), postgres (postgres.js) or prisma (@prisma/client + adapter-pg).
// It installs no process-wide error handler on purpose: an unhandled 'error' event or rejection
// kills it, and clients.test.js sees the exit code.
//
//   node app.js CLIENT PHASE '{"app":"guide-pg","max":3,...}'
//
// Phases:
//   boundary  bursts separated by gaps around the server's idle_timeout
//   pause     fill the pool, block the event loop past idle_timeout and max_idle's grace
//             (a busy instance), then bursts
//   idle-tx   a transaction left idle past idle_in_transaction_timeout (it fails), then bursts
//   sleeper   fill the pool, print READY, block the event loop (its idle sessions are evicted or
//             hold the cap meanwhile), then bursts
//   main      bursts of `max` concurrent requests for `durationMs`
//   unguarded (pg) a pool without pool.on('error') whose idle client the server ends
// Prints one line `RESULT {json}` and exits 0.
const fs = require('node:fs');
const { IDLE_CLOSE_MS, withRetry, sleep } = require('./guide');

const [client, phase, optsJson] = process.argv.slice(2);
const opts = JSON.parse(optsJson || '{}');
const appName = opts.app;
const max = opts.max ?? 3;
const env = process.env;

const result = {
  client,
  phase,
  ok: 0,
  failed: 0,
  retried: 0,
  failures: [],
  retriedErrors: [],
  poolErrors: [],
  clientErrors: [],
  transactionError: null,
};

// What the app can see of an error: code, message and DETAIL wherever the client put them.
function describe(err) {
  const out = { code: undefined, message: undefined, detail: undefined };
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    if (typeof e !== 'object') break;
    out.code ??= e.code ?? e.originalCode;
    out.message ??= e.message;
    out.detail ??= e.detail;
    const next = e.cause ?? e.meta?.driverAdapterError;
    if (next === e) break;
    e = next;
  }
  if (out.detail === undefined && err && err.meta && err.meta.driverAdapterError) {
    out.detail = err.meta.driverAdapterError.cause?.detail;
  }
  return out;
}

function makeApp() {
  if (client === 'pg') {
    const { Pool } = require('pg');
    const pool = new Pool({ application_name: appName, max, idleTimeoutMillis: opts.idleCloseMs ?? IDLE_CLOSE_MS });
    if (phase !== 'unguarded') pool.on('error', (err) => result.poolErrors.push(describe(err)));
    return {
      query: () => pool.query('SELECT 1 AS one').then((r) => r.rows[0].one),
      async idleTransaction(ms) {
        const c = await pool.connect();
        // pg-pool removes its own error listener from a checked-out client: add one.
        const onError = (err) => result.clientErrors.push(describe(err));
        c.on('error', onError);
        let broken;
        try {
          await c.query('BEGIN');
          await c.query('SELECT 1');
          await pause(ms);
          await c.query('SELECT 1');
          await c.query('COMMIT');
        } catch (err) {
          broken = err;
          throw err;
        } finally {
          c.release(broken);
          c.off('error', onError);
        }
      },
      end: () => pool.end(),
    };
  }
  if (client === 'postgres') {
    const postgres = require('postgres');
    const sql = postgres({
      host: env.PGHOST,
      port: Number(env.PGPORT),
      user: env.PGUSER,
      database: env.PGDATABASE,
      max,
      idle_timeout: (opts.idleCloseMs ?? IDLE_CLOSE_MS) / 1000,
      connection: { application_name: appName },
      onnotice: () => {},
    });
    return {
      query: async () => (await sql`SELECT 1 AS one`)[0].one,
      idleTransaction: (ms) =>
        sql.begin(async (tx) => {
          await tx`SELECT 1`;
          await pause(ms);
          await tx`SELECT 1`;
        }),
      end: () => sql.end({ timeout: 1 }),
    };
  }
  if (client === 'prisma') {
    const { PrismaClient } = require('@prisma/client');
    const { PrismaPg } = require('@prisma/adapter-pg');
    const adapter = new PrismaPg(
      {
        host: env.PGHOST,
        port: Number(env.PGPORT),
        user: env.PGUSER,
        database: env.PGDATABASE,
        application_name: appName,
        max,
        idleTimeoutMillis: opts.idleCloseMs ?? IDLE_CLOSE_MS,
      },
      {
        onPoolError: (err) => result.poolErrors.push(describe(err)),
        onConnectionError: (err) => result.clientErrors.push(describe(err)),
      },
    );
    const prisma = new PrismaClient({ adapter });
    return {
      query: async () => (await prisma.$queryRaw`SELECT 1 AS one`)[0].one,
      idleTransaction: (ms) =>
        prisma.$transaction(
          async (tx) => {
            await tx.$queryRaw`SELECT 1`;
            await pause(ms);
            await tx.$queryRaw`SELECT 1`;
          },
          { maxWait: 60000, timeout: 180000 },
        ),
      end: () => prisma.$disconnect(),
    };
  }
  throw new Error(`unknown client ${client}`);
}

const app = makeApp();

async function request() {
  try {
    const one = await withRetry(app.query, {
      onRetry: (err) => {
        result.retried++;
        result.retriedErrors.push(describe(err));
      },
    });
    if (Number(one) !== 1) throw new Error(`unexpected result ${one}`);
    result.ok++;
  } catch (err) {
    result.failed++;
    result.failures.push(describe(err));
  }
}

const burst = (n = max * 2) => Promise.all(Array.from({ length: n }, request));

// Blocks the event loop (a CPU-bound or stalled instance): timers, the pool's idle close included,
// cannot run meanwhile.  With opts.resumeFile, until the test creates that file (it does once the
// server has acted: deterministic on any machine), else for `ms`.
const RESUME_WAIT_MS = 120000; // a test that never resumes us: give up (the test then fails)
function block(ms) {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  if (!opts.resumeFile) {
    Atomics.wait(cell, 0, 0, ms);
    return;
  }
  const giveUp = Date.now() + RESUME_WAIT_MS;
  while (!fs.existsSync(opts.resumeFile) && Date.now() < giveUp) Atomics.wait(cell, 0, 0, 20);
}

// Waits without blocking the event loop: until opts.resumeFile exists, else for `ms`.
async function pause(ms) {
  if (!opts.resumeFile) return sleep(ms);
  const giveUp = Date.now() + RESUME_WAIT_MS;
  while (!fs.existsSync(opts.resumeFile) && Date.now() < giveUp) await sleep(20);
  // The server closed the connection before the file appeared: let the event loop take in the
  // socket's end (a few turns: poll phase, then the close callbacks) before the next statement.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function main() {
  switch (phase) {
    case 'boundary':
      await burst();
      for (const gap of opts.gapsMs) {
        await sleep(gap);
        await burst();
      }
      break;
    case 'pause':
      await burst();
      block(opts.pauseMs);
      for (let i = 0; i < 3; i++) {
        await burst();
        await sleep(100);
      }
      break;
    case 'idle-tx':
      await burst();
      try {
        await app.idleTransaction(opts.txIdleMs);
      } catch (err) {
        result.transactionError = describe(err);
      }
      for (let i = 0; i < 3; i++) {
        await burst();
        await sleep(100);
      }
      break;
    case 'sleeper':
      // Take `max` connections at once, and keep them until the event loop runs again.
      await Promise.all(Array.from({ length: max }, () => request()));
      process.stdout.write('READY\n');
      block(opts.pauseMs);
      await sleep(50);
      for (let i = 0; i < 3; i++) {
        await burst();
        await sleep(100);
      }
      break;
    case 'main': {
      const end = Date.now() + opts.durationMs;
      while (Date.now() < end) {
        await burst(max);
        await sleep(50);
      }
      break;
    }
    case 'unguarded':
      await burst();
      await sleep(opts.waitMs); // the server ends the idle clients meanwhile (the process dies then)
      break;
    default:
      throw new Error(`unknown phase ${phase}`);
  }
  await app.end();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main();
