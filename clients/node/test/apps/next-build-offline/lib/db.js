// The module an app shares between its route handlers, as clients/node/README.md writes it:
// building the pool and the cache connects nowhere; the first cache.get() starts the listener.
import pg from 'pg';
import { PoolguardCache } from 'pg-poolguard-cache';

export const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  application_name: 'next-app',
  max: 4,
  idleTimeoutMillis: 4000,
});
pool.on('error', (err) => console.warn(err.message, err.detail));

// No connect, no connectionString: the listener uses the pool's settings (DATABASE_URL here).
export const cache = new PoolguardCache({ pool });
cache.on('warning', (w) => console.warn(w.kind, w.message));
