#!/usr/bin/env bash
# bench/invalidation.sh — pg_poolguard cache invalidation vs raw pg_notify, side by side.
#
#   1. write transaction (UPDATE one row + invalidate its key) vs the same with pg_notify, at 1
#      and 8 concurrent writers (tps; targets: ratio >= 0.95 at 1 writer, > 1.5 at 8);
#   2. the invalidating write vs the same write with no invalidation (BEGIN; UPDATE; COMMIT),
#      1 writer (target >= 0.90);
#   3. the invalidating write with its WAL record (poolguard.wal_invalidations = on, the default)
#      vs without (off), 1 writer (target >= 0.95);
#   4. SELECT poolguard.cache_generation(scope, key) vs SELECT 1 (tps; target >= 0.95);
#   5. commit-to-listener latency p50/p99 of invalidations while 8 writers invalidate (p99 < 20 ms).
# (Issue 22 item 6, transactions that invalidate nothing: bench/no_invalidation.sh.)
# Each figure is the median of RUNS runs of SECONDS seconds, on a throwaway cluster (loopback,
# fsync on: what production commits pay).  Writes bench/measured/invalidation.md.
# Needs the extension installed (make install) and node + clients/node's npm dependencies.
#   SMOKE=1 bash bench/invalidation.sh   # 1 run of 1 s each, result file not written
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
if [ "${SMOKE:-0}" = 1 ]; then RUNS=1; SECONDS_PER_RUN=1; fi
OUT=bench/measured/invalidation.md
PGBENCH="$(pg_bindir)/pgbench"

bench_cluster

psql_at "$WORK" "$PORT" -q -d postgres <<'SQL' || exit 1
CREATE EXTENSION pg_poolguard;
CREATE TABLE bench_item (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
INSERT INTO bench_item (id) SELECT generate_series(1, 1000);
SQL
# A listener that consumes both channels, as an app would (NOTIFY without listeners is cheaper,
# and a listener that does not read would let the queue grow).
bench_sink poolguard_invalidate bench_raw

SCRIPTS=$WORK/scripts
mkdir -p "$SCRIPTS"
cat >"$SCRIPTS/invalidate.sql" <<'SQL'
\set id random(1, 1000)
BEGIN;
UPDATE bench_item SET v = v + 1 WHERE id = :id;
SELECT poolguard.invalidate('item', :id::text);
COMMIT;
SQL
cat >"$SCRIPTS/notify.sql" <<'SQL'
\set id random(1, 1000)
BEGIN;
UPDATE bench_item SET v = v + 1 WHERE id = :id;
SELECT pg_notify('bench_raw', '[{"scope":"item","key":"' || :id || '"}]');
COMMIT;
SQL
cat >"$SCRIPTS/plain.sql" <<'SQL'
\set id random(1, 1000)
BEGIN;
UPDATE bench_item SET v = v + 1 WHERE id = :id;
COMMIT;
SQL
cat >"$SCRIPTS/generation.sql" <<'SQL'
\set id random(1, 1000)
SELECT poolguard.cache_generation('item', :id::text);
SQL
# (info) a built-in function with the same argument: what PostgreSQL itself spends on the call.
cat >"$SCRIPTS/length.sql" <<'SQL'
\set id random(1, 1000)
SELECT length(:id::text);
SQL
cat >"$SCRIPTS/select1.sql" <<'SQL'
\set id random(1, 1000)
SELECT 1;
SQL
chmod -R a+r "$SCRIPTS"

# tps SCRIPT CLIENTS: one pgbench run, prints tps.
tps() {
    as_pg "$PGBENCH" -n -M prepared -h "$WORK" -p "$PORT" -U postgres -c "$2" -j "$2" -T "$SECONDS_PER_RUN" \
        -f "$SCRIPTS/$1.sql" postgres 2>/dev/null | awk '/^tps = / {print $3; exit}'
}

# set_delay MS: poolguard.publish_delay for the publisher (reloaded).
set_delay() {
    psql_at "$WORK" "$PORT" -q -d postgres -c "ALTER SYSTEM SET poolguard.publish_delay = '$1ms'" \
        -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.3
}

# set_wal on|off: poolguard.wal_invalidations (reloaded).
set_wal() {
    psql_at "$WORK" "$PORT" -q -d postgres -c "ALTER SYSTEM SET poolguard.wal_invalidations = $1" \
        -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.3
}

# Warm-up (first runs pay for the publisher's start and cold caches).
tps invalidate 1 >/dev/null
tps notify 1 >/dev/null

declare -A samples
# Pairs run back to back, in alternating order from run to run: the disk's fsync speed drifts.
cases="invalidate:1 notify:1 plain:1 walloff/invalidate:1 invalidate:8 notify:8 delay1ms/invalidate:1"
reversed="walloff/invalidate:1 plain:1 notify:1 invalidate:1 notify:8 invalidate:8 delay1ms/invalidate:1"
for run in $(seq "$RUNS"); do
    order=$cases
    [ $((run % 2)) -eq 0 ] && order=$reversed
    for c in $order; do
        script=${c%%:*}
        if [ "${script%%/*}" = delay1ms ]; then set_delay 1; script=${script#*/}; fi
        if [ "${script%%/*}" = walloff ]; then set_wal off; script=${script#*/}; fi
        t=$(tps "$script" "${c##*:}")
        case $c in delay1ms/*) set_delay 0 ;; walloff/*) set_wal on ;; esac
        echo "run $run: $c clients: $t tps"
        samples[$c]+="$t "
        key=${c//[^a-z0-9]/_}
        eval "last_$key=\$t"
    done
    # Ratios of back-to-back pairs: the disk's speed drifts between pairs, not within one.
    samples[r1]+="$(ratio "$last_invalidate_1" "$last_notify_1") "
    samples[r8]+="$(ratio "$last_invalidate_8" "$last_notify_8") "
    samples[rp]+="$(ratio "$last_invalidate_1" "$last_plain_1") "
    samples[rw]+="$(ratio "$last_invalidate_1" "$last_walloff_invalidate_1") "
    # Reads are CPU-bound and the machine is shared: alternate 1-second slices and compare sums.
    gsum=0; ssum=0; lsum=0
    for slice in $(seq 5); do
        gsum=$(awk -v a="$gsum" -v b="$(SECONDS_PER_RUN=1 tps generation 2)" 'BEGIN {print a + b}')
        ssum=$(awk -v a="$ssum" -v b="$(SECONDS_PER_RUN=1 tps select1 2)" 'BEGIN {print a + b}')
        lsum=$(awk -v a="$lsum" -v b="$(SECONDS_PER_RUN=1 tps length 2)" 'BEGIN {print a + b}')
    done
    last_generation_2=$(awk -v a="$gsum" 'BEGIN {print a / 5}')
    last_select1_2=$(awk -v a="$ssum" 'BEGIN {print a / 5}')
    echo "run $run: generation:2 clients: $last_generation_2 tps, select1:2 clients: $last_select1_2 tps (5 alternating 1 s slices)"
    samples[generation:2]+="$last_generation_2 "
    samples[select1:2]+="$last_select1_2 "
    samples[rg]+="$(ratio "$last_generation_2" "$last_select1_2") "
    samples[length:2]+="$(awk -v a="$lsum" 'BEGIN {print a / 5}') "
    samples[rl]+="$(ratio "$(awk -v a="$lsum" 'BEGIN {print a / 5}')" "$last_select1_2") "
    samples[rd]+="$(ratio "$last_delay1ms_invalidate_1" "$last_notify_1") "
    # Latency under load: 8 invalidating writers for the probe's duration.
    probe_count=$((SECONDS_PER_RUN * 40))
    as_pg "$PGBENCH" -n -M prepared -h "$WORK" -p "$PORT" -U postgres -c 8 -j 8 -T $((SECONDS_PER_RUN + 3)) \
        -f "$SCRIPTS/invalidate.sql" postgres >/dev/null 2>&1 &
    load=$!
    sleep 1
    lat=$(node bench/latency.js "$probe_count" 20)
    wait $load
    echo "run $run: latency p50 p99 received: $lat"
    samples[p50]+="$(echo "$lat" | awk '{print $1}') "
    samples[p99]+="$(echo "$lat" | awk '{print $2}') "
done

# In-server cost of one call, without the protocol: a million calls take T ms = T ns per call.
per_call_ns() {
    psql_at "$WORK" "$PORT" -q -d postgres -c '\timing on' -c "SELECT count($1) FROM generate_series(1, 1000000) i" |
        awk '/^Time:/ {printf "%.0f", $2; exit}'
}
for i in 1 2 3; do
    samples[call_generation]+="$(per_call_ns "poolguard.cache_generation('item', i::text)") "
    samples[call_length]+="$(per_call_ns "length(i::text)") "
done


i1=$(med invalidate:1); n1=$(med notify:1); i8=$(med invalidate:8); n8=$(med notify:8)
g=$(med generation:2); s=$(med select1:2); l=$(med length:2); rl=$(med rl); p50=$(med p50); p99=$(med p99)
d1=$(med delay1ms/invalidate:1); cg=$(med call_generation); cl=$(med call_length)
r1=$(med r1); r8=$(med r8); rg=$(med rg); rd=$(med rd); rp=$(med rp); rw=$(med rw)
p1=$(med plain:1); w1=$(med walloff/invalidate:1)

report() {
    echo "# Cache invalidation benchmark"
    echo
    echo "- machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$(pg_bindir)/postgres" --version | awk '{print $3}'); pg_poolguard $(git describe --always --dirty 2>/dev/null)"
    echo "- command: \`bash bench/invalidation.sh\` (throwaway cluster, loopback, fsync on, pgbench -M prepared,"
    echo "  median of $RUNS runs of ${SECONDS_PER_RUN} s; a node listener consumes both channels)"
    echo "- write transaction: \`BEGIN; UPDATE bench_item SET v = v + 1 WHERE id = :id; SELECT <publish>; COMMIT\`,"
    echo "  publish = \`poolguard.invalidate('item', :id)\` vs \`pg_notify('bench_raw', <json>)\`"
    echo
    echo "Ratio = median over the runs of (pg_poolguard / baseline) measured back to back; tps and"
    echo "latency columns are medians of the runs."
    echo
    echo "| figure | pg_poolguard | baseline | ratio | target | |"
    echo "|---|---|---|---|---|---|"
    echo "| write tps, 1 writer | $i1 (invalidate) | $n1 (pg_notify) | $r1 | ≥ 0.95 | $(verdict "$r1" ">=" 0.95) |"
    echo "| write tps, 8 writers | $i8 (invalidate) | $n8 (pg_notify) | $r8 | > 1.5 | $(verdict "$r8" ">" 1.5) |"
    echo "| write tps, 1 writer, vs the same write with no invalidation | $i1 (invalidate) | $p1 (\`BEGIN; UPDATE; COMMIT\`) | $rp | ≥ 0.90 | $(verdict "$rp" ">=" 0.90) |"
    echo "| write tps, 1 writer, WAL record on vs off | $i1 (\`wal_invalidations = on\`) | $w1 (\`off\`) | $rw | ≥ 0.95 | $(verdict "$rw" ">=" 0.95) |"
    echo "| read tps, 2 clients | $g (cache_generation) | $s (SELECT 1) | $rg | ≥ 0.95 | $(verdict "$rg" ">=" 0.95) |"
    echo "| (info) read tps, 2 clients, a built-in of the same shape | $l (\`SELECT length(:id::text)\`) | $s (SELECT 1) | $rl | | |"
    echo "| (info) write tps, 1 writer, \`poolguard.publish_delay = 1ms\` | $d1 (invalidate) | $n1 (pg_notify) | $rd | | |"
    echo "| (info) in-server cost per call, ns (a million calls in one query) | $cg (\`cache_generation('item', i::text)\`) | $cl (\`length(i::text)\`) | | | |"
    echo "| commit → listener latency under 8 invalidating writers | p50 $p50 ms, p99 $p99 ms | | | p99 < 20 ms | $(verdict "$p99" "<" 20) |"
    echo
    echo "Raw samples (tps or ms per run):"
    echo
    for k in $cases generation:2 select1:2 length:2 p50 p99 r1 r8 rp rw rg rl rd call_generation call_length; do echo "- $k: ${samples[$k]}"; done
    echo
    echo "publish_delay is 0 (the default: publish as soon as possible) except in the (info) row."
}

if [ "${SMOKE:-0}" = 1 ]; then
    report
else
    mkdir -p bench/measured
    report | tee "$OUT"
fi
