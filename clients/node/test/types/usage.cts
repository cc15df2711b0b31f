// Type-checked by test/package.test.js (tsc --noEmit): the CommonJS entry.
import cache = require('pg-poolguard-cache');
const lru = new cache.LruTtl<{ scope: string; v: number }>({ max: 10 });
lru.set('a', { scope: 's', v: 1 });
export const n: number = lru.deleteScope('s', (e) => e.v > 0);
// @ts-expect-error the cache needs a pool
new cache.PoolguardCache({});
// Poll mode with a read replica (for apps behind transaction poolers or reading from replicas).
const q = { query: async () => ({ rows: [] }) };
new cache.PoolguardCache({ pool: q, mode: 'poll', replica: q, pollWaitMs: 5000 });
// @ts-expect-error mode is 'listen' or 'poll'
new cache.PoolguardCache({ pool: q, mode: 'push' });
// Issue 25 / 21.4: connection settings, lazy start, per-call options, drop at commit, sizing.
const lazy = new cache.PoolguardCache({ pool: q, connectionString: 'postgresql://db/app', autoStart: false });
export const source: cache.ListenerSource = lazy.listenerSource;
export const v1: Promise<number> = lazy.get('s', 1, async () => 1, { fresh: true });
lazy.get('s', 1, () => 1, { bypass: true, refresh: false, consistency: 'strong' });
// @ts-expect-error consistency is 'cached' or 'strong'
lazy.get('s', 1, () => 1, { consistency: 'eventual' });
export const gens: Promise<bigint[]> = lazy.generations([
  ['s', '1'],
  ['s', null],
]);
lazy.invalidate(q, 's', 1).then((p) => {
  p.committed();
  p.rolledBack();
});
new cache.PoolguardCache({ pool: { unsafe: async () => [] } });
new cache.PoolguardCache({ pool: { $queryRawUnsafe: async () => [] } });
export const sizing: number = cache.poolSizing({ maxConnections: 10, instances: 2, mode: 'poll' }).poolMax;
export const isSetup = (e: unknown): boolean => e instanceof cache.PoolguardSetupError && e.fix.length > 0;
