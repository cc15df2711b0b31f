// Types of pg-poolguard-cache/prisma: prisma.$extends(withPoolguardCache({ ... })).
import type { Args, Exact, InternalArgs, PrismaPromise, Result } from '@prisma/client/runtime/client';
import type { ListenerClient, PoolguardCache, Queryable } from './index';

/** Accelerate's cacheStrategy (ttl and swr in seconds), plus fresh reads. */
export interface PoolguardCacheStrategy {
  /** Seconds the entry is served without a look at the database (default 0). */
  ttl?: number;
  /** Seconds after ttl during which the stale entry is served while one load refreshes it (default 0). */
  swr?: number;
  /** At most 5 tags of 1..59 letters, digits or underscores: $poolguard.invalidate({ tags }) drops the entry. */
  tags?: string[];
  /**
   * Serve a cached value only after confirming with the server (one cache_generation round
   * trip, shared by the fresh reads of the same tick) that nothing it depends on changed since.
   */
  fresh?: boolean;
}

export interface WithCacheStrategy {
  cacheStrategy?: PoolguardCacheStrategy;
}

export interface WithPoolguardCacheOptions {
  /** Entries kept (LRU, default 1000). */
  max?: number;
  /** Model → invalidation scope of its table (default: 'table:' + the table's name, as track_table() publishes). */
  tables?: Record<string, string>;
  /** The listener's connection string (default: DATABASE_URL, then the PG* variables). */
  connectionString?: string;
  /** Returns a connected, dedicated client for LISTEN (overrides connectionString). */
  connect?: (options: { application_name?: string }) => Promise<ListenerClient>;
  /** Runs cache_generation() and reads tracked_tables (default: the Prisma client itself). */
  pool?: Queryable;
  /** An existing PoolguardCache whose listener to use. */
  cache?: PoolguardCache;
  listenerApplicationName?: string | null;
  mode?: 'listen' | 'poll';
  channel?: string;
  /** How long a scope written in an open transaction stays uncacheable here without its notification (ms, default 30000). */
  pendingInvalidationMs?: number;
  /** The URL checked for Prisma-engine pool parameters (default DATABASE_URL). */
  databaseUrl?: string;
  /** Warn about connection_limit, pool_timeout, ... in the URL (default true). */
  warnEnginePoolParams?: boolean;
  /** Receives each kind of warning once (default: process.emitWarning). */
  onWarning?: (message: string, kind: string) => void;
  /** Clock in ms (tests). */
  now?: () => number;
}

export interface PoolguardPrismaStats {
  hits: number;
  misses: number;
  staleServed: number;
  invalidated: number;
  freshHits: number;
  freshStale: number;
  freshBatches: number;
  uncached: number;
  writes: number;
}

/** A Prisma client, or the `tx` of an interactive transaction. */
export interface RawQueryClient {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PrismaPromise<T>;
}

export interface PoolguardPrismaApi {
  /**
   * Publishes the tags' invalidation.  Without tx: in its own transaction, and entries are dropped
   * here when it resolves.  With the tx of an interactive transaction: published by its commit.
   */
  invalidate(input: { tags: string[] }, tx?: RawQueryClient): Promise<void>;
  readonly stats: PoolguardPrismaStats;
  readonly cache: PoolguardCache;
  stop(): Promise<void>;
}

type CachedRead<
  Op extends
    | 'findUnique'
    | 'findUniqueOrThrow'
    | 'findFirst'
    | 'findFirstOrThrow'
    | 'findMany'
    | 'count'
    | 'aggregate'
    | 'groupBy',
> = <T, A>(this: T, args: Exact<A, Args<T, Op> & WithCacheStrategy>) => PrismaPromise<Result<T, A, Op>>;
type OptionalCachedRead<Op extends 'findFirst' | 'findFirstOrThrow' | 'findMany' | 'count'> = <T, A>(
  this: T,
  args?: Exact<A, Args<T, Op> & WithCacheStrategy>,
) => PrismaPromise<Result<T, A, Op>>;

export interface PoolguardModelMethods {
  findUnique: CachedRead<'findUnique'>;
  findUniqueOrThrow: CachedRead<'findUniqueOrThrow'>;
  findFirst: OptionalCachedRead<'findFirst'>;
  findFirstOrThrow: OptionalCachedRead<'findFirstOrThrow'>;
  findMany: OptionalCachedRead<'findMany'>;
  count: OptionalCachedRead<'count'>;
  aggregate: CachedRead<'aggregate'>;
  groupBy: CachedRead<'groupBy'>;
}

export type PoolguardExtensionArgs = InternalArgs<
  {},
  { $allModels: PoolguardModelMethods },
  {},
  { $poolguard: PoolguardPrismaApi }
>;

/** prisma.$extends(withPoolguardCache()) */
export function withPoolguardCache(
  options?: WithPoolguardCacheOptions,
): (client: unknown) => { $extends: { extArgs: PoolguardExtensionArgs } };

export interface PrismaPoolConfig {
  /** For new pg.Pool(config) / new PrismaPg(config). */
  config: {
    connectionString?: string;
    max?: number;
    connectionTimeoutMillis?: number;
    query_timeout?: number;
    maxLifetimeSeconds?: number;
    idleTimeoutMillis?: number;
  };
  mapped: Array<{ param: string; value: string; pool: string; poolValue: number }>;
  ignored: Array<{ param: string; value: string; note: string }>;
}

/** The pg.Pool settings a Prisma-engine DATABASE_URL asked for (connection_limit → max, ...); without a URL, {}. */
export function prismaPoolConfig(url?: string): PrismaPoolConfig;

/** The cache key of a query's args: JSON with sorted keys and typed BigInt, Date and bytes. */
export function stableStringify(value: unknown): string;
