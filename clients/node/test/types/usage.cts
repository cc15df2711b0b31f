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
