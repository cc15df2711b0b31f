#!/usr/bin/env bash
# scripts/test_release.sh WORKDIR — release engineering checks, run by `make test` (scripts/test.sh):
#   1. the version numbers agree and the SQL scripts form an upgrade path (check_release.py);
#   2. META.json is valid PGXN metadata (validate_meta.py);
#   3. `make dist` builds pg_poolguard-X.Y.Z.zip with git archive and its contents are right
#      (check_dist.py); the extracted archive assembles the install script;
#   4. the Debian packages build (pg_buildext, scripts/build_deb.sh) with exactly the expected
#      files, and the library in them has the entry points of every released SQL version;
#   5. with POOLGUARD_DEB_INSTALL=1 (set by .ci/run) or CI=true only, because it writes into the
#      system PostgreSQL tree: dpkg -i, CREATE EXTENSION (and 1.0 + UPDATE) on a clean cluster of
#      the packaged major, dpkg -r removes every file.  Files of an earlier `make install` are
#      put back afterwards.
# Prints "ok - ...", "not ok - ..." or "skip - ..." per check; exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
WORK=${1:?usage: test_release.sh WORKDIR}
mkdir -p "$WORK"

failed=0
ok() { echo "ok - $*"; }
notok() {
    echo "not ok - $*"
    failed=1
}
skip() { echo "skip - $*"; }
check() { # check NAME CMD...: ok when CMD succeeds (its output shown on failure)
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else
        echo "$out"
        notok "$name"
    fi
}

extversion=$(sed -n 's/^EXTVERSION *= *//p' Makefile)

check "versions agree, upgrade path 1.0 -> $extversion, released scripts unchanged" python3 scripts/check_release.py
check "META.json valid against the PGXN Meta Spec 1.0.0" python3 scripts/validate_meta.py META.json

# The checks catch what they are for: a copy of the release files with one disagreement each.
mutant() { # mutant NAME SED_EXPR FILE: check_release.py must fail on the tree with FILE edited
    local dir="$WORK/mutant-$1"
    rm -rf "$dir" && mkdir -p "$dir/src/pg" "$dir/src" "$dir/debian" "$dir/clients/node"
    cp -r Makefile pg_poolguard.control META.json versions "$dir/"
    cp debian/changelog "$dir/debian/"
    cp clients/node/package.json "$dir/clients/node/"
    cp src/pg/version.h "$dir/src/pg/version.h"
    sed -i "$2" "$dir/$3"
    local out
    if out=$(cd "$dir" && python3 "$ROOT/scripts/check_release.py" 2>&1); then
        notok "check_release.py misses: $1"
    elif [ "$(grep -c '' <<<"$out")" -eq 1 ] && grep -qF "$3" <<<"$out"; then
        ok "check_release.py fails on: $1"
    else
        echo "$out"
        notok "check_release.py: expected one problem naming $3"
    fi
}
mutant "control default_version differs" "s/^default_version = .*/default_version = '9.9'/" pg_poolguard.control
mutant "META.json version differs" 's/"version": "[0-9.]*",/"version": "9.9.0",/' META.json
mutant "released 1.0 script edited" '1s/^/-- edited\n/' versions/pg_poolguard--1.0.sql
mutant "npm package version differs" 's/^  "version": "[0-9.]*",/  "version": "9.9.0",/' clients/node/package.json
mutant "library defines its own version" 's/^#define POOLGUARD_VERSION /#define POOLGUARD_EXTVERSION "9.9"\n&/' src/pg/version.h
python3 - "$WORK/bad_meta.json" <<'PY'
import json, sys
meta = json.load(open("META.json"))
meta["version"] = "1.1"          # not SemVer
del meta["license"]               # required
meta["provides"]["pg_poolguard"].pop("file")
meta["surprise"] = True           # unknown key
json.dump(meta, open(sys.argv[1], "w"))
PY
if out=$(python3 scripts/validate_meta.py "$WORK/bad_meta.json" 2>&1); then
    notok "validate_meta.py accepts a broken META.json"
elif [ "$(grep -c '' <<<"$out")" -eq 4 ]; then
    ok "validate_meta.py names the 4 problems of a broken META.json"
else
    echo "$out"
    notok "validate_meta.py: expected 4 problems"
fi

# ---- 3. the PGXN archive ----
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
    if out=$(make -s dist DISTDIR="$WORK/dist" 2>&1); then
        ok "make dist: $(ls "$WORK"/dist/*.zip | xargs -n1 basename), contents checked"
        (cd "$WORK/dist" && unzip -q ./*.zip)
        top=$(ls -d "$WORK"/dist/pg_poolguard-*/)
        if (cd "$top" && make -s "pg_poolguard--$extversion.sql" PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1) &&
            grep -q 'CREATE FUNCTION poolguard.session_info' "$top/pg_poolguard--$extversion.sql"; then
            ok "the archive assembles pg_poolguard--$extversion.sql"
        else
            notok "the archive assembles pg_poolguard--$extversion.sql"
        fi
    else
        echo "$out"
        notok "make dist"
    fi
else
    skip "make dist: not a git checkout (the archive is built with git archive)"
fi

# ---- 4. the Debian packages ----
# (make test-all's chroots come provisioned: nothing is installed there.)
if [ "${POOLGUARD_DEPS_READY:-0}" != 1 ]; then
    install_deps debhelper postgresql-server-dev-all >/dev/null 2>&1
fi
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null ||
    ! command -v pg_buildext >/dev/null; then
    skip "Debian package: dpkg-dev, debhelper and postgresql-server-dev-all are not installed (and could not be)"
    exit $failed
fi
if ! debs=$(bash scripts/build_deb.sh "$WORK/deb" 2>&1); then
    echo "$debs"
    notok "Debian package builds (scripts/build_deb.sh)"
    exit 1
fi
ok "Debian packages build: $(echo "$debs" | grep -v dbgsym | xargs -n1 basename | tr '\n' ' ')"

sha_10=$(awk '$2 == "pg_poolguard--1.0.sql" {print $1}' versions/SHA256SUMS)
for deb in $(echo "$debs" | grep -v dbgsym); do
    pkg=$(dpkg-deb -f "$deb" Package)
    major=$(echo "$pkg" | sed -n 's/^postgresql-\([0-9]*\)-poolguard$/\1/p')
    ext=usr/share/postgresql/$major/extension
    expected=$(printf '%s\n' "usr/lib/postgresql/$major/lib/pg_poolguard.so" \
        "$ext/pg_poolguard.control" "$ext/pg_poolguard--$extversion.sql" \
        $(cd versions && ls pg_poolguard--*.sql | sed "s|^|$ext/|") \
        "usr/share/doc/$pkg/changelog.Debian.gz" "usr/share/doc/$pkg/changelog.gz" \
        "usr/share/doc/$pkg/copyright" | sort)
    files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./||' | sort)
    if [ "$files" = "$expected" ]; then
        ok "$pkg: exactly the library, the control file, the SQL scripts and the docs (CHANGELOG.md as changelog.gz)"
    else
        diff <(echo "$expected") <(echo "$files")
        notok "$pkg: package contents"
    fi
    root="$WORK/deb/root-$major"
    dpkg-deb -x "$deb" "$root"
    symbols=$(nm -D --defined-only "$root/usr/lib/postgresql/$major/lib/pg_poolguard.so" 2>/dev/null)
    # Every C entry point a shipped script names (1.0's, each step's) must be exported: a
    # database still at an older version calls the older script's functions.
    missing=""
    for f in $(grep -ho "MODULE_PATHNAME', *'[a-z_0-9]*'" "$root/$ext"/pg_poolguard--*.sql | sed "s/.*'\([a-z_0-9]*\)'$/\1/" | sort -u); do
        grep -qw "$f" <<<"$symbols" || missing="$missing $f"
    done
    [ -z "$missing" ] || echo "# $pkg: not exported:$missing"
    if [ -z "$missing" ] &&
        grep -q "default_version = '$extversion'" "$root/$ext/pg_poolguard.control" &&
        [ "$(sha256sum <"$root/$ext/pg_poolguard--1.0.sql" | cut -d' ' -f1)" = "$sha_10" ]; then
        ok "$pkg: library exports every entry point of every shipped script; default_version $extversion; 1.0 script as released"
    else
        notok "$pkg: entry points, default_version or the 1.0 script"
    fi

    # ---- 5. dpkg -i / dpkg -r on a clean cluster ----
    if [ "${POOLGUARD_DEB_INSTALL:-0}" != 1 ] && [ "${CI:-}" != true ]; then
        skip "$pkg: dpkg -i / dpkg -r (writes into the system PostgreSQL tree: set POOLGUARD_DEB_INSTALL=1)"
        continue
    fi
    if [ "$(id -u)" -ne 0 ]; then
        skip "$pkg: dpkg -i needs root"
        continue
    fi
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        skip "$pkg: already installed on this machine, not touched"
        continue
    fi
    # Files of an earlier `make install` (owned by no package): dpkg -r would remove them.
    backup="$WORK/deb/backup-$major"
    mkdir -p "$backup"
    for f in $files; do
        [ -f "/$f" ] && mkdir -p "$backup/$(dirname "$f")" && cp -p "/$f" "$backup/$f"
    done
    if dpkg -i "$deb" >"$WORK/deb/dpkg-i.log" 2>&1; then
        ok "$pkg: dpkg -i"
        node="$WORK/deb/cluster-$major"
        mkdir -p "$node"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$node"
        port=$(free_port)
        if PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config cluster_start "$node" "$port" &&
            PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config psql_at "$node" "$port" -d postgres -Atq \
                -c 'CREATE EXTENSION pg_poolguard' \
                -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'" \
                -c 'SELECT poolguard.version()' \
                -c 'CREATE DATABASE old' >"$WORK/deb/create.out" 2>&1 &&
            PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config psql_at "$node" "$port" -d old -Atq \
                -c "CREATE EXTENSION pg_poolguard VERSION '1.0'" \
                -c 'ALTER EXTENSION pg_poolguard UPDATE' \
                -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'" >>"$WORK/deb/create.out" 2>&1 &&
            [ "$(cat "$WORK/deb/create.out")" = "$(printf '%s\n' "$extversion" "$extversion.0" "$extversion")" ]; then
            ok "$pkg: CREATE EXTENSION on a clean cluster ($extversion), 1.0 + ALTER EXTENSION UPDATE"
        else
            cat "$WORK/deb/create.out" "$node/server.log" 2>/dev/null | tail -30
            notok "$pkg: CREATE EXTENSION on a clean cluster"
        fi
        PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config cluster_stop "$node"
    else
        cat "$WORK/deb/dpkg-i.log"
        notok "$pkg: dpkg -i"
    fi
    if dpkg -r "$pkg" >"$WORK/deb/dpkg-r.log" 2>&1; then
        left=""
        for f in $files; do [ -e "/$f" ] && left="$left /$f"; done
        if [ -z "$left" ] && ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "installed"; then
            ok "$pkg: dpkg -r removes every file"
        else
            notok "$pkg: dpkg -r left:$left"
        fi
    else
        cat "$WORK/deb/dpkg-r.log"
        notok "$pkg: dpkg -r"
    fi
    # Put back what `make install` had put there.
    (cd "$backup" && find . -type f | while read -r f; do cp -p "$f" "/${f#./}"; done)
done
exit $failed
