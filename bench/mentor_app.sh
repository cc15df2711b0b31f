#!/usr/bin/env bash
# bench/mentor_app.sh — the real app of issue 21 (test/apps/mentor: Next.js 16 + Prisma 7 +
# adapter-pg + pg-poolguard-cache/prisma, next build, two next start instances), REVOKES revokes
# under load (half through Prisma, half raw SQL from another connection).  Figures: commit → drop
# latency per instance (timestamps taken in the instances; the commit's time is taken before the
# revoking statement is sent: an upper bound), hit rate, database queries saved, request latency
# with the cache vs the same requests without cacheStrategy.  Target: drop p99 <= 100 ms.
# Writes bench/measured/mentor_app.md.  Needs the extension installed (make install), node >= 20.19
# and npm (the app's dependencies come from npm).
#   RESULT_FROM=result.json bash bench/mentor_app.sh   # format a result of test/apps/mentor/run.js
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
OUT=bench/measured/mentor_app.md
REVOKES=${REVOKES:-200}

if [ -z "${RESULT_FROM:-}" ]; then
    (cd test/apps/mentor && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
    WORK=$(make_workdir)
    PORT=$(free_port)
    trap 'cluster_stop "$WORK"; rm -rf "$WORK"' EXIT
    cluster_start "$WORK" "$PORT" "max_connections = 100" "poolguard.enabled = off" || exit 1
    RESULT_FROM=$WORK/result.json
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    (cd test/apps/mentor && PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres REVOKES=$REVOKES \
        RESULT_FILE="$RESULT_FROM" node run.js >/dev/null) || { echo "the app run failed" >&2; exit 1; }
fi
load=${load_before:-$(cut -d' ' -f1-3 /proc/loadavg)}

node - "$RESULT_FROM" "$load" >"$OUT.tmp" <<'JS'
const fs = require('node:fs');
const { execSync } = require('node:child_process');
const r = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const sh = (c) => { try { return execSync(c, { encoding: 'utf8' }).trim(); } catch (_) { return '?'; } };
const pct = (x) => (x * 100).toFixed(1) + ' %';
const met = (ok) => (ok ? 'met' : 'MISSED');
const lines = [
  '# Real app: Next.js 16 + Prisma 7 + pg-poolguard-cache (the mentor-assignment case)',
  '',
  `- machine: ${sh('nproc')} cores, ${sh("lscpu | sed -n 's/^Model name: *//p' | head -1")}; load average around the run: ${process.argv[3]} (shared machine)`,
  `- date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; node ${process.version}; pg_poolguard ${sh('git describe --always --dirty')}`,
  '- command: `bash bench/mentor_app.sh` (test/apps/mentor/run.js: `next build`, two `next start` instances, 4 concurrent',
  '  readers across both instances and ' + r.revokes + ` revokes (${r.viaPrisma} through Prisma on one instance, ${r.viaSql} by raw SQL from another connection);`,
  '  authorization through the cached path, no bypass; then the same number of requests with and without cacheStrategy)',
  '',
  '| figure | value | target | |',
  '|---|---|---|---|',
  `| commit → drop, both instances (ms) | p50 ${r.dropLatencyMs.p50}, p99 ${r.dropLatencyMs.p99}, max ${r.dropLatencyMs.max} | p99 ≤ 100 | ${met(r.dropLatencyMs.p99 <= 100)} |`,
  ...(r.writeMs ? [`| (info) the revoking statement, sent → COMMIT acknowledged (ms) | p50 ${r.writeMs.p50}, p99 ${r.writeMs.p99}, max ${r.writeMs.max} | | |`,
                   `| (info) COMMIT acknowledged → drop, both instances (ms; a lower bound) | p50 ${r.dropAfterAckMs.p50}, p99 ${r.dropAfterAckMs.p99}, max ${r.dropAfterAckMs.max} | | |`] : []),
  ...r.dropLatencyMs.perInstance.map((x, i) => `| (info) instance ${i} (ms) | p50 ${x.p50}, p99 ${x.p99}, max ${x.max} | | |`),
  ...r.dropLatencyMs.byVia.map((x) => `| (info) revokes via ${x.via} (ms) | p50 ${x.p50}, p99 ${x.p99} | | |`),
  `| requests started after their instance dropped the revoked entry, served the revoked authorization | ${r.violations} of ${r.requestsAfterDropChecked} | 0 | ${met(r.violations === 0)} |`,
  `| hit rate (cached reads, during the revokes and after) | ${pct(r.hitRate)} of ${r.cachedReads} | | |`,
  `| database queries saved vs no cache | ${pct(r.queriesSaved)} (${r.databaseQueries} queries for ${r.cachedReads} reads) | | |`,
  `| request latency with the cache, after the revokes (ms) | p50 ${r.latencyMs.cached.p50}, p99 ${r.latencyMs.cached.p99} (${r.latencyMs.cached.requests} requests) | | |`,
  `| request latency without cacheStrategy, same requests (ms) | p50 ${r.latencyMs.noCache.p50}, p99 ${r.latencyMs.noCache.p99} (${r.latencyMs.noCache.requests} requests) | | |`,
  `| (info) request latency during the revokes, cached path (ms) | p50 ${r.latencyMs.duringRevokes.p50}, p99 ${r.latencyMs.duringRevokes.p99} | | |`,
  '',
  'Raw commit → drop samples (ms), instance 0 then instance 1:',
  '',
  ...(r.rawDropLatenciesMs ?? []).map((xs, i) => `- instance ${i}: ${xs.join(' ')}`),
  ...(r.rawWriteMs ? ['', 'Raw revoking-statement durations (ms, sent → COMMIT acknowledged):', '', `- ${r.rawWriteMs.join(' ')}`] : []),
];
console.log(lines.join('\n'));
JS
mkdir -p bench/measured
mv "$OUT.tmp" "$OUT"
cat "$OUT"
