'use strict';
// pg-poolguard-cache/next — Next.js cache handlers kept consistent across instances by
// pg_poolguard, without Redis:
//   cacheHandlers ('use cache'):   module.exports = createCacheHandler({ ... })
//   cacheHandler (ISR, route handlers): module.exports = createIncrementalCacheHandler({ ... })
//
// Each instance keeps its entries in process memory (bounded in bytes and in entries).
// revalidateTag / updateTag publish through the database (poolguard.invalidate('tag:<tag>'), or
// a hash for long tags), so every instance's listener expires the tag; a committed change to a
// table tracked with poolguard.track_table() expires the tag 'table:<name>' and the tags the
// `tables` option maps to it.  A lost listener or a resync expires everything.
//
// Nothing connects at import or construction; the first call that needs the database starts
// the listener.  During `next build` (NEXT_PHASE = 'phase-production-build') nothing connects:
// the handlers are plain in-memory caches.

const crypto = require('node:crypto');
const { PoolguardCache } = require('./index');
const { loadPg } = require('./load_pg');

const MAX_SCOPE_BYTES = 63;
const STALE_KEY = /^stale:(\d{1,9}|-)$/;
const SINGLETON = Symbol.for('pg-poolguard-cache/next');

// The invalidation scope of a Next.js tag: 'tag:<tag>' when it fits, else a hash.  The same on
// every instance, and the same scopes Prisma's $poolguard.invalidate({ tags }) publishes.
function tagScope(tag) {
  const plain = `tag:${tag}`;
  if (Buffer.byteLength(plain, 'utf8') <= MAX_SCOPE_BYTES) return plain;
  return `tag#${crypto.createHash('sha256').update(tag).digest('hex').slice(0, 56)}`;
}

class NextCacheCore {
  constructor(options = {}) {
    this.options = options;
    this.now = options.now ?? (() => Math.round(performance.timeOrigin + performance.now()));
    this.maxBytes = options.maxBytes ?? 50 * 1024 * 1024;
    this.maxEntries = options.maxEntries ?? 10000;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 0) throw new TypeError('maxBytes must be an integer >= 0');
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 0)
      throw new TypeError('maxEntries must be an integer >= 0');
    // Table name → tags a committed change to it expires (besides 'table:<name>').
    const tables = options.tables ?? {};
    this.tableTags = typeof tables === 'function' ? tables : (name) => tables[name] ?? [];
    this.entries = new Map(); // key -> { kind, record, size } in LRU order
    this.bytes = 0;
    this.manifest = new Map(); // scope -> { stale?, expired? } (ms)
    this.allExpiredAt = 0; // a resync or a lost listener: everything before it is expired
    this.pendingSets = new Map();
    this.missAt = new Map(); // ISR: when the last miss of a key was seen (its render started)
    this.building = options.building ?? process.env.NEXT_PHASE === 'phase-production-build';
    this.stats = {
      hits: 0,
      misses: 0,
      sets: 0,
      evictions: 0,
      expiredByTag: 0,
      published: 0,
      received: 0,
      notStored: 0,
    };
    this.pool = null;
    this.cache = null;
    this.starting = null;
  }

  // The pool that publishes invalidations and the listener, created on first use.
  ensureStarted() {
    if (this.building) return Promise.resolve(false);
    if (this.cache === null) {
      const connectionString = this.options.connectionString ?? process.env.DATABASE_URL;
      if (this.options.pool) {
        this.pool = this.options.pool;
      } else {
        const { Pool } = loadPg();
        this.pool = new Pool({
          ...(connectionString ? { connectionString } : {}),
          max: this.options.poolMax ?? 2,
          idleTimeoutMillis: 10000,
        });
        this.pool.on('error', () => {});
      }
      this.cache =
        this.options.cache ??
        new PoolguardCache({
          pool: this.pool,
          max: 1,
          connect: this.options.connect,
          ...(connectionString ? { connectionString } : {}),
          autoStart: false,
          listenerApplicationName: this.options.listenerApplicationName,
          mode: this.options.mode,
        });
      this.cache.on('invalidation', (items) => this.onItems(items));
      this.cache.on('resync', () => this.expireAll());
      this.cache.on('disconnected', () => this.expireAll());
      this.cache.on('warning', () => {});
    }
    if (this.cache.listening) return Promise.resolve(true);
    // Started once: after a failure the cache keeps reconnecting in the background by itself.
    if (this.starting === null)
      this.starting = this.cache.start().then(
        () => true,
        () => false,
      );
    return this.starting.then(() => this.cache.listening);
  }

  expireAll() {
    this.allExpiredAt = this.now();
    this.clear();
  }

  clear() {
    this.entries.clear();
    this.bytes = 0;
  }

  onItems(items) {
    const now = this.now();
    for (const item of items) {
      if (item.resync || item.scope === null) continue;
      this.stats.received++;
      if (item.scope.startsWith('tag:') || item.scope.startsWith('tag#')) {
        const m = item.key === null ? null : STALE_KEY.exec(item.key);
        if (item.key === null) this.mark(item.scope, { expired: now });
        else if (m)
          this.mark(item.scope, { stale: now, ...(m[1] === '-' ? {} : { expired: now + Number(m[1]) * 1000 }) });
      } else if (item.scope.startsWith('table:') && item.key === null) {
        const table = item.scope.slice('table:'.length);
        this.mark(tagScope(item.scope), { expired: now });
        let mapped = [];
        try {
          mapped = this.tableTags(table) ?? [];
        } catch (_) {
          mapped = [];
        }
        for (const tag of mapped) this.mark(tagScope(tag), { expired: now });
      }
    }
  }

  mark(scope, update) {
    const prev = this.manifest.get(scope) ?? {};
    this.manifest.set(scope, { ...prev, ...update });
    // Entries with this tag are dropped on their next get (their timestamps decide).
  }

  // Timestamp (ms) of the last expiry of any of the tags (0: never; allExpiredAt counts).
  expiredAt(tags, at = this.now()) {
    let t = this.allExpiredAt;
    for (const tag of tags ?? []) {
      const e = this.manifest.get(tagScope(tag))?.expired;
      if (typeof e === 'number' && e <= at && e > t) t = e;
    }
    return t;
  }

  staleAt(tags) {
    let t = 0;
    for (const tag of tags ?? []) {
      const s = this.manifest.get(tagScope(tag))?.stale;
      if (typeof s === 'number' && s > t) t = s;
    }
    return t;
  }

  // Publishes the tags' expiry through the database; applies it here at once as well.
  async publish(tags, durations) {
    const scopes = [...new Set(tags.map(tagScope))];
    const key = durations
      ? `stale:${durations.expire === undefined ? '-' : Math.max(0, Math.floor(durations.expire))}`
      : null;
    const now = this.now();
    for (const s of scopes) {
      if (key === null) this.mark(s, { expired: now });
      else
        this.mark(s, {
          stale: now,
          ...(durations.expire === undefined
            ? {}
            : { expired: now + Math.max(0, Math.floor(durations.expire)) * 1000 }),
        });
    }
    if (!(await this.ensureStarted()) && this.building) return;
    await this.pool.query('SELECT count(poolguard.invalidate(s, $2)) FROM unnest($1::text[]) AS s', [scopes, key]);
    this.stats.published += scopes.length;
  }

  store(key, record, size) {
    this.delete(key);
    if (size > this.maxBytes || this.maxEntries === 0) {
      this.stats.notStored++;
      return;
    }
    this.entries.set(key, { record, size });
    this.bytes += size;
    while (this.bytes > this.maxBytes || this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      this.delete(oldest);
      this.stats.evictions++;
    }
  }

  lookup(key) {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.record;
  }

  delete(key) {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    this.bytes -= e.size;
  }

  async stop() {
    if (this.cache) await this.cache.stop();
    if (this.pool && !this.options.pool && typeof this.pool.end === 'function') await this.pool.end();
    this.cache = null;
    this.pool = null;
    this.starting = null;
  }
}

// One core per process and options object (Next.js may load a handler module more than once).
function sharedCore(options) {
  const registry = globalThis[SINGLETON] ?? (globalThis[SINGLETON] = new Map());
  const name = options.name ?? 'default';
  let core = registry.get(name);
  if (core === undefined) {
    core = new NextCacheCore(options);
    registry.set(name, core);
  }
  return core;
}

async function readStream(stream) {
  const chunks = [];
  let size = 0;
  const reader = stream.getReader();
  for (let r; !(r = await reader.read()).done;) {
    const chunk = r.value instanceof Uint8Array ? r.value : Buffer.from(r.value);
    chunks.push(chunk);
    size += chunk.byteLength;
  }
  return { chunks, size };
}

function streamOf(chunks) {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
}

// The 'use cache' handler (Next.js 16 cacheHandlers: get, set, refreshTags, getExpiration, updateTags).
function createCacheHandler(options = {}) {
  const core = options.core ?? sharedCore(options);
  return {
    async get(cacheKey, softTags) {
      const pending = core.pendingSets.get(cacheKey);
      if (pending) await pending;
      const entry = core.lookup(`rsc\u0000${cacheKey}`);
      if (entry === undefined) {
        core.stats.misses++;
        return undefined;
      }
      const now = core.now();
      if (
        now > entry.timestamp + entry.revalidate * 1000 ||
        now > entry.timestamp + entry.expire * 1000 ||
        core.expiredAt([...entry.tags, ...(softTags ?? [])], now) > entry.timestamp
      ) {
        core.delete(`rsc\u0000${cacheKey}`);
        core.stats.misses++;
        core.stats.expiredByTag++;
        return undefined;
      }
      core.stats.hits++;
      const revalidate = core.staleAt(entry.tags) > entry.timestamp ? -1 : entry.revalidate;
      return { ...entry, revalidate, value: streamOf(entry.chunks) };
    },

    async set(cacheKey, pendingEntry) {
      let resolve;
      const done = new Promise((r) => {
        resolve = r;
      });
      core.pendingSets.set(cacheKey, done);
      try {
        const entry = await pendingEntry;
        const { chunks, size } = await readStream(entry.value);
        const live = await core.ensureStarted();
        // An expiry of one of its tags after the render started, or a listener not connected
        // (outside next build): not stored.
        if ((!live && !core.building) || core.expiredAt(entry.tags) > entry.timestamp) {
          core.stats.notStored++;
          return;
        }
        const meta = { ...entry };
        delete meta.value;
        core.store(`rsc\u0000${cacheKey}`, { ...meta, tags: [...entry.tags], chunks }, size + 200);
        core.stats.sets++;
      } catch (_) {
        // A stream that errored is not cached.
      } finally {
        resolve();
        if (core.pendingSets.get(cacheKey) === done) core.pendingSets.delete(cacheKey);
      }
    },

    async refreshTags() {
      // Expiries arrive by notification; this only makes sure the listener runs.
      await core.ensureStarted();
    },

    async getExpiration(tags) {
      return core.expiredAt(tags, Infinity);
    },

    async updateTags(tags, durations) {
      await core.publish(tags, durations);
    },

    core,
  };
}

// Bytes an ISR value holds (Buffers and strings; other fields counted roughly).
function valueSize(value) {
  let size = 200;
  const seen = new Set();
  const walk = (v, depth) => {
    if (v === null || v === undefined || depth > 6) return;
    if (typeof v === 'string') size += v.length * 2;
    else if (Buffer.isBuffer(v) || v instanceof Uint8Array) size += v.byteLength;
    else if (v instanceof Map)
      for (const [k, x] of v) {
        walk(k, depth + 1);
        walk(x, depth + 1);
      }
    else if (typeof v === 'object' && !seen.has(v)) {
      seen.add(v);
      for (const x of Object.values(v)) walk(x, depth + 1);
    } else size += 8;
  };
  walk(value, 0);
  return size;
}

function valueTags(value, ctx) {
  const tags = [...(ctx?.tags ?? [])];
  const header = value?.headers?.['x-next-cache-tags'];
  if (typeof header === 'string') tags.push(...header.split(','));
  return tags;
}

// The ISR / route-handler cache handler (Next.js cacheHandler): a class Next.js instantiates
// per request; every instance shares the process's core.
function createIncrementalCacheHandler(options = {}) {
  const core = options.core ?? sharedCore(options);
  return class PoolguardIncrementalCache {
    constructor(ctx) {
      this.ctx = ctx;
      this.core = core;
    }

    async get(cacheKey, ctx) {
      const entry = core.lookup(`isr\u0000${cacheKey}`);
      if (entry === undefined) {
        core.stats.misses++;
        core.missAt.set(cacheKey, core.now());
        if (core.missAt.size > core.maxEntries * 2) core.missAt.delete(core.missAt.keys().next().value);
        return null;
      }
      const tags = [...entry.tags, ...(ctx?.tags ?? []), ...(ctx?.softTags ?? [])];
      if (core.expiredAt(tags) > entry.lastModified) {
        core.delete(`isr\u0000${cacheKey}`);
        core.stats.misses++;
        core.stats.expiredByTag++;
        core.missAt.set(cacheKey, core.now());
        return null;
      }
      core.stats.hits++;
      return { lastModified: entry.lastModified, value: entry.value };
    }

    async set(cacheKey, data, ctx) {
      // The render started at the miss that led to it (or now): an expiry after that start
      // means the data may predate the change.
      const startedAt = core.missAt.get(cacheKey) ?? core.now();
      core.missAt.delete(cacheKey);
      if (data === null || data === undefined) {
        core.delete(`isr\u0000${cacheKey}`);
        return;
      }
      const live = await core.ensureStarted();
      const tags = valueTags(data, ctx);
      if ((!live && !core.building) || core.expiredAt(tags) > startedAt) {
        core.stats.notStored++;
        return;
      }
      core.store(`isr\u0000${cacheKey}`, { value: data, tags, lastModified: startedAt }, valueSize(data));
      core.stats.sets++;
    }

    async revalidateTag(tags, durations) {
      await core.publish([tags].flat(), durations);
    }

    resetRequestCache() {}
  };
}

module.exports = { createCacheHandler, createIncrementalCacheHandler, tagScope, NextCacheCore };
