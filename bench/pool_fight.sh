#!/usr/bin/env bash
# bench/pool_fight.sh — a pool fighting a rule, and the warm floor that stops it: HikariCP at its
# defaults (minimumIdle 10) with one health probe per quiet period, under idle_timeout, without
# (baseline) and with the policy's min_idle 10, alternated in one run (bench/pool_fight.pl).
# Writes bench/measured/pool_fight.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_deps libhikaricp-java libpostgresql-jdbc-java libslf4j-java default-jdk-headless
make -s -j"$(nproc)" && make -s install >/dev/null

WORK=$(make_workdir)
trap 'rm -rf "$WORK"' EXIT
tar -C . --exclude=.git --exclude=node_modules --exclude=tmp_check -cf - . | (cd "$WORK" && tar xf -)
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK"
(cd "$WORK" && as_pg make -s tap PROVE_FLAGS=-v PROVE_TESTS=bench/pool_fight.pl) >"$WORK/run.out" 2>&1 || {
    cat "$WORK/run.out"; echo "bench/pool_fight.sh: the run failed" >&2; exit 1; }
grep '^# sample ' "$WORK/run.out" | sed 's/^# sample //' >"$WORK/samples"
field() { # VARIANT FIELD: the values of FIELD over the runs of VARIANT, summed
    awk -v v="$1" -v f="$2" '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) s += kv[2] } } END { print s + 0 }' "$WORK/samples"
}
maxf() {
    awk -v v="$1" -v f="$2" '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f && kv[2] > m) m = kv[2] } } END { print m + 0 }' "$WORK/samples"
}
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
    a=$(field min_idle quiet_logins); b=$(field baseline quiet_logins)
    echo "| logins in quiet periods | $a | $b | 0 with min_idle | $([ "$a" = 0 ] && echo met || echo MISSED) |"
    echo "| sessions ended by the server | $(field min_idle ended) | $(field baseline ended) | | |"
    echo "| refills counted | $(field min_idle refills) | $(field baseline refills) | | |"
    echo "| failed requests | $(field min_idle failed) | $(field baseline failed) | 0 | $([ "$(field min_idle failed)$(field baseline failed)" = 00 ] && echo met || echo MISSED) |"
    s=$(maxf min_idle max_idle_sessions); m=$(maxf min_idle max_idle_private_bytes)
    echo "| idle sessions in quiet (max) | $s | $(maxf baseline max_idle_sessions) | ≤ 10 (the floor) | $([ "$s" -le 10 ] && echo met || echo MISSED) |"
    echo "| their private memory, bytes (max) | $m | $(maxf baseline max_idle_private_bytes) | bounded: ≤ 10 sessions | |"
    echo
    echo "Raw samples:"
    echo
    sed 's/^/- /' "$WORK/samples"
} >bench/measured/pool_fight.md
cat bench/measured/pool_fight.md
