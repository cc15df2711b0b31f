#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: the motivating case on a throwaway cluster.
# A Next.js-style app leaves 11 idle connections, each holding ~60 MB of private memory (temp
# buffers filled by a temp table), beside 3 busy ones: 11 idle connections over the 500 MB the
# team wanted.  We print the connections and their private memory (before), what
# poolguard.pool_advice says the app's pool needs (the advice), set
# poolguard.idle_memory_budget = 500MB (the budget applied) and print them again with the
# poolguard.terminations rows (after); then one policy (idle_timeout 5s, keep at most 2 idle)
# ends the rest, and a pool of the advised size, capped there, serves the app's load (0 failed,
# 0 refused).  Takes about a minute.
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
    "poolguard.naptime = '200ms'" "poolguard.advice_window = '1min'" \
    "poolguard.metrics_listen = '127.0.0.1:$METRICS_PORT'"
APP_PIDS=()
cleanup() {
    for p in "${APP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

sql() { psql_at "$WORK" "$PORT" -d postgres "$@"; }
sql -q -c 'CREATE EXTENSION pg_poolguard'

wait_until() { wait_for "$WORK" "$PORT" "$1"; }
idle_count="SELECT count(*) FROM poolguard.sessions WHERE application_name = 'next-app' AND state = 'idle'"

# The app's sessions run as a plain role; superusers are exempt by default.  Here everything
# is the postgres superuser, so the demo turns that exemption off for this cluster.
sql -q -c "ALTER SYSTEM SET poolguard.exempt_superusers = off" -c "SELECT pg_reload_conf()" >/dev/null

log "the app opens 11 connections that go idle holding memory (one after the other), then 3 busy ones"
for i in $(seq 1 11); do
    ( echo "SET temp_buffers = '64MB';"
      echo "CREATE TEMP TABLE cache AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 100000) g;"
      echo "SELECT count(*) FROM cache;"
      # Connected for as long as the demo runs (until the server ends it), however slow the machine.
      while kill -0 $$ 2>/dev/null; do sleep 1; done ) | as_pg env PGAPPNAME=next-app psql -X -q -h "$WORK" -p "$PORT" -U postgres -d postgres >/dev/null 2>&1 &
    APP_PIDS+=($!)
    wait_until "($idle_count AND private_memory > 45000000) >= $i"
done
for i in 1 2 3; do
    as_pg env PGAPPNAME=next-app psql -X -q -h "$WORK" -p "$PORT" -U postgres -d postgres \
        -c "SELECT pg_sleep(20)" >/dev/null 2>&1 &
    APP_PIDS+=($!)
done

report() {
    sql -c "SELECT application_name, state, count(*) AS connections,
                   pg_size_pretty(sum(private_memory)) AS private_memory
              FROM poolguard.sessions WHERE application_name = 'next-app'
             GROUP BY 1, 2 ORDER BY 2"
}
log "before: connections of the app and their private memory"
report

log "the advice: what the app's pool needs (poolguard.pool_advice)"
# (The worker re-reads the idle sessions' memory every 10 s: wait for a reading of all 11.)
all_idle_at=$(sql -Atq -c "SELECT clock_timestamp()")
wait_until "SELECT active_max >= 3 AND idle_now >= 11 AND idle_memory_at > '$all_idle_at'
              FROM poolguard.pool_advice WHERE application_name = 'next-app'"
sql -c "SELECT connections_now AS now, connections_peak AS peak, active_p50 AS p50, active_p95 AS p95,
               active_max AS max, recommended_max, pg_size_pretty(idle_memory) AS idle_memory,
               pg_size_pretty(memory_freed) AS would_free
          FROM poolguard.pool_advice WHERE application_name = 'next-app'"
sql -Atq -c "SELECT 'why: ' || why FROM poolguard.pool_advice WHERE application_name = 'next-app'"
RECOMMENDED=$(sql -Atq -c "SELECT recommended_max FROM poolguard.pool_advice WHERE application_name = 'next-app'")

log "the budget applied: poolguard.idle_memory_budget = 500MB (idle sessions together, largest ended first)"
sql -q -c "ALTER SYSTEM SET poolguard.idle_memory_budget = '500MB'" -c "SELECT pg_reload_conf()" >/dev/null
idle_memory="SELECT coalesce(sum(private_memory), 0) FROM poolguard.sessions WHERE state = 'idle'"
wait_until "($idle_memory) < 500 * 1024 * 1024"
log "after the budget: idle memory under 500 MB"
report
sql -c "SELECT pid, reason, pg_size_pretty(private_memory) AS private_memory
          FROM poolguard.terminations WHERE reason = 'idle_memory_budget' ORDER BY at"

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

log "the advice applied: a pool of $RECOMMENDED connections under the app's load (3 requests at once), capped there"
# The cap (max_connections = the advice, on_limit 'reject') makes any login past the advice a
# refusal the numbers below would show; pgbench's clients are the pool's connections, each
# serving requests back to back.
wait_until "SELECT count(*) = 0 FROM poolguard.sessions WHERE application_name = 'next-app'"
sql -q -c "UPDATE poolguard.policy SET max_connections = $RECOMMENDED WHERE name = 'next-app'"
wait_until "SELECT max_connections = $RECOMMENDED FROM poolguard.policy_status WHERE policy = 'next-app'"
printf 'SELECT pg_sleep(0.05);\n' > "$WORK/request.sql"
chmod a+r "$WORK/request.sql"
as_pg env PGAPPNAME=next-app "$(pg_bindir)/pgbench" -n -h "$WORK" -p "$PORT" -U postgres -c "$RECOMMENDED" -j 1 \
    -t 40 -f "$WORK/request.sql" postgres > "$WORK/pgbench.out" 2>&1 || cat "$WORK/pgbench.out"
grep -E '^(number of clients|number of transactions actually processed|number of failed transactions)' \
    "$WORK/pgbench.out" || true
sql -c "SELECT policy, max_connections, logins, rejected, waited FROM poolguard.policy_status WHERE policy = 'next-app'"

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
