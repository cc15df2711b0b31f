'use strict';
// pg-poolguard-cache — an in-process cache keyed by (scope, key) that pg_poolguard keeps fresh.
//
// The rules it follows (see the pg_poolguard README, "Cache invalidation"):
//  1. To load a value: read poolguard.cache_generation(scope, key) FIRST, then the data, and tag
//     the cached value with that generation.  Generations are published only after the commit is
//     visible, so a tag can be too old (a spurious reload later), never too new.
//  2. A notification {scope, key, generation} drops the entries of that key (key null: of the
//     whole scope) tagged with an older generation; {resync: true} drops everything.
//  3. An entry cached while the listener was not connected, or before it last disconnected, may
//     have missed its notification: before serving it, compare its tag with cache_generation
//     (one cheap call) and reload when newer.
//  4. The listener reconnects with exponential backoff (and jitter).

const { EventEmitter } = require('node:events');
const { LruTtl } = require('./lru');

const GENERATION_SQL = 'SELECT poolguard.cache_generation($1, $2) AS g';

function entryId(scope, key) {
  return `${scope}\u0000${key}`;
}

class PoolguardCache extends EventEmitter {
  // options:
  //   pool       a pg.Pool (or anything with query()) for cache_generation and your loaders
  //   connect    async () => a connected, dedicated pg.Client for LISTEN (a pooled connection
  //              behind a transaction-mode pooler cannot LISTEN)
  //   channel    poolguard.notify_channel (default 'poolguard_invalidate')
  //   max, ttlMs LRU size and time to live (default 1000 entries, 5 minutes)
  //   backoff    { initialMs: 100, maxMs: 5000 } for reconnecting the listener
  constructor({ pool, connect, channel = 'poolguard_invalidate', max = 1000, ttlMs = 5 * 60 * 1000,
                backoff = {}, now = Date.now } = {}) {
    super();
    if (!pool || typeof pool.query !== 'function') throw new TypeError('pool with a query() method is required');
    if (typeof connect !== 'function') throw new TypeError('connect() returning a pg.Client is required');
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(channel)) throw new TypeError(`invalid channel name: ${channel}`);
    this.pool = pool;
    this.connect = connect;
    this.channel = channel;
    this.entries = new LruTtl({ max, ttlMs, now });
    this.backoff = { initialMs: backoff.initialMs ?? 100, maxMs: backoff.maxMs ?? 5000 };
    this.listener = null;
    this.listening = false;     // the listener is connected and LISTENs
    this.epoch = 0;             // changes whenever listening starts or stops
    this.inflight = new Set();  // loads between their generation read and their store
    this.stopped = false;
    this.retryTimer = null;
    this.stats = { hits: 0, misses: 0, rechecks: 0, staleOnRecheck: 0, invalidated: 0,
                   notifications: 0, resyncs: 0, reconnects: 0 };
  }

  // Connects the listener; resolves once it LISTENs (or rejects on the first failure; it keeps
  // retrying in the background either way).
  async start() {
    this.stopped = false;
    await this._listen(this.backoff.initialMs);
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this._setListening(false);
    const l = this.listener;
    this.listener = null;
    if (l) await l.end().catch(() => {});
  }

  // The cached value of (scope, key), or loader()'s result, cached with its generation.
  async get(scope, key, loader) {
    if (typeof scope !== 'string' || scope === '') throw new TypeError('scope must be a non-empty string');
    key = key === undefined || key === null ? null : String(key);
    const id = entryId(scope, key);
    const entry = this.entries.get(id);
    if (entry !== undefined) {
      if (entry.epoch === this.epoch && entry.listening && this.listening) {
        this.stats.hits++;
        return entry.value;
      }
      // It may have missed a notification: one cheap call decides.
      this.stats.rechecks++;
      const epoch = this.epoch;
      const listening = this.listening;
      const current = await this.generation(scope, key);
      if (current <= entry.generation && this.entries.get(id) === entry) {
        entry.epoch = epoch;
        entry.listening = listening;
        this.stats.hits++;
        return entry.value;
      }
      this.stats.staleOnRecheck++;
      this.entries.delete(id);
    }
    this.stats.misses++;
    return this._load(scope, key, id, loader);
  }

  // Drops one key (key null: the whole scope) locally, e.g. right after your own write.
  drop(scope, key = null) {
    if (key === null) return this.entries.deleteWhere((e) => e.scope === scope);
    return this.entries.delete(entryId(scope, String(key))) ? 1 : 0;
  }

  async generation(scope, key = null) {
    const res = await this.pool.query(GENERATION_SQL, [scope, key]);
    return BigInt(res.rows[0].g);
  }

  async _load(scope, key, id, loader) {
    // Epoch and listening state as of before the generation read: if the listener drops while
    // we load, the entry is re-checked before it is served.
    const load = { scope, key, epoch: this.epoch, listening: this.listening, generation: null, invalidated: false };
    this.inflight.add(load);
    try {
      load.generation = await this.generation(scope, key);   // rule 1: generation first ...
      const value = await loader();                           // ... then the data
      if (!load.invalidated && !this.stopped) {
        this.entries.set(id, { scope, key, value, generation: load.generation,
                               epoch: load.epoch, listening: load.listening });
      }
      return value;
    } finally {
      this.inflight.delete(load);
    }
  }

  _onNotification(msg) {
    if (msg.channel !== this.channel) return;
    let items;
    try {
      items = JSON.parse(msg.payload);
    } catch (err) {
      this.emit('warning', new Error(`unparsable invalidation payload: ${err.message}`));
      this._resync();
      return;
    }
    this.stats.notifications++;
    for (const item of items) {
      const generation = BigInt(item.generation);
      if (item.resync) {
        this._resync();
        continue;
      }
      let dropped;
      if (item.key === null) {
        dropped = this.entries.deleteWhere((e) => e.scope === item.scope && e.generation < generation);
      } else {
        const id = entryId(item.scope, item.key);
        const e = this.entries.map.get(id);
        dropped = e !== undefined && e.generation < generation && this.entries.delete(id) ? 1 : 0;
      }
      this.stats.invalidated += dropped;
      for (const load of this.inflight) {
        if (load.scope === item.scope && (item.key === null || load.key === item.key) &&
            (load.generation === null || load.generation < generation)) load.invalidated = true;
      }
    }
    this.emit('invalidation', items);
  }

  _resync() {
    this.stats.resyncs++;
    this.stats.invalidated += this.entries.clear();
    for (const load of this.inflight) load.invalidated = true;
  }

  _setListening(on) {
    if (this.listening !== on) {
      this.listening = on;
      this.epoch++;
      this.emit(on ? 'listening' : 'disconnected');
    }
  }

  async _listen(delayMs) {
    let client;
    try {
      client = await this.connect();
      client.on('notification', (msg) => this._onNotification(msg));
      client.on('error', () => this._lost(client));
      client.on('end', () => this._lost(client));
      await client.query(`LISTEN ${this.channel}`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.listener = client;
      this._setListening(true);
    } catch (err) {
      if (client) client.end().catch(() => {});
      this._retry(delayMs);
      throw err;
    }
  }

  _lost(client) {
    if (client !== this.listener) return;
    this.listener = null;
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
      this._listen(next).catch((err) => this.emit('reconnectError', err));
    }, delayMs + jitter);
    if (this.retryTimer.unref) this.retryTimer.unref();
  }
}

module.exports = { PoolguardCache, LruTtl };
