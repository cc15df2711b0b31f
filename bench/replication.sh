#!/usr/bin/env bash
# bench/replication.sh — generations replicated through WAL (issue 14), side by side.
#
#   1. invalidating write throughput with the WAL record on vs off (poolguard.wal_invalidations),
#      1 and 8 writers, a streaming standby attached (target: ratio >= 0.95);
#   2. how long after the standby shows a commit's data its generation moves (p50/p99), from a
#      loop on the standby that reads both every few microseconds while the primary commits one
#      invalidating update every 20 ms;
#   3. wake-up latency of poolguard.invalidations_since() long polls on the primary and on the
#      standby vs LISTEN/NOTIFY on the primary (commit returned -> reader has the item).
# Each figure is the median of RUNS runs; throwaway clusters, loopback, fsync on.  Writes
# bench/measured/replication.md.  Needs the extension installed and clients/node's dependencies.
#   SMOKE=1 bash bench/replication.sh   # 1 short run, result file not written
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
PROBES=${PROBES:-200}
SLICES=${SLICES:-4}
if [ "${SMOKE:-0}" = 1 ]; then RUNS=1; SECONDS_PER_RUN=1; PROBES=50; SLICES=1; fi
OUT=bench/measured/replication.md
PGBENCH="$(pg_bindir)/pgbench"

command -v node >/dev/null || { echo "node is required (clients/node)" >&2; exit 1; }
[ -d clients/node/node_modules/pg ] || (cd clients/node && npm ci --no-audit --no-fund >/dev/null) || exit 1

WORK=$(make_workdir)
P1=$(free_port)
P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
trap 'cluster_stop "$WORK/standby"; cluster_stop "$WORK/primary"; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/primary" "$WORK/standby"
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/primary" "$WORK/standby"
cluster_start "$WORK/primary" "$P1" "fsync = on" "max_connections = 50" "poolguard.enabled = off" \
    "wal_level = replica" "max_wal_senders = 4" || exit 1
as_pg pg_basebackup -D "$WORK/standby/data" -h "$WORK/primary" -p "$P1" -U postgres -R -X stream -c fast >/dev/null || exit 1
{
    echo "port = $P2"
    echo "unix_socket_directories = '$WORK/standby'"
    echo "hot_standby = on"
    # A long query on the standby (the lag probe, a long poll) would otherwise hold up the replay
    # of cleanup records for up to max_standby_streaming_delay.
    echo "hot_standby_feedback = on"
} | as_pg tee -a "$WORK/standby/data/postgresql.conf" >/dev/null
as_pg pg_ctl -D "$WORK/standby/data" -l "$WORK/standby/server.log" -w -t 60 start >/dev/null || exit 1
export PGHOST=$WORK/primary PGPORT=$P1 PGUSER=postgres PGDATABASE=postgres

psql_at "$WORK/primary" "$P1" -q -d postgres <<'SQL' || exit 1
CREATE EXTENSION pg_poolguard;
CREATE TABLE bench_item (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
INSERT INTO bench_item (id) SELECT generate_series(1, 1000);
CREATE TABLE lag_probe (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO lag_probe VALUES (1, 0);
-- On the standby: reads the generation and the data in a loop for `seconds`; returns the data
-- it started from ('start', v), then each new value of either when it was first seen
-- ('data', v) and ('generation', g).
CREATE FUNCTION lag_watch(seconds float8, OUT what text, OUT n bigint, OUT seen_at timestamptz)
    RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    g bigint; v int; last_g bigint; last_v int; until timestamptz;
BEGIN
    until := clock_timestamp() + make_interval(secs => seconds);
    last_g := poolguard.cache_generation('lag', '1');
    SELECT p.v INTO last_v FROM lag_probe p WHERE p.id = 1;
    what := 'start'; n := last_v; seen_at := clock_timestamp(); RETURN NEXT;
    WHILE clock_timestamp() < until LOOP
        g := poolguard.cache_generation('lag', '1');
        SELECT p.v INTO v FROM lag_probe p WHERE p.id = 1;
        IF v <> last_v THEN what := 'data'; n := v; seen_at := clock_timestamp(); RETURN NEXT; last_v := v; END IF;
        IF g <> last_g THEN what := 'generation'; n := g; seen_at := clock_timestamp(); RETURN NEXT; last_g := g; END IF;
    END LOOP;
END $$;
SQL
for _ in $(seq 300); do
    [ "$(psql_at "$WORK/standby" "$P2" -d postgres -Atq -c "SELECT count(*) FROM pg_proc WHERE proname = 'lag_watch'")" = 1 ] && break
    sleep 0.1
done

SCRIPTS=$WORK/scripts
mkdir -p "$SCRIPTS"
cat >"$SCRIPTS/invalidate.sql" <<'SQL'
\set id random(1, 1000)
BEGIN;
UPDATE bench_item SET v = v + 1 WHERE id = :id;
SELECT poolguard.invalidate('item', :id::text);
COMMIT;
SQL
chmod -R a+r "$SCRIPTS"

tps() {
    as_pg "$PGBENCH" -n -M prepared -h "$WORK/primary" -p "$P1" -U postgres -c "$1" -j "$1" -T "$SECONDS_PER_RUN" \
        -f "$SCRIPTS/invalidate.sql" postgres 2>/dev/null | awk '/^tps = / {print $3; exit}'
}
# wal on|off|flush|wwd: poolguard.wal_invalidations; "flush": poolguard.wal_flush = on; "wwd":
# wal_writer_delay = 10ms (the default is 200ms) (reloaded).
wal() {
    local on=on flush=off wwd=200ms
    case $1 in off) on=off ;; flush) flush=on ;; wwd) wwd=10ms ;; esac
    psql_at "$WORK/primary" "$P1" -q -d postgres -c "ALTER SYSTEM SET poolguard.wal_invalidations = $on" \
        -c "ALTER SYSTEM SET poolguard.wal_flush = $flush" -c "ALTER SYSTEM SET wal_writer_delay = '$wwd'" \
        -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.2
}

declare -A samples
tps 1 >/dev/null # warm-up
variants="on off flush wwd"
for run in $(seq "$RUNS"); do
    # The machine is shared and its fsync speed drifts: alternate short slices of each variant
    # (SLICES of them, 1 s each) and compare their sums.
    for clients in 1 8; do
        for w in $variants; do eval "sum_${w}=0"; done
        for slice in $(seq "$SLICES"); do
            order=$variants
            [ $((slice % 2)) -eq 0 ] && order=$(echo "$variants" | tr ' ' '\n' | tac | tr '\n' ' ')
            for w in $order; do
                wal "$w"
                t=$(SECONDS_PER_RUN=1 tps "$clients")
                eval "sum_${w}=\$(awk -v a=\"\$sum_${w}\" -v b=\"$t\" 'BEGIN {print a + b}')"
            done
        done
        for w in $variants; do
            eval "t=\$(awk -v a=\"\$sum_${w}\" -v n=$SLICES 'BEGIN {printf \"%.1f\", a / n}')"
            echo "run $run: $w, $clients writers: $t tps (mean of $SLICES alternating 1 s slices)"
            samples[$w:$clients]+="$t "
            eval "last_${w}_$clients=\$t"
        done
        eval "samples[r$clients]+=\"\$(ratio \"\$last_on_$clients\" \"\$last_off_$clients\") \""
        eval "samples[f$clients]+=\"\$(ratio \"\$last_flush_$clients\" \"\$last_off_$clients\") \""
        eval "samples[w$clients]+=\"\$(ratio \"\$last_wwd_$clients\" \"\$last_off_$clients\") \""
    done
    for lagmode in on flush wwd; do
    wal $lagmode
    suffix=${lagmode/on/}

    # Generation lag behind the data on the standby.
    watch_s=$((SECONDS_PER_RUN + 2))
    feed_start=$(psql_at "$WORK/standby" "$P2" -d postgres -Atq -c 'SELECT generation FROM poolguard.invalidations_since(0)')
    psql_at "$WORK/standby" "$P2" -d postgres -Atq -F ' ' \
        -c "SELECT what, n, extract(epoch FROM seen_at) FROM lag_watch($watch_s)" >"$WORK/lag.out" &
    watcher=$!
    sleep 0.5
    probes=$((SECONDS_PER_RUN * 40))
    psql_at "$WORK/primary" "$P1" -q -d postgres -c "DO \$\$ BEGIN
        FOR i IN 1 .. $probes LOOP
            UPDATE lag_probe SET v = v + 1 WHERE id = 1;
            PERFORM poolguard.invalidate('lag', '1');
            COMMIT;
            PERFORM pg_sleep(0.02);
        END LOOP; END \$\$" >/dev/null
    wait $watcher
    # The standby's feed says which commit each generation belongs to: the k-th 'lag' item is the
    # k-th update.  A generation seen covers its commit and any earlier ones not seen yet (two
    # records replayed between two reads).
    psql_at "$WORK/standby" "$P2" -d postgres -Atq -c "SELECT generation FROM poolguard.invalidations_since($feed_start)
        WHERE kind = 'item' AND scope = 'lag' ORDER BY generation" >"$WORK/lag.feed"
    lag=$(awk 'FNR == NR {k[$1] = FNR; next}
               $1 == "start" {v0 = $2}
               $1 == "data" {d[$2 - v0] = $3; nd++}
               $1 == "generation" && ($2 in k) {for (i = done + 1; i <= k[$2]; i++) if (i in d) {printf "%.3f\n", ($3 - d[i]) * 1000; n++}
                                               if (k[$2] > done) done = k[$2]; ng++}
               END {print "pairs", n + 0, nd + 0, ng + 0 > "/dev/stderr"}' "$WORK/lag.feed" "$WORK/lag.out" 2>"$WORK/lag.pairs" | sort -g)
    lag50=$(echo "$lag" | awk '{a[NR]=$1} END {print (NR ? a[int(NR*0.5)+1] : "n/a")}')
    lag99=$(echo "$lag" | awk '{a[NR]=$1} END {i = int(NR*0.99)+1; if (i > NR) i = NR; print (NR ? a[i] : "n/a")}')
    echo "run $run: wal_flush=${suffix:-off}: generation lag behind data on the standby p50 $lag50 ms p99 $lag99 ms ($(cat "$WORK/lag.pairs"))"
    samples[lag50$suffix]+="$lag50 "
    samples[lag99$suffix]+="$lag99 "
    samples[lagpairs$suffix]+="$(awk '{print $2 "/" $3 "/" $4}' "$WORK/lag.pairs") "

    # Wake-up latency: LISTEN on the primary, long polls on the primary and on the standby.
    modes="listen poll-primary poll-standby"
    [ -n "$suffix" ] && modes=poll-standby
    for m in $modes; do
        case $m in
        listen) out=$(node bench/feed_latency.js listen "$PROBES" 20) ;;
        poll-primary) out=$(READER_PGHOST=$WORK/primary READER_PGPORT=$P1 node bench/feed_latency.js poll "$PROBES" 20) ;;
        poll-standby) out=$(READER_PGHOST=$WORK/standby READER_PGPORT=$P2 node bench/feed_latency.js poll "$PROBES" 20) ;;
        esac
        echo "run $run: wal_flush=${suffix:-off}: $m latency p50 p99 received: $out"
        samples[$m$suffix:p50]+="$(echo "$out" | awk '{print $1}') "
        samples[$m$suffix:p99]+="$(echo "$out" | awk '{print $2}') "
        samples[$m$suffix:n]+="$(echo "$out" | awk '{print $3}') "
    done
    done
    wal on
done


report() {
    echo "# Generations replicated through WAL"
    echo
    echo "- machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$(pg_bindir)/postgres" --version | awk '{print $3}'); pg_poolguard $(git describe --always --dirty 2>/dev/null)"
    echo "- command: \`bash bench/replication.sh\` (a primary and a streaming standby on this machine, loopback,"
    echo "  fsync on, wal_level = replica, hot_standby_feedback = on; median of $RUNS runs; pgbench -M prepared,"
    echo "  each variant's tps the mean of $SLICES alternating 1 s slices per run; lag and latency probes: one"
    echo "  invalidating UPDATE every 20 ms)"
    echo "- write transaction: \`BEGIN; UPDATE bench_item SET v = v + 1 WHERE id = :id; SELECT poolguard.invalidate('item', :id); COMMIT\`"
    echo
    echo "| figure | WAL record on | baseline | ratio | target | |"
    echo "|---|---|---|---|---|---|"
    echo "| invalidating write tps, 1 writer | $(med on:1) | $(med off:1) (poolguard.wal_invalidations = off) | $(med r1) | ≥ 0.95 | $(verdict "$(med r1)" ">=" 0.95) |"
    echo "| invalidating write tps, 8 writers | $(med on:8) | $(med off:8) (poolguard.wal_invalidations = off) | $(med r8) | ≥ 0.95 | $(verdict "$(med r8)" ">=" 0.95) |"
    echo "| (info) write tps, 1 writer, \`poolguard.wal_flush = on\` | $(med flush:1) | $(med off:1) | $(med f1) | | |"
    echo "| (info) write tps, 8 writers, \`poolguard.wal_flush = on\` | $(med flush:8) | $(med off:8) | $(med f8) | | |"
    echo "| (info) write tps, 1 writer, \`wal_writer_delay = 10ms\` | $(med wwd:1) | $(med off:1) | $(med w1) | | |"
    echo "| (info) write tps, 8 writers, \`wal_writer_delay = 10ms\` | $(med wwd:8) | $(med off:8) | $(med w8) | | |"
    echo
    echo "| figure | p50 | p99 | received |"
    echo "|---|---|---|---|"
    echo "| standby: generation visible after its data (ms; one commit every 20 ms) | $(med lag50) | $(med lag99) | commits measured/data changes/generation changes seen, per run: ${samples[lagpairs]} |"
    echo "| LISTEN on the primary: commit returned → notification (ms) | $(med listen:p50) | $(med listen:p99) | ${samples[listen:n]} |"
    echo "| invalidations_since() long poll on the primary (ms) | $(med poll-primary:p50) | $(med poll-primary:p99) | ${samples[poll-primary:n]} |"
    echo "| invalidations_since() long poll on the standby (ms; includes streaming and replay) | $(med poll-standby:p50) | $(med poll-standby:p99) | ${samples[poll-standby:n]} |"
    echo "| with \`poolguard.wal_flush = on\`: standby generation after its data (ms) | $(med lag50flush) | $(med lag99flush) | ${samples[lagpairsflush]} |"
    echo "| with \`poolguard.wal_flush = on\`: long poll on the standby (ms) | $(med poll-standbyflush:p50) | $(med poll-standbyflush:p99) | ${samples[poll-standbyflush:n]} |"
    echo "| with \`wal_writer_delay = 10ms\`: standby generation after its data (ms) | $(med lag50wwd) | $(med lag99wwd) | ${samples[lagpairswwd]} |"
    echo "| with \`wal_writer_delay = 10ms\`: long poll on the standby (ms) | $(med poll-standbywwd:p50) | $(med poll-standbywwd:p99) | ${samples[poll-standbywwd:n]} |"
    echo
    echo "Raw samples per run:"
    echo
    for k in on:1 off:1 flush:1 wwd:1 r1 f1 w1 on:8 off:8 flush:8 wwd:8 r8 f8 w8 lag50 lag99 lag50flush lag99flush lag50wwd lag99wwd listen:p50 listen:p99 poll-primary:p50 poll-primary:p99 poll-standby:p50 poll-standby:p99 poll-standbyflush:p50 poll-standbyflush:p99 poll-standbywwd:p50 poll-standbywwd:p99; do
        echo "- $k: ${samples[$k]}"
    done
    echo
    echo "Variants: on = the default (the WAL record; the WAL writer is woken to flush it); off ="
    echo "\`poolguard.wal_invalidations = off\` (the baseline: no record, standbys never see generations"
    echo "move); \`poolguard.wal_flush = on\` (the commit waits for its record's flush);"
    echo "\`wal_writer_delay = 10ms\` (the default 200ms bounds how long a record can wait for the WAL writer)."
    echo
    echo "The lag is measured on the standby itself (one clock): the time between the first read that"
    echo "sees a commit's data and the first read that sees its generation; a negative value would"
    echo "mean a generation before its data."
}

if [ "${SMOKE:-0}" = 1 ]; then
    report
else
    mkdir -p bench/measured
    report | tee "$OUT"
fi
