'use strict';
// bench/latency.js — commit-to-listener latency of pg_poolguard invalidations.
// A listener LISTENs on the channel; a prober commits `count` transactions that each invalidate
// ('probe', i), one every `intervalMs`, and notes when each COMMIT returned; latency is the time
// from that moment to the listener receiving the item.  Prints "p50_ms p99_ms received/sent".
// Usage: node bench/latency.js COUNT INTERVAL_MS   (connection from PG* environment variables)
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', 'clients', 'node', 'node_modules', 'pg'));

async function main() {
  const count = Number(process.argv[2] || 200);
  const intervalMs = Number(process.argv[3] || 20);
  const listener = new Client();
  const prober = new Client();
  await listener.connect();
  await prober.connect();
  const committedAt = new Map();
  const latencies = [];
  const early = new Map();
  listener.on('notification', (msg) => {
    const now = process.hrtime.bigint();
    for (const item of JSON.parse(msg.payload)) {
      if (item.scope !== 'probe') continue;
      const t0 = committedAt.get(item.key);
      if (t0 === undefined) early.set(item.key, now);
      else latencies.push(Number(now - t0) / 1e6);
    }
  });
  await listener.query('LISTEN poolguard_invalidate');
  const run = Date.now();
  for (let i = 0; i < count; i++) {
    const key = `${run}-${i}`;
    await prober.query('BEGIN');
    await prober.query("SELECT poolguard.invalidate('probe', $1)", [key]);
    await prober.query('COMMIT');
    const t0 = process.hrtime.bigint();
    committedAt.set(key, t0);
    if (early.has(key)) latencies.push(0); // arrived before COMMIT's reply was processed
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const deadline = Date.now() + 5000;
  while (latencies.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN);
  console.log(`${pct(0.5).toFixed(2)} ${pct(0.99).toFixed(2)} ${latencies.length}/${count}`);
  await listener.end();
  await prober.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
