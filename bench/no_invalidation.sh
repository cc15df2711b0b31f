#!/usr/bin/env bash
# bench/no_invalidation.sh — issue 22 item 6: a transaction that invalidates nothing pays nothing
# measurable for pg_poolguard being loaded.  pgbench -N (TPC-B-like writes without the branch
# and teller updates: no hot rows, so the disk's fsync and not lock waits sets the pace; fsync on)
# on two throwaway clusters side by side: one with pg_poolguard in shared_preload_libraries, the
# extension created and its worker on with the default settings, one without the library.
# Runs alternate between the two (the disk's fsync speed drifts); the ratio of each back-to-back
# pair is a sample; target: loaded / not >= 0.99 at 1 and at 8 clients.
# Why it holds (docs/architecture.md, "Cost of the invalidation write path"): pg_poolguard
# registers its transaction callbacks only in a backend that called poolguard.invalidate(); it
# has no executor, planner or utility hook; what remains is the worker's and the metrics
# process's own CPU.
# Writes bench/measured/no_invalidation.md.
#   SMOKE=1 bash bench/no_invalidation.sh   # 1 run of 1 s each, result file not written
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
SCALE=${SCALE:-10}
if [ "${SMOKE:-0}" = 1 ]; then RUNS=1; SECONDS_PER_RUN=1; SCALE=1; fi
OUT=bench/measured/no_invalidation.md
PGBENCH="$(pg_bindir)/pgbench"

LOADED=$(make_workdir); PLAIN=$(make_workdir)
LOADED_PORT=$(free_port); PLAIN_PORT=$(free_port)
trap 'cluster_stop "$LOADED"; cluster_stop "$PLAIN"; rm -rf "$LOADED" "$PLAIN"' EXIT
cluster_start "$LOADED" "$LOADED_PORT" "fsync = on" "max_connections = 50" || exit 1
cluster_start "$PLAIN" "$PLAIN_PORT" "fsync = on" "max_connections = 50" "shared_preload_libraries = ''" || exit 1
psql_at "$LOADED" "$LOADED_PORT" -q -d postgres -c 'CREATE EXTENSION pg_poolguard' || exit 1
for side in LOADED PLAIN; do
    dir=${!side}; port_var=${side}_PORT
    as_pg "$PGBENCH" -q -i -s "$SCALE" -h "$dir" -p "${!port_var}" -U postgres postgres >/dev/null 2>&1 || {
        echo "pgbench -i failed on the $side cluster" >&2
        exit 1
    }
done

# tps SIDE CLIENTS: one pgbench -N run on the LOADED or PLAIN cluster, prints tps.
tps() {
    local dir=${!1} port_var=${1}_PORT
    as_pg "$PGBENCH" -n -N -M prepared -h "$dir" -p "${!port_var}" -U postgres -c "$2" -j "$2" \
        -T "$SECONDS_PER_RUN" postgres 2>/dev/null | awk '/^tps = / {print $3; exit}'
}

# Warm-up (cold caches, the first checkpoint of a fresh cluster).
tps LOADED 1 >/dev/null
tps PLAIN 1 >/dev/null

declare -A samples
for run in $(seq "$RUNS"); do
    for clients in 1 8; do
        order="LOADED PLAIN"
        [ $(((run + clients) % 2)) -eq 0 ] && order="PLAIN LOADED"
        for side in $order; do
            t=$(tps "$side" "$clients")
            echo "run $run: $side $clients clients: $t tps"
            samples[$side:$clients]+="$t "
            eval "last_$side=\$t"
        done
        samples[r$clients]+="$(ratio "$last_LOADED" "$last_PLAIN") "
    done
done


report() {
    echo "# Transactions that invalidate nothing"
    echo
    echo "- machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$(pg_bindir)/postgres" --version | awk '{print $3}'); pg_poolguard $(git describe --always --dirty 2>/dev/null)"
    echo "- command: \`bash bench/no_invalidation.sh\` (two throwaway clusters side by side, loopback, fsync on,"
    echo "  \`pgbench -N -M prepared\`, scale $SCALE, median of $RUNS runs of ${SECONDS_PER_RUN} s, runs alternating)"
    echo "- loaded: \`shared_preload_libraries = 'pg_poolguard'\`, the extension created, its worker on (defaults);"
    echo "  not: no library"
    echo
    echo "| figure | loaded | not loaded | ratio | target | |"
    echo "|---|---|---|---|---|---|"
    for clients in 1 8; do
        r=$(med "r$clients")
        echo "| pgbench -N tps, $clients client(s) | $(med "LOADED:$clients") | $(med "PLAIN:$clients") | $r | ≥ 0.99 | $(verdict "$r" ">=" 0.99) |"
    done
    echo
    echo "Raw samples (tps per run; ratios of back-to-back pairs):"
    echo
    for k in LOADED:1 PLAIN:1 r1 LOADED:8 PLAIN:8 r8; do echo "- $k: ${samples[$k]}"; done
}

if [ "${SMOKE:-0}" = 1 ]; then
    report
else
    mkdir -p bench/measured
    report | tee "$OUT"
fi
