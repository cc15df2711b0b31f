'use strict';
// bench/feed_latency.js — how soon a reader learns of an invalidation committed on the primary.
// A prober commits `count` transactions on the primary, each updating a row of bench_item and
// invalidating ('probe', i), one every
// `intervalMs`, and notes when each COMMIT returned; latency is the time from that moment until
// the reader has the item.  Prints "p50_ms p99_ms received/sent".
//   node bench/feed_latency.js listen COUNT INTERVAL_MS   LISTEN on the primary (PG* environment)
//   node bench/feed_latency.js poll COUNT INTERVAL_MS     invalidations_since() long polls on the
//                                                         server of READER_PGHOST/READER_PGPORT
//                                                         (the primary or a standby)
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', 'clients', 'node', 'node_modules', 'pg'));

async function main() {
  const mode = process.argv[2];
  const count = Number(process.argv[3] || 200);
  const intervalMs = Number(process.argv[4] || 20);
  const prober = new Client();
  const reader = mode === 'poll'
    ? new Client({ host: process.env.READER_PGHOST || process.env.PGHOST, port: process.env.READER_PGPORT || process.env.PGPORT })
    : new Client();
  await prober.connect();
  await reader.connect();
  const committedAt = new Map();
  const early = new Map();
  const latencies = [];
  const got = (key) => {
    const now = process.hrtime.bigint();
    const t0 = committedAt.get(key);
    if (t0 === undefined) early.set(key, now);
    else latencies.push(Number(now - t0) / 1e6);
  };
  let stop = false;
  let polling = null;
  if (mode === 'listen') {
    reader.on('notification', (msg) => {
      for (const item of JSON.parse(msg.payload)) if (item.scope === 'probe') got(item.key);
    });
    await reader.query('LISTEN poolguard_invalidate');
  } else {
    let after = (await reader.query('SELECT generation FROM poolguard.invalidations_since(0)')).rows[0].generation;
    polling = (async () => {
      while (!stop) {
        const res = await reader.query(
          "SELECT kind, generation, scope, key FROM poolguard.invalidations_since($1, '2 s')", [after]);
        for (const row of res.rows) {
          if (BigInt(row.generation) > BigInt(after)) after = row.generation;
          if (row.kind === 'item' && row.scope === 'probe') got(row.key);
        }
      }
    })();
  }
  const run = Date.now();
  for (let i = 0; i < count; i++) {
    const key = `${run}-${i}`;
    // A write with its invalidation, as an app commits them (the commit record is flushed first).
    await prober.query(`BEGIN; UPDATE bench_item SET v = v + 1 WHERE id = 1;
                        SELECT poolguard.invalidate('probe', '${key}'); COMMIT`);
    committedAt.set(key, process.hrtime.bigint());
    if (early.has(key)) latencies.push(0); // arrived before COMMIT's reply was processed
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const deadline = Date.now() + 5000;
  while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  if (polling) await polling.catch(() => {});
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN);
  console.log(`${pct(0.5).toFixed(2)} ${pct(0.99).toFixed(2)} ${latencies.length}/${count}`);
  await reader.end();
  await prober.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
