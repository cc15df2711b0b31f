#!/usr/bin/env bash
# bench/ha.sh — how soon a new primary enforces pg_poolguard's policies under Patroni, measured
# side by side with Patroni's own baseline (the moment the new primary accepts writes) in one run:
# test/t/150_ha_patroni.pl on three nodes over etcd, RUNS times; each run prints both figures for
# a switchover and for a failover (the leader's node killed).  Writes bench/measured/ha.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS=${RUNS:-3}
install_deps patroni etcd-server python3-etcd
make -s -j"$(nproc)" && make -s install >/dev/null

bench_tree

: >"$WORK/samples"
for r in $(seq 1 "$RUNS"); do
    (cd "$WORK" && as_pg make -s tap PROVE_FLAGS=-v PROVE_TESTS=test/t/150_ha_patroni.pl) >"$WORK/run.out" 2>&1 || {
        cat "$WORK/run.out"; echo "bench/ha.sh: the HA test failed" >&2; exit 1; }
    sw=$(sed -n 's/^# switchover: new primary writable after \([0-9.]*\) s, policies proven enforced after \([0-9.]*\) s.*/\1 \2/p' "$WORK/run.out")
    fo=$(sed -n 's/^# failover (node killed, ttl 20 s, loop_wait 1 s): new primary writable after \([0-9.]*\) s, policies proven enforced after \([0-9.]*\) s.*/\1 \2/p' "$WORK/run.out")
    echo "run $r: switchover $sw failover $fo"
    echo "$sw $fo" >>"$WORK/samples"
done
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v c="$1" '{print $c}' "$WORK/samples" | median; }
{
    echo "# High availability under Patroni"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'); patroni $(patroni --version | awk '{print $2}'); pg_poolguard $(git rev-parse --short HEAD)"
    echo "- command: \`bash bench/ha.sh\` (test/t/150_ha_patroni.pl, $RUNS runs; three nodes on loopback,"
    echo "  etcd, ttl 20 s, loop_wait 1 s, poolguard.naptime 200ms). \"Enforced\" is proven, not inferred:"
    echo "  an idle app session was ended by its 1 s idle_timeout and a login over the cap was refused"
    echo "  (so it includes waiting out that second); \"writable\" is Patroni's own baseline."
    echo
    echo "| event | new primary writable (s, median) | policies proven enforced (s, median) | target | |"
    echo "|---|---|---|---|---|"
    echo "| patronictl switchover | $(col 1) | $(col 2) | enforced ≤ writable + 5 s | $(awk -v w="$(col 1)" -v e="$(col 2)" 'BEGIN {print (e <= w + 5) ? "met" : "MISSED"}') |"
    echo "| failover (leader's node killed) | $(col 3) | $(col 4) | enforced ≤ writable + 5 s | $(awk -v w="$(col 3)" -v e="$(col 4)" 'BEGIN {print (e <= w + 5) ? "met" : "MISSED"}') |"
    echo
    echo "Raw samples (switchover writable, enforced; failover writable, enforced), seconds:"
    echo
    sed 's/^/- /' "$WORK/samples"
} >bench/measured/ha.md
cat bench/measured/ha.md
