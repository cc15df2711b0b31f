'use strict';
// bench/scope_invalidation.js — cost of whole-scope invalidations in the Node.js client, the old
// code (a scan of every entry per scope item) and the current one (scope index) side by side in
// one process.  Usage: node scope_invalidation.js OLD_DIR NEW_DIR → one JSON line of results.
// Each measurement: fill the cache with N entries over SCOPES scopes, then time the handling of
// the notifications (as the listener receives them) carrying K whole-scope items; median of ROUNDS.
const path = require('node:path');

const [oldDir, newDir] = process.argv.slice(2).map((d) => path.resolve(d));
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const SCOPES = 1000;
const PUBLISHER = 1;

const fakePool = { async query() { return { rows: [{ g: '1' }] }; } };

function makeCache(dir, n) {
  const { PoolguardCache } = require(path.join(dir, 'index.js'));
  const cache = new PoolguardCache({ pool: fakePool, connect: async () => ({}), max: n + 1, ttlMs: 1e9 });
  if (cache.publishers) cache.publishers = new Set([PUBLISHER]); // the current code checks the sender
  for (let i = 0; i < n; i++) {
    const scope = `scope${i % SCOPES}`;
    const key = String(i);
    cache.entries.set(`${scope}\u0000${key}`, { scope, key, value: i, generation: 1n, epoch: 0, listening: true });
  }
  return cache;
}

// K whole-scope items, split into payloads under NOTIFY's 8000 bytes as the publisher does.
function notifications(k, generation) {
  const msgs = [];
  let items = [];
  const flush = () => {
    if (items.length) msgs.push({ channel: 'poolguard_invalidate', processId: PUBLISHER, payload: JSON.stringify(items) });
    items = [];
  };
  for (let s = 0; s < k; s++) {
    items.push({ scope: `scope${s}`, key: null, generation });
    if (JSON.stringify(items).length > 7900) {
      items.pop();
      flush();
      items.push({ scope: `scope${s}`, key: null, generation });
    }
  }
  flush();
  return msgs;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function measure(dir, n, k) {
  const samples = [];
  let dropped = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const cache = makeCache(dir, n);
    const msgs = notifications(k, 2);
    const t0 = process.hrtime.bigint();
    for (const msg of msgs) cache._onNotification(msg);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    dropped = n - cache.entries.size;
  }
  return { ms: median(samples), dropped, samples };
}

const results = [];
for (const n of [10000, 100000]) {
  for (const k of [1, 188]) {
    const before = measure(oldDir, n, k);
    const after = measure(newDir, n, k);
    if (before.dropped !== after.dropped) throw new Error(`old and new dropped different entries: ${before.dropped} vs ${after.dropped}`);
    results.push({ n, k, dropped: after.dropped, before: before.ms, after: after.ms,
                   beforeSamples: before.samples, afterSamples: after.samples });
  }
}
process.stdout.write(`${JSON.stringify(results)}\n`);
