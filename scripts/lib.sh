# scripts/lib.sh — shared helpers for test.sh, demo.sh and bench/run.sh.
# Throwaway clusters run as the `postgres` OS user when we are root (initdb refuses root).

PG_CONFIG=${PG_CONFIG:-pg_config}

# Debian packages the build and the tests need.
POOLGUARD_PACKAGES="g++ make perl python3 postgresql-15 postgresql-server-dev-15 libkrb5-dev libipc-run-perl libgtest-dev clang-format"

log() { printf '\n==> %s\n' "$*"; }

# Installs whatever of POOLGUARD_PACKAGES is missing (root only; others must have them).
install_deps() {
    local missing=() p
    for p in $POOLGUARD_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]} (run as root, or install them)" >&2
        return 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's package starts a default cluster on 5432; our tests never use it.
}

pg_bindir() { "$PG_CONFIG" --bindir; }

# as_pg CMD...: runs CMD as the postgres OS user when root, as ourselves otherwise.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$(pg_bindir):$PATH" "$@"
    else
        env PATH="$(pg_bindir):$PATH" "$@"
    fi
}

# make_workdir: a fresh directory the cluster user owns; prints its path.
make_workdir() {
    local dir
    dir=$(mktemp -d /tmp/pg_poolguard.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    echo "$dir"
}

# free_port: a TCP port nobody listens on.
free_port() {
    local port
    for port in $(shuf -i 20000-40000 -n 50); do
        if ! (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# cluster_start DIR PORT [CONF_LINE...]: initdb DIR/data, add the lines to postgresql.conf,
# start the server with its socket in DIR and wait until it accepts connections.
cluster_start() {
    local dir=$1 port=$2
    shift 2
    as_pg initdb -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log"
        return 1
    }
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'pg_poolguard'"
        echo "fsync = off"
        for line in "$@"; do echo "$line"; done
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    # The server must not inherit our descriptors beyond stdio (a held flock, a pipe), or it
    # keeps them open for its whole life.
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    ) || {
        cat "$dir/server.log"
        return 1
    }
}

cluster_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] && as_pg pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
    return 0
}

# psql_at DIR PORT [ARGS...]: psql against the throwaway cluster.
psql_at() {
    local dir=$1 port=$2
    shift 2
    as_pg psql -X -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"
}

# wait_for DIR PORT SQL: polls until the boolean query is true on the cluster (a deadline, not a count).
wait_for() {
    local dir=$1 port=$2 query=$3
    # A deadline in seconds (as PG_TEST_TIMEOUT_DEFAULT for the TAP tests): generous, the machine
    # may be slow and busy.
    local deadline=$((SECONDS + ${PG_TEST_TIMEOUT_DEFAULT:-180}))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(psql_at "$dir" "$port" -d postgres -Atq -c "SELECT ($query)")" = t ] && return 0
        sleep 0.1
    done
    echo "timed out waiting for: $query" >&2
    return 1
}

# build_hold_sessions: compiles bench/hold_sessions.cpp (libpq) to a temporary file the cluster
# user can run; prints its path.
build_hold_sessions() {
    local bin
    bin=$(mktemp /tmp/hold_sessions.XXXXXX)
    g++ -std=c++17 -O2 -o "$bin" bench/hold_sessions.cpp -I"$("$PG_CONFIG" --includedir)" -lpq
    chmod 755 "$bin"
    echo "$bin"
}

# The Node.js client's tests need node and npm (Debian's packages when none is installed), and
# its poll mode is tested through a real PgBouncer in transaction mode.
install_node_deps() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        install_deps nodejs npm || return 1
    fi
    if [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null; then
        install_deps pgbouncer || return 1
    fi
}

# Everything the tests need beyond POOLGUARD_PACKAGES (make deps, make test): the Node.js client's,
# Debian's Patroni over etcd for the HA test (test/t/150_ha_patroni.pl), and promtool (Debian's
# prometheus package) for the alert rules' tests (examples/alerts.test.yml).
install_test_deps() {
    install_node_deps || return 1
    install_deps patroni etcd-server python3-etcd prometheus
    # The real-client test (test/t/123_stacks.pl) drives Debian's Django, SQLAlchemy,
    # psycopg_pool, HikariCP (with pgjdbc and a JDK) and ActiveRecord (with ruby-pg); a stack
    # whose packages cannot be installed is skipped there, saying so.
    install_deps python3-django python3-sqlalchemy python3-psycopg2 python3-psycopg-pool \
        libhikaricp-java libpostgresql-jdbc-java libslf4j-java default-jdk-headless ruby-activerecord ruby-pg ||
        log "some real-client packages could not be installed: test/t/123_stacks.pl skips those stacks"
}
