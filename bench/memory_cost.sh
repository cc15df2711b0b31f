#!/usr/bin/env bash
# bench/memory_cost.sh — what reading private memory costs (issue 27; targets of issue 22).
#   1. one reading: /proc/<pid>/status (the figure since issue 27) vs /proc/<pid>/smaps_rollup
#      (before), over the same backends, interleaved: idle backends, and backends that each read a
#      200 MB table into shared buffers (smaps_rollup walks a page-table entry per buffer mapped);
#   2. the views at N sessions: poolguard.sessions, poolguard.memory and poolguard.metrics() vs
#      pg_stat_activity (target of issue 22: ≤ 2× at 5,000 sessions), medians of 7 runs each;
#   3. worker CPU per scan (naptime 10ms) with N idle sessions under a max_idle_memory policy
#      (every session read every scan) vs the same policy with idle_timeout only.
# Writes bench/measured/memory_cost.md.  SMOKE=1: small, for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=${SMOKE:-0}
N=1000; READERS=50; ROWS=1100000; CPU_SECONDS=10; ROUNDS=20
if [ "$SMOKE" = 1 ]; then N=40; READERS=4; ROWS=50000; CPU_SECONDS=2; ROUNDS=2; fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)
COST=$(mktemp /tmp/proc_read_cost.XXXXXX)
g++ -std=c++17 -O2 -o "$COST" bench/proc_read_cost.cpp
chmod 755 "$COST"

WORK=$(make_workdir)
PORT=$(free_port)
trap 'cluster_stop "$WORK"; rm -rf "$WORK" "$HOLD" "$COST"' EXIT
cluster_start "$WORK" "$PORT" "max_connections = $((N + 100))" "shared_buffers = '1GB'" \
    "max_parallel_workers_per_gather = 0"
sql() { psql_at "$WORK" "$PORT" -d postgres -Atq "$@"; }
sql -c "CREATE EXTENSION pg_poolguard" -c "CREATE ROLE bench LOGIN" \
    -c "CREATE TABLE shared_read AS SELECT g, repeat('x', 150) AS pad FROM generate_series(1, $ROWS) g" \
    -c "GRANT SELECT ON shared_read TO bench" \
    -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('held', 'held%', '1h')"
table_mb=$(sql -c "SELECT pg_relation_size('shared_read') / 1048576")
BENCH_CONN="host=$WORK port=$PORT user=bench dbname=postgres"
wait_count() { # wait_count APP N
    for _ in $(seq 1 1200); do
        [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND state = 'idle'")" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for $2 idle sessions of $1" >&2
    return 1
}
as_pg "$HOLD" "$BENCH_CONN application_name=held-reader" "$READERS" 36000 "SELECT count(*) FROM shared_read" 0 >/dev/null &
wait_count held-reader "$READERS"
as_pg "$HOLD" "$BENCH_CONN application_name=held" $((N - READERS)) 36000 "SELECT 1" 0 >/dev/null &
wait_count held $((N - READERS))
pids() { sql -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = '$1'"; }

# ---- 1. one reading ----
read_idle=$(as_pg "$COST" "$ROUNDS" $(pids held))
read_reader=$(as_pg "$COST" "$ROUNDS" $(pids held-reader))
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }

# ---- 2. views ----
timed() { # median ms of 7 runs of a query, in one psql session
    { echo '\timing on'; for _ in 1 2 3 4 5 6 7; do echo "$1;"; done; } |
        psql_at "$WORK" "$PORT" -d postgres -Atq 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
        sort -n | awk '{a[NR]=$1} END {print a[4]}'
}
t_psa=$(timed "SELECT count(*) FROM (SELECT * FROM pg_stat_activity) s")
t_sessions=$(timed "SELECT count(*) FROM (SELECT * FROM poolguard.sessions) s")
t_memory=$(timed "SELECT count(*) FROM (SELECT * FROM poolguard.memory) s")
t_metrics=$(timed "SELECT length(poolguard.metrics())")
t_psa2=$(timed "SELECT count(*) FROM (SELECT * FROM pg_stat_activity) s")
t_base=$(awk -v a="$t_psa" -v b="$t_psa2" 'BEGIN {printf "%.3f", (a + b) / 2}')

# ---- 3. the worker ----
sql -c "ALTER SYSTEM SET poolguard.naptime = '10ms'" -c "SELECT pg_reload_conf()" >/dev/null
TICKS=$(getconf CLK_TCK)
worker_cpu() { # worker_cpu POLICY_COLUMNS VALUES → ms CPU per scan
    sql -c "TRUNCATE poolguard.policy" -c "INSERT INTO poolguard.policy (name, application_name, $1) VALUES ('held', 'held%', $2)" \
        -c "SELECT poolguard.reload()" >/dev/null
    sleep 1
    local wpid s0 s1 c0 c1
    wpid=$(sql -c "SELECT poolguard.worker_pid()")
    s0=$(sql -c "SELECT scans FROM poolguard.stats"); c0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    sleep "$CPU_SECONDS"
    s1=$(sql -c "SELECT scans FROM poolguard.stats"); c1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v t="$TICKS" 'BEGIN {printf "%.3f %d", c / t * 1000 / s, s}'
}
w_base=$(worker_cpu "idle_timeout" "'1h'")
w_mem=$(worker_cpu "idle_timeout, max_idle_memory" "'1h', 1000000000000")
w_base2=$(worker_cpu "idle_timeout" "'1h'")
w_base_ms=$(awk -v a="${w_base% *}" -v b="${w_base2% *}" 'BEGIN {printf "%.3f", (a + b) / 2}')
pervs() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN {printf "%.1f", (a - b) * 1000 / n}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t ? "met" : "MISSED")}'; }

mkdir -p bench/measured
{
    echo "## Reading private memory"
    echo
    echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), Linux $(uname -r)$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores, shared machine)."
    echo "Command: \`bash bench/memory_cost.sh\`. $N idle sessions ($READERS of them read a ${table_mb} MB table into shared_buffers = 1GB), one server."
    echo
    echo "| one reading (mean over $ROUNDS rounds, interleaved) | /proc/<pid>/status (now) | smaps_rollup (before) | ratio now / before |"
    echo "|---|---|---|---|"
    echo "| idle backend | $(field status_us <<<"$read_idle") µs | $(field rollup_us <<<"$read_idle") µs | $(ratio "$(field status_us <<<"$read_idle")" "$(field rollup_us <<<"$read_idle")") |"
    echo "| backend that read ${table_mb} MB of shared buffers | $(field status_us <<<"$read_reader") µs | $(field rollup_us <<<"$read_reader") µs | $(ratio "$(field status_us <<<"$read_reader")" "$(field rollup_us <<<"$read_reader")") |"
    echo
    echo "| at $N sessions (median of 7) | time | pg_stat_activity | ratio | target (issue 22: ≤ 2× at 5,000) |"
    echo "|---|---|---|---|---|"
    for row in "poolguard.sessions:$t_sessions" "poolguard.memory:$t_memory" "poolguard.metrics():$t_metrics"; do
        r=$(ratio "${row#*:}" "$t_base")
        echo "| ${row%%:*} | ${row#*:} ms | $t_base ms ($t_psa, $t_psa2) | ${r}× | $(verdict "$r" 2) at $N |"
    done
    echo
    echo "| worker, naptime 10ms, $N idle sessions | CPU per scan | scans | per session |"
    echo "|---|---|---|---|"
    echo "| idle_timeout only (runs before and after) | $w_base_ms ms | ${w_base#* } + ${w_base2#* } | |"
    echo "| + max_idle_memory (every session read each scan) | ${w_mem% *} ms | ${w_mem#* } | $(pervs "${w_mem% *}" "$w_base_ms") µs more |"
} >bench/measured/memory_cost.md
cat bench/measured/memory_cost.md
