#!/usr/bin/env bash
# bench/reaper.sh — the reaper, measured side by side with its baseline in one run.
#   1. lateness of ending idle sessions: pg_poolguard idle_timeout = 2s vs the built-in
#      idle_session_timeout = 2s, on 100 identical sessions, measured the same way (client side:
#      idle time until the server closed the connection), 3 rounds each, medians reported;
#   2. worker CPU per scan with 100 and 1,000 idle client sessions (naptime 10ms);
#   3. time to read private memory (/proc/<pid>/status since issue 27) per session, through the
#      sessions view (bench/memory_cost.sh compares it with smaps_rollup, read before).
# Writes bench/measured/reaper.md.  SMOKE=1: one small round of each, for CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=${SMOKE:-0}
ROUNDS=3; LATENCY_SESSIONS=100; SCAN_SIZES="100 1000"; CPU_SECONDS=10
if [ "$SMOKE" = 1 ]; then ROUNDS=1; LATENCY_SESSIONS=10; SCAN_SIZES="20"; CPU_SECONDS=2; fi

install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)

WORK=$(make_workdir)
PORT=$(free_port)
trap 'cluster_stop "$WORK"; rm -rf "$WORK" "$HOLD"' EXIT
cluster_start "$WORK" "$PORT" "max_connections = 1100" "poolguard.idle_grace = '1s'"
sql() { psql_at "$WORK" "$PORT" -d postgres -Atq "$@"; }
CONN="host=$WORK port=$PORT user=postgres dbname=postgres"
sql -c "CREATE EXTENSION pg_poolguard" -c "CREATE ROLE bench LOGIN"
BENCH_CONN="host=$WORK port=$PORT user=bench dbname=postgres"

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([0-9.-]*\).*/\1/p"; }

# ---- 1. lateness ----
sql -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('bench', 'reaped', '2s')"
: >"$WORK/ours" ; : >"$WORK/builtin"
for r in $(seq 1 "$ROUNDS"); do
    as_pg "$HOLD" "$BENCH_CONN application_name=reaped" "$LATENCY_SESSIONS" 15 "SELECT 1" 10 >>"$WORK/ours"
    as_pg "$HOLD" "$BENCH_CONN application_name=builtin" "$LATENCY_SESSIONS" 15 "SET idle_session_timeout = '2s'" 10 >>"$WORK/builtin"
done
ours_p50=$(field p50_ms <"$WORK/ours" | median); ours_p99=$(field p99_ms <"$WORK/ours" | median)
bi_p50=$(field p50_ms <"$WORK/builtin" | median); bi_p99=$(field p99_ms <"$WORK/builtin" | median)
closed_ours=$(field closed <"$WORK/ours" | median); closed_bi=$(field closed <"$WORK/builtin" | median)
server_late=$(sql -c "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM state_duration) - 2) * 1000)::numeric, 1) || ' / ' ||
                             round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM state_duration) - 2) * 1000)::numeric, 1)
                        FROM poolguard.terminations WHERE reason = 'idle_timeout'")
late() { awk -v v="$1" 'BEGIN {printf "%.1f", v - 2000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }

# ---- 2. worker CPU per scan ----
sql -c "DELETE FROM poolguard.policy" \
    -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('idle', 'held', '1h')" \
    -c "ALTER SYSTEM SET poolguard.naptime = '10ms'" -c "SELECT pg_reload_conf()" >/dev/null
cpu_rows=""
TICKS=$(getconf CLK_TCK)
for n in $SCAN_SIZES; do
    as_pg "$HOLD" "$BENCH_CONN application_name=held" "$n" $((CPU_SECONDS + 30)) "" 0 >/dev/null &
    holder=$!
    for _ in $(seq 1 600); do
        [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held'")" -ge "$n" ] && break
        sleep 0.1
    done
    wpid=$(sql -c "SELECT poolguard.worker_pid()")
    s0=$(sql -c "SELECT scans FROM poolguard.stats"); c0=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    sleep "$CPU_SECONDS"
    s1=$(sql -c "SELECT scans FROM poolguard.stats"); c1=$(awk '{print $14 + $15}' "/proc/$wpid/stat")
    per_scan=$(awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v t="$TICKS" 'BEGIN {printf "%.3f", c / t * 1000 / s}')
    cpu_rows+="| worker CPU per scan, $n idle sessions | ${per_scan} ms | $((s1 - s0)) scans in ${CPU_SECONDS} s |"$'\n'
    # ---- 3. private memory reads, at the largest size ----
    t_all=$(sql -c "\\timing on" -c "SELECT count(private_memory) FROM poolguard.sessions" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
    t_base=$(sql -c "\\timing on" -c "SELECT count(*) FROM pg_stat_activity" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
    mem_row="| reading private memory | $(awk -v a="$t_all" -v b="$t_base" -v n="$n" 'BEGIN {printf "%.1f µs/session", (a - b) * 1000 / n}') | sessions view ${t_all} ms vs pg_stat_activity ${t_base} ms at $n sessions |"
    pkill -f "application_name=held" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held'")" -eq 0 ] && break
        sleep 0.1
    done
done

mkdir -p bench/measured
{
    echo "## Reaper"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Command: \`bash bench/reaper.sh\`. $LATENCY_SESSIONS sessions idle with a 2 s timeout, $ROUNDS rounds, medians of the rounds."
    echo
    echo "| figure | pg_poolguard | baseline | ratio (ours / baseline) |"
    echo "|---|---|---|---|"
    echo "| lateness p50 (idle time − 2 s, client side) | $(late "$ours_p50") ms | $(late "$bi_p50") ms (idle_session_timeout) | $(ratio "$ours_p50" "$bi_p50") of total idle time |"
    echo "| lateness p99 | $(late "$ours_p99") ms | $(late "$bi_p99") ms | $(ratio "$ours_p99" "$bi_p99") of total idle time |"
    echo "| sessions ended | $closed_ours / $LATENCY_SESSIONS | $closed_bi / $LATENCY_SESSIONS | |"
    echo "| server-side lateness p50 / p99 (terminations.state_duration − 2 s) | $server_late ms | | |"
    echo
    echo "| figure | value | raw |"
    echo "|---|---|---|"
    printf "%s" "$cpu_rows"
    echo "$mem_row"
} >bench/measured/reaper.md
cat bench/measured/reaper.md
