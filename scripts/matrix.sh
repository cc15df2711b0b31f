#!/usr/bin/env bash
# scripts/matrix.sh — `make test-all`: the whole of `make test` (scripts/test.sh) on every tested
# PostgreSQL major, each from Debian's own packages:
#   15  the host's (Debian 12) packages, exactly as `make test`;
#   17  Debian 13 "trixie" binaries, in a minimal trixie chroot (they need a newer glibc);
#   18  the first suite of trixie-backports, sid that carries it, in a chroot of that suite.
# Everything comes from the Debian mirror this machine's apt sources already use (never a host
# name of our own). Chroots are cached under $POOLGUARD_CACHE (default
# /var/cache/pg_poolguard/matrix), one per suite and exact PostgreSQL package version; a warm run
# downloads only the suites' signed InRelease files to see whether that version changed.
#
# Each version prints its own "PostgreSQL N: tests: P passed, F failed"; the last line is the sum
# "tests: P passed, F failed". Exits non-zero on any failure.
#
#   MATRIX_VERSIONS="17 18"   run only these majors (default: 15 17 18)
#   POOLGUARD_CACHE=DIR       where the chroots and downloads are kept
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOST_PG_CONFIG=${PG_CONFIG:-} # lib.sh defaults it to the pg_config on the PATH
. scripts/lib.sh

MATRIX_VERSIONS=${MATRIX_VERSIONS:-15 17 18}
CACHE=${POOLGUARD_CACHE:-/var/cache/pg_poolguard/matrix}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Where each major comes from: "host", or the Debian suites to try, in order.
suites_for() {
    case $1 in
        15) echo host ;;
        17) echo trixie ;;
        18) echo trixie-backports sid ;;
        *) return 1 ;;
    esac
}

# Debian packages of the test tooling inside a chroot (the server comes pinned on top; npm for
# the Node.js client's `npm pack` test; pgbouncer for its poll mode; ca-certificates for a mirror
# reached over https).
# A chroot built with another list is rebuilt.
# The real-client stacks of test/t/123_stacks.pl (Django, SQLAlchemy, psycopg_pool, HikariCP,
# Rails) are tested against the host's PostgreSQL only: the chroots do not get those packages,
# and the test skips each stack there, saying so.
CHROOT_PACKAGES="g++ make perl libipc-run-perl libgtest-dev libkrb5-dev nodejs npm pgbouncer ca-certificates"

die() {
    echo "test-all: $*" >&2
    exit 1
}

# ---- the Debian mirror, from this machine's apt sources -------------------------------------

# mirror_uri: the URI of the apt source that carries the host's own release (e.g. bookworm),
# from /etc/apt/sources.list.d/*.sources (deb822) or /etc/apt/sources.list.
mirror_uri() {
    local codename uri
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot tell this machine's Debian release from /etc/os-release"
    uri=$(
        {
            for f in /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] && awk -v want="$codename" '
                    function flush() {
                        if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " "))
                            { split(uris, u, " "); print u[1] }
                        types = uris = suites = enabled = ""
                    }
                    /^[ \t]*#/ { next }
                    /^[ \t]*$/ { flush(); next }
                    tolower($1) == "types:"   { $1 = ""; types = $0 }
                    tolower($1) == "uris:"    { $1 = ""; uris = $0 }
                    tolower($1) == "suites:"  { $1 = ""; suites = $0 }
                    tolower($1) == "enabled:" { enabled = tolower($2) }
                    END { flush() }' "$f"
            done
            [ -f /etc/apt/sources.list ] && awk -v want="$codename" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == want) print $i
                }' /etc/apt/sources.list
        } | head -1
    )
    [ -n "$uri" ] || die "no apt source for '$codename' in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: cannot tell which Debian mirror to use"
    echo "${uri%/}"
}

# fetch URL FILE WHAT: downloads URL to FILE, or explains which download was refused.
fetch() {
    local url=$1 file=$2 what=$3 code
    code=$(curl -sS -L --retry 3 -o "$file.part" -w '%{http_code}' "$url") || code=000
    if [ "$code" != 200 ]; then
        rm -f "$file.part"
        echo "test-all: could not download $what: $url answered HTTP $code." >&2
        echo "test-all: check the Debian mirror in this machine's apt sources, or leave this version out (MATRIX_VERSIONS)." >&2
        return 1
    fi
    mv "$file.part" "$file"
}

# resolve MAJOR: prints "SUITE VERSION" for the first candidate suite whose archive lists and
# serves postgresql-MAJOR, checking the InRelease signature and the Packages checksum.
resolve() {
    local major=$1 suite dir arch index sum deb ver url
    arch=$(dpkg --print-architecture)
    for suite in $(suites_for "$major"); do
        dir=$CACHE/index/$suite
        mkdir -p "$dir"
        if ! fetch "$MIRROR/dists/$suite/InRelease" "$dir/InRelease.new" "the $suite index (InRelease)"; then
            # Offline or refused: a version found earlier still identifies a cached chroot.
            if [ -f "$dir/postgresql-$major" ]; then
                echo "test-all: using the PostgreSQL $major found in $suite before ($(cat "$dir/postgresql-$major"))" >&2
                echo "$suite $(cat "$dir/postgresql-$major")"
                return 0
            fi
            continue
        fi
        gpgv --keyring "$KEYRING" "$dir/InRelease.new" >/dev/null 2>&1 ||
            die "the signature of $MIRROR/dists/$suite/InRelease does not verify against $KEYRING"
        if [ -f "$dir/InRelease" ] && cmp -s "$dir/InRelease" "$dir/InRelease.new" && [ -f "$dir/resolved-$major" ]; then
            rm -f "$dir/InRelease.new"
            [ -s "$dir/resolved-$major" ] && { echo "$suite $(cat "$dir/resolved-$major")"; return 0; }
            continue
        fi
        index=main/binary-$arch/Packages.xz
        sum=$(awk -v f="$index" '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == f { print $1 }' "$dir/InRelease.new")
        [ -n "$sum" ] || die "$MIRROR/dists/$suite/InRelease lists no $index"
        fetch "$MIRROR/dists/$suite/$index" "$dir/Packages.xz" "the $suite package list ($index)" || return 1
        echo "$sum  $dir/Packages.xz" | sha256sum -c --quiet - ||
            die "$MIRROR/dists/$suite/$index does not match the checksum in its InRelease"
        mv "$dir/InRelease.new" "$dir/InRelease"
        read -r ver deb < <(xz -dc "$dir/Packages.xz" | awk -v p="postgresql-$major" '
            /^Package: / { pkg = $2 } /^Version: / { v = $2 } /^Filename: / { f = $2 }
            /^$/ { if (pkg == p) { print v, f; exit } }')
        rm -f "$dir/Packages.xz"
        if [ -z "${ver:-}" ]; then
            : >"$dir/resolved-$major"
            continue
        fi
        # Debian's archive has listed files it then refused (404): probe the server package.
        url=$MIRROR/$deb
        if [ "$(curl -sS -I -L -o /dev/null -w '%{http_code}' "$url")" != 200 ]; then
            echo "test-all: $suite lists postgresql-$major $ver but the mirror refuses $url" >&2
            : >"$dir/resolved-$major"
            continue
        fi
        echo "$ver" >"$dir/resolved-$major"
        echo "$ver" >"$dir/postgresql-$major"
        echo "$suite $ver"
        return 0
    done
    echo "test-all: no Debian suite among: $(suites_for "$major") serves postgresql-$major binaries at $MIRROR" >&2
    echo "test-all: leave PostgreSQL $major out with MATRIX_VERSIONS, or point apt at a full Debian mirror." >&2
    return 1
}

# ---- chroots --------------------------------------------------------------------------------

# in_root ROOT CMD...: runs CMD with ROOT's /proc, /dev and a fresh /dev/shm mounted, in a
# private mount namespace: every mount disappears with the command, however it ends (the trap
# unmounts them earlier, in order).
in_root() {
    local root=$1
    shift
    unshare --mount --propagation private -- bash -c '
        root=$1; shift
        trap "umount -l \"\$root/dev/shm\" \"\$root/dev/pts\" \"\$root/dev\" \"\$root/proc\" \"\$root/var/cache/apt/archives\" \"\$root/var/tmp/portlock\" 2>/dev/null" EXIT
        mount -t proc proc "$root/proc" &&
        mount --bind /dev "$root/dev" &&
        mount --bind /dev/pts "$root/dev/pts" &&
        mount -t tmpfs -o mode=1777 shm "$root/dev/shm" || exit 1
        if [ -n "${APT_ARCHIVES:-}" ]; then mount --bind "$APT_ARCHIVES" "$root/var/cache/apt/archives" || exit 1; fi
        if [ -n "${PORTLOCK:-}" ]; then mount --bind "$PORTLOCK" "$root/var/tmp/portlock" || exit 1; fi
        chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
            ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} "$@"
    ' in_root "$root" "$@"
}

# build_root MAJOR SUITE VERSION ROOTDIR: a minimal chroot of SUITE with postgresql-MAJOR
# VERSION, its headers and the test tooling.  Apt checks every package against the signed index.
build_root() {
    local major=$1 suite=$2 ver=$3 root=$4 tmp log
    tmp=$root.tmp
    log=$CACHE/roots/$(basename "$root").log
    rm -rf "$tmp"
    mkdir -p "$CACHE/debs/$suite" "$CACHE/apt/$suite"
    log "building a $suite chroot for PostgreSQL $major ($ver) in $root"
    if ! debootstrap --variant=minbase --keyring="$KEYRING" --cache-dir="$CACHE/debs/$suite" \
        "$suite" "$tmp" "$MIRROR" >"$log" 2>&1; then
        tail -20 "$log" >&2
        rm -rf "$tmp"
        die "could not bootstrap Debian $suite from $MIRROR (log above; full log $log)"
    fi
    echo "deb $MIRROR $suite main" >"$tmp/etc/apt/sources.list"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    # No service starts in the chroot, and postgresql-common creates no default cluster.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    mkdir -p "$tmp/etc/postgresql-common" "$tmp/var/tmp/portlock"
    echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
    # The chroot's apt uses the host's proxy, and accepts index files past their Valid-Until
    # when the host's does (a frozen snapshot mirror).
    apt-config dump | grep -E '^Acquire::(Check-(Valid-Until|Date) "(false|0)"|https?::Proxy .*);' \
        >"$tmp/etc/apt/apt.conf.d/99pg_poolguard-host" || true
    # The server headers come unpacked from postgresql-server-dev-MAJOR without its dependencies
    # (clang and LLVM, only for JIT bitcode, which the Makefile turns off).
    if ! APT_ARCHIVES=$CACHE/apt/$suite in_root "$tmp" bash -ec "
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends $CHROOT_PACKAGES \
                postgresql-$major=$ver postgresql-client-$major=$ver libpq-dev
            cd /tmp
            apt-get download -qq postgresql-server-dev-$major=$ver
            dpkg-deb -x postgresql-server-dev-${major}_*.deb /
            rm postgresql-server-dev-${major}_*.deb
            apt-get autoclean -qq
            rm -rf /var/lib/apt/lists/*" >>"$log" 2>&1; then
        grep -E '^(E|W): |Err:' "$log" | tail -10 >&2
        if grep -qE '404 +Not Found|Failed to fetch' "$log"; then
            echo "test-all: the mirror $MIRROR refused a package of $suite (above): PostgreSQL $major $ver cannot be installed from it." >&2
            echo "test-all: retry later (the suite may be mid-update), or leave PostgreSQL $major out with MATRIX_VERSIONS." >&2
        fi
        rm -rf "$tmp"
        die "could not install PostgreSQL $major ($ver) in the $suite chroot (full log $log)"
    fi
    {
        echo "packages: $CHROOT_PACKAGES"
        dpkg-query --root="$tmp" -W postgresql-$major postgresql-client-$major libpq-dev nodejs npm g++
    } >"$tmp/.poolguard-ready"
    rm -rf "$root"
    mv "$tmp" "$root"
}

# ---- running one version ----------------------------------------------------------------------

# node_modules: the Node.js client's dependencies (pure JavaScript), installed once with the
# host's npm and cached by the lockfile's checksum; the chroots use them with their own node.
node_modules() {
    local sum dir
    sum=$(cat clients/node/package.json clients/node/package-lock.json clients/node/.npmrc | sha256sum | cut -c1-16)
    dir=$CACHE/node/$sum
    if [ ! -d "$dir/node_modules" ]; then
        command -v npm >/dev/null || install_deps nodejs npm >&2 || return 1
        rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
        cp clients/node/package.json clients/node/package-lock.json clients/node/.npmrc "$dir.tmp/"
        (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || return 1
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
    fi
    echo "$dir/node_modules"
}

# make_overrides: the variables given on make's command line (`make test-all PROVE_TESTS=...`),
# without the parent make's job server, which does not exist in the chroot.
make_overrides() {
    case ${MAKEFLAGS:-} in
        *" -- "*) echo "-- ${MAKEFLAGS#* -- }" ;;
    esac
}

# prepare_version MAJOR: makes sure the chroot of MAJOR exists (resolving the suite and exact
# version first); prints "host" or the chroot's directory.
prepare_version() {
    local major=$1 suites suite ver root old
    suites=$(suites_for "$major") || die "PostgreSQL $major is not in the matrix (tested majors: 15, 17, 18)"
    if [ "$suites" = host ]; then
        echo host
        return 0
    fi
    read -r suite ver < <(resolve "$major") || return 1
    [ -n "${ver:-}" ] || return 1
    root=$CACHE/roots/$suite-postgresql-$major-${ver//[:~]/_}
    (
        flock 9
        if ! grep -qxF "packages: $CHROOT_PACKAGES" "$root/.poolguard-ready" 2>/dev/null; then
            build_root "$major" "$suite" "$ver" "$root" || exit 1
            # Chroots of older versions of the same suite are of no more use.
            for old in "$CACHE/roots/$suite"-postgresql-"$major"-*; do
                [ "$old" != "$root" ] && [ -d "$old" ] && rm -rf "$old" "$old.log"
            done
        fi
        echo "$ver from Debian $suite" >"$root/.poolguard-what"
    ) 9>"$CACHE/roots/$suite.lock" >&2 || return 1
    echo "$root"
}

# test_version MAJOR ROOT: scripts/test.sh for MAJOR, on the host or in the chroot ROOT; its
# last line is "PostgreSQL MAJOR: tests: P passed, F failed".
test_version() {
    local major=$1 root=$2 suite run rc
    if [ "$root" = host ]; then
        log "PostgreSQL $major: this machine's packages"
        PG_CONFIG=${HOST_PG_CONFIG:-/usr/lib/postgresql/$major/bin/pg_config} PG_TEST_PORT_DIR=$CACHE/portlock \
            POOLGUARD_TEST_LABEL="PostgreSQL $major" bash scripts/test.sh
        return
    fi
    suite=${root##*/}
    suite=${suite%%-postgresql-*}
    # One run at a time per chroot: the extension is installed into it.
    exec 9>"$CACHE/roots/$suite.lock"
    flock 9
    [ -f "$root/.poolguard-ready" ] || die "the chroot $root disappeared (another make test-all replaced it): run again"
    log "PostgreSQL $major: $(cat "$root/.poolguard-what"), in the chroot $root"
    # The tree, without build outputs of another version, in a directory of this run.
    mkdir -p "$root/build"
    run=$(mktemp -d "$root/build/run.XXXXXX")
    tar -C "$ROOT" --exclude=.git --exclude=results --exclude=tmp_check --exclude=output_iso \
        --exclude=node_modules --exclude=.next --exclude=build --exclude='*.o' --exclude='*.so' --exclude='*.d' \
        --exclude='./pg_poolguard--*.sql' -cf - . | tar -C "$run" -xf -
    cp -a "$NODE_MODULES" "$run/clients/node/node_modules"
    PORTLOCK=$CACHE/portlock in_root "$root" \
        PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config POOLGUARD_DEPS_READY=1 \
        POOLGUARD_NODE_MODULES=/build/${run##*/}/clients/node/node_modules \
        POOLGUARD_TEST_LABEL="PostgreSQL $major" PG_TEST_PORT_DIR=/var/tmp/portlock \
        KEEP_WORKDIR="${KEEP_WORKDIR:-0}" PROVE_FLAGS="${PROVE_FLAGS:-}" MAKEFLAGS="$(make_overrides)" \
        bash "/build/${run##*/}/scripts/test.sh"
    rc=$?
    rm -rf "$run"
    [ $rc -ne 0 ] && echo "(a kept test directory /tmp/... of this run is under $root/tmp)"
    return $rc
}

# Before any version is tested, a failure still ends with the closing line, as one failure.
setup_failed() {
    echo "$1" >&2
    echo
    echo "tests: 0 passed, 1 failed"
    exit 1
}
[ "$(id -u)" -eq 0 ] || setup_failed "run as root: the matrix builds chroots and installs packages"
command -v debootstrap >/dev/null || install_deps debootstrap || setup_failed "could not install debootstrap"
for tool in curl gpgv xz flock unshare; do
    command -v $tool >/dev/null || install_deps curl gpgv xz-utils util-linux || setup_failed "could not install $tool"
done
MIRROR=$(mirror_uri) || setup_failed "no Debian mirror in this machine's apt sources"
mkdir -p "$CACHE/roots" "$CACHE/portlock"
chmod 1777 "$CACHE/portlock"
NODE_MODULES=$(node_modules) || setup_failed "could not install the Node.js client's dependencies (npm ci)"
export MIRROR NODE_MODULES

LOGS=$(mktemp -d /tmp/pg_poolguard-matrix.XXXXXX)
trap 'rm -rf "$LOGS"' EXIT

# The chroots are prepared in the background (downloads, unpacking) while earlier versions test;
# the test suites themselves run one at a time, so timing-based tests do not compete.
for major in $MATRIX_VERSIONS; do
    (
        (prepare_version "$major") >"$LOGS/$major.root" 2>"$LOGS/$major.prepare"
        echo $? >"$LOGS/$major.prepared"
    ) &
done

passed=0
failed=0
status=0
for major in $MATRIX_VERSIONS; do
    while [ ! -f "$LOGS/$major.prepared" ]; do sleep 1; done
    cat "$LOGS/$major.prepare"
    if [ "$(cat "$LOGS/$major.prepared")" = 0 ]; then
        (test_version "$major" "$(cat "$LOGS/$major.root")") 2>&1 | tee "$LOGS/$major.log"
        rc=${PIPESTATUS[0]}
    else
        rc=1
        : >"$LOGS/$major.log"
    fi
    line=$(grep -E "^PostgreSQL $major: tests: [0-9]+ passed, [0-9]+ failed" "$LOGS/$major.log" | tail -1)
    if [ -z "$line" ]; then
        line="PostgreSQL $major: tests: 0 passed, 1 failed"
        echo "$line (PostgreSQL $major could not be set up or tested, see above)"
    fi
    p=$(echo "$line" | sed -E 's/.*tests: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    # A version that exited non-zero counts at least one failure, also if its line said 0.
    [ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" = 0 ] && [ "$f" = 0 ] || status=1
done
wait

echo
echo "tests: $passed passed, $failed failed"
exit $status
