# bench/lib.sh — what the benchmark scripts share (sourced from the tree's root; it sources
# scripts/lib.sh): the throwaway places they run in, and the arithmetic of their samples.

. scripts/lib.sh

# bench_tree: $WORK, a copy of the tree the postgres OS user owns (removed on exit), for the
# benches whose scenario is a TAP script run as that user.
bench_tree() {
    WORK=$(make_workdir)
    trap 'rm -rf "$WORK"' EXIT
    tar -C . --exclude=.git --exclude=node_modules --exclude=tmp_check -cf - . | (cd "$WORK" && tar xf -)
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$WORK"; fi
}

# bench_tap_samples NAME SCRIPT: runs the TAP script SCRIPT (verbose) in $WORK and keeps its
# "# sample VARIANT field=value ..." lines in $WORK/samples; a failed run prints its output and exits.
bench_tap_samples() {
    (cd "$WORK" && as_pg make -s tap PROVE_FLAGS=-v PROVE_TESTS="$2") >"$WORK/run.out" 2>&1 || {
        cat "$WORK/run.out"
        echo "$1: the run failed" >&2
        exit 1
    }
    grep '^# sample ' "$WORK/run.out" | sed 's/^# sample //' >"$WORK/samples"
}

# sample_sum VARIANT FIELD / sample_max VARIANT FIELD: FIELD summed (largest) over the samples of
# VARIANT in $WORK/samples.
sample_sum() {
    awk -v v="$1" -v f="$2" '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) s += kv[2] } } END { print s + 0 }' "$WORK/samples"
}
sample_max() {
    awk -v v="$1" -v f="$2" '$1 == v { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f && kv[2] > m) m = kv[2] } } END { print m + 0 }' "$WORK/samples"
}

# bench_cluster SETTING...: a throwaway cluster in $WORK (fsync on: what production commits pay;
# the worker off; max_connections 50; plus SETTINGs) stopped and removed on exit, with PGHOST,
# PGPORT, PGUSER and PGDATABASE exported for it.  Needs node and clients/node's npm
# dependencies (installed here when missing) for bench_sink.
bench_cluster() {
    command -v node >/dev/null || { echo "node is required (clients/node)" >&2; exit 1; }
    [ -d clients/node/node_modules/pg ] || (cd clients/node && npm ci --no-audit --no-fund >/dev/null) || exit 1
    WORK=$(make_workdir)
    PORT=$(free_port)
    trap 'cluster_stop "$WORK"; rm -rf "$WORK"' EXIT
    cluster_start "$WORK" "$PORT" "fsync = on" "max_connections = 50" "poolguard.enabled = off" "$@" || exit 1
    export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
}

# bench_sink CHANNEL...: a listener that consumes CHANNELs as an app would (NOTIFY without
# listeners is cheaper, and one that does not read would let the queue grow); stopped on exit.
bench_sink() {
    node bench/sink.js "$@" >"$WORK/sink.log" 2>&1 &
    SINK=$!
    trap 'kill $SINK 2>/dev/null; cluster_stop "$WORK"; rm -rf "$WORK"' EXIT
}

# ratio A B: A / B to three decimals (0 when B is 0).  median: of the numbers on stdin.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# med KEY: the median of the numbers (space-separated) in the caller's associative array samples[KEY].
med() { echo "${samples[$1]}" | tr ' ' '\n' | grep -v '^$' | median; }
# verdict VALUE OP TARGET: "met" when VALUE OP TARGET holds (OP: >=, >, <= or <), else "MISSED".
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {ok = (op == ">=" ? v >= t : op == ">" ? v > t : op == "<=" ? v <= t : v < t); print ok ? "met" : "MISSED"}'; }
