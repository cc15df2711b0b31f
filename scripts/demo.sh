#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: the motivating case on a throwaway cluster.
# A Next.js-style app leaves 11 idle connections, each holding ~40 MB of private memory (temp
# buffers filled by a temp table), beside 3 busy ones.  We print the connections and their
# private memory, apply one policy (idle_timeout 5s, keep at most 2 idle), and print them again
# with the poolguard.terminations rows.  Takes about 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_deps
make -s -j"$(nproc)"
make -s install >/dev/null

WORK=$(make_workdir)
PORT=$(free_port)
METRICS_PORT=$(free_port)
cluster_start "$WORK" "$PORT" "poolguard.idle_grace = '1s'" "max_connections = 50" \
    "poolguard.metrics_listen = '127.0.0.1:$METRICS_PORT'"
APP_PIDS=()
cleanup() {
    for p in "${APP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

sql() { psql_at "$WORK" "$PORT" -d postgres "$@"; }
sql -q -c 'CREATE EXTENSION pg_poolguard'

log "the app opens 11 connections that go idle holding memory, and 3 busy ones"
for i in $(seq 1 11); do
    ( echo "SET application_name = 'next-app';"
      echo "SET temp_buffers = '64MB';"
      echo "CREATE TEMP TABLE cache AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 70000) g;"
      echo "SELECT count(*) FROM cache;"
      # Connected for as long as the demo runs (until the server ends it), however slow the machine.
      while kill -0 $$ 2>/dev/null; do sleep 1; done ) | as_pg psql -X -q -h "$WORK" -p "$PORT" -U postgres -d postgres >/dev/null 2>&1 &
    APP_PIDS+=($!)
done
for i in 1 2 3; do
    as_pg psql -X -q -h "$WORK" -p "$PORT" -U postgres -d postgres \
        -c "SET application_name = 'next-app'; SELECT pg_sleep(20)" >/dev/null 2>&1 &
    APP_PIDS+=($!)
done

# The app's sessions run as a plain role; superusers are exempt by default.  Here everything
# is the postgres superuser, so the demo turns that exemption off for this cluster.
sql -q -c "ALTER SYSTEM SET poolguard.exempt_superusers = off" -c "SELECT pg_reload_conf()" >/dev/null

wait_until() { wait_for "$WORK" "$PORT" "$1"; }
idle_count="SELECT count(*) FROM poolguard.sessions WHERE application_name = 'next-app' AND state = 'idle'"
wait_until "($idle_count AND private_memory > 30000000) >= 11"

report() {
    sql -c "SELECT application_name, state, count(*) AS connections,
                   pg_size_pretty(sum(private_memory)) AS private_memory
              FROM poolguard.sessions WHERE application_name = 'next-app'
             GROUP BY 1, 2 ORDER BY 2"
}
log "before: connections of the app and their private memory"
report

log "apply one policy"
sql -c "INSERT INTO poolguard.policy (name, application_name, idle_timeout, max_idle)
        VALUES ('next-app', 'next-app%', '5s', 2)"

wait_until "($idle_count) <= 2"
log "after max_idle = 2 (longest-idle first, within a second)"
report

wait_until "($idle_count) = 0"
log "after idle_timeout = 5s"
report

log "poolguard.terminations"
sql -c "SELECT to_char(at, 'HH24:MI:SS.MS') AS at, pid, reason, policy, action, state,
               round(extract(epoch FROM state_duration)::numeric, 2) AS idle_s,
               pg_size_pretty(private_memory) AS private_memory
          FROM poolguard.terminations ORDER BY at"

log "the same story as metrics: curl http://127.0.0.1:$METRICS_PORT/metrics"
fetch_metrics() { # bash's /dev/tcp: no curl needed
    exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT" || return 1
    printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' >&3
    sed '1,/^\r$/d' <&3
    exec 3<&-
}
fetch_metrics || sql -Atq -c "SELECT poolguard.metrics()"

cat <<MSG
pg_poolguard $(sql -Atq -c 'SELECT poolguard.version()') keeps running on this throwaway cluster.
Connect:  psql -h $WORK -p $PORT -U postgres postgres
Stop:     $( [ "$(id -u)" -eq 0 ] && echo "runuser -u postgres -- ")$(pg_bindir)/pg_ctl -D $WORK/data stop && rm -rf $WORK
MSG
