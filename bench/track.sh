#!/usr/bin/env bash
# bench/track.sh — the cost of poolguard.track_table(): UPDATE throughput of a tracked table vs
# the same table untracked, side by side (target: tracked / untracked >= 0.9), and the in-server
# cost per written row (one statement updating 100,000 rows, tracked vs untracked).
# Each figure is the median of RUNS runs of SECONDS seconds on a throwaway cluster (loopback,
# fsync on).  A listener consumes the notifications, as an app would.  Writes bench/measured/track.md.
# Needs the extension installed (make install) and node + clients/node's npm dependencies.
#   SMOKE=1 bash bench/track.sh   # 1 run of 1 s each, result file not written
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS=${RUNS:-9}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
if [ "${SMOKE:-0}" = 1 ]; then RUNS=1; SECONDS_PER_RUN=1; fi
OUT=bench/measured/track.md
PGBENCH="$(pg_bindir)/pgbench"

bench_cluster

psql_at "$WORK" "$PORT" -q -d postgres <<'SQL' || exit 1
CREATE EXTENSION pg_poolguard;
CREATE TABLE bench_plain (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, note text NOT NULL DEFAULT 'x');
CREATE TABLE bench_tracked (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, note text NOT NULL DEFAULT 'x');
INSERT INTO bench_plain (id) SELECT generate_series(1, 100000);
INSERT INTO bench_tracked (id) SELECT generate_series(1, 100000);
SELECT poolguard.track_table('bench_tracked');
VACUUM ANALYZE bench_plain, bench_tracked;
SQL
bench_sink poolguard_invalidate

SCRIPTS=$WORK/scripts
mkdir -p "$SCRIPTS"
for t in plain tracked; do
    cat >"$SCRIPTS/$t.sql" <<SQL
\set id random(1, 100000)
UPDATE bench_$t SET v = v + 1 WHERE id = :id;
SQL
done
chmod -R a+r "$SCRIPTS"

tps() {
    as_pg "$PGBENCH" -n -M prepared -h "$WORK" -p "$PORT" -U postgres -c "$2" -j "$2" -T "$SECONDS_PER_RUN" \
        -f "$SCRIPTS/$1.sql" postgres 2>/dev/null | awk '/^tps = / {print $3; exit}'
}
# CPU ms the backend spends on one UPDATE of all 100,000 rows of bench_T, its commit included
# (/proc/self/schedstat: time on a CPU, which waiting for a loaded machine's CPUs does not inflate).
bulk_ms() {
    psql_at "$WORK" "$PORT" -q -At -d postgres \
        -c "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)" \
        -c "UPDATE bench_$1 SET v = v + 1" \
        -c "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)" |
        awk 'NR == 1 {a = $1} END {printf "%.1f", ($1 - a) / 1e6}'
}

tps plain 1 >/dev/null
tps tracked 1 >/dev/null

declare -A samples
cases="tracked:1 plain:1 tracked:8 plain:8"
reversed="plain:1 tracked:1 plain:8 tracked:8"
for run in $(seq "$RUNS"); do
    order=$cases
    [ $((run % 2)) -eq 0 ] && order=$reversed
    for c in $order; do
        t=$(tps "${c%%:*}" "${c##*:}")
        echo "run $run: $c clients: $t tps"
        samples[$c]+="$t "
        eval "last_${c%%:*}_${c##*:}=\$t"
    done
    samples[r1]+="$(ratio "$last_tracked_1" "$last_plain_1") "
    samples[r8]+="$(ratio "$last_tracked_8" "$last_plain_8") "
    tb=$(bulk_ms tracked); pb=$(bulk_ms plain)
    echo "run $run: UPDATE of 100000 rows: tracked $tb ms, plain $pb ms"
    samples[bulk_tracked]+="$tb "
    samples[bulk_plain]+="$pb "
    samples[per_row_ns]+="$(awk -v a="$tb" -v b="$pb" 'BEGIN {printf "%.0f", (a - b) * 1e6 / 100000}') "
done

t1=$(med tracked:1); p1=$(med plain:1); t8=$(med tracked:8); p8=$(med plain:8)
r1=$(med r1); r8=$(med r8); bt=$(med bulk_tracked); bp=$(med bulk_plain); pr=$(med per_row_ns)

report() {
    echo "# Table tracking benchmark"
    echo
    echo "- machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "- load average at the end (shared machine): $(cut -d" " -f1-3 /proc/loadavg)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$(pg_bindir)/postgres" --version | awk '{print $3}'); pg_poolguard $(git describe --always --dirty 2>/dev/null)"
    echo "- command: \`bash bench/track.sh\` (throwaway cluster, loopback, fsync on, pgbench -M prepared,"
    echo "  median of $RUNS runs of ${SECONDS_PER_RUN} s, pairs back to back in alternating order; a node listener consumes the notifications)"
    echo "- transaction: \`UPDATE bench_T SET v = v + 1 WHERE id = :id\` (100,000 rows), T = \`bench_tracked\`"
    echo "  (\`poolguard.track_table\`: one key and the table scope published per commit) vs \`bench_plain\`"
    echo
    echo "| figure | tracked | untracked | ratio | target | |"
    echo "|---|---|---|---|---|---|"
    echo "| UPDATE tps, 1 writer | $t1 | $p1 | $r1 | ≥ 0.9 | $(verdict "$r1" ">=" 0.9) |"
    echo "| UPDATE tps, 8 writers | $t8 | $p8 | $r8 | ≥ 0.9 | $(verdict "$r8" ">=" 0.9) |"
    echo "| (info) one UPDATE of 100,000 rows, backend CPU ms | $bt | $bp | $(ratio "$bp" "$bt") | | |"
    echo "| (info) in-server CPU cost per written row, ns ((tracked − untracked) / 100,000) | $pr | | | | |"
    echo
    echo "Raw samples (tps, ms or ns per run):"
    echo
    for k in $cases r1 r8 bulk_tracked bulk_plain per_row_ns; do echo "- $k: ${samples[$k]}"; done
    echo
    echo "A statement writing more rows than poolguard.invalidation_queue_size publishes a resync"
    echo "(every cache entry re-checked) rather than one item per row: see docs on bulk writes."
}

if [ "${SMOKE:-0}" = 1 ]; then
    report
else
    mkdir -p bench/measured
    report | tee "$OUT"
fi
