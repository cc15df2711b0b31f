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

export interface PoolguardCacheOptions {
  /** Runs cache_generation() (and your loaders): a pg.Pool or anything with query(). */
  pool: Queryable;
  /**
   * Returns a connected, dedicated client for LISTEN (not behind a transaction-mode pooler).
   * Pass `application_name` on to the client so that its login is counted to the listener's
   * policy. Default: a new pg.Client from the PG* environment variables.
   */
  connect?: (options: { application_name?: string }) => Promise<ListenerClient>;
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
}

export class PoolguardCache extends EventEmitter {
  constructor(options: PoolguardCacheOptions);
  readonly stats: PoolguardCacheStats;
  /** The listener is connected and LISTENs (mode 'poll': the last poll succeeded). */
  readonly listening: boolean;
  readonly listener: ListenerClient | null;
  readonly entries: LruTtl;
  /** Connects the listener; resolves once it LISTENs (retries in the background either way). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The cached value of (scope, key), or loader()'s result cached with its generation. */
  get<T>(scope: string, key: string | number | null | undefined, loader: () => Promise<T> | T): Promise<T>;
  /** Drops one key (key null: the whole scope) locally; returns how many entries. */
  drop(scope: string, key?: string | number | null): number;
  /** poolguard.cache_generation(scope, key). */
  generation(scope: string, key?: string | null): Promise<bigint>;

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

/** Parses and validates a notification payload; throws a Rejection when malformed. */
export function parsePayload(payload: unknown): InvalidationItem[];
