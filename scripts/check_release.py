#!/usr/bin/env python3
"""check_release.py — the release's version numbers agree and its SQL scripts form an upgrade path.

The Makefile's EXTVERSION (MAJOR.MINOR, the extension's SQL version) is the one version number.
This fails (exit 1, one line per problem) unless:
  - pg_poolguard.control's default_version equals it;
  - the library takes it from the Makefile (-DPOOLGUARD_EXTVERSION): src/pg/version.h defines
    no version of its own (the library's version() is EXTVERSION.0);
  - META.json's version and provides.pg_poolguard.version are EXTVERSION.0 (PGXN wants SemVer);
  - debian/changelog's latest entry is EXTVERSION.0-N;
  - clients/node/package.json's version (the npm package pg-poolguard-cache) is EXTVERSION.0;
  - versions/ has the frozen 1.0 install script and upgrade steps that take every released
    version to EXTVERSION, and no step that goes nowhere;
  - every frozen script still has the checksum recorded in versions/SHA256SUMS when it was
    released (released scripts are never edited: a change is a new upgrade step).
Run from the top of the tree (make check-release, make test, make dist).
"""
import hashlib
import json
import os
import re
import sys

problems = []


def bad(message):
    problems.append(message)


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        bad(f"{path}: could not read: {e.strerror}")
        return ""


def one(pattern, text, path, what):
    m = re.search(pattern, text, re.M)
    if not m:
        bad(f"{path}: no {what} found")
        return None
    return m.group(1)


def main():
    ext = "pg_poolguard"
    makefile = read("Makefile")
    extversion = one(r"^EXTVERSION\s*=\s*(\S+)\s*$", makefile, "Makefile", "EXTVERSION")
    if extversion is None:
        return report()
    if not re.fullmatch(r"\d+\.\d+", extversion):
        bad(f"Makefile: EXTVERSION {extversion} is not MAJOR.MINOR")
    semver = extversion + ".0"

    control = one(r"^default_version\s*=\s*'([^']*)'", read(f"{ext}.control"), f"{ext}.control",
                  "default_version")
    if control is not None and control != extversion:
        bad(f"{ext}.control: default_version {control} differs from the Makefile's EXTVERSION {extversion}")

    if re.search(r'^#define\s+POOLGUARD_EXTVERSION\b', read("src/pg/version.h"), re.M):
        bad("src/pg/version.h: defines POOLGUARD_EXTVERSION itself; the Makefile passes EXTVERSION "
            "(-DPOOLGUARD_EXTVERSION)")

    try:
        meta = json.loads(read("META.json") or "{}")
    except ValueError as e:
        bad(f"META.json: not JSON: {e}")
        meta = {}
    if meta.get("version") != semver:
        bad(f"META.json: version {meta.get('version')} differs from {semver} (the Makefile's EXTVERSION {extversion})")
    provided = meta.get("provides", {}).get(ext, {}).get("version")
    if provided != semver:
        bad(f"META.json: provides.{ext}.version {provided} differs from {semver}")

    if os.path.exists("debian/changelog"):
        deb = one(r"^\S+ \(([^)]*)\)", read("debian/changelog"), "debian/changelog", "entry")
        if deb is not None and not re.fullmatch(re.escape(semver) + r"-\d+", deb):
            bad(f"debian/changelog: latest version {deb} is not {semver}-N")

    # The npm package (not in the PGXN archive, which leaves clients/ out).
    if os.path.exists("clients/node/package.json"):
        try:
            npm = json.loads(read("clients/node/package.json") or "{}").get("version")
        except ValueError as e:
            bad(f"clients/node/package.json: not JSON: {e}")
            npm = semver
        if npm != semver:
            bad(f"clients/node/package.json: version {npm} differs from {semver} (the Makefile's EXTVERSION {extversion})")

    # Upgrade path: versions/pg_poolguard--1.0.sql and steps --A--B.sql from 1.0 to EXTVERSION.
    files = sorted(os.listdir("versions")) if os.path.isdir("versions") else []
    installs = {m.group(1) for f in files if (m := re.fullmatch(rf"{ext}--([\d.]+)\.sql", f))}
    steps = {}
    for f in files:
        m = re.fullmatch(rf"{ext}--([\d.]+)--([\d.]+)\.sql", f)
        if m:
            if m.group(1) in steps:
                bad(f"versions/: two upgrade steps from {m.group(1)}")
            steps[m.group(1)] = m.group(2)
    if "1.0" not in installs:
        bad(f"versions/{ext}--1.0.sql: the released 1.0 install script is missing")
    version, seen = "1.0", set()
    while version != extversion and version in steps and version not in seen:
        seen.add(version)
        version = steps[version]
    if version != extversion:
        bad(f"versions/: no upgrade path from 1.0 to {extversion} (stuck at {version})")
    for start in sorted(set(steps) - seen):
        bad(f"versions/{ext}--{start}--{steps[start]}.sql: a step no released version reaches")
    if extversion in installs:
        bad(f"versions/{ext}--{extversion}.sql: the current version's install script is built "
            "from extension/, not kept in versions/")

    # Frozen scripts: the checksums recorded at release.
    sums = read("versions/SHA256SUMS")
    recorded = {}
    for line in sums.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})\s+\*?(\S+)", line.strip())
        if m:
            recorded[m.group(2)] = m.group(1)
    if f"{ext}--1.0.sql" not in recorded:
        bad("versions/SHA256SUMS: no checksum for the released 1.0 script")
    for name, digest in sorted(recorded.items()):
        path = os.path.join("versions", name)
        try:
            with open(path, "rb") as f:
                actual = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            bad(f"{path}: released script is missing")
            continue
        if actual != digest:
            bad(f"{path}: a released script was edited (sha256 {actual}, released as {digest}); "
                "put the change in a new upgrade step instead")
    return report(extversion)


def report(extversion=None):
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"release {extversion}: control, META.json, debian/changelog, the npm package agree with the Makefile; "
          f"upgrade path 1.0 -> {extversion}; released scripts unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
