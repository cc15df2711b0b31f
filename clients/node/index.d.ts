// Types of pg-poolguard-cache (CommonJS: index.js, ESM: index.mjs).
import { EventEmitter } from 'node:events';

/** Anything with node-postgres' query(text, values) → { rows } (a pg.Pool, a pg.Client). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** The dedicated LISTEN connection: a connected node-postgres Client. */
export interface ListenerClient extends Queryable {
  on(event: 'notification', listener: (msg: { processId: number; channel: string; payload?: string }) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
  end(): Promise<void>;
  readonly processID?: number | null;
}

/** A postgres.js `sql` instance (adapted to query() by the cache). */
export interface PostgresJsSql {
  unsafe(text: string, values?: unknown[]): PromiseLike<any[]>;
  readonly options?: object;
}

/** A Prisma client, or a Prisma interactive transaction `tx` (adapted through $queryRawUnsafe). */
export interface PrismaLike {
  $queryRawUnsafe(text: string, ...values: unknown[]): PromiseLike<unknown>;
}

/** Anything the cache can run SQL through: a pg.Pool/Client, postgres.js `sql`, a Prisma client or `tx`. */
export type Database = Queryable | PostgresJsSql | PrismaLike;

/** Where the listener's connection settings came from (first that applies, in this order). */
export type ListenerSource = 'connect' | 'connectionString' | 'pool' | 'DATABASE_URL' | 'PG*';

export interface PoolguardCacheOptions {
  /**
   * Runs cache_generation() (and your loaders): a pg.Pool, anything with query(), a postgres.js
   * `sql`, or a Prisma client.
   */
  pool: Database;
  /**
   * Returns a connected, dedicated client for LISTEN (not behind a transaction-mode pooler).
   * Pass `application_name` on to the client so that its login is counted to the listener's
   * policy.  Without it the listener is a pg.Client built from, in this order: `connectionString`;
   * the pool's own settings (a pg.Pool's options, a postgres.js `sql`'s options);
   * `process.env.DATABASE_URL`; the PG* environment variables.
   */
  connect?: (options: { application_name?: string }) => Promise<ListenerClient>;
  /** The listener's connection string (see `connect` for the order). */
  connectionString?: string;
  /**
   * true (default): the first get() (or generation/invalidate call) starts the listener; nothing
   * connects before, so importing a module that builds the cache never connects.  false: only
   * start() does.
   */
  autoStart?: boolean;
  /** Most (scope, key) pairs confirmed in one cache_generation round trip (default 1000). */
  freshBatchMax?: number;
  /**
   * How long a local invalidation (invalidate()) keeps its keys uncacheable when neither
   * committed() nor rolledBack() is called, in ms (default 30000).
   */
  pendingInvalidationMs?: number;
  /** The listener's application_name (default 'pg_poolguard listener'); null leaves it alone. */
  listenerApplicationName?: string | null;
  /** poolguard.notify_channel (default 'poolguard_invalidate'). */
  channel?: string;
  /** Entries kept (LRU, default 1000). */
  max?: number;
  /** Upper bound on an entry's life in ms (default 5 minutes). */
  ttlMs?: number;
  /** Listener reconnect backoff (default { initialMs: 100, maxMs: 5000 }). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Accept notifications only from this database's pg_poolguard publishers (default true). */
  checkSender?: boolean;
  /** Least time between two poolguard.publisher_pids() look-ups, in ms (default 500). */
  senderLookupIntervalMs?: number;
  /** Notifications of unknown senders held until the next look-up (default 1000). */
  maxHeldNotifications?: number;
  /** Least time between two 'resync' events, in ms (default 1000). */
  resyncEventIntervalMs?: number;
  /**
   * 'listen' (default): a dedicated LISTEN connection.  'poll': long polls of
   * poolguard.invalidations_since() through the pool (or `replica`), for hot standbys and
   * transaction-mode poolers, where nobody can LISTEN.
   */
  mode?: 'listen' | 'poll';
  /**
   * The pool your loaders read from when that is a read replica (one server): generations and
   * polls go to it, so a generation is never newer than the data it tags.  Requires mode 'poll'.
   */
  replica?: Queryable | null;
  /** How long one poll waits on the server for an invalidation, in ms (default 10000, at most 600000). */
  pollWaitMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/** Per-call options of get(). */
export interface GetOptions {
  /** Call the loader; neither read nor store the cache (the cached entry stays). */
  bypass?: boolean;
  /** Drop this entry and load it again (generation first, then the loader), and cache the result. */
  refresh?: boolean;
  /**
   * Serve a cached value only after confirming its generation with the server: one
   * cache_generation round trip, batched with the other fresh reads of the same tick.  A value
   * whose key changed in any transaction committed before this call is never served.
   */
  fresh?: boolean;
  /** 'strong' is `fresh: true`; 'cached' (default) serves what notifications keep fresh. */
  consistency?: 'cached' | 'strong';
}

/** A poolguard.invalidate() run inside your transaction; tell the cache how it ended. */
export interface PendingInvalidation {
  readonly scope: string;
  readonly key: string | null;
  /** The transaction committed: this instance's entries are already gone; loads are cached again. */
  committed(): void;
  /** The transaction rolled back: loads are cached again. */
  rolledBack(): void;
}

/** What transaction() hands your function: the checked-out client, and invalidate on it. */
export interface TransactionContext<C = Queryable> {
  readonly client: C;
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
  /** poolguard.invalidate(scope, key) in this transaction; this instance drops the key at commit. */
  invalidate(scope: string, key?: string | number | null): Promise<void>;
}

/** A pool whose connect() checks out a client (pg.Pool). */
export interface ConnectablePool<C extends Queryable = Queryable> extends Queryable {
  connect(): Promise<C & { release(err?: Error | boolean): void }>;
}

export interface PoolSizingOptions {
  /** The policy's max_connections (or the server's budget) for ALL instances of this app. */
  maxConnections: number;
  /** How many instances (processes) run this app. */
  instances: number;
  /** The cache's mode (default 'listen'). */
  mode?: 'listen' | 'poll';
  /**
   * Whether the listener's login counts to the same cap (default true: size for it).  false when
   * the listener has its own policy (the README's 'pg_poolguard listeners').
   */
  listenerCounted?: boolean;
}

export interface PoolSizing {
  /** The pool `max` to set in each instance. */
  poolMax: number;
  /** Connections one instance opens at most: pool + listener (mode 'listen'). */
  perInstance: number;
  /** perInstance × instances: what the server sees at most. */
  total: number;
  /** Of those, counted to the cap. */
  counted: number;
  /** Queries one instance can run at once (the pool minus the poll in mode 'poll'). */
  concurrentQueries: number;
}

/** Pool `max` for each instance such that pool + listener (+ poll) × instances fits the cap. */
export function poolSizing(options: PoolSizingOptions): PoolSizing;

/** pg_poolguard's SQL is missing in this database (or older than this client needs). */
export class PoolguardSetupError extends Error {
  readonly name: 'PoolguardSetupError';
  readonly code: 'POOLGUARD_NOT_INSTALLED' | 'POOLGUARD_OUTDATED';
  /** The database the call ran in (current_database()), when it could be asked. */
  readonly database: string | null;
  /** The statement to run there, e.g. 'CREATE EXTENSION pg_poolguard;'. */
  readonly fix: string;
  readonly cause: unknown;
}

export interface InvalidationItem {
  scope: string | null;
  key: string | null;
  generation: number;
  resync?: true;
}

export type RejectionKind =
  'json' | 'shape' | 'type' | 'size' | 'sender' | 'overflow' | 'handler' | 'internal' | 'sender-check-unavailable';

/** Why a notification was not applied; emitted once per kind through 'warning'. */
export class Rejection extends Error {
  constructor(kind: RejectionKind, message: string);
  readonly name: 'PoolguardRejection';
  readonly code: 'POOLGUARD_REJECTED';
  readonly kind: RejectionKind;
}

export interface PoolguardCacheStats {
  hits: number;
  misses: number;
  rechecks: number;
  staleOnRecheck: number;
  invalidated: number;
  notifications: number;
  resyncs: number;
  reconnects: number;
  /** Notifications rejected (malformed, or not sent by a publisher). */
  rejected: number;
  rejectedByKind: Partial<Record<RejectionKind, number>>;
  publisherLookups: number;
  /** invalidations_since() calls (mode 'poll'). */
  polls: number;
  /** get() calls with bypass. */
  bypasses: number;
  /** get() calls with refresh. */
  refreshes: number;
  /** Cached values confirmed by a fresh read (served) / found stale by one (reloaded). */
  freshHits: number;
  freshStale: number;
  /** cache_generation round trips made for fresh reads (each confirms a batch). */
  freshBatches: number;
  /** Entries dropped by invalidate() on this instance, before any notification. */
  localDrops: number;
}

export class PoolguardCache extends EventEmitter {
  constructor(options: PoolguardCacheOptions);
  readonly stats: PoolguardCacheStats;
  /** The listener is connected and LISTENs (mode 'poll': the last poll succeeded). */
  readonly listening: boolean;
  readonly listener: ListenerClient | null;
  readonly entries: LruTtl;
  /** start() was called (by you, or by the first get() when autoStart). */
  readonly started: boolean;
  /** Where the listener's settings come from (mode 'listen'). */
  readonly listenerSource: ListenerSource;
  /**
   * Connects the listener; resolves once it LISTENs (retries in the background either way).
   * Idempotent.  Optional: with autoStart (the default) the first get() calls it.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * The cached value of (scope, key), or loader()'s result cached with its generation.  key null or
   * undefined: the whole scope (never the same entry as the key 'null'); a number or bigint is the
   * key as text.  Throws TypeError for a scope or key with NUL or a lone surrogate.
   */
  get<T>(
    scope: string,
    key: string | number | bigint | null | undefined,
    loader: () => Promise<T> | T,
    options?: GetOptions,
  ): Promise<T>;
  /** Drops one key (key null: the whole scope) locally; returns how many entries. */
  drop(scope: string, key?: string | number | bigint | null): number;
  /** poolguard.cache_generation(scope, key). */
  generation(scope: string, key?: string | null): Promise<bigint>;
  /** cache_generation of each pair, in one round trip. */
  generations(pairs: ReadonlyArray<readonly [string, string | number | null]>): Promise<bigint[]>;
  /**
   * Runs poolguard.invalidate(scope, key) through `db` — your open transaction's client (pg
   * client, postgres.js transaction `sql`, Prisma `tx`) — and drops the key on this instance now;
   * until you call committed() or rolledBack() (or pendingInvalidationMs passes) the key is
   * loaded but not cached here, so this instance never serves the pre-commit value after the
   * commit, without waiting for the notification.  Other instances drop it on the notification.
   */
  invalidate(db: Database, scope: string, key?: string | number | null): Promise<PendingInvalidation>;
  /**
   * BEGIN; fn(tx); COMMIT on a client checked out of `pool` (default: the cache's pool, a
   * pg.Pool); tx.invalidate() keys are dropped on this instance as the COMMIT returns.  ROLLBACK
   * and rethrow when fn throws.
   */
  transaction<T, C extends Queryable = Queryable>(
    fn: (tx: TransactionContext<C>) => Promise<T>,
    options?: { pool?: ConnectablePool<C> },
  ): Promise<T>;

  on(event: 'invalidation', listener: (items: InvalidationItem[]) => void): this;
  on(event: 'warning', listener: (rejection: Rejection) => void): this;
  on(event: 'resync', listener: (generation: number) => void): this;
  on(event: 'listening' | 'disconnected', listener: () => void): this;
  on(event: 'reconnectError', listener: (err: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export class LruTtl<E extends { scope?: string } = any> {
  constructor(options?: { max?: number; ttlMs?: number; now?: () => number });
  readonly size: number;
  get(id: string): E | undefined;
  peek(id: string): E | undefined;
  set(id: string, entry: E): void;
  delete(id: string): boolean;
  deleteScope(scope: string, pred?: (entry: E) => boolean): number;
  scopeSize(scope: string): number;
  deleteWhere(pred: (entry: E) => boolean): number;
  clear(): number;
}

/** Adapts a pg.Pool/Client, a postgres.js `sql` or a Prisma client to query(text, values) → { rows }. */
export function toQueryable(db: Database): Queryable;

/** Parses and validates a notification payload; throws a Rejection when malformed. */
export function parsePayload(payload: unknown): InvalidationItem[];

/** The session the listener needs: libpq's target_session_attrs values that can LISTEN. */
export type ListenerSessionAttrs = 'any' | 'read-write' | 'primary';

/**
 * The listener's candidate servers, in order, from a multi-host connection string
 * (`postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write`), a settings object whose
 * `host`/`port` are comma lists or arrays, or `PGHOST`/`PGPORT`/`PGTARGETSESSIONATTRS`:
 * node-postgres settings with one host each.  A single host without target_session_attrs gives
 * `[settings]` unchanged.
 */
export function listenerTargets(
  settings?: {
    connectionString?: string;
    host?: string | string[];
    port?: number | string | (number | string)[];
    target_session_attrs?: string;
    [k: string]: unknown;
  },
  env?: Record<string, string | undefined>,
): { targets: object[]; attrs: ListenerSessionAttrs };

/**
 * Connects to `targets` in order (as libpq does) and returns the first client whose session fits:
 * with several targets a server in recovery is skipped, and 'read-write' also skips a read-only
 * session.  Throws an Error naming each host and why when none fits.
 */
export function connectFirst<C extends ListenerClient & { connect(): Promise<unknown> }>(
  targets: object[],
  attrs: ListenerSessionAttrs,
  newClient: (settings: object) => C,
): Promise<C>;
