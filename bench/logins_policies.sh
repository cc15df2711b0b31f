#!/usr/bin/env bash
# bench/logins_policies.sh — logins at scale (issue 22, item 4), side by side in one run:
# login throughput (pgbench -C, one SELECT 1 per connection) with SESSIONS idle sessions held
# and POLICIES policies (one role each, max_policies raised to match, every policy with a cap)
# vs the same server with the library not loaded; target ratio >= 0.97.
#
# Both clusters get the same POLICIES login roles (t1 .. tN); the logins measured are of the
# tenant in the middle (tN/2: a linear scan would try half the policies), the held sessions are
# spread over the first SESSIONS tenants.  The sessions are held on one cluster at a time (rounds
# alternate), so the machine needs the memory of SESSIONS idle backends once, not twice (not
# measured yet at 5,000; the holder also needs SESSIONS + 1024 open files, set by ulimit below).
#
# Writes bench/measured/logins_policies.md.  SMOKE=1 (e.g. SESSIONS=50 POLICIES=100): short
# rounds, prints the table and writes nothing (a smoke run is not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SMOKE=${SMOKE:-0}
SESSIONS=${SESSIONS:-5000}
POLICIES=${POLICIES:-10000}
ROUNDS=3; SECONDS_PER_RUN=10
if [ "$SMOKE" = 1 ]; then ROUNDS=1; SECONDS_PER_RUN=2; fi
[ "$SESSIONS" -le "$POLICIES" ] || { echo "SESSIONS must not exceed POLICIES (one tenant each)" >&2; exit 2; }

install_deps
make -s -j"$(nproc)" && make -s install >/dev/null
HOLD=$(build_hold_sessions)

GUARD=$(make_workdir); PLAIN=$(make_workdir)
PG_PORT=$(free_port); PLAIN_PORT=$(free_port)
HOLDER=
# stop_holder [DIR PORT]: ends the holder (runuser and its child, by pid) and waits until the
# cluster's held sessions are gone.
stop_holder() {
    if [ -n "$HOLDER" ]; then
        local child
        for child in $(pgrep -P "$HOLDER" || true); do kill "$child" 2>/dev/null || true; done
        kill "$HOLDER" 2>/dev/null || true
        wait "$HOLDER" 2>/dev/null || true
        HOLDER=
    fi
    if [ $# -eq 2 ]; then
        wait_for "$1" "$2" "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename LIKE 't%'"
    fi
}
trap 'stop_holder; cat "$GUARD/pgbench.err" "$PLAIN/pgbench.err" 2>/dev/null | tail -5; cluster_stop "$GUARD"; cluster_stop "$PLAIN"; rm -rf "$GUARD" "$PLAIN" "$HOLD"' EXIT
MAX_CONNECTIONS=$((SESSIONS + 100))
# Every held session is a backend: room for them (and the file descriptors of the holder).
ulimit -n $((SESSIONS + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cluster_start "$GUARD" "$PG_PORT" "max_connections = $MAX_CONNECTIONS" "poolguard.max_policies = $POLICIES"
cluster_start "$PLAIN" "$PLAIN_PORT" "max_connections = $MAX_CONNECTIONS" "shared_preload_libraries = ''"

for side in GUARD PLAIN; do
    dir=${!side}; port=$([ $side = GUARD ] && echo "$PG_PORT" || echo "$PLAIN_PORT")
    psql_at "$dir" "$port" -d postgres -q -c "
        DO \$\$ BEGIN
            FOR i IN 1..$POLICIES LOOP EXECUTE pg_catalog.format('CREATE ROLE t%s LOGIN', i); END LOOP;
        END \$\$"
done
psql_at "$GUARD" "$PG_PORT" -d postgres -q -c "CREATE EXTENSION pg_poolguard" -c "
    INSERT INTO poolguard.policy (name, role_name, max_connections)
    SELECT 'tenant_' || i, 't' || i, 1000 FROM generate_series(1, $POLICIES) AS i" >/dev/null
in_force=$(psql_at "$GUARD" "$PG_PORT" -d postgres -Atq -c "SELECT poolguard.reload()")
[ "$in_force" = "$POLICIES" ] || { echo "only $in_force of $POLICIES policies in force" >&2; exit 1; }

TENANT=t$(((POLICIES + 1) / 2))
echo "SELECT 1;" >"$GUARD/select1.sql"; echo "SELECT 1;" >"$PLAIN/select1.sql"
chmod 644 "$GUARD/select1.sql" "$PLAIN/select1.sql"

# hold DIR PORT: SESSIONS idle sessions in the background until stop_holder, session i logged in
# as tenant ti (hold_sessions puts i in for %d), so on the pg_poolguard side each is matched to
# its tenant's policy and counted under its cap, at login and at every scan of the worker.
hold() {
    local dir=$1 port=$2
    as_pg "$HOLD" "host=$dir port=$port user=t%d dbname=postgres" "$SESSIONS" 86400 >"$dir/hold.out" 2>&1 &
    HOLDER=$!
    wait_for "$dir" "$port" "SELECT count(*) >= $SESSIONS FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename LIKE 't%' AND state = 'idle'"
}

tps() { # DIR PORT
    local dir=$1 port=$2
    as_pg pgbench -n -C -f "$dir/select1.sql" -c 4 -j 2 -T "$SECONDS_PER_RUN" -h "$dir" -p "$port" -U "$TENANT" postgres \
        2>>"$dir/pgbench.err" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1
}

: >"$GUARD/tps"; : >"$PLAIN/tps"
for r in $(seq 1 "$ROUNDS"); do
    hold "$PLAIN" "$PLAIN_PORT"; tps "$PLAIN" "$PLAIN_PORT" >>"$PLAIN/tps"; stop_holder "$PLAIN" "$PLAIN_PORT"
    hold "$GUARD" "$PG_PORT"; tps "$GUARD" "$PG_PORT" >>"$GUARD/tps"; stop_holder "$GUARD" "$PG_PORT"
done
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
g_tps=$(median <"$GUARD/tps"); p_tps=$(median <"$PLAIN/tps")
ratio=$(awk -v a="$g_tps" -v b="$p_tps" 'BEGIN {printf "%.3f", a / b}')
met=$(awk -v r="$ratio" 'BEGIN {print (r >= 0.97) ? "met" : "MISSED"}')

report() {
    echo "## Logins at scale: $SESSIONS sessions held, $POLICIES policies"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ {print $2}') GB, PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ "$SMOKE" = 1 ] && echo ', SMOKE run (not a measurement)')."
    echo "Command: \`SESSIONS=$SESSIONS POLICIES=$POLICIES bash bench/logins_policies.sh\`. pgbench -C -f (SELECT 1) -c 4 -j 2 as $TENANT, $SECONDS_PER_RUN s per run, $ROUNDS alternating rounds (sessions held on the measured cluster only), medians."
    echo
    echo "| figure | pg_poolguard | baseline | ratio | target |"
    echo "|---|---|---|---|---|"
    echo "| login throughput (tps, a new connection per transaction) | $g_tps | $p_tps (library not loaded) | $ratio | >= 0.97: $met |"
    echo
    echo "Raw samples (tps): pg_poolguard $(paste -sd' ' "$GUARD/tps"); library not loaded $(paste -sd' ' "$PLAIN/tps")."
}
if [ "$SMOKE" = 1 ]; then
    report
else
    mkdir -p bench/measured
    report >bench/measured/logins_policies.md
    cat bench/measured/logins_policies.md
fi
