#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: a throwaway cluster with pg_poolguard, and how to connect.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

install_deps
make -s -j"$(nproc)"
make -s install >/dev/null

WORK=$(make_workdir)
PORT=$(free_port)
cluster_start "$WORK" "$PORT"
psql_at "$WORK" "$PORT" -q -d postgres -c 'CREATE EXTENSION pg_poolguard'
psql_at "$WORK" "$PORT" -d postgres -c \
    "SELECT pid, backend_type, datname FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'"

cat <<MSG
pg_poolguard $(psql_at "$WORK" "$PORT" -Atq -d postgres -c 'SELECT poolguard.version()') is running.
Connect:  psql -h $WORK -p $PORT -U postgres postgres
Stop:     $( [ "$(id -u)" -eq 0 ] && echo "runuser -u postgres -- ")$(pg_bindir)/pg_ctl -D $WORK/data stop && rm -rf $WORK
MSG
