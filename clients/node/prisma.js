'use strict';
// pg-poolguard-cache/prisma — a Prisma Client extension with Accelerate's cacheStrategy, kept
// fresh by pg_poolguard: prisma.$extends(withPoolguardCache()).
//
//  - Reads (findUnique[OrThrow], findFirst[OrThrow], findMany, count, aggregate, groupBy) that
//    pass cacheStrategy: { ttl?, swr?, tags?, fresh? } are cached in this process, keyed by
//    model + normalized args.  ttl and swr are in seconds, as in Accelerate: fresh for ttl, then
//    served stale for up to swr more seconds while one background load refreshes it.
//  - An entry depends on the tables its query reads: its model and every relation its
//    include / select / where / orderBy / _count reaches (the client's runtime data model).  A
//    committed change to any of them (poolguard.track_table() publishes 'table:<name>'), or a
//    committed $poolguard.invalidate({ tags }), drops it on every instance — whether the write
//    came from Prisma, raw SQL or another service.
//  - fresh: true serves a cached value only after confirming, in one round trip shared by the
//    reads of the same tick, that no table or tag it depends on has a newer generation.
//  - This instance's own writes through the extended client drop the entries of their model at
//    once (inside an interactive transaction: dropped now, and not cached again until the
//    commit's notification arrives).
//  - Nothing is cached while the listener is not connected (or in a transaction); a resync or a
//    lost listener clears the cache.
//
// The listener is a PoolguardCache (index.js); generations and tracked_tables are read through
// the Prisma client itself (no second pool).

const { PoolguardCache } = require('./index');

const READS = new Set([
  'findUnique',
  'findUniqueOrThrow',
  'findFirst',
  'findFirstOrThrow',
  'findMany',
  'count',
  'aggregate',
  'groupBy',
]);
const WRITES = new Set([
  'create',
  'createMany',
  'createManyAndReturn',
  'update',
  'updateMany',
  'updateManyAndReturn',
  'upsert',
  'delete',
  'deleteMany',
]);
// Accelerate's limits on tags; the scope 'tag:<tag>' must fit in 63 bytes.
const TAG_RE = /^[A-Za-z0-9_]{1,59}$/;
const MAX_TAGS = 5;
const TRACKED_SQL = 'SELECT scope, table_scope, key_columns FROM poolguard.tracked_tables';
// Field types whose equality on a key column is matched against published row keys (the
// column's text output equals String(value)).
const ROW_FILTER_TYPES = new Set(['Int', 'BigInt', 'String']);

// Prisma-engine URL parameters that a driver adapter (PrismaPg) does not read, and where each
// goes in a pg.Pool configuration (null: nothing equivalent).
const ENGINE_PARAMS = {
  connection_limit: { pool: 'max', convert: (v) => positiveInt(v) },
  pool_timeout: { pool: 'connectionTimeoutMillis', convert: (v) => seconds(v) },
  connect_timeout: { pool: 'connectionTimeoutMillis', convert: (v) => seconds(v) },
  socket_timeout: { pool: 'query_timeout', convert: (v) => seconds(v) },
  max_connection_lifetime: { pool: 'maxLifetimeSeconds', convert: (v) => positiveInt(v) },
  max_idle_connection_lifetime: { pool: 'idleTimeoutMillis', convert: (v) => seconds(v) },
  statement_cache_size: { pool: null },
  pgbouncer: { pool: null },
  schema: { pool: null, note: 'pass it to PrismaPg: new PrismaPg(pool, { schema })' },
};

function positiveInt(v) {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}
function seconds(v) {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.round(n * 1000) : undefined;
}

// Reads a DATABASE_URL the way Prisma's engine did: returns the pg.Pool configuration that
// enforces what it can (connectionString without the engine parameters, max, timeouts), and
// what was mapped or ignored.  Never logs the URL (it carries the password).
// Without a URL (e.g. during `next build`), an empty configuration: pg falls back to PG*.
function prismaPoolConfig(url = process.env.DATABASE_URL) {
  if (url === undefined || url === '') return { config: {}, mapped: [], ignored: [] };
  if (typeof url !== 'string') throw new TypeError('the connection URL must be a string');
  let parsed;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new TypeError('the connection URL is not a valid URL');
  }
  const config = {};
  const mapped = [];
  const ignored = [];
  for (const [name, how] of Object.entries(ENGINE_PARAMS)) {
    if (!parsed.searchParams.has(name)) continue;
    const raw = parsed.searchParams.get(name);
    parsed.searchParams.delete(name);
    const value = how.pool && how.convert ? how.convert(raw) : undefined;
    if (how.pool && value !== undefined) {
      // pool_timeout and connect_timeout share pg's one setting: the smaller wins.
      if (how.pool in config) config[how.pool] = Math.min(config[how.pool], value);
      else config[how.pool] = value;
      mapped.push({ param: name, value: raw, pool: how.pool, poolValue: config[how.pool] });
    } else {
      ignored.push({
        param: name,
        value: raw,
        note: how.note ?? (how.pool ? 'not a valid value' : 'no pg.Pool equivalent'),
      });
    }
  }
  config.connectionString = parsed.toString();
  return { config, mapped, ignored };
}

// The engine parameters a URL carries (names only), for the warning.
function engineParamsIn(url) {
  try {
    const parsed = new URL(url);
    return Object.keys(ENGINE_PARAMS).filter((p) => parsed.searchParams.has(p));
  } catch (_) {
    return [];
  }
}

// ---- normalized args: one key per meaning ----
function stableStringify(value) {
  return JSON.stringify(normalize(value));
}
function normalize(v) {
  if (v === null || v === undefined) return v;
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (typeof Buffer !== 'undefined' && Buffer.isBuffer(v)) return { $bytes: v.toString('base64') };
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'object') {
    if (typeof v.toJSON === 'function' && Object.getPrototypeOf(v) !== Object.prototype) return { $json: v.toJSON() };
    const out = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = normalize(v[k]);
    return out;
  }
  return v;
}

function validateStrategy(strategy) {
  if (strategy === null || typeof strategy !== 'object' || Array.isArray(strategy)) {
    throw new TypeError('cacheStrategy must be an object: { ttl?, swr?, tags?, fresh? }');
  }
  for (const k of Object.keys(strategy)) {
    if (!['ttl', 'swr', 'tags', 'fresh'].includes(k)) throw new TypeError(`cacheStrategy has an unknown option "${k}"`);
  }
  const ttl = strategy.ttl ?? 0;
  const swr = strategy.swr ?? 0;
  if (!Number.isFinite(ttl) || ttl < 0) throw new TypeError('cacheStrategy.ttl must be a number of seconds >= 0');
  if (!Number.isFinite(swr) || swr < 0) throw new TypeError('cacheStrategy.swr must be a number of seconds >= 0');
  const tags = strategy.tags ?? [];
  if (!Array.isArray(tags) || tags.length > MAX_TAGS || !tags.every((t) => typeof t === 'string' && TAG_RE.test(t))) {
    throw new TypeError(
      `cacheStrategy.tags must be at most ${MAX_TAGS} tags of 1 to 59 letters, digits or underscores`,
    );
  }
  if (strategy.fresh !== undefined && typeof strategy.fresh !== 'boolean')
    throw new TypeError('cacheStrategy.fresh must be a boolean');
  return { ttlMs: ttl * 1000, swrMs: swr * 1000, tags, fresh: strategy.fresh === true };
}

function tagScope(tag) {
  return `tag:${tag}`;
}

class PrismaCacheCore {
  constructor(options, client) {
    this.client = client;
    this.options = options;
    this.now = options.now ?? Date.now;
    this.max = options.max ?? 1000;
    this.pendingMs = options.pendingInvalidationMs ?? 30000;
    this.models = dataModel(client);
    this.scopeOverrides = options.tables ?? {};
    this.entries = new Map(); // id -> entry, in LRU order (oldest first)
    this.byScope = new Map(); // scope -> Set(id)
    this.inflight = new Set();
    this.pending = new Map(); // scope -> deadline: written in an open transaction here
    this.epoch = 0;
    this.generationBatch = null;
    this.warned = new Set();
    this.tracked = null; // Set of tracked table scopes, once read
    this.trackedBy = new Map(); // table scope -> { rowScope, keyColumns }
    this.rowScopes = new Map(); // row scope -> keyColumns
    this.stats = {
      hits: 0,
      misses: 0,
      staleServed: 0,
      invalidated: 0,
      freshHits: 0,
      freshStale: 0,
      freshBatches: 0,
      uncached: 0,
      writes: 0,
    };
    const queryable = options.pool ?? {
      query: async (text, values = []) => ({ rows: await client.$queryRawUnsafe(text, ...values) }),
    };
    this.queryable = queryable;
    this.cache =
      options.cache ??
      new PoolguardCache({
        pool: queryable,
        max: 1,
        connect: options.connect,
        connectionString: listenerConnectionString(options.connectionString ?? process.env.DATABASE_URL),
        autoStart: false,
        listenerApplicationName: options.listenerApplicationName,
        mode: options.mode,
        channel: options.channel,
      });
    this.cache.on('invalidation', (items) => this.onItems(items));
    this.cache.on('resync', () => this.clear());
    // Each (re)connect reads tracked_tables again (tables tracked since are picked up).
    this.cache.on('listening', () => {
      this.epoch++;
      this.loadTracked();
    });
    this.cache.on('disconnected', () => this.clear());
    this.cache.on('warning', (w) => this.warn(w.kind, w.message));
    this.starting = null;
    const params = engineParamsIn(options.databaseUrl ?? process.env.DATABASE_URL ?? '');
    if (params.length > 0 && options.warnEnginePoolParams !== false) {
      this.warn(
        'engine-params',
        `DATABASE_URL carries Prisma-engine pool parameters that @prisma/adapter-pg ignores (${params.join(', ')}): ` +
          'build the pg.Pool with prismaPoolConfig() from pg-poolguard-cache/prisma, and cap the app server-side ' +
          'with a pg_poolguard policy (max_connections)',
      );
    }
  }

  warn(kind, message) {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    const onWarning =
      this.options.onWarning ??
      ((m) => process.emitWarning(m, { code: `POOLGUARD_${kind.toUpperCase().replace(/-/g, '_')}` }));
    try {
      onWarning(message, kind);
    } catch (_) {
      /* a warning handler must not break a query */
    }
  }

  // Starts the listener once; a failure leaves reads uncached (the cache retries in the background).
  ensureStarted() {
    if (this.cache.listening) return Promise.resolve(true);
    if (this.starting === null) {
      this.starting = this.cache.start().then(
        () => true,
        (err) => {
          this.warn(
            'listener',
            `pg_poolguard listener not connected yet (${err && err.message}); reads are not cached until it is`,
          );
          return false;
        },
      );
    }
    return this.starting.then(() => this.cache.listening);
  }

  async loadTracked() {
    try {
      const res = await this.queryable.query(TRACKED_SQL);
      this.tracked = new Set(res.rows.map((r) => r.table_scope));
      for (const r of res.rows) {
        const keyColumns = Array.isArray(r.key_columns) ? r.key_columns : parseTextArray(r.key_columns);
        this.trackedBy.set(r.table_scope, { rowScope: r.scope, keyColumns });
        this.rowScopes.set(r.scope, keyColumns);
      }
    } catch (err) {
      this.tracked = null;
    }
  }

  // The scope of a model's table: track_table()'s default table_scope, or the option `tables`.
  modelScope(model) {
    if (this.scopeOverrides[model]) return this.scopeOverrides[model];
    const m = this.models[model];
    const table = m?.dbName ?? model;
    const schema = m?.schema;
    return `table:${schema && schema !== 'public' ? `${schema}.` : ''}${table}`;
  }

  // Every table scope a query on `model` with `args` reads.
  dependencies(model, args) {
    const models = new Set([model]);
    const walk = (value, at) => {
      if (value === null || typeof value !== 'object') return;
      if (Array.isArray(value)) {
        for (const v of value) walk(v, at);
        return;
      }
      const relations = this.models[at]?.relations ?? {};
      for (const [k, v] of Object.entries(value)) {
        if (k in relations) {
          models.add(relations[k]);
          walk(v, relations[k]);
        } else if (k === '_count' && v === true) {
          for (const r of Object.values(relations)) models.add(r);
        } else {
          walk(v, at);
        }
      }
    };
    walk(args, model);
    const genScopes = [...models].map((m) => this.modelScope(m));
    const scopes = [...genScopes];
    // The model's own table: when the where clause pins a key column (mentorId: 7), only rows
    // with that value can change the result, so the entry listens to those rows' keys instead of
    // to every change of the table.
    // (Not when the query also reaches the same table through a relation.)
    const filter = this.rowFilter(model, args);
    if (filter !== null && !walkedRelationTo(this.models, model, args)) scopes[0] = filter;
    if (this.tracked !== null) {
      const untracked = genScopes.filter((s) => !this.tracked.has(s));
      if (untracked.length > 0) {
        this.warn(
          `untracked:${untracked.join(',')}`,
          `cached Prisma reads depend on ${untracked.join(', ')}, which no poolguard.track_table() publishes: ` +
            'such entries expire only by ttl/swr (run SELECT poolguard.track_table(...) for each table)',
        );
      }
    }
    return { scopes, genScopes };
  }

  // 'row\0<row scope>\0<column>\0<value>' when args.where pins a key column of the model's
  // tracked table to one Int, BigInt or String value; else null.
  rowFilter(model, args) {
    const tracked = this.trackedBy.get(this.modelScope(model));
    const scalars = this.models[model]?.scalars;
    const where = args?.where;
    if (!tracked || !scalars || where === null || typeof where !== 'object' || Array.isArray(where)) return null;
    const pick = (obj) => {
      for (const [k, v] of Object.entries(obj)) {
        const f = scalars[k];
        if (f === undefined || !ROW_FILTER_TYPES.has(f.type) || !tracked.keyColumns.includes(f.column)) continue;
        let value = v;
        if (
          value !== null &&
          typeof value === 'object' &&
          !Array.isArray(value) &&
          Object.keys(value).length === 1 &&
          'equals' in value
        )
          value = value.equals;
        if (typeof value === 'number' && Number.isInteger(value)) return [f.column, String(value)];
        if (typeof value === 'bigint' || typeof value === 'string') return [f.column, String(value)];
      }
      return null;
    };
    let found = pick(where);
    if (found === null) {
      // A compound unique input: { mentorId_schoolId: { mentorId, schoolId } }.
      for (const [k, v] of Object.entries(where)) {
        if (
          k in scalars ||
          k === 'AND' ||
          k === 'OR' ||
          k === 'NOT' ||
          v === null ||
          typeof v !== 'object' ||
          Array.isArray(v) ||
          (this.models[model]?.relations ?? {})[k] !== undefined
        )
          continue;
        found = pick(v);
        if (found !== null) break;
      }
    }
    return found === null ? null : `row\u0000${tracked.rowScope}\u0000${found[0]}\u0000${found[1]}`;
  }

  async read(model, operation, args, query) {
    const { cacheStrategy, ...rest } = args ?? {};
    const strategy = validateStrategy(cacheStrategy);
    const deps = this.dependencies(model, rest);
    const tags = strategy.tags.map(tagScope);
    const scopes = [...new Set([...deps.scopes, ...tags])];
    const genScopes = [...new Set([...deps.genScopes, ...tags])];
    const id = `${model}\u0000${operation}\u0000${stableStringify(rest)}`;
    const live = await this.ensureStarted();
    if (!live) {
      this.stats.uncached++;
      return query(rest);
    }
    const now = this.now();
    const entry = this.entries.get(id);
    if (entry !== undefined && entry.epoch === this.epoch) {
      const age = now - entry.storedAt;
      if (age <= entry.ttlMs + entry.swrMs) {
        if (strategy.fresh) {
          const current = await this.currentGenerations(entry.genScopes);
          if (
            entry.generations !== null &&
            entry.genScopes.every((s, i) => current.get(s) <= entry.generations[i]) &&
            this.entries.get(id) === entry
          ) {
            this.stats.freshHits++;
            this.touch(id, entry);
            return entry.value;
          }
          this.stats.freshStale++;
          this.delete(id);
        } else {
          this.touch(id, entry);
          if (age <= entry.ttlMs) {
            this.stats.hits++;
            return entry.value;
          }
          this.stats.staleServed++;
          if (!entry.revalidating) {
            entry.revalidating = true;
            this.load(id, scopes, genScopes, strategy, rest, query, true).catch(() => {
              entry.revalidating = false;
            });
          }
          return entry.value;
        }
      } else {
        this.delete(id);
      }
    } else if (entry !== undefined) {
      this.delete(id);
    }
    this.stats.misses++;
    return this.load(id, scopes, genScopes, strategy, rest, query, strategy.fresh);
  }

  async load(id, scopes, genScopes, strategy, args, query, withGenerations) {
    const load = { scopes: new Set(scopes), epoch: this.epoch, invalidated: false };
    this.inflight.add(load);
    try {
      let generations = null;
      if (withGenerations) {
        const current = await this.currentGenerations(genScopes); // generations first ...
        generations = genScopes.map((s) => current.get(s));
      }
      const value = await query(args); // ... then the data
      const now = this.now();
      const pending = genScopes.some((s) => (this.pending.get(s) ?? 0) > now);
      if (
        !load.invalidated &&
        load.epoch === this.epoch &&
        this.cache.listening &&
        !pending &&
        strategy.ttlMs + strategy.swrMs > 0
      ) {
        this.store(id, {
          value,
          scopes,
          genScopes,
          generations,
          storedAt: now,
          ttlMs: strategy.ttlMs,
          swrMs: strategy.swrMs,
          epoch: load.epoch,
          revalidating: false,
        });
      }
      return value;
    } finally {
      this.inflight.delete(load);
    }
  }

  // Current generations of scopes; concurrent callers of the same tick share one query.
  currentGenerations(scopes) {
    if (this.generationBatch === null) {
      const batch = { scopes: new Set(), promise: null };
      this.generationBatch = batch;
      batch.promise = new Promise((resolve) => queueMicrotask(resolve)).then(async () => {
        this.generationBatch = null;
        this.stats.freshBatches++;
        const scopes = [...batch.scopes];
        // The client's batched cache_generation() (a missing extension: PoolguardSetupError).
        const gens = await this.cache.generations(scopes.map((s) => [s, null]));
        return new Map(scopes.map((s, i) => [s, gens[i]]));
      });
    }
    for (const s of scopes) this.generationBatch.scopes.add(s);
    return this.generationBatch.promise;
  }

  store(id, entry) {
    this.delete(id);
    this.entries.set(id, entry);
    for (const s of entry.scopes) {
      let ids = this.byScope.get(s);
      if (ids === undefined) this.byScope.set(s, (ids = new Set()));
      ids.add(id);
    }
    while (this.entries.size > this.max) this.delete(this.entries.keys().next().value);
  }

  touch(id, entry) {
    this.entries.delete(id);
    this.entries.set(id, entry);
  }

  delete(id) {
    const entry = this.entries.get(id);
    if (entry === undefined) return false;
    this.entries.delete(id);
    for (const s of entry.scopes) {
      const ids = this.byScope.get(s);
      if (ids) {
        ids.delete(id);
        if (ids.size === 0) this.byScope.delete(s);
      }
    }
    return true;
  }

  dropScope(scope) {
    const ids = this.byScope.get(scope);
    let n = 0;
    if (ids) for (const id of [...ids]) if (this.delete(id)) n++;
    for (const load of this.inflight) if (load.scopes.has(scope)) load.invalidated = true;
    this.stats.invalidated += n;
    return n;
  }

  onItems(items) {
    for (const item of items) {
      if (item.resync || item.scope === null) continue;
      // Any item of a table scope (key NULL) or a tag scope: the table or tag changed.
      this.pending.delete(item.scope);
      this.dropScope(item.scope);
      // A row of a tracked table: the entries whose key-column filter it matches (its old and
      // new keys are both published); the whole row scope: all of them.
      const keyColumns = this.rowScopes.get(item.scope);
      if (keyColumns !== undefined) {
        const values = item.key === null ? null : parseRowKey(item.key, keyColumns.length);
        if (values === null) this.dropRowScope(item.scope);
        else keyColumns.forEach((c, i) => this.dropScope(`row\u0000${item.scope}\u0000${c}\u0000${values[i]}`));
      }
    }
  }

  // Every row-filtered entry (and load) of a row scope.
  dropRowScope(rowScope) {
    const prefix = `row\u0000${rowScope}\u0000`;
    for (const s of [...this.byScope.keys()]) if (s.startsWith(prefix)) this.dropScope(s);
    for (const load of this.inflight) for (const s of load.scopes) if (s.startsWith(prefix)) load.invalidated = true;
  }

  clear() {
    this.epoch++;
    this.entries.clear();
    this.byScope.clear();
    for (const load of this.inflight) load.invalidated = true;
  }

  // A write through this client: drop now; inside a transaction, keep the scope uncacheable
  // until its commit's notification (or pendingInvalidationMs, for a rollback).
  wrote(scopes, inTransaction) {
    this.stats.writes++;
    for (const s of scopes) {
      if (inTransaction) this.pending.set(s, this.now() + this.pendingMs);
      this.dropScope(s);
      const tracked = this.trackedBy.get(s);
      if (tracked !== undefined) this.dropRowScope(tracked.rowScope);
    }
  }
}

// The runtime data model of a generated client: { Model: { dbName, schema, relations: { field: Model } } }.
function dataModel(client) {
  const rdm = client?._runtimeDataModel ?? client?._engineConfig?.runtimeDataModel;
  const out = {};
  for (const [name, m] of Object.entries(rdm?.models ?? {})) {
    const relations = {};
    const scalars = {};
    for (const f of m.fields ?? []) {
      if (f.kind === 'object') relations[f.name] = f.type;
      else if (f.kind === 'scalar') scalars[f.name] = { column: f.dbName ?? f.name, type: f.type };
    }
    out[name] = { dbName: m.dbName ?? null, schema: m.schema ?? null, relations, scalars };
  }
  return out;
}

// A published row key: the text of a one-column key, or a JSON array of strings (composite).
function parseRowKey(key, n) {
  if (n === 1) return [key];
  try {
    const v = JSON.parse(key);
    return Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'string') ? v : null;
  } catch (_) {
    return null;
  }
}

// A text[] as PostgreSQL prints it ({a,b} or {"a b",c}), for drivers that return it as text.
function parseTextArray(text) {
  if (typeof text !== 'string' || !text.startsWith('{')) return [];
  const out = [];
  const re = /"((?:[^"\\]|\\.)*)"|([^,{}]+)/g;
  for (let m; (m = re.exec(text.slice(1, -1))) !== null;)
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

// True when args reach a relation back to the model itself (its table is then read at large).
function walkedRelationTo(models, model, args) {
  let found = false;
  const walk = (value, at) => {
    if (found || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((v) => walk(v, at));
    const relations = models[at]?.relations ?? {};
    for (const [k, v] of Object.entries(value)) {
      if (k in relations) {
        if (relations[k] === model) found = true;
        walk(v, relations[k]);
      } else if (k === '_count' && v === true) {
        if (Object.values(relations).includes(model)) found = true;
      } else walk(v, at);
    }
  };
  walk(args, model);
  return found;
}

// The listener's connection string: DATABASE_URL without the Prisma-engine parameters (the
// client's default listener, node-postgres, would pass them on as settings).
function listenerConnectionString(connectionString) {
  return connectionString ? prismaPoolConfig(connectionString).config.connectionString : undefined;
}

// prisma.$extends(withPoolguardCache(options))
function withPoolguardCache(options = {}) {
  if (options === null || typeof options !== 'object')
    throw new TypeError('withPoolguardCache options must be an object');
  return (client) => {
    const core = new PrismaCacheCore(options, client);
    const invalidate = (input, tx) => {
      const tags = input?.tags;
      if (!Array.isArray(tags) || tags.length === 0 || !tags.every((t) => typeof t === 'string' && TAG_RE.test(t))) {
        throw new TypeError('invalidate({ tags }) needs tags of 1 to 59 letters, digits or underscores');
      }
      const scopes = tags.map(tagScope);
      const sql = `SELECT count(poolguard.invalidate(s))::int AS n FROM unnest($1::text[]) AS s`;
      if (tx !== undefined) {
        // Inside an interactive transaction: published by its commit; dropped here now.
        core.wrote(scopes, true);
        return tx.$queryRawUnsafe(sql, scopes).then(() => undefined);
      }
      return client.$queryRawUnsafe(sql, scopes).then(() => {
        core.wrote(scopes, false);
      });
    };
    return client.$extends({
      name: 'pg-poolguard-cache',
      client: {
        $poolguard: {
          invalidate,
          stats: core.stats,
          cache: core.cache,
          stop: () => core.cache.stop(),
        },
      },
      query: {
        $allModels: {
          async $allOperations({ model, operation, args, query, __internalParams: internal }) {
            const inTransaction = internal?.transaction !== undefined;
            if (READS.has(operation)) {
              if (args && args.cacheStrategy !== undefined && !inTransaction) {
                return core.read(model, operation, args, query);
              }
              if (args && args.cacheStrategy !== undefined) {
                const { cacheStrategy, ...rest } = args;
                validateStrategy(cacheStrategy);
                return query(rest);
              }
              return query(args);
            }
            const result = await query(args);
            // Nested writes reach related tables: the same walk as for reads (an over-estimate is safe).
            if (WRITES.has(operation)) core.wrote(core.dependencies(model, args ?? {}).genScopes, inTransaction);
            return result;
          },
        },
      },
    });
  };
}

module.exports = { withPoolguardCache, prismaPoolConfig, stableStringify };
