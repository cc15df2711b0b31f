#!/usr/bin/env bash
# scripts/build_deb.sh [OUTDIR] — `make deb`: builds the Debian binary packages
# postgresql-N-poolguard (one per major in debian/pgversions that postgresql-common supports on
# this machine) from the files git tracks, in a scratch copy, and puts the .deb files in OUTDIR
# (default: dist/deb).  Needs dpkg-dev, debhelper and postgresql-server-dev-all
# (`. scripts/lib.sh; install_deps debhelper postgresql-server-dev-all` as root).
# Nothing is installed: see docs/configuration.md, "Installation", for dpkg -i.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/dist/deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for tool in dpkg-buildpackage dh pg_buildext; do
    command -v "$tool" >/dev/null || {
        echo "build_deb: $tool not found (install dpkg-dev, debhelper and postgresql-server-dev-all)" >&2
        exit 1
    }
done

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${version%-*}
scratch=$(mktemp -d /tmp/pg_poolguard-deb.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
src="$scratch/pg-poolguard-$upstream"
mkdir -p "$src"

# The tracked files as they are in the working tree (no build outputs, no untracked files).
if [ -d .git ]; then
    git ls-files -z | tar --null -T - -cf - | tar -C "$src" -xf -
else
    tar --exclude=./dist -cf - . | tar -C "$src" -xf -
fi

cd "$src"
# debian/control lists the packages for the majors this machine supports.
pg_buildext updatecontrol
# The PG_CONFIG of a developer's relocated copy must not leak into the package build.
env -u PG_CONFIG dpkg-buildpackage -us -uc -b >"$scratch/build.log" 2>&1 || {
    tail -60 "$scratch/build.log"
    echo "build_deb: dpkg-buildpackage failed (log above)" >&2
    exit 1
}
cd "$scratch"
debs=(*.deb)
cp "${debs[@]}" "$OUT"/
for deb in "${debs[@]}"; do echo "$OUT/$deb"; done
