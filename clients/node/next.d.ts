// Types of pg-poolguard-cache/next: Next.js cache handlers kept consistent across instances by pg_poolguard.
import type { ListenerClient, PoolguardCache, Queryable } from './index';

export interface NextCacheOptions {
  /** Shared core per process and name (default 'default'): cacheHandler and cacheHandlers with the same name share it. */
  name?: string;
  /** Upper bound on the bytes of stored values (default 50 MiB). */
  maxBytes?: number;
  /** Upper bound on the number of entries (default 10000). */
  maxEntries?: number;
  /** Table name → tags a committed change to it expires (besides 'table:<name>'), or a function. */
  tables?: Record<string, string[]> | ((table: string) => string[]);
  /** Connection string of the pool and the listener (default DATABASE_URL, then the PG* variables). */
  connectionString?: string;
  /** Publishes invalidations (default: a pg.Pool of poolMax connections). */
  pool?: Queryable;
  /** Connections of the default pool (default 2). */
  poolMax?: number;
  connect?: (options: { application_name?: string }) => Promise<ListenerClient>;
  cache?: PoolguardCache;
  listenerApplicationName?: string | null;
  mode?: 'listen' | 'poll';
  /** Plain in-memory caching, nothing connects (default: NEXT_PHASE is 'phase-production-build'). */
  building?: boolean;
  /** Clock in ms (tests). */
  now?: () => number;
}

export interface NextCacheStats {
  hits: number;
  misses: number;
  sets: number;
  evictions: number;
  expiredByTag: number;
  published: number;
  received: number;
  notStored: number;
}

export interface NextCacheCore {
  readonly stats: NextCacheStats;
  readonly bytes: number;
  readonly cache: PoolguardCache | null;
  stop(): Promise<void>;
}

/** Next.js 16 'use cache' CacheEntry. */
export interface CacheEntry {
  value: ReadableStream<Uint8Array>;
  tags: string[];
  stale: number;
  timestamp: number;
  expire: number;
  revalidate: number;
}

/** Next.js 16 cacheHandlers handler. */
export interface UseCacheHandler {
  get(cacheKey: string, softTags: string[]): Promise<undefined | CacheEntry>;
  set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void>;
  refreshTags(): Promise<void>;
  getExpiration(tags: string[]): Promise<number>;
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void>;
  readonly core: NextCacheCore;
}

export function createCacheHandler(options?: NextCacheOptions): UseCacheHandler;

/** The value Next.js stores through cacheHandler (APP_PAGE, APP_ROUTE, FETCH, ...), kept as given. */
export interface IncrementalCacheValue {
  kind: string;
  [field: string]: unknown;
}

export interface IncrementalCacheContext {
  tags?: string[];
  softTags?: string[];
  [field: string]: unknown;
}

export interface IncrementalCacheHandler {
  get(
    cacheKey: string,
    ctx?: IncrementalCacheContext,
  ): Promise<{ lastModified: number; value: IncrementalCacheValue } | null>;
  set(cacheKey: string, data: IncrementalCacheValue | null, ctx?: IncrementalCacheContext): Promise<void>;
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>;
  resetRequestCache(): void;
  readonly core: NextCacheCore;
}

/** A class for next.config's cacheHandler (Next.js instantiates it per request; instances share the core). */
export function createIncrementalCacheHandler(
  options?: NextCacheOptions,
): new (ctx?: unknown) => IncrementalCacheHandler;

/** The invalidation scope of a tag: 'tag:<tag>', or 'tag#<hash>' when that exceeds 63 bytes. */
export function tagScope(tag: string): string;
