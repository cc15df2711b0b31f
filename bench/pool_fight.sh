#!/usr/bin/env bash
# bench/pool_fight.sh — a pool fighting a rule, and the warm floor that stops it: HikariCP at its
# defaults (minimumIdle 10) with one health probe per quiet period, under idle_timeout, without
# (baseline) and with the policy's min_idle 10, alternated in one run (bench/pool_fight.pl).
# Writes bench/measured/pool_fight.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

install_deps libhikaricp-java libpostgresql-jdbc-java libslf4j-java default-jdk-headless
make -s -j"$(nproc)" && make -s install >/dev/null

bench_tree
bench_tap_samples bench/pool_fight.sh bench/pool_fight.pl
runs=$(grep -c '^baseline ' "$WORK/samples")
{
    echo "# A pool fighting a rule, and the warm floor (min_idle)"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'); HikariCP $(ls /usr/share/java/HikariCP-*.jar | sed 's/.*HikariCP-\(.*\)\.jar/\1/'); pg_poolguard $(git rev-parse --short HEAD)"
    echo "- command: \`bash bench/pool_fight.sh\` (bench/pool_fight.pl: HikariCP defaults, maximumPoolSize 10,"
    echo "  one burst of 30 requests, then 4 quiet periods of 3 s each ended by one health probe; policy"
    echo "  idle_timeout 2 s — the issue's 10 s rule and 15 s probe scaled down 5×; $runs runs per variant,"
    echo "  alternated; baseline = the same policy without min_idle)"
    echo
    echo "| figure (sum over $runs runs; memory: largest sample) | min_idle 10 | baseline | target | |"
    echo "|---|---|---|---|---|"
    a=$(sample_sum min_idle quiet_logins); b=$(sample_sum baseline quiet_logins)
    echo "| logins in quiet periods | $a | $b | 0 with min_idle | $([ "$a" = 0 ] && echo met || echo MISSED) |"
    echo "| sessions ended by the server | $(sample_sum min_idle ended) | $(sample_sum baseline ended) | | |"
    echo "| refills counted | $(sample_sum min_idle refills) | $(sample_sum baseline refills) | | |"
    echo "| failed requests | $(sample_sum min_idle failed) | $(sample_sum baseline failed) | 0 | $([ "$(sample_sum min_idle failed)$(sample_sum baseline failed)" = 00 ] && echo met || echo MISSED) |"
    s=$(sample_max min_idle max_idle_sessions); m=$(sample_max min_idle max_idle_private_bytes)
    echo "| idle sessions in quiet (max) | $s | $(sample_max baseline max_idle_sessions) | ≤ 10 (the floor) | $([ "$s" -le 10 ] && echo met || echo MISSED) |"
    echo "| their private memory, bytes (max) | $m | $(sample_max baseline max_idle_private_bytes) | bounded: ≤ 10 sessions | |"
    echo
    echo "Raw samples:"
    echo
    sed 's/^/- /' "$WORK/samples"
} >bench/measured/pool_fight.md
cat bench/measured/pool_fight.md
