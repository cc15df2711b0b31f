#!/usr/bin/env bash
# bench/memory.sh — the motivating case, measured: 11 idle app sessions each holding private
# memory (temp buffers filled by a temp table) beside 3 busy ones; total private memory of the
# app's backends before and after one policy (idle_timeout 5s, max_idle 2).
# Writes bench/measured/memory.md.  SMOKE=1: smaller tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ROWS=70000
[ "${SMOKE:-0}" = 1 ] && ROWS=5000

install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)

WORK=$(make_workdir)
PORT=$(free_port)
trap 'pkill -f "application_name=next-app" 2>/dev/null || true; cluster_stop "$WORK"; rm -rf "$WORK" "$HOLD"' EXIT
cluster_start "$WORK" "$PORT" "poolguard.idle_grace = '1s'"
sql() { psql_at "$WORK" "$PORT" -d postgres -Atq "$@"; }
sql -c "CREATE EXTENSION pg_poolguard" -c "CREATE ROLE app LOGIN"
CONN="host=$WORK port=$PORT user=app dbname=postgres application_name=next-app"

as_pg "$HOLD" "$CONN" 11 60 "SET temp_buffers = '64MB'; CREATE TEMP TABLE cache AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, $ROWS) g; SELECT count(*) FROM cache" 0 >/dev/null &
for _ in 1 2 3; do
    as_pg psql -X -q -d "$CONN" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
done
wait_until() { wait_for "$WORK" "$PORT" "$1"; }
app="FROM poolguard.sessions WHERE application_name = 'next-app'"
wait_until "(SELECT count(*) $app AND state = 'idle') = 11 AND (SELECT count(*) $app AND state = 'active') = 3"
before=$(sql -c "SELECT count(*) || ' ' || sum(private_memory) $app")
idle_before=$(sql -c "SELECT sum(private_memory) $app AND state = 'idle'")
t0=$(date +%s.%N)
sql -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout, max_idle) VALUES ('next-app', 'next-app%', '5s', 2)"
wait_until "(SELECT count(*) $app AND state = 'idle') <= 2"
t_maxidle=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
after_maxidle=$(sql -c "SELECT count(*) || ' ' || coalesce(sum(private_memory), 0) $app")
wait_until "(SELECT count(*) $app AND state = 'idle') = 0"
t_timeout=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
after=$(sql -c "SELECT count(*) || ' ' || coalesce(sum(private_memory), 0) $app")
freed=$(sql -c "SELECT coalesce(sum(private_memory), 0) FROM poolguard.terminations WHERE policy = 'next-app'")

mb() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1048576}'; }
mkdir -p bench/measured
{
    echo "## The motivating case: idle sessions holding memory"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')$( [ "${SMOKE:-0}" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Command: \`bash bench/memory.sh\`. 11 idle + 3 active sessions of one app; policy idle_timeout 5s, max_idle 2 (idle_grace 1s)."
    echo
    echo "| moment | app sessions | their private memory |"
    echo "|---|---|---|"
    echo "| before the policy | ${before% *} | $(mb "${before#* }") (idle ones: $(mb "$idle_before")) |"
    echo "| max_idle = 2 applied (${t_maxidle} s after the INSERT) | ${after_maxidle% *} | $(mb "${after_maxidle#* }") |"
    echo "| idle_timeout = 5s applied (${t_timeout} s after the INSERT) | ${after% *} | $(mb "${after#* }") |"
    echo "| held by the ended sessions (poolguard.terminations.private_memory) | | $(mb "$freed") |"
} >bench/measured/memory.md
cat bench/measured/memory.md
