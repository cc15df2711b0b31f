'use strict';
// pg-poolguard-cache — an in-process cache keyed by (scope, key) that pg_poolguard keeps fresh.
//
// The rules it follows (see pg_poolguard's docs/cache-invalidation.md):
//  1. To load a value: read poolguard.cache_generation(scope, key) FIRST, then the data, and tag
//     the cached value with that generation.  Generations are published only after the commit is
//     visible, so a tag can be too old (a spurious reload later), never too new.
//  2. A notification {scope, key, generation} drops the entries of that key (key null: of the
//     whole scope, through the scope index) tagged with an older generation.
//  3. An entry cached while the listener was not connected, or before it last disconnected, or
//     before a resync, may have missed its notification: before serving it, compare its tag with
//     cache_generation (one cheap call) and reload when newer.
//  4. The listener reconnects with exponential backoff (and jitter).
//  5. mode 'poll' replaces the LISTEN connection by long polls of poolguard.invalidations_since()
//     (hot standbys and transaction-mode poolers cannot LISTEN); the feed is this server's own
//     data, so its items are trusted.  With `replica`, generations AND the feed come from the
//     replica the loaders read from: a replica's generation moves only once it has replayed the
//     change, so it is never newer than its data.  Generations from the primary with data from a
//     replica would tag old rows with new generations.
//
// Anyone who may connect may NOTIFY on any channel, so nothing a notification says is trusted:
//  - every payload is parsed and validated inside a guard (shape, types, sizes); a malformed one
//    is counted in stats.rejected, reported once per kind through a 'warning' event, and changes
//    nothing;
//  - a notification is applied only when its sender (processId) is a pg_poolguard publisher of
//    this database (poolguard.publisher_pids(), asked at LISTEN time and again, rate-limited,
//    when an unknown sender shows up);
//  - a resync costs O(1): entries are kept and re-checked on their next use, never dropped, so a
//    resync storm never turns into a reload storm.

const { EventEmitter } = require('node:events');
const { LruTtl } = require('./lru');
const { loadPg } = require('./load_pg');

const GENERATION_SQL = 'SELECT poolguard.cache_generation($1, $2) AS g';
// Many pairs in one round trip (fresh reads of one tick), in the order given.
const GENERATIONS_SQL =
  'SELECT poolguard.cache_generation(u.s, u.k) AS g ' +
  'FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, k, i) ORDER BY u.i';
const INVALIDATE_SQL = 'SELECT poolguard.invalidate($1, $2)';
const DATABASE_SQL = 'SELECT pg_catalog.current_database() AS d';
// pg.Pool options that configure the pool, not a connection.
const POOL_ONLY_OPTIONS = new Set([
  'max',
  'min',
  'idleTimeoutMillis',
  'allowExitOnIdle',
  'maxUses',
  'maxLifetimeSeconds',
  'log',
  'Promise',
  'Client',
  'maxIdle',
  'verify',
]);
// One statement, read-only: it works on a hot standby and through a transaction-mode pooler.
const FEED_SQL = 'SELECT kind, generation, scope, key FROM poolguard.invalidations_since($1, $2::interval)';
const PUBLISHERS_SQL = 'SELECT pid FROM poolguard.publisher_pids() AS pid';
const DEFAULT_LISTENER_NAME = 'pg_poolguard listener';

// What the server ever sends (src/core: NOTIFY's 8000-byte payload, scope 1..63 bytes, key at
// most 1,000 bytes).  Anything beyond is not from a publisher.
const MAX_PAYLOAD_BYTES = 8000;
const MAX_SCOPE_BYTES = 63;
const MAX_KEY_BYTES = 1000;
const ITEM_KEYS = new Set(['scope', 'key', 'generation', 'resync']);

// The cache's id of (scope, key): JSON of the pair, so that no two pairs share one — the whole
// scope (key null) is not the key 'null', and no separator inside a scope or key can make
// ('a\u0000b', 'c') meet ('a', 'b\u0000c').
function entryId(scope, key) {
  return JSON.stringify([scope, key]);
}

// A scope or key as the server sees it: text with no NUL and no lone surrogate (those have no
// UTF-8 form: they would reach the server as U+FFFD, so two strings the cache told apart would
// share one server key and one's invalidation would miss the other's entry).  Throws otherwise.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
function checkText(what, s) {
  if (s.includes('\u0000')) throw new TypeError(`${what} must not contain NUL characters`);
  if (LONE_SURROGATE.test(s)) throw new TypeError(`${what} must be well-formed Unicode (it has a lone surrogate)`);
  return s;
}

// The key argument of get()/drop(): null or undefined for the whole scope; a string, or a number
// or bigint (as the server would write it as text: get('user', 42) and get('user', '42') are one
// entry, as they are one key on the server).
function normalizeKey(key) {
  if (key === undefined || key === null) return null;
  if (typeof key === 'string') return checkText('key', key);
  if (typeof key === 'number' || typeof key === 'bigint') return String(key);
  throw new TypeError('key must be a string, a number, a bigint, or null for the whole scope');
}

function byteLength(s) {
  return Buffer.byteLength(s, 'utf8');
}

class Rejection extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'PoolguardRejection';
    this.code = 'POOLGUARD_REJECTED';
    this.kind = kind;
  }
}

// Parses and validates a payload.  Returns the items, or throws a Rejection.
function parsePayload(payload) {
  if (typeof payload !== 'string') throw new Rejection('type', 'notification payload is not a string');
  if (byteLength(payload) > MAX_PAYLOAD_BYTES) {
    throw new Rejection('size', `notification payload of ${byteLength(payload)} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  }
  let items;
  try {
    items = JSON.parse(payload);
  } catch (err) {
    throw new Rejection('json', `notification payload is not JSON: ${err.message}`);
  }
  if (!Array.isArray(items) || items.length === 0) {
    throw new Rejection('shape', 'notification payload is not a non-empty JSON array');
  }
  const out = [];
  for (const item of items) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new Rejection('shape', 'invalidation item is not an object');
    }
    for (const k of Object.keys(item)) {
      if (!ITEM_KEYS.has(k)) throw new Rejection('shape', `invalidation item has an unknown field "${k.slice(0, 40)}"`);
    }
    if (!('scope' in item) || !('key' in item) || !('generation' in item)) {
      throw new Rejection('shape', 'invalidation item lacks scope, key or generation');
    }
    const { scope, key, generation } = item;
    if (!Number.isSafeInteger(generation) || generation <= 0) {
      throw new Rejection('type', 'invalidation item generation is not a positive integer');
    }
    if ('resync' in item) {
      if (item.resync !== true || scope !== null || key !== null) {
        throw new Rejection('shape', 'resync item must be {"scope":null,"key":null,"generation":N,"resync":true}');
      }
      out.push({ scope: null, key: null, generation, resync: true });
      continue;
    }
    if (typeof scope !== 'string') throw new Rejection('type', 'invalidation item scope is not a string');
    if (key !== null && typeof key !== 'string')
      throw new Rejection('type', 'invalidation item key is not a string or null');
    const scopeBytes = byteLength(scope);
    if (scopeBytes < 1 || scopeBytes > MAX_SCOPE_BYTES) {
      throw new Rejection('size', `invalidation item scope of ${scopeBytes} bytes is outside 1..${MAX_SCOPE_BYTES}`);
    }
    if (key !== null && byteLength(key) > MAX_KEY_BYTES) {
      throw new Rejection('size', `invalidation item key exceeds ${MAX_KEY_BYTES} bytes`);
    }
    out.push({ scope, key, generation });
  }
  return out;
}

// pg_poolguard's SQL is missing in the database a call ran in (or older than this client needs).
class PoolguardSetupError extends Error {
  constructor(code, database, fix, message, cause) {
    super(message);
    this.name = 'PoolguardSetupError';
    this.code = code;
    this.database = database;
    this.fix = fix;
    this.cause = cause;
  }
}

// 3F000 (schema "poolguard" does not exist) and 42883 (function poolguard.x(...) does not
// exist) from a call of ours: which statement fixes it, and in which database.
async function setupError(err, db) {
  if (!err || typeof err !== 'object') return null;
  const msg = String(err.message ?? '');
  let code;
  let fix;
  if (err.code === '3F000' && /poolguard/.test(msg)) {
    code = 'POOLGUARD_NOT_INSTALLED';
    fix = 'CREATE EXTENSION pg_poolguard;';
  } else if (err.code === '42883' && /poolguard\./.test(msg)) {
    code = 'POOLGUARD_OUTDATED';
    fix = 'ALTER EXTENSION pg_poolguard UPDATE;';
  } else {
    return null;
  }
  let database = null;
  try {
    const res = await db.query(DATABASE_SQL);
    database = res.rows[0].d;
  } catch (_) {
    /* the database's name is a courtesy */
  }
  const where = database === null ? 'this database' : `database "${database}"`;
  const message =
    code === 'POOLGUARD_NOT_INSTALLED'
      ? `pg_poolguard is not installed in ${where}: run ${fix} in ${where} (as its owner or a superuser). ` +
        'The extension is needed in every database that invalidates or reads generations, not only in poolguard.database.'
      : `pg_poolguard in ${where} is older than this client: run ${fix} in ${where} (${msg})`;
  return new PoolguardSetupError(code, database, fix, message, err);
}

// query(text, values) → { rows } over a pg.Pool/Client, a postgres.js `sql` or a Prisma client.
function toQueryable(db) {
  if (db !== null && (typeof db === 'object' || typeof db === 'function')) {
    if (typeof db.query === 'function') return db;
    if (typeof db.unsafe === 'function') {
      return { query: async (text, values = []) => ({ rows: await db.unsafe(text, values) }) };
    }
    if (typeof db.$queryRawUnsafe === 'function') {
      return { query: async (text, values = []) => ({ rows: await db.$queryRawUnsafe(text, ...values) }) };
    }
  }
  throw new TypeError(
    'expected a pg.Pool or pg.Client (query()), a postgres.js sql (unsafe()) or a Prisma client ($queryRawUnsafe())',
  );
}

// The listener's pg.Client settings from the app's own database handle, when it has any: a
// pg.Pool's options, a postgres.js sql's options.  null: unknown.
function settingsOf(db) {
  if (db === null || (typeof db !== 'object' && typeof db !== 'function')) return null;
  if (
    typeof db.query === 'function' &&
    typeof db.connect === 'function' &&
    db.options &&
    typeof db.options === 'object'
  ) {
    const out = {};
    for (const [k, v] of Object.entries(db.options)) {
      if (!POOL_ONLY_OPTIONS.has(k) && v !== undefined) out[k] = v;
    }
    return out;
  }
  if (typeof db.unsafe === 'function' && db.options && typeof db.options === 'object') {
    const o = db.options;
    // Every host (the listener tries them in order, see listenerTargets), and the session kind.
    const host = Array.isArray(o.host) && o.host.length === 1 ? o.host[0] : o.host;
    const port = Array.isArray(o.port) && o.port.length === 1 ? o.port[0] : o.port;
    const out = { host, port, user: o.user, database: o.database };
    // (read-only, standby, prefer-standby are for the app's reads: the listener needs a primary.)
    if (TARGET_SESSION_ATTRS.has(o.target_session_attrs)) out.target_session_attrs = o.target_session_attrs;
    if (typeof o.pass === 'string') out.password = o.pass;
    if (o.ssl)
      out.ssl = o.ssl === true || o.ssl === 'require' || o.ssl === 'prefer' ? { rejectUnauthorized: false } : o.ssl;
    // postgres.js connects to a Unix socket when host is a path (it keeps the socket's folder).
    if (typeof o.path === 'string' && o.path) out.host = o.path.replace(/\/\.s\.PGSQL\.\d+$/, '');
    return out;
  }
  return null;
}

// Sizing: the pool `max` each instance may use so that pool + listener (or the poll, which
// holds a pool connection) across all instances fits a cap.
function poolSizing({ maxConnections, instances, mode = 'listen', listenerCounted = true } = {}) {
  if (!Number.isInteger(maxConnections) || maxConnections < 1)
    throw new RangeError('maxConnections must be a positive integer');
  if (!Number.isInteger(instances) || instances < 1) throw new RangeError('instances must be a positive integer');
  if (mode !== 'listen' && mode !== 'poll') throw new TypeError(`mode must be 'listen' or 'poll', not ${String(mode)}`);
  const share = Math.floor(maxConnections / instances);
  const listener = mode === 'listen' ? 1 : 0;
  const poolMax = share - (listenerCounted ? listener : 0);
  const concurrentQueries = mode === 'poll' ? poolMax - 1 : poolMax;
  if (poolMax < 1 || concurrentQueries < 1) {
    throw new RangeError(
      `${maxConnections} connections for ${instances} instances leave no pool connection for queries ` +
        `(each instance also holds ${mode === 'listen' ? 'a listener' : 'a poll'} connection)`,
    );
  }
  const perInstance = poolMax + listener;
  return {
    poolMax,
    perInstance,
    total: perInstance * instances,
    counted: (listenerCounted ? perInstance : poolMax) * instances,
    concurrentQueries,
  };
}

class PoolguardCache extends EventEmitter {
  // options:
  //   pool       a pg.Pool (or anything with query()) for cache_generation and your loaders
  //   connect    async ({ application_name }) => a connected, dedicated pg.Client for LISTEN (a
  //              pooled connection behind a transaction-mode pooler cannot LISTEN); default: a
  //              new pg.Client from the PG* environment with that application_name
  //   listenerApplicationName  the listener's application_name (default 'pg_poolguard listener';
  //              give it a policy with no idle rules, see README.md, "Pool settings"); null: leave it alone
  //   channel    poolguard.notify_channel (default 'poolguard_invalidate')
  //   max, ttlMs LRU size and time to live (default 1000 entries, 5 minutes)
  //   backoff    { initialMs: 100, maxMs: 5000 } for reconnecting the listener
  //   checkSender  accept notifications only from this database's publishers (default true)
  //   senderLookupIntervalMs  least time between two publisher_pids() look-ups (default 500)
  //   maxHeldNotifications  notifications of unknown senders held for a look-up (default 1000)
  //   resyncEventIntervalMs  least time between two 'resync' events (default 1000)
  //   mode       'listen' (default: a dedicated LISTEN connection) or 'poll' (long polls of
  //              poolguard.invalidations_since() through the pool: for replicas and
  //              transaction-mode poolers; each poll holds one pool connection while it waits)
  //   replica    the pool your loaders read from when that is a read replica: generations and
  //              polls then go to it (requires mode 'poll': a replica cannot LISTEN)
  //   pollWaitMs how long one poll waits on the server for an invalidation (default 10000)
  //   connectionString  the listener's connection string; without connect and this, the
  //              listener uses the pool's own settings, then DATABASE_URL, then PG*
  //   autoStart  the first get() starts the listener (default true); nothing connects before
  //   freshBatchMax  most pairs one fresh-read round trip confirms (default 1000)
  //   pendingInvalidationMs  how long invalidate() keeps its keys uncacheable here when neither
  //              committed() nor rolledBack() is called (default 30000)
  constructor({
    pool,
    connect,
    connectionString,
    autoStart = true,
    freshBatchMax = 1000,
    pendingInvalidationMs = 30000,
    channel = 'poolguard_invalidate',
    max = 1000,
    ttlMs = 5 * 60 * 1000,
    backoff = {},
    now = Date.now,
    listenerApplicationName = DEFAULT_LISTENER_NAME,
    checkSender = true,
    senderLookupIntervalMs = 500,
    maxHeldNotifications = 1000,
    resyncEventIntervalMs = 1000,
    mode = 'listen',
    replica = null,
    pollWaitMs = 10000,
  } = {}) {
    super();
    if (
      !pool ||
      (typeof pool.query !== 'function' &&
        typeof pool.unsafe !== 'function' &&
        typeof pool.$queryRawUnsafe !== 'function')
    ) {
      throw new TypeError('pool with a query() method is required (or a postgres.js sql, or a Prisma client)');
    }
    if (connectionString !== undefined && (typeof connectionString !== 'string' || connectionString === '')) {
      throw new TypeError('connectionString must be a non-empty string');
    }
    if (typeof autoStart !== 'boolean') throw new TypeError('autoStart must be a boolean');
    if (!Number.isInteger(freshBatchMax) || freshBatchMax < 1)
      throw new TypeError('freshBatchMax must be a positive integer');
    if (!Number.isInteger(pendingInvalidationMs) || pendingInvalidationMs < 0) {
      throw new TypeError('pendingInvalidationMs must be a non-negative integer');
    }
    if (mode !== 'listen' && mode !== 'poll')
      throw new TypeError(`mode must be 'listen' or 'poll', not ${String(mode)}`);
    if (replica !== null && (typeof replica !== 'object' || typeof replica.query !== 'function')) {
      throw new TypeError('replica must be a pool with a query() method, or null');
    }
    if (replica !== null && mode !== 'poll') {
      throw new TypeError(
        "replica needs mode 'poll': a replica cannot LISTEN, and notifications from the primary can arrive before the replica has the data",
      );
    }
    if (!Number.isInteger(pollWaitMs) || pollWaitMs < 0 || pollWaitMs > 600000) {
      throw new TypeError('pollWaitMs must be an integer between 0 and 600000');
    }
    if (connect !== undefined && typeof connect !== 'function') {
      throw new TypeError('connect must be a function returning a connected pg.Client');
    }
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(channel)) throw new TypeError(`invalid channel name: ${channel}`);
    if (
      listenerApplicationName !== null &&
      (typeof listenerApplicationName !== 'string' || byteLength(listenerApplicationName) > 63)
    ) {
      throw new TypeError('listenerApplicationName must be a string of at most 63 bytes, or null');
    }
    this.appPool = pool;
    this.pool = toQueryable(pool);
    this.mode = mode;
    this.replica = replica;
    this.readPool = replica ?? this.pool; // where generations (and polls) come from: where the data does
    this.pollWaitMs = pollWaitMs;
    this.pollAfter = 0n; // the greatest generation the feed returned
    this.polling = false;
    this.customConnect = connect !== undefined;
    if (connect !== undefined) {
      this.connect = connect;
      this.listenerSource = 'connect';
    } else {
      let settings;
      if (connectionString !== undefined) {
        settings = { connectionString };
        this.listenerSource = 'connectionString';
      } else if ((settings = settingsOf(pool)) !== null) {
        this.listenerSource = 'pool';
      } else if (process.env.DATABASE_URL) {
        settings = { connectionString: process.env.DATABASE_URL };
        this.listenerSource = 'DATABASE_URL';
      } else {
        settings = {};
        this.listenerSource = 'PG*';
      }
      this.connect = (opts) => defaultConnect(settings, opts);
    }
    this.autoStart = autoStart;
    this.started = false;
    this.startPromise = null;
    this.freshBatchMax = freshBatchMax;
    this.freshQueue = []; // fresh reads waiting for the next batched round trip
    this.freshScheduled = false;
    this.pendingInvalidationMs = pendingInvalidationMs;
    this.pendingKeys = new Map(); // entry id → count of local invalidations not yet settled
    this.pendingScopes = new Map(); // scope → count (key null)
    this.channel = channel;
    this.listenerApplicationName = listenerApplicationName;
    this.entries = new LruTtl({ max, ttlMs, now });
    this.now = now;
    this.backoff = { initialMs: backoff.initialMs ?? 100, maxMs: backoff.maxMs ?? 5000 };
    this.checkSender = checkSender;
    this.senderLookupIntervalMs = senderLookupIntervalMs;
    this.maxHeldNotifications = maxHeldNotifications;
    this.resyncEventIntervalMs = resyncEventIntervalMs;
    this.listener = null;
    this.listening = false; // the listener is connected and LISTENs
    this.epoch = 0; // changes whenever listening starts or stops, and at each resync
    this.inflight = new Set(); // loads between their generation read and their store
    this.stopped = false;
    this.retryTimer = null;
    this.publishers = new Set(); // pids of this database's publishers, as last looked up
    this.senderCheckAvailable = true;
    this.held = []; // [{ pid, items }] from unknown senders, waiting for a look-up
    this.lookupTimer = null;
    this.lookupInFlight = false;
    this.lastLookupAt = -Infinity;
    this.lastResyncEventAt = -Infinity;
    this.warned = new Set();
    this.stats = {
      hits: 0,
      misses: 0,
      rechecks: 0,
      staleOnRecheck: 0,
      invalidated: 0,
      notifications: 0,
      resyncs: 0,
      reconnects: 0,
      rejected: 0,
      rejectedByKind: {},
      publisherLookups: 0,
      polls: 0,
      bypasses: 0,
      refreshes: 0,
      freshHits: 0,
      freshStale: 0,
      freshBatches: 0,
      localDrops: 0,
    };
  }

  // Connects the listener; resolves once it LISTENs (or rejects on the first failure; it keeps
  // retrying in the background either way).
  // Idempotent: a second call shares the first one's attempt (and, once it failed, the
  // background retries it started).
  start() {
    if (this.startPromise !== null && !this.stopped) return this.startPromise;
    this.stopped = false;
    this.started = true;
    this.startPromise = (async () => {
      if (this.mode === 'poll') {
        try {
          await this._pollOnce(0); // the first answer (a resync) says where the feed stands
        } catch (err) {
          this._pollLoop(); // keeps trying in the background
          throw (await setupError(err, this.readPool)) ?? err;
        }
        this._pollLoop();
        return;
      }
      await this._listen(this.backoff.initialMs);
    })();
    return this.startPromise;
  }

  // autoStart: the first use starts the listener and waits for its first attempt (a failure does
  // not fail the caller: it keeps retrying, and entries are re-checked until it listens).
  async _autoStart() {
    if (this.started || !this.autoStart) return;
    try {
      await this.start();
    } catch (err) {
      this._safeEmit('reconnectError', err);
    }
  }

  async stop() {
    this.stopped = true;
    this.startPromise = null;
    clearTimeout(this.retryTimer);
    clearTimeout(this.lookupTimer);
    this.lookupTimer = null;
    this.held = [];
    this._setListening(false);
    const l = this.listener;
    this.listener = null;
    if (l) await l.end().catch(() => {});
  }

  // The cached value of (scope, key), or loader()'s result, cached with its generation.
  async get(scope, key, loader, options = {}) {
    if (typeof scope !== 'string' || scope === '') throw new TypeError('scope must be a non-empty string');
    if (typeof loader !== 'function') throw new TypeError('loader must be a function');
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const { bypass = false, refresh = false, consistency = 'cached' } = options;
    if (consistency !== 'cached' && consistency !== 'strong') {
      throw new TypeError(`consistency must be 'cached' or 'strong', not ${String(consistency)}`);
    }
    const fresh = options.fresh === true || consistency === 'strong';
    checkText('scope', scope);
    key = normalizeKey(key);
    if (bypass) {
      this.stats.bypasses++;
      return loader();
    }
    if (!this.started) await this._autoStart();
    const id = entryId(scope, key);
    if (refresh) {
      this.stats.refreshes++;
      this.entries.delete(id);
      this._invalidateInflight(scope, key, null);
    }
    const entry = this._isPending(scope, id) ? undefined : this.entries.get(id);
    if (entry !== undefined && fresh) {
      const current = await this._confirm(scope, key);
      if (current <= entry.generation && this.entries.peek(id) === entry) {
        this.stats.freshHits++;
        this.stats.hits++;
        return entry.value;
      }
      if (this.entries.peek(id) === entry) this.entries.delete(id);
      this.stats.freshStale++;
    } else if (entry !== undefined) {
      if (entry.epoch === this.epoch && entry.listening && this.listening) {
        this.stats.hits++;
        return entry.value;
      }
      // It may have missed a notification: one cheap call decides (shared by concurrent gets).
      const epoch = this.epoch;
      const listening = this.listening;
      if (entry.recheck === undefined || entry.recheckEpoch !== epoch) {
        this.stats.rechecks++;
        entry.recheckEpoch = epoch;
        entry.recheck = this.generation(scope, key);
        entry.recheck
          .catch(() => {})
          .then(() => {
            if (entry.recheckEpoch === epoch) entry.recheck = undefined;
          });
      }
      const current = await entry.recheck;
      if (current <= entry.generation && this.entries.peek(id) === entry) {
        entry.epoch = epoch;
        entry.listening = listening;
        this.stats.hits++;
        return entry.value;
      }
      if (this.entries.peek(id) === entry) {
        this.stats.staleOnRecheck++;
        this.entries.delete(id);
      }
    }
    this.stats.misses++;
    return this._load(scope, key, id, loader);
  }

  // Drops one key (key null: the whole scope) locally, e.g. right after your own write.
  drop(scope, key = null) {
    key = normalizeKey(key);
    if (key === null) return this.entries.deleteScope(scope);
    return this.entries.delete(entryId(scope, key)) ? 1 : 0;
  }

  async generation(scope, key = null) {
    if (!this.started) await this._autoStart();
    let res;
    try {
      res = await this.readPool.query(GENERATION_SQL, [scope, key]);
    } catch (err) {
      throw (await setupError(err, this.readPool)) ?? err;
    }
    return BigInt(res.rows[0].g);
  }

  // cache_generation of each (scope, key) pair, in one round trip.
  async generations(pairs) {
    if (!Array.isArray(pairs)) throw new TypeError('pairs must be an array of [scope, key]');
    const scopes = [];
    const keys = [];
    for (const p of pairs) {
      if (!Array.isArray(p) || typeof p[0] !== 'string' || p[0] === '')
        throw new TypeError('each pair must be [scope, key]');
      scopes.push(p[0]);
      keys.push(p[1] === undefined || p[1] === null ? null : String(p[1]));
    }
    if (scopes.length === 0) return [];
    if (!this.started) await this._autoStart();
    let res;
    try {
      res = await this.readPool.query(GENERATIONS_SQL, [scopes, keys]);
    } catch (err) {
      throw (await setupError(err, this.readPool)) ?? err;
    }
    return res.rows.map((r) => BigInt(r.g));
  }

  // A fresh read's confirmation: queued, and sent with every other one queued in the same tick
  // as one round trip.  A batch is sent after every read in it started, so its answer reflects
  // every commit that completed before any of them.
  _confirm(scope, key) {
    return new Promise((resolve, reject) => {
      this.freshQueue.push({ scope, key, resolve, reject });
      if (!this.freshScheduled) {
        this.freshScheduled = true;
        setImmediate(() => this._flushConfirms());
      }
    });
  }

  _flushConfirms() {
    this.freshScheduled = false;
    while (this.freshQueue.length > 0) {
      const batch = this.freshQueue.splice(0, this.freshBatchMax);
      // One pair once, however many reads wait for it.
      const index = new Map();
      const pairs = [];
      for (const w of batch) {
        const id = entryId(w.scope, w.key);
        if (!index.has(id)) {
          index.set(id, pairs.length);
          pairs.push([w.scope, w.key]);
        }
      }
      this.stats.freshBatches++;
      this.generations(pairs).then(
        (gens) => {
          for (const w of batch) w.resolve(gens[index.get(entryId(w.scope, w.key))]);
        },
        (err) => {
          for (const w of batch) w.reject(err);
        },
      );
    }
  }

  // Local invalidation inside the app's own transaction: poolguard.invalidate() through `db`,
  // the key dropped here at once and kept uncacheable here until the transaction is settled.
  async invalidate(db, scope, key = null) {
    checkText('scope', scope);
    key = normalizeKey(key);
    const q = toQueryable(db);
    if (!this.started) await this._autoStart();
    const pending = this._addPending(scope, key);
    try {
      await q.query(INVALIDATE_SQL, [scope, key]);
    } catch (err) {
      pending.rolledBack();
      throw (await setupError(err, q)) ?? err;
    }
    return pending;
  }

  // BEGIN; fn(tx); COMMIT on a client of a pg.Pool; the keys tx.invalidate()d are dropped here
  // when the COMMIT returns.
  async transaction(fn, { pool = this.appPool } = {}) {
    if (typeof fn !== 'function') throw new TypeError('fn must be a function');
    if (!pool || typeof pool.connect !== 'function') {
      throw new TypeError(
        'transaction() needs a pg.Pool (with connect()); with another client use invalidate() and committed()',
      );
    }
    const client = await pool.connect();
    const onError = () => {};
    client.on?.('error', onError);
    const pendings = [];
    let broken;
    try {
      await client.query('BEGIN');
      const tx = {
        client,
        query: (text, values) => client.query(text, values),
        invalidate: async (scope, key = null) => {
          pendings.push(await this.invalidate(client, scope, key));
        },
      };
      const result = await fn(tx);
      await client.query('COMMIT');
      for (const p of pendings) p.committed();
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (e) {
        broken = e;
      }
      for (const p of pendings) p.rolledBack();
      throw err;
    } finally {
      client.off?.('error', onError);
      client.release(broken);
    }
  }

  _isPending(scope, id) {
    return this.pendingKeys.has(id) || this.pendingScopes.has(scope);
  }

  _addPending(scope, key) {
    const id = entryId(scope, key);
    const map = key === null ? this.pendingScopes : this.pendingKeys;
    const mapKey = key === null ? scope : id;
    map.set(mapKey, (map.get(mapKey) ?? 0) + 1);
    this.stats.localDrops += this.drop(scope, key);
    this._invalidateInflight(scope, key, null);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const n = map.get(mapKey) - 1;
      if (n > 0) map.set(mapKey, n);
      else map.delete(mapKey);
    };
    const timer = setTimeout(settle, this.pendingInvalidationMs);
    if (timer.unref) timer.unref();
    return {
      scope,
      key,
      committed: () => {
        // Loads that started before the commit may carry the old value: none is stored while the
        // key is pending, and loads from now on read the new generation first.
        if (!settled) this.stats.localDrops += this.drop(scope, key);
        settle();
      },
      rolledBack: settle,
    };
  }

  // Loads of (scope, key) (key null: the scope) in flight are returned but not cached.
  _invalidateInflight(scope, key, generation) {
    for (const load of this.inflight) {
      if (
        load.scope === scope &&
        (key === null || load.key === key) &&
        (generation === null || load.generation === null || load.generation < generation)
      )
        load.invalidated = true;
    }
  }

  async _load(scope, key, id, loader) {
    // Epoch and listening state as of before the generation read: if the listener drops (or a
    // resync arrives) while we load, the entry is re-checked before it is served.
    const load = { scope, key, epoch: this.epoch, listening: this.listening, generation: null, invalidated: false };
    this.inflight.add(load);
    try {
      load.generation = await this.generation(scope, key); // rule 1: generation first ...
      const value = await loader(); // ... then the data
      if (!load.invalidated && !this.stopped && !this._isPending(scope, id)) {
        this.entries.set(id, {
          scope,
          key,
          value,
          generation: load.generation,
          epoch: load.epoch,
          listening: load.listening,
        });
      }
      return value;
    } finally {
      this.inflight.delete(load);
    }
  }

  // The listener's 'notification' handler.  Nothing thrown here may reach the pg client (an
  // exception inside its event emission would take the process down).
  _onNotification(msg) {
    try {
      if (msg === null || typeof msg !== 'object' || msg.channel !== this.channel) return;
      let items;
      try {
        items = parsePayload(msg.payload);
      } catch (err) {
        if (err instanceof Rejection) {
          this._reject(err);
          return;
        }
        throw err;
      }
      if (this.checkSender && this.senderCheckAvailable && !this.publishers.has(msg.processId)) {
        this._hold(msg.processId, items);
        return;
      }
      this._apply(items);
    } catch (err) {
      this._reject(new Rejection('internal', `invalidation handling failed: ${err && err.message}`));
    }
  }

  _apply(items) {
    this.stats.notifications++;
    for (const item of items) {
      if (item.resync) {
        this._resync(item.generation);
        continue;
      }
      const generation = BigInt(item.generation);
      let dropped;
      if (item.key === null) {
        dropped = this.entries.deleteScope(item.scope, (e) => e.generation < generation);
      } else {
        const id = entryId(item.scope, item.key);
        const e = this.entries.peek(id);
        dropped = e !== undefined && e.generation < generation && this.entries.delete(id) ? 1 : 0;
      }
      this.stats.invalidated += dropped;
      for (const load of this.inflight) {
        if (
          load.scope === item.scope &&
          (item.key === null || load.key === item.key) &&
          (load.generation === null || load.generation < generation)
        )
          load.invalidated = true;
      }
    }
    try {
      this.emit('invalidation', items);
    } catch (err) {
      this._reject(new Rejection('handler', `an 'invalidation' listener threw: ${err && err.message}`));
    }
  }

  // Items were dropped on the way: every entry may be stale.  O(1): entries are kept and
  // re-checked (one cache_generation call each) on their next use; loads in flight are not
  // cached.  'resync' events are rate-limited (resyncEventIntervalMs).
  _resync(generation) {
    this.stats.resyncs++;
    this.epoch++;
    for (const load of this.inflight) load.invalidated = true;
    const t = this.now();
    if (t - this.lastResyncEventAt >= this.resyncEventIntervalMs) {
      this.lastResyncEventAt = t;
      this._safeEmit('resync', generation);
    }
  }

  // A notification from a sender that is not a known publisher: hold it until the publishers
  // are looked up again (rate-limited); then apply it or reject it.
  _hold(pid, items) {
    this.held.push({ pid, items });
    if (this.held.length > this.maxHeldNotifications) {
      // Too many to keep: drop the oldest, and since a publisher's notification may be among
      // them, have every entry re-checked (as after a resync).
      this.held.shift();
      this.epoch++;
      for (const load of this.inflight) load.invalidated = true;
      this._reject(
        new Rejection('overflow', 'too many notifications from unknown senders; entries will be re-checked'),
      );
    }
    this._scheduleLookup();
  }

  _scheduleLookup() {
    if (this.lookupInFlight || this.lookupTimer !== null || this.stopped) return;
    const wait = Math.max(0, this.lastLookupAt + this.senderLookupIntervalMs - this.now());
    this.lookupTimer = setTimeout(() => {
      this.lookupTimer = null;
      this._lookupPublishers().catch(() => {});
    }, wait);
    if (this.lookupTimer.unref) this.lookupTimer.unref();
  }

  // Asks the server for this database's publisher pids, then settles the held notifications.
  async _lookupPublishers() {
    const client = this.listener;
    if (client === null) {
      this.held = []; // the listener is gone: its loss already forces re-checks
      return;
    }
    this.lookupInFlight = true;
    this.lastLookupAt = this.now();
    try {
      await this._refreshPublishers(client);
    } catch (err) {
      this.lookupInFlight = false;
      if (client === this.listener && this.held.length > 0) this._scheduleLookup();
      return;
    }
    this.lookupInFlight = false;
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (!this.senderCheckAvailable || this.publishers.has(h.pid)) this._apply(h.items);
      else
        this._reject(
          new Rejection(
            'sender',
            `notification from process ${h.pid}, which is not a pg_poolguard publisher of this database`,
          ),
        );
    }
  }

  async _refreshPublishers(client) {
    this.stats.publisherLookups++;
    try {
      const res = await client.query(PUBLISHERS_SQL);
      this.publishers = new Set(res.rows.map((r) => Number(r.pid)));
      this.senderCheckAvailable = true;
    } catch (err) {
      if (err && err.code === '3F000') {
        // No pg_poolguard in this database: nothing will ever be published to this listener.
        throw (await setupError(err, client)) ?? err;
      }
      if (err && err.code === '42883') {
        // An older pg_poolguard without publisher_pids(): no way to check, accept (and say so).
        this.senderCheckAvailable = false;
        this._warnOnce(
          'sender-check-unavailable',
          'poolguard.publisher_pids() does not exist in this database: notifications are accepted from any sender (install or update pg_poolguard)',
        );
        return;
      }
      throw err;
    }
  }

  _reject(rejection) {
    this.stats.rejected++;
    this.stats.rejectedByKind[rejection.kind] = (this.stats.rejectedByKind[rejection.kind] ?? 0) + 1;
    if (!this.warned.has(rejection.kind)) {
      this.warned.add(rejection.kind);
      this._safeEmit('warning', rejection);
    }
  }

  _warnOnce(kind, message) {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this._safeEmit('warning', new Rejection(kind, message));
  }

  _safeEmit(event, value) {
    try {
      this.emit(event, value);
    } catch (err) {
      // A listener of ours threw: never let it reach the pg client's event emission.
      if (event !== 'warning' && !this.warned.has('handler')) {
        this.warned.add('handler');
        try {
          this.emit('warning', new Rejection('handler', `a '${event}' listener threw: ${err && err.message}`));
        } catch (_) {
          /* nothing */
        }
      }
    }
  }

  _setListening(on) {
    if (this.listening !== on) {
      this.listening = on;
      this.epoch++;
      this._safeEmit(on ? 'listening' : 'disconnected');
    }
  }

  async _listen(delayMs) {
    let client;
    try {
      client = await this.connect({ application_name: this.listenerApplicationName ?? undefined });
      client.on('error', () => this._lost(client));
      client.on('end', () => this._lost(client));
      client.on('notification', (msg) => this._onNotification(msg));
      if (this.customConnect && this.listenerApplicationName !== null) {
        await client.query('SELECT pg_catalog.set_config($1, $2, false)', [
          'application_name',
          this.listenerApplicationName,
        ]);
      }
      await client.query(`LISTEN ${this.channel}`);
      if (this.checkSender) await this._refreshPublishers(client);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.listener = client;
      this.held = [];
      this._setListening(true);
    } catch (err) {
      if (client) client.end().catch(() => {});
      this._retry(delayMs);
      throw err;
    }
  }

  // One long poll: applies what invalidations_since() returned (items, or a resync) and marks
  // the cache live.  Throws when the query fails (the cache is then not live).
  async _pollOnce(waitMs) {
    this.stats.polls++;
    let res;
    try {
      res = await this.readPool.query(FEED_SQL, [this.pollAfter.toString(), `${waitMs} milliseconds`]);
    } catch (err) {
      this._setListening(false);
      throw err;
    }
    if (this.stopped) return;
    const items = [];
    let newest = this.pollAfter;
    for (const row of res.rows) {
      const generation = BigInt(row.generation);
      if (generation > newest) newest = generation;
      // Numbers, as in notifications (generations are microseconds: below 2^53 until year 2255).
      if (row.kind === 'resync') items.push({ scope: null, key: null, generation: Number(generation), resync: true });
      else items.push({ scope: row.scope, key: row.key, generation: Number(generation) });
    }
    // Live from here on: an entry loaded after this point gets every later item from the feed.
    this._setListening(true);
    this.pollAfter = newest;
    if (items.length > 0) this._apply(items);
  }

  async _pollLoop() {
    if (this.polling) return;
    this.polling = true;
    let delayMs = this.backoff.initialMs;
    try {
      while (!this.stopped) {
        try {
          await this._pollOnce(this.pollWaitMs);
          delayMs = this.backoff.initialMs;
        } catch (err) {
          if (this.stopped) break;
          this._safeEmit('reconnectError', err);
          this.stats.reconnects++;
          await new Promise((resolve) => {
            const t = setTimeout(resolve, delayMs + Math.random() * delayMs * 0.2);
            if (t.unref) t.unref();
          });
          delayMs = Math.min(delayMs * 2, this.backoff.maxMs);
        }
      }
    } finally {
      this.polling = false;
    }
  }

  _lost(client) {
    if (client !== this.listener) return;
    this.listener = null;
    this.held = [];
    this._setListening(false);
    client.end().catch(() => {});
    this._retry(this.backoff.initialMs);
  }

  _retry(delayMs) {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const jitter = Math.random() * delayMs * 0.2;
    this.retryTimer = setTimeout(() => {
      this.stats.reconnects++;
      const next = Math.min(delayMs * 2, this.backoff.maxMs);
      this._listen(next).catch((err) => this._safeEmit('reconnectError', err));
    }, delayMs + jitter);
    if (this.retryTimer.unref) this.retryTimer.unref();
  }
}

// Several hosts, as libpq takes them (node-postgres takes one host: it parses
// postgresql://h1:p1,h2:p2/db as an invalid URL, and host 'h1,h2' as one name):
//   postgresql://user@h1:p1,h2:p2,[::1]:p3/db?target_session_attrs=read-write
//   { host: 'h1,h2', port: '5432,5433' } or arrays (a pool's options, postgres.js' options),
//   PGHOST=h1,h2 PGPORT=p1,p2 PGTARGETSESSIONATTRS=read-write (the {} = PG* case).
// The listener tries them in order, as libpq does, and keeps the first session that can serve it:
// a standby cannot LISTEN, so with several hosts a server in recovery is always skipped, and
// target_session_attrs=read-write also skips a read-only session (transaction_read_only on).
const TARGET_SESSION_ATTRS = new Set(['any', 'read-write', 'primary']);

// 'a:1,[::1]:2,b' → [{ host, port }] (port undefined: the default).
function splitHostList(list) {
  return list.split(',').map((entry) => {
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(entry);
    if (m === null || m[1] === '') throw new TypeError(`invalid host in connection string: '${entry}'`);
    const host = m[1].startsWith('[') ? m[1].slice(1, -1) : decodeURIComponent(m[1]);
    return { host, port: m[2] === undefined || m[2] === '' ? undefined : Number(m[2]), entry };
  });
}

function checkAttrs(attrs) {
  if (attrs === undefined || attrs === null || attrs === '') return 'any';
  if (!TARGET_SESSION_ATTRS.has(attrs)) {
    throw new TypeError(
      `target_session_attrs=${attrs} cannot serve the listener (it LISTENs, which only a primary can): use read-write, primary or any`,
    );
  }
  return attrs;
}

// The listener's candidate servers, in order, and the session it needs: { targets, attrs }.
// targets: node-postgres settings, one host each; attrs: 'any', 'read-write' or 'primary'.
// A single host without target_session_attrs gives [settings] unchanged.
function listenerTargets(settings = {}, env = process.env) {
  if (typeof settings.connectionString === 'string') {
    const cs = settings.connectionString;
    const m = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/s.exec(cs);
    if (m === null) return { targets: [settings], attrs: 'any' };
    const [, scheme, authority, rest] = m;
    const at = authority.lastIndexOf('@');
    const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
    const hostList = authority.slice(at + 1);
    // target_session_attrs is libpq's, not node-postgres': read it and leave it out.
    const q = rest.indexOf('?');
    let path = rest;
    let attrs;
    if (q >= 0) {
      path = rest.slice(0, q);
      const kept = [];
      for (const part of rest.slice(q + 1).split('&')) {
        const [k, v = ''] = part.split('=');
        if (decodeURIComponent(k) === 'target_session_attrs') attrs = decodeURIComponent(v);
        else if (part !== '') kept.push(part);
      }
      if (kept.length > 0) path += `?${kept.join('&')}`;
    }
    attrs = checkAttrs(attrs ?? env.PGTARGETSESSIONATTRS);
    if (!hostList.includes(',') && attrs === 'any') return { targets: [settings], attrs };
    const hosts = hostList === '' ? [{ entry: '' }] : splitHostList(hostList);
    return {
      targets: hosts.map((h) => ({ ...settings, connectionString: `${scheme}${userinfo}${h.entry}${path}` })),
      attrs,
    };
  }
  const { target_session_attrs, ...rest } = settings;
  const attrs = checkAttrs(target_session_attrs ?? env.PGTARGETSESSIONATTRS);
  let host = rest.host ?? env.PGHOST;
  let port = rest.port ?? (rest.host === undefined ? env.PGPORT : undefined);
  if (Array.isArray(host)) host = host.join(',');
  if (Array.isArray(port)) port = port.join(',');
  if (typeof host !== 'string' || !host.includes(',')) {
    return { targets: [attrs === 'any' ? settings : rest], attrs };
  }
  const hosts = host.split(',');
  const ports = port === undefined || port === null || port === '' ? [] : String(port).split(',');
  if (ports.length > 1 && ports.length !== hosts.length) {
    throw new TypeError(`${hosts.length} hosts but ${ports.length} ports: give one port, or one per host`);
  }
  return {
    targets: hosts.map((h, i) => {
      const p = ports.length === 0 ? undefined : ports.length === 1 ? ports[0] : ports[i];
      const t = { ...rest, host: h };
      if (p !== undefined && p !== '') t.port = Number(p);
      else delete t.port;
      return t;
    }),
    attrs,
  };
}

function describeTarget(t) {
  if (typeof t.connectionString === 'string') {
    const m = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)/.exec(t.connectionString);
    return m ? m[1] || 'localhost' : 'the connection string';
  }
  return `${t.host ?? 'localhost'}${t.port !== undefined ? `:${t.port}` : ''}`;
}

// Connects to TARGETS in order and returns the first connected client whose session ATTRS
// accepts; with a single target and attrs 'any', no check (as before).  newClient(settings) →
// an unconnected pg.Client.  Throws when none does, naming each host and why.
async function connectFirst(targets, attrs, newClient) {
  const check = targets.length > 1 || attrs !== 'any';
  const failures = [];
  let lastError;
  for (const t of targets) {
    const client = newClient(t);
    client.on('error', () => {}); // until the cache attaches its own handlers
    try {
      await client.connect();
      if (check) {
        let why = null;
        if (attrs === 'read-write') {
          const r = await client.query('SHOW transaction_read_only');
          if (r.rows[0].transaction_read_only !== 'off') why = 'the session is read-only';
        } else {
          const r = await client.query('SELECT pg_catalog.pg_is_in_recovery() AS r');
          if (r.rows[0].r !== false) why = 'the server is in recovery';
        }
        if (why !== null) {
          failures.push(`${describeTarget(t)}: ${why}`);
          await client.end().catch(() => {});
          continue;
        }
      }
      return client;
    } catch (err) {
      lastError = err;
      failures.push(`${describeTarget(t)}: ${err && err.message}`);
      client.end().catch(() => {});
    }
  }
  if (targets.length === 1 && !check) throw lastError;
  const need = attrs === 'read-write' ? 'a read-write session' : 'a server not in recovery';
  const err = new Error(`no host gave the listener ${need} (${failures.join('; ')})`);
  if (lastError !== undefined) err.cause = lastError;
  err.hosts = failures;
  throw err;
}

// The default listener connection: node-postgres with the settings the constructor chose
// (connectionString, the pool's, DATABASE_URL, or {} = the PG* environment variables), on the
// first of their hosts that can serve it (listenerTargets, connectFirst).
async function defaultConnect(settings, { application_name } = {}) {
  const { Client } = loadPg(); // the app's pg when this package has none (a file: install)
  const { targets, attrs } = listenerTargets(settings);
  return connectFirst(
    targets,
    attrs,
    (t) => new Client(application_name === undefined ? t : { ...t, application_name }),
  );
}

module.exports = {
  PoolguardCache,
  LruTtl,
  parsePayload,
  Rejection,
  PoolguardSetupError,
  poolSizing,
  toQueryable,
  listenerTargets,
  connectFirst,
};
