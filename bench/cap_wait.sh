#!/usr/bin/env bash
# bench/cap_wait.sh — a cap below a pool's burst: SQLAlchemy pool 10 + overflow 10 on 20 threads
# under max_connections 12, on_limit 'evict_idle' (baseline) against 'wait' (login_wait 5 s),
# alternated in one run (bench/cap_wait.pl).  Writes bench/measured/cap_wait.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

install_deps python3-sqlalchemy python3-psycopg2
make -s -j"$(nproc)" && make -s install >/dev/null

bench_tree
bench_tap_samples bench/cap_wait.sh bench/cap_wait.pl
runs=$(grep -c '^wait ' "$WORK/samples")
{
    echo "# A cap below the pool's burst: caps that wait (on_limit = 'wait')"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'); SQLAlchemy $(/usr/bin/python3 -c 'import sqlalchemy; print(sqlalchemy.__version__)'); pg_poolguard $(git rev-parse --short HEAD)"
    echo "- command: \`bash bench/cap_wait.sh\` (bench/cap_wait.pl: SQLAlchemy QueuePool pool_size 10 +"
    echo "  max_overflow 10, pool_pre_ping, 20 threads, 3 bursts of 200 requests each holding its"
    echo "  connection 50 ms; policy max_connections 12; baseline on_limit 'evict_idle' (the issue's"
    echo "  setting), against on_limit 'wait' with login_wait 5 s; $runs runs per variant, alternated)"
    echo
    echo "| figure (sum over $runs runs) | wait | evict_idle (baseline) | target | |"
    echo "|---|---|---|---|---|"
    a=$(sample_sum wait refused_logins)
    echo "| refused logins | $a | $(sample_sum evict_idle refused_logins) | 0 with wait | $([ "$a" = 0 ] && echo met || echo MISSED) |"
    a=$(sample_sum wait failed)
    echo "| failed requests | $a | $(sample_sum evict_idle failed) | 0 with wait | $([ "$a" = 0 ] && echo met || echo MISSED) |"
    echo "| requests | $(sample_sum wait requests) | $(sample_sum evict_idle requests) | | |"
    echo "| logins that waited (admitted) | $(sample_sum wait waited_logins) | $(sample_sum evict_idle waited_logins) | | |"
    echo "| logins admitted | $(sample_sum wait logins) | $(sample_sum evict_idle logins) | | |"
    w=$(awk -v v=wait '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "burst_seconds") s += kv[2] } } END { printf "%.2f", s }' "$WORK/samples")
    e=$(awk -v v=evict_idle '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "burst_seconds") s += kv[2] } } END { printf "%.2f", s }' "$WORK/samples")
    echo "| burst wall time, s (ratio wait / baseline: $(awk -v w="$w" -v e="$e" 'BEGIN { printf "%.2f", w / e }')) | $w | $e | | |"
    echo
    echo "Raw samples:"
    echo
    sed 's/^/- /' "$WORK/samples"
} >bench/measured/cap_wait.md
cat bench/measured/cap_wait.md
