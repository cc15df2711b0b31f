#!/usr/bin/env bash
# bench/reaper_scale.sh — reaping at scale (issue 22, item 3), measured side by side with its
# baseline in one run: HELD sessions open, DUE of them (application_name "due", their own policy)
# going idle at the same moment (bench/hold_sessions.cpp's "together" mode: they wait on one
# advisory lock and are let go at once) and timing out together.
#
#   pg_poolguard: policy "due" with idle_timeout = TIMEOUT;
#   baseline:     the built-in idle_session_timeout = TIMEOUT, SET in the same sessions;
#
# same holder, same sessions, same measurement (client side: idle time until the server closed
# the connection), ROUNDS rounds of each, interleaved (ours, built-in, ours, ...); medians of the
# rounds.  Server-side lateness comes from the worker's own record: poolguard.terminations'
# state_duration (idle time when the signal was sent) minus TIMEOUT.
#
# Targets (issue 22, item 3): server-side lateness p99 <= 5 ms; client-side lateness p99 <= 1.1x
# the built-in idle_session_timeout's on the same sessions.
#
# Needs, at the full size (HELD=5000 DUE=1000) — checked before it starts:
#   - max_connections = HELD + 50 (set here; the shared segment grows by roughly 10 MB per 1,000
#     connection slots with the default max_locks_per_transaction);
#   - memory for HELD backends: an idle session here holds about 0.8 MB of private memory (the
#     script prints the measured mean, from poolguard.sessions), plus its page tables and kernel
#     structures: count 1.5 MB each, so 5,000 sessions need about 8.5 GB available
#     (MemAvailable).  Do not run it on a machine that has less, or that others are measuring on;
#   - the holders open one socket per session: `ulimit -Hn` must exceed HELD (hold_sessions raises
#     its soft limit to the hard one itself), and the postgres user must be allowed HELD more
#     processes (`ulimit -u`, /proc/sys/kernel/pid_max).
#
# Writes bench/measured/reaper_scale.md.  Sizes: HELD=5000 DUE=1000 ROUNDS=3 TIMEOUT_MS=2000 by
# default; SMOKE=1: HELD=50 DUE=10 ROUNDS=1 (known to run, not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SMOKE=${SMOKE:-0}
HELD=${HELD:-5000}; DUE=${DUE:-1000}; ROUNDS=${ROUNDS:-3}; TIMEOUT_MS=${TIMEOUT_MS:-2000}
if [ "$SMOKE" = 1 ]; then HELD=50; DUE=10; ROUNDS=1; fi
[ "$DUE" -le "$HELD" ] || { echo "DUE ($DUE) must not exceed HELD ($HELD)" >&2; exit 1; }
BACKGROUND=$((HELD - DUE))
need_mb=$((HELD * 3 / 2 + 1024))
avail_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
[ "$avail_mb" -ge "$need_mb" ] || { echo "reaper_scale: $HELD sessions need about $need_mb MB available, this machine has $avail_mb MB" >&2; exit 1; }
files=$(ulimit -Hn)
[ "$files" = unlimited ] || [ "$files" -gt $((HELD + 100)) ] || { echo "reaper_scale: ulimit -Hn is $files, $HELD sessions need more than $((HELD + 100))" >&2; exit 1; }

install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)

WORK=$(make_workdir)
PORT=$(free_port)
HOLDER=
stop_holder() {
    if [ -n "$HOLDER" ]; then
        # as_pg runs the holder as a child of runuser: end the holder itself, then its parent.
        for child in $(pgrep -P "$HOLDER" || true); do kill "$child" 2>/dev/null || true; done
        kill "$HOLDER" 2>/dev/null || true
        wait "$HOLDER" 2>/dev/null || true
        HOLDER=
    fi
}
trap 'stop_holder; cluster_stop "$WORK"; rm -rf "$WORK" "$HOLD"' EXIT
# history_size: every action of a round stays in poolguard.terminations until it is read.
cluster_start "$WORK" "$PORT" "max_connections = $((HELD + 50))" "poolguard.history_size = $((DUE * 2 + 100))"
sql() { psql_at "$WORK" "$PORT" -d postgres -Atq "$@"; }
sql -c "CREATE EXTENSION pg_poolguard" -c "CREATE ROLE bench LOGIN"
sql -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('due', 'due', '${TIMEOUT_MS}ms')" \
    -c "SELECT poolguard.reload()" >/dev/null
BENCH_CONN="host=$WORK port=$PORT user=bench dbname=postgres"
field() { sed -n "s/.*$1=\([0-9.-]*\).*/\1/p"; }

# The sessions that stay: HELD - DUE idle sessions no rule ends, held for the whole run.
if [ "$BACKGROUND" -gt 0 ]; then
    as_pg "$HOLD" "$BENCH_CONN application_name=held" "$BACKGROUND" 86400 "" 0 >"$WORK/held.out" 2>&1 &
    HOLDER=$!
    wait_for "$WORK" "$PORT" "(SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held' AND state = 'idle') >= $BACKGROUND"
fi
per_session=$(sql -c "SELECT coalesce(round(avg(private_memory) / 1048576.0, 2)::text, 'n/a') FROM poolguard.sessions WHERE application_name = 'held'")

# One round: DUE sessions go idle together; prints the holder's line, then (ours) the server side.
: >"$WORK/ours"; : >"$WORK/builtin"; : >"$WORK/server"
for r in $(seq 1 "$ROUNDS"); do
    since=$(sql -c "SELECT clock_timestamp()")
    as_pg "$HOLD" "$BENCH_CONN application_name=due" "$DUE" $((TIMEOUT_MS / 1000 + 60)) "SELECT 1" -1 >>"$WORK/ours"
    # Server side: the worker's own record of the round's actions (state_duration: idle time at
    # the signal).
    sql -c "SELECT count(*) || ' ' ||
                   coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness))::numeric, 2), -1) || ' ' ||
                   coalesce(round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lateness))::numeric, 2), -1)
              FROM (SELECT extract(epoch FROM state_duration) * 1000 - $TIMEOUT_MS AS lateness
                      FROM poolguard.terminations
                     WHERE reason = 'idle_timeout' AND policy = 'due' AND at >= '$since') t" >>"$WORK/server"
    as_pg "$HOLD" "$BENCH_CONN application_name=builtin" "$DUE" $((TIMEOUT_MS / 1000 + 60)) \
        "SET idle_session_timeout = '${TIMEOUT_MS}ms'" -1 >>"$WORK/builtin"
done
stop_holder

late() { awk -v v="$1" -v t="$TIMEOUT_MS" 'BEGIN {printf "%.1f", v - t}'; }
ours_p50=$(field p50_ms <"$WORK/ours" | median); ours_p99=$(field p99_ms <"$WORK/ours" | median)
bi_p50=$(field p50_ms <"$WORK/builtin" | median); bi_p99=$(field p99_ms <"$WORK/builtin" | median)
closed_ours=$(field closed <"$WORK/ours" | median); closed_bi=$(field closed <"$WORK/builtin" | median)
spread_ours=$(field spread_ms <"$WORK/ours" | median); spread_bi=$(field spread_ms <"$WORK/builtin" | median)
server_n=$(awk '{print $1}' "$WORK/server" | median)
server_p50=$(awk '{print $2}' "$WORK/server" | median); server_p99=$(awk '{print $3}' "$WORK/server" | median)
late_ours_p99=$(late "$ours_p99"); late_bi_p99=$(late "$bi_p99")
late_ratio=$(ratio "$late_ours_p99" "$late_bi_p99")
met() { if awk "BEGIN {exit !($1)}"; then echo met; else echo MISSED; fi; }
server_target=$(met "$server_p99 <= 5 && $server_n >= $DUE")
client_target=$(met "$late_ours_p99 <= 1.1 * $late_bi_p99 && $closed_ours >= $DUE")

mkdir -p bench/measured
{
    echo "## Reaping at scale"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Command: \`HELD=$HELD DUE=$DUE ROUNDS=$ROUNDS TIMEOUT_MS=$TIMEOUT_MS bash bench/reaper_scale.sh\`. $HELD sessions held, $DUE of them idle together with a $TIMEOUT_MS ms timeout, $ROUNDS rounds of each (interleaved), medians of the rounds."
    echo "Private memory per idle session (poolguard.sessions, mean): $per_session MB."
    echo
    echo "| figure | pg_poolguard | baseline (idle_session_timeout) | ratio (ours / baseline) | target |"
    echo "|---|---|---|---|---|"
    echo "| client-side lateness p50 (idle time − timeout) | $(late "$ours_p50") ms | $(late "$bi_p50") ms | $(ratio "$(late "$ours_p50")" "$(late "$bi_p50")") | |"
    echo "| client-side lateness p99 | $late_ours_p99 ms | $late_bi_p99 ms | $late_ratio | ≤ 1.1: $client_target |"
    echo "| client-side idle time p99 | $ours_p99 ms | $bi_p99 ms | $(ratio "$ours_p99" "$bi_p99") | |"
    echo "| server-side lateness p50 / p99 (terminations.state_duration − timeout) | $server_p50 / $server_p99 ms | | | p99 ≤ 5 ms: $server_target |"
    echo "| sessions ended | $closed_ours / $DUE (recorded: $server_n) | $closed_bi / $DUE | | |"
    echo "| how far apart the sessions went idle | $spread_ours ms | $spread_bi ms | | |"
    echo
    echo "Raw rounds (holder lines; server: count p50 p99):"
    echo
    echo '```'
    sed 's/^/ours     /' "$WORK/ours"
    sed 's/^/builtin  /' "$WORK/builtin"
    sed 's/^/server   /' "$WORK/server"
    echo '```'
} >bench/measured/reaper_scale.md
cat bench/measured/reaper_scale.md
