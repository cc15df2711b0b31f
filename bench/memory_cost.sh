#!/usr/bin/env bash
# bench/memory_cost.sh — what reading private memory costs, and the views and the worker at
# scale (issue 27; targets of issue 22).
#   1. one reading: /proc/<pid>/status (the figure since issue 27) vs /proc/<pid>/smaps_rollup
#      (before), over the same backends, interleaved: idle backends, and backends that each read a
#      200 MB table into shared buffers (smaps_rollup walks a page-table entry per buffer mapped);
#      at the first size only;
#   2. at each size N (SIZES, default 1,000 and 5,000 idle sessions): poolguard.sessions,
#      poolguard.memory, poolguard.metrics() and the HTTP /metrics vs pg_stat_activity, medians
#      of 7 runs each, interleaved with the baseline (target of issue 22: ≤ 2× at 5,000; since
#      issue 22 the views serve the worker's memory samples and read no /proc per session);
#   3. at each size: worker CPU per scan (naptime 10ms) with an idle_timeout policy, memory
#      sampling on (the default poolguard.memory_sample_interval) and off (target of issue 22:
#      ≤ 0.2 ms at 1,000, ≤ 1 ms at 5,000), and with a max_idle_memory policy (every idle session
#      read each naptime, by the rule itself).
# Writes bench/measured/memory_cost.md.  SMOKE=1: small (50 sessions), for CI: not a measurement.
# Memory: each idle backend holds ~1.5-2.5 MB of its own; 5,000 need ~10-12 GB of RAM besides
# shared_buffers (the result records what the server's processes held).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=${SMOKE:-0}
SIZES=${SIZES:-"1000 5000"}; READERS=50; ROWS=1100000; CPU_SECONDS=10; ROUNDS=20
if [ "$SMOKE" = 1 ]; then SIZES=${SIZES_SMOKE:-50}; READERS=4; ROWS=50000; CPU_SECONDS=2; ROUNDS=2; fi
# 5,000 sessions: one descriptor each in the holding client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)
COST=$(mktemp /tmp/proc_read_cost.XXXXXX)
g++ -std=c++17 -O2 -o "$COST" bench/proc_read_cost.cpp
chmod 755 "$COST"
TICKS=$(getconf CLK_TCK)
WORK=""
HOLDER=""
cleanup() {
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
    [ -n "$WORK" ] && { cluster_stop "$WORK"; rm -rf "$WORK"; }
    rm -f "$HOLD" "$COST"
}
trap cleanup EXIT

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t ? "met" : "MISSED")}'; }

view_rows=""
cpu_rows=""
reading_rows=""
memory_notes=""
first=1
for N in $SIZES; do
    WORK=$(make_workdir)
    PORT=$(free_port)
    MPORT=$(free_port)
    cluster_start "$WORK" "$PORT" "max_connections = $((N + 100))" "shared_buffers = '1GB'" \
        "max_parallel_workers_per_gather = 0" "poolguard.metrics_listen = '127.0.0.1:$MPORT'"
    sql() { psql_at "$WORK" "$PORT" -d postgres -Atq "$@"; }
    sql -c "CREATE EXTENSION pg_poolguard" -c "CREATE ROLE bench LOGIN" \
        -c "CREATE TABLE shared_read AS SELECT g, repeat('x', 150) AS pad FROM generate_series(1, $ROWS) g" \
        -c "GRANT SELECT ON shared_read TO bench" \
        -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('held', 'held%', '1h')"
    table_mb=$(sql -c "SELECT pg_relation_size('shared_read') / 1048576")
    BENCH_CONN="host=$WORK port=$PORT user=bench dbname=postgres"
    wait_count() { # wait_count APP N
        for _ in $(seq 1 6000); do
            [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1' AND state = 'idle'")" -ge "$2" ] && return 0
            sleep 0.1
        done
        echo "timed out waiting for $2 idle sessions of $1" >&2
        return 1
    }
    as_pg "$HOLD" "$BENCH_CONN application_name=held-reader" "$READERS" 36000 "SELECT count(*) FROM shared_read" 0 >/dev/null &
    wait_count held-reader "$READERS"
    as_pg "$HOLD" "$BENCH_CONN application_name=held" $((N - READERS)) 36000 "SELECT 1" 0 >/dev/null &
    HOLDER=$!
    wait_count held $((N - READERS))
    pids() { sql -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = '$1'"; }
    # Every session sampled once (the worker reads new sessions one cycle after their login).
    wait_for "$WORK" "$PORT" "(SELECT count(*) FROM poolguard.sessions WHERE memory_sampled_at IS NULL) <= 1"

    # ---- 1. one reading (first size only) ----
    if [ "$first" = 1 ]; then
        read_idle=$(as_pg "$COST" "$ROUNDS" $(pids held))
        read_reader=$(as_pg "$COST" "$ROUNDS" $(pids held-reader))
        reading_rows+="| idle backend | $(field status_us <<<"$read_idle") µs | $(field rollup_us <<<"$read_idle") µs | $(ratio "$(field status_us <<<"$read_idle")" "$(field rollup_us <<<"$read_idle")") |"$'\n'
        reading_rows+="| backend that read ${table_mb} MB of shared buffers | $(field status_us <<<"$read_reader") µs | $(field rollup_us <<<"$read_reader") µs | $(ratio "$(field status_us <<<"$read_reader")" "$(field rollup_us <<<"$read_reader")") |"$'\n'
        first=0
    fi

    # ---- 2. views and /metrics ----
    timed() { # median ms of 7 runs of a query, in one psql session
        { echo '\timing on'; for _ in 1 2 3 4 5 6 7; do echo "$1;"; done; } |
            psql_at "$WORK" "$PORT" -d postgres -Atq 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
            sort -n | awk '{a[NR]=$1} END {print a[4]}'
    }
    http_timed() { # median ms of 7 GETs of /metrics (a new TCP connection each, as a scraper)
        for _ in 1 2 3 4 5 6 7; do
            local t0 t1
            t0=$(date +%s%N)
            exec 3<>"/dev/tcp/127.0.0.1/$MPORT"
            printf 'GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3
            cat <&3 >/dev/null
            exec 3<&-
            t1=$(date +%s%N)
            echo $(((t1 - t0) / 1000))
        done | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[4] / 1000}'
    }
    t_psa=$(timed "SELECT count(*) FROM (SELECT * FROM pg_stat_activity) s")
    t_sessions=$(timed "SELECT count(*) FROM (SELECT * FROM poolguard.sessions) s")
    t_memory=$(timed "SELECT count(*) FROM (SELECT * FROM poolguard.memory) s")
    t_metrics=$(timed "SELECT length(poolguard.metrics())")
    t_http=$(http_timed)
    t_psa2=$(timed "SELECT count(*) FROM (SELECT * FROM pg_stat_activity) s")
    t_base=$(awk -v a="$t_psa" -v b="$t_psa2" 'BEGIN {printf "%.3f", (a + b) / 2}')
    for row in "poolguard.sessions:$t_sessions" "poolguard.memory:$t_memory" "poolguard.metrics():$t_metrics" \
        "HTTP /metrics (a GET, connection included):$t_http"; do
        r=$(ratio "${row#*:}" "$t_base")
        target="≤ 2× at 5,000"
        [ "$N" -ge 5000 ] && target="$(verdict "$r" 2) (≤ 2×)"
        view_rows+="| ${row%%:*} | $N | ${row#*:} ms | $t_base ms ($t_psa, $t_psa2) | ${r}× | $target |"$'\n'
    done
    held_mb=$(sql -c "SELECT round(coalesce(sum(bytes), 0) / 1048576.0) FROM poolguard.memory WHERE figure IN ('client_backends', 'pg_poolguard', 'other_processes')")
    seg_mb=$(sql -c "SELECT bytes / 1048576 FROM poolguard.memory WHERE figure = 'shared_memory_size'")
    memory_notes+="$N sessions: the server's processes held ${held_mb} MB of their own (sampled), the shared segment ${seg_mb} MB. "

    # ---- 3. the worker ----
    sql -c "ALTER SYSTEM SET poolguard.naptime = '10ms'" -c "SELECT pg_reload_conf()" >/dev/null
    worker_cpu() { # worker_cpu POLICY_COLUMNS VALUES SAMPLE_INTERVAL → "ms CPU per scan, scans"
        sql -c "ALTER SYSTEM SET poolguard.memory_sample_interval = '$3'" -c "SELECT pg_reload_conf()" \
            -c "TRUNCATE poolguard.policy" -c "INSERT INTO poolguard.policy (name, application_name, $1) VALUES ('held', 'held%', $2)" \
            -c "SELECT poolguard.reload()" >/dev/null
        sleep 1
        local wpid s0 s1 c0 c1
        wpid=$(sql -c "SELECT poolguard.worker_pid()")
        s0=$(sql -c "SELECT scans FROM poolguard.stats"); c0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
        sleep "$CPU_SECONDS"
        s1=$(sql -c "SELECT scans FROM poolguard.stats"); c1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
        awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v t="$TICKS" 'BEGIN {printf "%.3f %d", c / t * 1000 / s, s}'
    }
    w_on=$(worker_cpu "idle_timeout" "'1h'" "1min")
    w_off=$(worker_cpu "idle_timeout" "'1h'" "0")
    w_mem=$(worker_cpu "idle_timeout, max_idle_memory" "'1h', 1000000000000" "1min")
    w_on2=$(worker_cpu "idle_timeout" "'1h'" "1min")
    w_on_ms=$(awk -v a="${w_on% *}" -v b="${w_on2% *}" 'BEGIN {printf "%.3f", (a + b) / 2}')
    limit=0.2
    [ "$N" -ge 5000 ] && limit=1
    cpu_rows+="| $N | idle_timeout, sampling on (1 min; runs before and after) | $w_on_ms ms | ${w_on#* } + ${w_on2#* } | $(verdict "$w_on_ms" "$limit") (≤ $limit ms) |"$'\n'
    cpu_rows+="| $N | idle_timeout, sampling off | ${w_off% *} ms | ${w_off#* } | |"$'\n'
    cpu_rows+="| $N | + max_idle_memory (every idle session read each naptime) | ${w_mem% *} ms | ${w_mem#* } | |"$'\n'

    kill "$HOLDER" 2>/dev/null || true
    HOLDER=""
    cluster_stop "$WORK"
    rm -rf "$WORK"
    WORK=""
done

mkdir -p bench/measured
{
    echo "## Reading private memory; the views and the worker at scale"
    echo
    echo "$(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), Linux $(uname -r)$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Load average (1, 5, 15 min) at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: \`bash bench/memory_cost.sh\` (SIZES=\"$SIZES\"). Idle sessions ($READERS of them read a ${table_mb} MB table into shared_buffers = 1GB), one server per size. $memory_notes"
    echo
    echo "| one reading (mean over $ROUNDS rounds, interleaved) | /proc/<pid>/status (now) | smaps_rollup (before) | ratio now / before |"
    echo "|---|---|---|---|"
    printf '%s' "$reading_rows"
    echo
    echo "| median of 7 | sessions | time | pg_stat_activity (before, after) | ratio | target (issue 22) |"
    echo "|---|---|---|---|---|---|"
    printf '%s' "$view_rows"
    echo
    echo "| sessions | worker, naptime 10ms | CPU per scan | scans | target (issue 22) |"
    echo "|---|---|---|---|---|"
    printf '%s' "$cpu_rows"
} >bench/measured/memory_cost.md
cat bench/measured/memory_cost.md
