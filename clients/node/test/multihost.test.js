'use strict';
// The listener on a multi-host connection string (libpq's postgresql://h1:p1,h2:p2/db with
// target_session_attrs, which node-postgres does not take): the host list as parsed, and the
// hosts tried in order until one gives a session that can LISTEN.  Fakes for the order and the
// checks; against the real server (PG* variables, skipped when PGHOST is not set, which listens on
// 127.0.0.1:PGPORT too) a refused host before it, a read-only session, a lost listener, and a
// postgres.js sql on the same host list.  test/t/150_ha_patroni.pl runs the cache through a
// Patroni switchover and failover.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { parse } = require('pg-connection-string');
const { Pool, Client } = require('pg');
const { PoolguardCache, listenerTargets, connectFirst } = require('..');

const haveServer = Boolean(process.env.PGHOST);
const skip = haveServer ? false : 'PGHOST not set: no test server';
const WAIT_MS = 60000; // deadlines for what must happen; the machine may be slow and busy

test('a URL with three hosts gives three single-host URLs, in order, without target_session_attrs', () => {
  const { targets, attrs } = listenerTargets(
    {
      connectionString:
        'postgresql://app:s%40cret@db1:5432,db2:5433,db3:5434/shop?application_name=x&target_session_attrs=read-write&sslmode=disable',
    },
    {},
  );
  assert.equal(attrs, 'read-write');
  assert.deepEqual(
    targets.map((t) => t.connectionString),
    [
      'postgresql://app:s%40cret@db1:5432/shop?application_name=x&sslmode=disable',
      'postgresql://app:s%40cret@db2:5433/shop?application_name=x&sslmode=disable',
      'postgresql://app:s%40cret@db3:5434/shop?application_name=x&sslmode=disable',
    ],
  );
  const c = parse(targets[1].connectionString);
  assert.equal(c.host, 'db2');
  assert.equal(c.port, '5433');
  assert.equal(c.user, 'app');
  assert.equal(c.password, 's@cret');
  assert.equal(c.database, 'shop');
});

test('IPv6 hosts, hosts without a port, Unix socket folders; the only parameter removed leaves no ?', () => {
  const { targets, attrs } = listenerTargets(
    { connectionString: 'postgres://[::1]:6000,db2,%2Fvar%2Frun%2Fpostgresql:5433/db?target_session_attrs=primary' },
    {},
  );
  assert.equal(attrs, 'primary');
  assert.deepEqual(
    targets.map((t) => t.connectionString),
    ['postgres://[::1]:6000/db', 'postgres://db2/db', 'postgres://%2Fvar%2Frun%2Fpostgresql:5433/db'],
  );
  assert.equal(parse(targets[0].connectionString).host, '::1');
  assert.equal(parse(targets[2].connectionString).host, '/var/run/postgresql');
});

test('one host and no target_session_attrs: the settings unchanged (no check, as before)', () => {
  const settings = { connectionString: 'postgresql://u@db1:5432/db?sslmode=disable' };
  const { targets, attrs } = listenerTargets(settings, {});
  assert.equal(attrs, 'any');
  assert.equal(targets.length, 1);
  assert.equal(targets[0], settings);
  // One host with target_session_attrs: checked, the parameter left out.
  const one = listenerTargets({ connectionString: 'postgresql://u@db1/db?target_session_attrs=read-write' }, {});
  assert.equal(one.attrs, 'read-write');
  assert.deepEqual(
    one.targets.map((t) => t.connectionString),
    ['postgresql://u@db1/db'],
  );
});

test('settings objects: comma lists or arrays of hosts and ports, PGHOST/PGPORT/PGTARGETSESSIONATTRS', () => {
  const a = listenerTargets({ host: 'db1,db2', port: '5432,5433', user: 'u', target_session_attrs: 'read-write' }, {});
  assert.equal(a.attrs, 'read-write');
  assert.deepEqual(a.targets, [
    { host: 'db1', port: 5432, user: 'u' },
    { host: 'db2', port: 5433, user: 'u' },
  ]);
  const b = listenerTargets({ host: ['db1', 'db2'], port: [5432, 5433], database: 'd' }, {});
  assert.equal(b.attrs, 'any');
  assert.deepEqual(b.targets, [
    { host: 'db1', port: 5432, database: 'd' },
    { host: 'db2', port: 5433, database: 'd' },
  ]);
  // One port for every host; no port: node-postgres' default.
  assert.deepEqual(listenerTargets({ host: 'db1,db2', port: 6000 }, {}).targets, [
    { host: 'db1', port: 6000 },
    { host: 'db2', port: 6000 },
  ]);
  assert.deepEqual(listenerTargets({ host: 'db1,db2' }, {}).targets, [{ host: 'db1' }, { host: 'db2' }]);
  // {} (the PG* case): libpq's variables.
  const env = listenerTargets({}, { PGHOST: 'db1,db2', PGPORT: '1,2', PGTARGETSESSIONATTRS: 'read-write' });
  assert.equal(env.attrs, 'read-write');
  assert.deepEqual(env.targets, [
    { host: 'db1', port: 1 },
    { host: 'db2', port: 2 },
  ]);
  // A single host from the environment: the settings as they were.
  const plain = {};
  assert.equal(listenerTargets(plain, { PGHOST: 'db1', PGPORT: '1' }).targets[0], plain);
});

test('bad host lists and session kinds the listener cannot use are refused with a clear error', () => {
  assert.throws(() => listenerTargets({ host: 'a,b,c', port: '1,2' }, {}), /3 hosts but 2 ports/);
  assert.throws(() => listenerTargets({ connectionString: 'postgresql://a:1,,b:2/db' }, {}), /invalid host/);
  for (const kind of ['standby', 'read-only', 'prefer-standby', 'bogus']) {
    assert.throws(
      () => listenerTargets({ connectionString: `postgresql://a,b/db?target_session_attrs=${kind}` }, {}),
      /cannot serve the listener/,
    );
  }
  assert.throws(() => listenerTargets({}, { PGHOST: 'a,b', PGTARGETSESSIONATTRS: 'standby' }), /cannot serve/);
});

// A fake node-postgres client: `refuse` fails connect(), `readOnly`/`recovery` the session kind.
function fakeServers(servers) {
  const log = [];
  const newClient = (t) => {
    const s = servers[t.host];
    return {
      host: t.host,
      ended: false,
      on() {},
      async connect() {
        log.push(`connect ${t.host}`);
        if (s.refuse) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
      async query(text) {
        log.push(`${t.host}: ${text}`);
        if (/transaction_read_only/.test(text)) return { rows: [{ transaction_read_only: s.readOnly ? 'on' : 'off' }] };
        if (/pg_is_in_recovery/.test(text)) return { rows: [{ r: Boolean(s.recovery) }] };
        throw new Error(`unexpected ${text}`);
      },
      async end() {
        this.ended = true;
        log.push(`end ${t.host}`);
      },
    };
  };
  return { log, newClient };
}

test('connectFirst: in order, past a refused host and a read-only one, to the first read-write session', async () => {
  const { log, newClient } = fakeServers({
    a: { refuse: true },
    b: { readOnly: true, recovery: true },
    c: {},
    d: {},
  });
  const client = await connectFirst(
    ['a', 'b', 'c', 'd'].map((host) => ({ host })),
    'read-write',
    newClient,
  );
  assert.equal(client.host, 'c');
  assert.equal(client.ended, false);
  assert.deepEqual(log, [
    'connect a',
    'end a',
    'connect b',
    'b: SHOW transaction_read_only',
    'end b',
    'connect c',
    'c: SHOW transaction_read_only',
  ]);
});

test('connectFirst: several hosts and no target_session_attrs skip a standby (a listener needs a primary)', async () => {
  const { newClient } = fakeServers({ a: { recovery: true, readOnly: true }, b: {} });
  const client = await connectFirst([{ host: 'a' }, { host: 'b' }], 'any', newClient);
  assert.equal(client.host, 'b');
  // primary: a read-only session on a primary is fine (default_transaction_read_only = on).
  const p = fakeServers({ a: { recovery: true }, b: { readOnly: true } });
  assert.equal((await connectFirst([{ host: 'a' }, { host: 'b' }], 'primary', p.newClient)).host, 'b');
});

test('connectFirst: when no host fits, the error names each host and why; one plain host: its own error', async () => {
  const { newClient } = fakeServers({ a: { refuse: true }, b: { readOnly: true } });
  await assert.rejects(connectFirst([{ host: 'a', port: 1 }, { host: 'b' }], 'read-write', newClient), (err) => {
    assert.match(err.message, /no host gave the listener a read-write session/);
    assert.match(err.message, /a:1: connect ECONNREFUSED/);
    assert.match(err.message, /b: the session is read-only/);
    assert.equal(err.cause.code, 'ECONNREFUSED');
    return true;
  });
  const one = fakeServers({ a: { refuse: true } });
  await assert.rejects(connectFirst([{ host: 'a' }], 'any', one.newClient), { code: 'ECONNREFUSED' });
  // One host, no target_session_attrs: no extra round trip.
  const plain = fakeServers({ a: { readOnly: true } });
  await connectFirst([{ host: 'a' }], 'any', plain.newClient);
  assert.deepEqual(plain.log, ['connect a']);
});

// A loopback port nobody listens on (connections to it are refused).
async function deadPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function url(hosts, params = '') {
  const user = encodeURIComponent(process.env.PGUSER ?? 'postgres');
  const db = encodeURIComponent(process.env.PGDATABASE ?? 'postgres');
  return `postgresql://${user}@${hosts.join(',')}/${db}${params}`;
}

// The extension in the test database (the listener asks it for its publishers).
test.before(async () => {
  if (!haveServer) return;
  const c = new Client();
  await c.connect();
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_poolguard');
  } finally {
    await c.end();
  }
});

async function until(cond, what) {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`not within ${WAIT_MS} ms: ${what}`);
}

test(
  'the listener on a three-host URL: past a refused host to the server; after its loss, back the same way',
  { skip },
  async () => {
    const port = Number(process.env.PGPORT ?? 5432);
    const dead = await deadPort();
    const pool = new Pool({ max: 2 });
    const admin = new Client();
    await admin.connect();
    const cache = new PoolguardCache({
      pool,
      connectionString: url(
        [`127.0.0.1:${dead}`, `127.0.0.1:${port}`, `127.0.0.1:${dead}`],
        '?target_session_attrs=read-write',
      ),
      backoff: { initialMs: 20, maxMs: 200 },
    });
    try {
      await cache.start();
      assert.equal(cache.listening, true);
      assert.equal(cache.listener.port, port, 'the listener is on the live server, the second host');
      // A cached value; then the listener's session ends: it reconnects through the same list, and
      // the entry is re-checked (it may have missed a notification while the listener was down).
      let loads = 0;
      assert.equal(await cache.get('mh', '1', async () => ++loads), 1);
      const pid = cache.listener.processID;
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await until(() => cache.listening && cache.listener && cache.listener.processID !== pid, 'the listener is back');
      assert.equal(cache.listener.port, port);
      assert.ok(cache.stats.reconnects >= 1);
      const rechecks = cache.stats.rechecks;
      assert.equal(await cache.get('mh', '1', async () => ++loads), 1, 'unchanged generation: still served');
      assert.equal(cache.stats.rechecks, rechecks + 1, 're-checked after the reconnect');
      // A change now reaches it through the new listener.
      await admin.query("SELECT poolguard.invalidate('mh', '1')");
      await until(async () => (await cache.get('mh', '1', async () => ++loads)) === 2, 'the change is served');
    } finally {
      await cache.stop();
      await pool.end();
      await admin.end();
    }
  },
);

test(
  'a read-only session is skipped under read-write, taken under primary; no host fits: every reason',
  { skip },
  async () => {
    const port = Number(process.env.PGPORT ?? 5432);
    const dead = await deadPort();
    // Every session read-only (a primary with default_transaction_read_only = on).
    const ro = '?options=-c%20default_transaction_read_only%3Don';
    const rw = listenerTargets({
      connectionString: url([`127.0.0.1:${dead}`, `127.0.0.1:${port}`], `${ro}&target_session_attrs=read-write`),
    });
    await assert.rejects(
      connectFirst(rw.targets, rw.attrs, (t) => new Client(t)),
      (err) => {
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${dead}: .*ECONNREFUSED`));
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}: the session is read-only`));
        return true;
      },
    );
    const primary = listenerTargets({
      connectionString: url([`127.0.0.1:${dead}`, `127.0.0.1:${port}`], `${ro}&target_session_attrs=primary`),
    });
    const client = await connectFirst(primary.targets, primary.attrs, (t) => new Client(t));
    try {
      assert.equal(client.port, port);
      assert.equal((await client.query('SHOW transaction_read_only')).rows[0].transaction_read_only, 'on');
    } finally {
      await client.end();
    }
  },
);

test("a postgres.js sql on a host list: the listener takes the pool's hosts, in order", { skip }, async () => {
  const postgres = require('postgres');
  const port = Number(process.env.PGPORT ?? 5432);
  const dead = await deadPort();
  const sql = postgres(url([`127.0.0.1:${dead}`, `127.0.0.1:${port}`], '?target_session_attrs=read-write'), {
    max: 2,
    onnotice: () => {},
  });
  const cache = new PoolguardCache({ pool: sql, backoff: { initialMs: 20, maxMs: 200 } });
  try {
    assert.equal(cache.listenerSource, 'pool');
    await cache.start();
    assert.equal(cache.listener.port, port);
    assert.equal(await cache.get('mh-js', '1', async () => 'v'), 'v');
  } finally {
    await cache.stop();
    await sql.end({ timeout: 5 });
  }
});
