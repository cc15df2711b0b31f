// Type-checked by test/package.test.js (tsc --noEmit): how a TypeScript / Next.js app uses the ESM entry.
import { Pool } from 'pg';
import { PoolguardCache, type Rejection, type InvalidationItem } from 'pg-poolguard-cache';
import cacheDefault from 'pg-poolguard-cache';

const pool = new Pool({ application_name: 'next-app' });
const cache = new PoolguardCache({ pool, max: 10000, ttlMs: 60_000 });
cache.on('warning', (w: Rejection) => console.warn(w.kind, w.message));
cache.on('invalidation', (items: InvalidationItem[]) => items.length);
export async function schools(mentorId: number): Promise<number[]> {
  const v: number[] = await cache.get('mentor', mentorId, async () => [1, 2]);
  const n: number = cache.stats.rejected + cache.drop('mentor');
  const g: bigint = await cache.generation('mentor', String(mentorId));
  return n > 0 && g > 0n ? v : [];
}
export const same: typeof PoolguardCache = cacheDefault.PoolguardCache;
import { poolSizing, PoolguardSetupError, toQueryable } from 'pg-poolguard-cache';
export const perInstance: number = poolSizing({ maxConnections: 6, instances: 2 }).perInstance;
export const setupCode = (e: PoolguardSetupError): 'POOLGUARD_NOT_INSTALLED' | 'POOLGUARD_OUTDATED' => e.code;
export const adapted = toQueryable({ query: async () => ({ rows: [] }) });
