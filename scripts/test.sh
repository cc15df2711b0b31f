#!/usr/bin/env bash
# scripts/test.sh — `make test`: the make targets in order, counted, on throwaway clusters.
#   1. make deps (as root: missing Debian packages), make, make install;
#   2. make lint: the structural rules of the sources, the docs' paths, the format;
#   3. make unit: unit tests of the C++ core, plain and under AddressSanitizer + UBSan; make
#      test-alerts: promtool check rules and test rules on examples/alerts.yml;
#   4. make installcheck: pg_regress (test/sql/schedule) and pg_isolation_regress (test/specs/), each
#      on the temporary instance it starts itself;
#   5. the Node.js client's tests (clients/node, npm test: lint and node --test) against a cluster
#      with the library preloaded, and the real app (test/apps/mentor: Next.js + Prisma, two
#      instances, revokes under load);
#   6. make prove_installcheck: TAP tests (test/t/NNN_name.pl) with PostgreSQL::Test::Cluster;
#   7. release checks (scripts/test_release.sh): versions, META.json, make dist, Debian packages.
# Clusters run as the postgres OS user from a copy of the tree it owns; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

# Nothing can run without the packages and the build: a failure there still ends with the
# closing line, as one failure.
setup_failed() {
    echo "$1 failed"
    echo
    echo "${POOLGUARD_TEST_LABEL:+$POOLGUARD_TEST_LABEL: }tests: 0 passed, 1 failed"
    exit 1
}
# scripts/matrix.sh (make test-all) runs this script in chroots it has provisioned itself, and
# hands over the Node.js client's dependencies in POOLGUARD_NODE_MODULES.
if [ "${POOLGUARD_DEPS_READY:-0}" != 1 ]; then
    # make deps, without needing make before its package is there.
    { install_deps && install_test_deps; } || setup_failed "installing the packages"
fi
log "build and install"
{ make -s -j"$(nproc)" 2>&1 && make -s install >/dev/null; } || setup_failed "the build"

status=0
passed=0
failed=0
count() { # count PASSED FAILED
    passed=$((passed + $1))
    failed=$((failed + $2))
}

log "lint (scripts/lint.py, scripts/lint_docs.py, scripts/format.sh)"
if make -s lint; then
    count 1 0
else
    count 0 1
    status=1
fi

log "unit tests (GoogleTest, plain and sanitized)"
if make -s unit >build-unit.log 2>&1; then
    grep -E '^\[  PASSED  \]' build-unit.log
    n=$(grep -E '^\[  PASSED  \]' build-unit.log | awk '{s+=$4} END {print s+0}')
    count "$n" 0
else
    cat build-unit.log
    count 0 1
    status=1
fi
rm -f build-unit.log

log "alert rules (promtool check rules, promtool test rules: examples/alerts.yml)"
# (the host installs promtool; make test-all's chroots are provisioned without it: skipped there)
if ! command -v promtool >/dev/null && [ "${POOLGUARD_DEPS_READY:-0}" = 1 ]; then
    echo "skipped: no promtool in this environment"
elif make -s test-alerts; then
    count 1 0
else
    count 0 1
    status=1
fi

WORK=$(make_workdir)
cleanup() {
    cluster_stop "$WORK/regress"
    if [ "${KEEP_WORKDIR:-0}" = 1 ] || [ $status -ne 0 ]; then
        echo "test work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# The cluster user's copy of the tree (the checkout may live where it cannot write).
tar -C "$ROOT" --exclude=.git --exclude=./dist --exclude=results --exclude=tmp_check --exclude=output_iso --exclude=node_modules --exclude=.next --exclude=./clients/node/test/prisma/generated -cf - . | (cd "$WORK" && tar xf -)
mkdir -p "$WORK/regress"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK"

log "pg_regress and isolation tests (make installcheck, temporary instances)"
# installcheck runs pg_regress (test/sql/) and then pg_isolation_regress (test/specs/), each on the
# temporary instance it starts: each prints its own "All N tests passed" or "M of N tests failed".
(cd "$WORK" && as_pg make -s installcheck) 2>&1 | tee "$WORK/regress.out"
regress_rc=${PIPESTATUS[0]}
n=$(grep -oE 'All [0-9]+ tests passed' "$WORK/regress.out" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
count "$n" 0
if [ "$regress_rc" -ne 0 ] || grep -qE '[0-9]+ of [0-9]+ tests failed' "$WORK/regress.out"; then
    status=1
    for f in "$WORK/regression.diffs" "$WORK/output_iso/regression.diffs"; do
        [ -f "$f" ] && cat "$f"
    done
    n=$(grep -oE '[0-9]+ of [0-9]+ tests failed' "$WORK/regress.out" | awk '{s+=$1} END {print s+0}')
    # The suites that failed in part still passed the rest of their tests.
    p=$(grep -oE '[0-9]+ of [0-9]+ tests failed' "$WORK/regress.out" | awk '{s+=$3-$1} END {print s+0}')
    [ "$n" -gt 0 ] || n=1
    count "$p" "$n"
    for f in "$WORK"/tmp_check_regress/log/postmaster.log "$WORK"/tmp_check_iso/log/postmaster.log; do
        [ -f "$f" ] && tail -50 "$f"
    done
fi

# The PGXN archive (make dist) leaves the Node.js client out: it ships on npm.
if [ -f clients/node/package.json ]; then
    log "Node.js client tests (clients/node) against a cluster with the library preloaded"
    PORT=$(free_port)
    # npm test: eslint and prettier, then node's test runner one file at a time (test/run.js).
    # (A cluster that does not start fails this stage, counted; the later stages still run.)
    cluster_start "$WORK/regress" "$PORT" "poolguard.enabled = off" &&
    psql_at "$WORK/regress" "$PORT" -q -d postgres -c 'CREATE DATABASE node_client' &&
        (cd "$WORK/clients/node" &&
            if [ -n "${POOLGUARD_NODE_MODULES:-}" ]; then
                cp -a "$POOLGUARD_NODE_MODULES" node_modules
            else
                npm ci --no-audit --no-fund --loglevel=error >/dev/null
            fi &&
            PGHOST="$WORK/regress" PGPORT="$PORT" PGUSER=postgres PGDATABASE=node_client \
            npm test -- --test-reporter=tap) >"$WORK/node.out" 2>&1
    node_rc=$?
    grep -E '^# (tests|pass|fail|skipped)' "$WORK/node.out"
    # One summary per runner (several on Node < 20.10, see test/run.js): add them up.
    n_pass=$(awk '/^# pass / {s += $3; n++} END {if (n) print s}' "$WORK/node.out")
    n_fail=$(awk '/^# fail / {s += $3; n++} END {if (n) print s}' "$WORK/node.out")
    if [ "$node_rc" -ne 0 ] || [ "${n_fail:-1}" != 0 ]; then
        status=1
        cat "$WORK/node.out"
        # Named again last, so that a summary of this output finds them (a todo's "not ok" is none).
        echo "failing Node.js tests:"
        grep -E '^ *not ok ' "$WORK/node.out" | grep -v '# TODO' | sed 's/^ */  /'
        count "${n_pass:-0}" "$(( ${n_fail:-0} > 0 ? ${n_fail:-0} : 1 ))"
    else
        count "${n_pass:-0}" 0
    fi
else
    log "Node.js client tests: skipped (no clients/node in this tree)"
fi

# The real app (issue 21): Next.js 16 + Prisma 7 + adapter-pg + pg-poolguard-cache, next build, two
# next start instances, revokes under load (test/apps/mentor/run.js).  Its npm dependencies come
# from npm (cached in npm's cache); run once per `make test` on the host (make test-all's chroots
# skip it), or never with POOLGUARD_APP_TESTS=0.
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                   console.log(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 1 : 0)')
if [ -f test/apps/mentor/package.json ] && [ "${POOLGUARD_DEPS_READY:-0}" != 1 ] &&
   [ "${POOLGUARD_APP_TESTS:-1}" != 0 ] && [ "$node_ok" = 1 ] && [ -d "$WORK/clients/node/node_modules" ]; then
    log "real app: test/apps/mentor (Next.js 16 + Prisma 7, two instances, revokes under load)"
    (cd "$WORK/test/apps/mentor" &&
        npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null &&
        PGHOST="$WORK/regress" PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres \
        RESULT_FILE="$WORK/mentor_app.json" node run.js) >"$WORK/app.out" 2>&1
    app_rc=$?
    grep -v '^\[instance' "$WORK/app.out" | tail -3
    if [ "$app_rc" -eq 0 ]; then
        count 1 0
    else
        status=1
        tail -60 "$WORK/app.out"
        count 0 1
    fi
else
    log "real app: skipped (make test-all's chroots, POOLGUARD_APP_TESTS=0, Node < 20.19, or no client dependencies)"
fi
cluster_stop "$WORK/regress"

log "TAP tests (make prove_installcheck)"
(cd "$WORK" && as_pg make -s prove_installcheck PROVE_FLAGS="${PROVE_FLAGS:-}") 2>&1 | tee "$WORK/tap.out"
tap_total=$(grep -oE '^Files=[0-9]+, Tests=[0-9]+' "$WORK/tap.out" | grep -oE '[0-9]+$' | tail -1)
if grep -q '^All tests successful' "$WORK/tap.out"; then
    count "${tap_total:-0}" 0
else
    status=1
    # prove's summary: "Failed: N" per failing file (N may be 0 when a file died or its plan was
    # wrong: that file still counts as one failure).
    tap_failed=$(grep -oE 'Tests: [0-9]+ Failed: [0-9]+' "$WORK/tap.out" |
        awk '{f = $4 > 0 ? $4 : 1; s += f} END {print s + 0}')
    [ "$tap_failed" -gt 0 ] || tap_failed=1
    tap_passed=$(( ${tap_total:-0} - tap_failed ))
    [ "$tap_passed" -ge 0 ] || tap_passed=0
    count "$tap_passed" "$tap_failed"
    for f in "$WORK"/tmp_check/log/regress_log_*; do
        [ -f "$f" ] || continue
        echo "---- $f (tail)"
        tail -60 "$f"
    done
fi

log "release: versions, PGXN metadata and archive, Debian packages"
# From the checkout (make dist needs git); the packages build in a scratch copy.
bash scripts/test_release.sh "$WORK/release" 2>&1 | tee "$WORK/release.out"
release_rc=${PIPESTATUS[0]}
release_failed=$(grep -c '^not ok - ' "$WORK/release.out")
# A failure that printed no "not ok" line (the script died) still counts as one.
[ "$release_rc" -eq 0 ] || [ "$release_failed" -gt 0 ] || release_failed=1
count "$(grep -c '^ok - ' "$WORK/release.out")" "$release_failed"
[ "$release_rc" -eq 0 ] || status=1

echo
# Under make test-all the line names the version ("PostgreSQL 17: tests: ...").
echo "${POOLGUARD_TEST_LABEL:+$POOLGUARD_TEST_LABEL: }tests: $passed passed, $failed failed"
exit $status
