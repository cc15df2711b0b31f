'use strict';
// The app test/t/150_ha_patroni.pl runs through a Patroni switchover and failover: a cache whose
// listener has the three-host URL (argv[2], target_session_attrs=read-write), and a postgres.js
// pool on the same hosts (postgres.js takes host lists itself) with target_session_attrs=primary:
// postgres.js 3.4's read-write check looks at default_transaction_read_only only, which is off on
// a hot standby, so with read-write the pool may land on a replica (the old primary once it
// rejoined) and load values older than the new primary's commits.  The cached value is
// kv.v WHERE k = 'x', scope 'kv', key 'x'.
// Reads commands on stdin, one a line; answers each with one JSON line on stdout:
//   status          the listener's state and port, the cache's counters
//   get             one cached read (retried while the pool reconnects)
//   expect V MS     a strong read, which must give V at once (the commit that wrote V is done);
//                   then cached reads until one gives V (deadline MS), then 20 more that must
//                   all give V: { ok, strong, seen (every value read, in order), after }
//   quit
const readline = require('node:readline');
const postgres = require('postgres');
const { PoolguardCache } = require('../..');

const url = process.argv[2];
const sql = postgres(url.replace('target_session_attrs=read-write', 'target_session_attrs=primary'), {
  max: 2,
  onnotice: () => {},
  connect_timeout: 5,
});
const cache = new PoolguardCache({
  pool: sql,
  connectionString: url,
  backoff: { initialMs: 100, maxMs: 1000 },
});
const errors = [];
cache.on('reconnectError', (e) => errors.push(String(e && e.message)));

const loader = async () => (await sql`SELECT v FROM kv WHERE k = 'x'`)[0].v;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A read, retried on connection errors (the pool re-finds the primary) until the deadline.
async function read(options, deadline) {
  for (;;) {
    try {
      return await cache.get('kv', 'x', loader, options);
    } catch (err) {
      errors.push(String(err && err.message));
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

function status() {
  const s = cache.stats;
  return {
    listening: cache.listening,
    port: cache.listener ? cache.listener.port : null,
    reconnects: s.reconnects,
    rechecks: s.rechecks,
    staleOnRecheck: s.staleOnRecheck,
    misses: s.misses,
    errors: errors.slice(-3),
  };
}

async function expect(value, ms) {
  const deadline = Date.now() + ms;
  const strong = await read({ consistency: 'strong' }, deadline);
  const seen = [];
  let v;
  do {
    v = await read({}, deadline);
    seen.push(v);
    if (v !== value) await sleep(100);
  } while (v !== value && Date.now() < deadline);
  const after = [];
  if (v === value) {
    for (let i = 0; i < 20; i++) {
      after.push(await read({}, deadline + 60000));
      await sleep(20);
    }
  }
  const ok = strong === value && v === value && after.every((a) => a === value);
  return { ok, strong, seen, after: [...new Set(after)], ...status() };
}

async function handle(line) {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (cmd === 'status') return status();
  if (cmd === 'get') return { value: await read({}, Date.now() + 60000), ...status() };
  if (cmd === 'expect') return expect(args[0], Number(args[1]));
  if (cmd === 'quit') {
    await cache.stop();
    await sql.end({ timeout: 5 });
    return { bye: true };
  }
  return { error: `unknown command ${cmd}` };
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let out;
    try {
      out = await handle(line);
    } catch (err) {
      out = { error: String(err && err.message), ...status() };
    }
    process.stdout.write(`${JSON.stringify(out)}\n`, () => {
      if (out.bye) process.exit(0);
    });
  });
});
rl.on('close', () => queue.then(() => process.exit(0)));
