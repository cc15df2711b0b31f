#!/usr/bin/env bash
# scripts/profile_invalidation.sh — the load-independent profile behind docs/architecture.md,
# "Cost of the invalidation write path" (issue 22 items 5 and 6): counts, not timings, so that it
# may run on a busy machine.
#   1. backend instructions per transaction (callgrind) of each statement shape of
#      bench/invalidation.sh: a throwaway cluster runs under valgrind --tool=callgrind; for each
#      shape one pgbench client runs SMALL and then LARGE transactions, and the difference of the
#      two backends' totals divided by LARGE - SMALL is the cost of one transaction (connection
#      start-up cancels out);
#   2. WAL per transaction (pg_stat_wal: records, bytes, writes, syncs; PostgreSQL 14-17, 18 moved
#      the write and sync counts to pg_stat_io) over WAL_TX transactions,
#      the same cluster started normally, fsync on.
# Needs valgrind and the extension installed (make install).  Takes some minutes (callgrind runs
# the server about 50 times slower).  Prints a table; writes nothing into the tree.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v valgrind >/dev/null || { echo "valgrind is required" >&2; exit 1; }
SMALL=10; LARGE=${LARGE:-510}; WAL_TX=${WAL_TX:-2000}
BIN=$(pg_bindir)
WORK=$(make_workdir); PORT=$(free_port)
trap 'as_pg pg_ctl -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$WORK"' EXIT
# The connection log names each pgbench backend's pid (its callgrind file); a publisher that
# stays keeps its start out of the counts (a warm-up run starts it).
cluster_start "$WORK" "$PORT" "fsync = on" "max_connections = 50" "poolguard.enabled = off" \
    "log_connections = on" "log_line_prefix = '%p '" "poolguard.publisher_idle_timeout = '1h'" || exit 1
psql_at "$WORK" "$PORT" -q -d postgres <<'SQL' || exit 1
CREATE EXTENSION pg_poolguard;
CREATE TABLE bench_item (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
INSERT INTO bench_item (id) SELECT generate_series(1, 1000);
SQL
mkdir -p "$WORK/s" "$WORK/cg"
# shape NAME STATEMENT...: a pgbench script, one statement a line (one round trip each).
shape() {
    local name=$1
    shift
    { echo '\set id random(1, 1000)'; printf '%s\n' "$@"; } >"$WORK/s/$name.sql"
}
# label NAME: the script's statements on one line.
label() { sed 1d "$WORK/s/$1.sql" | paste -sd ' '; }
update='UPDATE bench_item SET v = v + 1 WHERE id = :id;'
shape select1 'SELECT 1;'
shape length 'SELECT length(:id::text);'
shape generation "SELECT poolguard.cache_generation('item', :id::text);"
shape plain 'BEGIN;' "$update" 'COMMIT;'
shape notify 'BEGIN;' "$update" "SELECT pg_notify('bench_raw', :id::text);" 'COMMIT;'
shape invalidate 'BEGIN;' "$update" "SELECT poolguard.invalidate('item', :id::text);" 'COMMIT;'
chmod -R a+rX "$WORK/s"; chown postgres: "$WORK/cg" 2>/dev/null

run() { as_pg "$BIN/pgbench" -n -M prepared -h "$WORK" -p "$PORT" -U postgres -c 1 -t "$2" -f "$WORK/s/$1.sql" postgres >/dev/null 2>&1; }

# ---- 1. callgrind ----
as_pg pg_ctl -D "$WORK/data" -w stop >/dev/null
as_pg bash -c "cd '$WORK' && exec valgrind --tool=callgrind --callgrind-out-file='$WORK/cg/cg.%p' '$BIN/postgres' -D '$WORK/data' >'$WORK/valgrind.log' 2>&1 &"
wait_for "$WORK" "$PORT" 'true' 2>/dev/null || { cat "$WORK/valgrind.log"; exit 1; }
# backend_total SHAPE N: runs N transactions from the same table state (rewritten first);
# prints the instruction total of pgbench's backend (the larger of its two connections' files:
# the first one only looks around), read once the backend has exited and written it.
backend_total() {
    local from pids pid f t best=0
    psql_at "$WORK" "$PORT" -q -d postgres -c 'VACUUM FULL bench_item' >/dev/null 2>&1
    from=$(stat -c %s "$WORK/valgrind.log")
    run "$1" "$2"
    pids=$(tail -c +$((from + 1)) "$WORK/valgrind.log" |
        awk '/connection authorized: .*application_name=pgbench/ {print $1}')
    for pid in $pids; do
        f=$WORK/cg/cg.$pid
        for _ in $(seq 1200); do
            [ -f "$f" ] && grep -q '^totals:' "$f" && break
            sleep 0.1
        done
        t=$(awk '/^totals:/ {print $2; exit}' "$f" 2>/dev/null)
        [ -n "$t" ] && [ "$t" -gt "$best" ] && best=$t
    done
    echo "$best"
}
run invalidate 5 # starts the publisher
echo "| statement(s) | backend instructions per transaction |"
echo "|---|---|"
for s in select1 length generation plain notify invalidate; do
    a=$(backend_total "$s" "$SMALL"); b=$(backend_total "$s" "$LARGE")
    echo "| \`$(label "$s")\` | $(awk -v a="$a" -v b="$b" -v n=$((LARGE - SMALL)) 'BEGIN {printf "%.0f", (b - a) / n}') |"
done
as_pg pg_ctl -D "$WORK/data" -w -t 300 stop >/dev/null

# ---- 2. WAL per transaction ----
as_pg pg_ctl -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null || exit 1
echo
echo "| statement(s) | WAL records | WAL bytes | WAL writes | WAL syncs |"
echo "|---|---|---|---|---|"
for s in plain notify invalidate; do
    psql_at "$WORK" "$PORT" -Atq -d postgres -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
    l0=$(psql_at "$WORK" "$PORT" -Atq -d postgres -c 'SELECT pg_current_wal_insert_lsn()')
    run "$s" "$WAL_TX"
    sleep 1.5 # the WAL writer reports its statistics each round
    psql_at "$WORK" "$PORT" -Atq -d postgres -F ' | ' -c "SELECT \$l\$| \`$(label "$s")\`\$l\$,
        round(wal_records / $WAL_TX.0, 2), round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$l0') / $WAL_TX.0, 1),
        round(wal_write / $WAL_TX.0, 2), round(wal_sync / $WAL_TX.0, 2) || ' |' FROM pg_stat_wal"
done
