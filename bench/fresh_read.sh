#!/usr/bin/env bash
# bench/fresh_read.sh — issue 21 point 4: the cost of a read that cannot be stale (get() with
# fresh: true, one batched cache_generation round trip) against the bypass it replaces (the
# authorization query every time), side by side in one process on a throwaway cluster, with
# the plain cached read for reference.  Target: a fresh read costs at most half a bypass read.
# Writes bench/measured/fresh_read.md.
#   SMOKE=1 bash bench/fresh_read.sh   # 1 short round, result file not written
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

export ROUNDS=${ROUNDS:-5} READS=${READS:-4000} CONCURRENCY=${CONCURRENCY:-16}
if [ "${SMOKE:-0}" = 1 ]; then ROUNDS=1; READS=500; fi
OUT=bench/measured/fresh_read.md

command -v node >/dev/null || { echo "node is required (clients/node)" >&2; exit 1; }
[ -d clients/node/node_modules/pg ] || (cd clients/node && npm ci --no-audit --no-fund >/dev/null) || exit 1

WORK=$(make_workdir)
PORT=$(free_port)
trap 'cluster_stop "$WORK"; rm -rf "$WORK"' EXIT
cluster_start "$WORK" "$PORT" "max_connections = 50" "poolguard.enabled = off" || exit 1
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres

# The motivating query: which active schools may this mentor access (200 mentors, 2,000 schools,
# 20,000 assignments).
psql_at "$WORK" "$PORT" -q -d postgres <<'SQL' || exit 1
CREATE EXTENSION pg_poolguard;
CREATE TABLE bench_school (id int PRIMARY KEY, active bool NOT NULL);
INSERT INTO bench_school SELECT g, g % 10 <> 0 FROM generate_series(1, 2000) g;
CREATE TABLE bench_assignment (mentor_id int NOT NULL, school_id int NOT NULL REFERENCES bench_school);
INSERT INTO bench_assignment SELECT 1 + g % 200, 1 + (g * 37) % 2000 FROM generate_series(1, 20000) g;
CREATE INDEX ON bench_assignment (mentor_id);
ANALYZE;
SQL

json=$(node bench/fresh_read.js "$PWD/clients/node") || exit 1
echo "$json"
[ "${SMOKE:-0}" = 1 ] && exit 0
{
    echo "## Node.js client: reads that cannot be stale (fresh) vs the bypass"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Node.js $(node --version), commit $(git rev-parse --short HEAD)."
    echo "Command: \`bash bench/fresh_read.sh\`. $READS reads at concurrency $CONCURRENCY per way and round, $ROUNDS rounds in rotating order,"
    echo "one process, one pool of $CONCURRENCY, loopback Unix socket. bypass: the authorization query (join, 200 mentors, 20,000 assignments)"
    echo "every read; fresh: \`get(..., { fresh: true })\` on a warm cache (one batched \`cache_generation\` round trip per batch);"
    echo "cached: \`get()\` without the option."
    echo
    node -e '
      const r = JSON.parse(process.argv[1]);
      const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
      const f = (a) => a.map((x) => x.toFixed(1)).join(", ");
      console.log("| way | µs per read, median | raw samples (µs per read, per round) |");
      console.log("|---|---|---|");
      for (const w of ["bypass", "fresh", "cached"]) console.log(`| ${w} | ${med(r.results[w]).toFixed(1)} | ${f(r.results[w])} |`);
      const ratio = med(r.results.fresh) / med(r.results.bypass);
      const bpr = med(r.freshBatchesPerRead);
      console.log("");
      console.log(`fresh / bypass: ${ratio.toFixed(2)}× the cost per read (target ≤ 0.5×: ${ratio <= 0.5 ? "met" : "MISSED"}); ` +
                  `cache_generation round trips per fresh read: ${bpr.toFixed(3)} (batched across concurrent reads).`);
    ' "$json"
} >"$OUT"
cat "$OUT"
