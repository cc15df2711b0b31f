#!/usr/bin/env bash
# bench/caps.sh — login caps, side by side in one run:
#   1. login throughput (pgbench -C -S) with pg_poolguard preloaded and 100 policies with caps
#      vs a cluster without the library, rounds alternating, medians;
#   2. query throughput (pgbench -S -M prepared) with and without the library;
#   3. a storm of 80 simultaneous logins against a cap of 10: a pg_poolguard policy vs the
#      built-in ALTER ROLE ... CONNECTION LIMIT 10 (admitted / refused).
# Writes bench/measured/caps.md.  SMOKE=1: short rounds, for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=${SMOKE:-0}
ROUNDS=3; SECONDS_PER_RUN=10
if [ "$SMOKE" = 1 ]; then ROUNDS=1; SECONDS_PER_RUN=2; fi

install_deps
make -s -j"$(nproc)" && make -s install >/dev/null

GUARD=$(make_workdir); PLAIN=$(make_workdir)
PG_PORT=$(free_port); PLAIN_PORT=$(free_port)
trap 'cat "$GUARD/pgbench.err" "$PLAIN/pgbench.err" 2>/dev/null | tail -5; cluster_stop "$GUARD"; cluster_stop "$PLAIN"; rm -rf "$GUARD" "$PLAIN"' EXIT
cluster_start "$GUARD" "$PG_PORT" "max_connections = 200"
cluster_start "$PLAIN" "$PLAIN_PORT" "max_connections = 200" "shared_preload_libraries = ''"

for side in GUARD PLAIN; do
    dir=${!side}; port=$([ $side = GUARD ] && echo "$PG_PORT" || echo "$PLAIN_PORT")
    psql_at "$dir" "$port" -d postgres -q -c "CREATE ROLE app LOGIN" -c "CREATE ROLE stormer LOGIN" \
        -c "GRANT ALL ON SCHEMA public TO app"
    as_pg pgbench -q -i -s 1 -h "$dir" -p "$port" -U postgres postgres >/dev/null 2>&1
    psql_at "$dir" "$port" -d postgres -q -c "GRANT SELECT ON pgbench_accounts, pgbench_branches TO app"
done
psql_at "$GUARD" "$PG_PORT" -d postgres -q -c "CREATE EXTENSION pg_poolguard" -c "
    INSERT INTO poolguard.policy (name, priority, application_name, max_connections)
    SELECT 'other-' || g, g, 'other-' || g || '%', 5 FROM generate_series(1, 98) g;
    INSERT INTO poolguard.policy (name, role_name, max_connections) VALUES ('storm', 'stormer', 10);
    INSERT INTO poolguard.policy (name, role_name, max_connections) VALUES ('app', 'app', 150);" \
    -c "SELECT poolguard.reload()" >/dev/null
psql_at "$PLAIN" "$PLAIN_PORT" -d postgres -q -c "ALTER ROLE stormer CONNECTION LIMIT 10"

tps() { # DIR PORT PGBENCH_OPTION...
    local dir=$1 port=$2
    shift 2
    as_pg pgbench -n -S "$@" -c 4 -j 2 -T "$SECONDS_PER_RUN" -h "$dir" -p "$port" -U app postgres 2>>"$dir/pgbench.err" |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1
}
: >"$GUARD/tps"; : >"$PLAIN/tps"
for r in $(seq 1 "$ROUNDS"); do
    tps "$PLAIN" "$PLAIN_PORT" -C >>"$PLAIN/tps"
    tps "$GUARD" "$PG_PORT" -C >>"$GUARD/tps"
done
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
g_tps=$(median <"$GUARD/tps"); p_tps=$(median <"$PLAIN/tps")

# Query overhead: prepared read-only transactions on open connections.
: >"$GUARD/qtps"; : >"$PLAIN/qtps"
for r in $(seq 1 "$ROUNDS"); do
    tps "$PLAIN" "$PLAIN_PORT" -M prepared >>"$PLAIN/qtps"
    tps "$GUARD" "$PG_PORT" -M prepared >>"$GUARD/qtps"
done
gq_tps=$(median <"$GUARD/qtps"); pq_tps=$(median <"$PLAIN/qtps")

storm() { # DIR PORT -> "admitted refused"
    local dir=$1 port=$2 ok=0 no=0 pids=() i
    for i in $(seq 1 80); do
        as_pg psql -X -q -h "$dir" -p "$port" -U stormer -d postgres -c "SELECT pg_sleep(3)" >/dev/null 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do if wait "$p"; then ok=$((ok + 1)); else no=$((no + 1)); fi; done
    echo "$ok $no"
}
read -r g_ok g_no < <(storm "$GUARD" "$PG_PORT")
read -r p_ok p_no < <(storm "$PLAIN" "$PLAIN_PORT")

mkdir -p bench/measured
{
    echo "## Login caps and query overhead"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Command: \`bash bench/caps.sh\`. pgbench -C -S -c 4 -j 2, $SECONDS_PER_RUN s per run, $ROUNDS alternating rounds, medians."
    echo
    echo "| figure | pg_poolguard | baseline | ratio |"
    echo "|---|---|---|---|"
    echo "| login throughput, 100 policies with caps (tps, new connection per transaction) | $g_tps | $p_tps (library not loaded) | $(awk -v a="$g_tps" -v b="$p_tps" 'BEGIN {printf "%.3f", a / b}') |"
    echo "| queries: pgbench -S -M prepared (tps, connections kept open) | $gq_tps | $pq_tps (library not loaded) | $(awk -v a="$gq_tps" -v b="$pq_tps" 'BEGIN {printf "%.3f", a / b}') |"
    echo "| storm: 80 simultaneous logins, cap 10 — admitted / refused | $g_ok / $g_no | $p_ok / $p_no (CONNECTION LIMIT 10) | |"
} >bench/measured/caps.md
cat bench/measured/caps.md
