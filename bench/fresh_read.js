'use strict';
// bench/fresh_read.js — issue 21 point 4: a read that cannot be stale, three ways, side by side
// in one process against one server (PG* environment):
//   bypass  every read runs the authorization query (the motivating team's `bypassCache`);
//   fresh   get(..., { fresh: true }): the cached value, served once its generation is confirmed
//           (one cache_generation round trip per batch of concurrent reads);
//   cached  get(...) without the option (what notifications keep fresh), for reference.
// Each round runs READS reads at CONCURRENCY for each way, in rotating order; prints JSON with
// the per-round microseconds per read.
const { Pool } = require(require.resolve('pg', { paths: [process.argv[2]] }));
const { PoolguardCache } = require(process.argv[2]);

const READS = Number(process.env.READS ?? 4000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MENTORS = 200;

const AUTH_SQL = `SELECT array_agg(s.id ORDER BY s.id) AS schools
                    FROM bench_assignment a JOIN bench_school s ON s.id = a.school_id
                   WHERE a.mentor_id = $1 AND s.active`;

async function main() {
  const pool = new Pool({ max: CONCURRENCY });
  const cache = new PoolguardCache({ pool, max: 10000, ttlMs: 3600 * 1000 });
  const load = (m) => () => pool.query(AUTH_SQL, [m]).then((r) => r.rows[0].schools);
  for (let m = 1; m <= MENTORS; m++) await cache.get('mentor', m, load(m));
  const ways = {
    bypass: (m) => load(m)(),
    fresh: (m) => cache.get('mentor', m, load(m), { fresh: true }),
    cached: (m) => cache.get('mentor', m, load(m)),
  };
  const names = Object.keys(ways);
  const results = Object.fromEntries(names.map((n) => [n, []]));
  const batchesBefore = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      let next = 0;
      const b0 = cache.stats.freshBatches;
      const t0 = process.hrtime.bigint();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < READS) {
          const i = next++;
          await ways[name]((i * 7919) % MENTORS + 1);
        }
      }));
      const us = Number(process.hrtime.bigint() - t0) / 1e3 / READS;
      results[name].push(us);
      if (name === 'fresh') batchesBefore.push((cache.stats.freshBatches - b0) / READS);
    }
  }
  await cache.stop();
  await pool.end();
  console.log(JSON.stringify({ reads: READS, concurrency: CONCURRENCY, rounds: ROUNDS, results,
                               freshBatchesPerRead: batchesBefore }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
