#!/usr/bin/env python3
"""check_dist.py ARCHIVE — the release archive `make dist` built holds what a PGXN user needs to
build, install and test pg_poolguard, and nothing else.

  - one top directory, pg_poolguard-VERSION/, VERSION being META.json's;
  - must contain: Makefile, the control file, META.json (valid, same version), README.md, the
    released SQL scripts and upgrade steps (versions/), the install-script fragments (extension/),
    the C++ sources (src/, src/core/), the tests (test/);
  - must not contain: build outputs (objects, the library, generated install scripts, test
    results) or what is not part of the PGXN release (clients/: the npm package; bench/;
    debian/: the Debian packaging; git metadata);
  - in a git checkout: exactly the files git tracks at HEAD minus those .gitattributes marks
    export-ignore (so neither a file is lost nor one slips in).
Prints one line per problem and exits 1 if any.
"""
import fnmatch
import json
import os
import re
import subprocess
import sys
import zipfile

REQUIRED = [
    "Makefile", "pg_poolguard.control", "META.json", "README.md",
    "versions/pg_poolguard--1.0.sql", "versions/SHA256SUMS",
    "src/pg/version.h", "src/pg/postgres_headers.h", "test/sql/schedule",
]
REQUIRED_GLOBS = [
    "versions/pg_poolguard--*--*.sql", "extension/*.sql", "src/*/*.cpp", "src/core/*/*.cpp",
    "docs/*.md", "test/sql/*.sql", "test/expected/*.out", "test/specs/*.spec", "test/perl/*.pm", "test/t/*.pl", "test/unit/*.cpp",
]
# Build outputs and what does not belong in the PGXN release.
FORBIDDEN = [
    "*.o", "*.so", "*.d", "*.bc", "*.a", "build/*", "results/*", "tmp_check/*", "output_iso/*",
    "log/*", "regression.diffs", "regression.out", "node_modules/*", "*/node_modules/*",
    "pg_poolguard--*.sql", "dist/*", "clients/*", "bench/*", "debian/*", ".git/*", ".gitignore",
    ".gitattributes",
]

problems = []


def main(argv):
    if len(argv) != 2:
        print("usage: check_dist.py ARCHIVE.zip", file=sys.stderr)
        return 2
    with zipfile.ZipFile(argv[1]) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        meta_name = next((n for n in names if n.count("/") == 1 and n.endswith("/META.json")), None)
        meta = json.loads(z.read(meta_name)) if meta_name else {}
    version = meta.get("version")
    prefix = f"pg_poolguard-{version}/"
    if not meta_name:
        problems.append("no META.json at the top")
    if os.path.basename(argv[1]) != f"pg_poolguard-{version}.zip":
        problems.append(f"archive name {os.path.basename(argv[1])} is not pg_poolguard-{version}.zip")
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        problems.append(f"outside {prefix}: {', '.join(outside[:5])}")
    files = sorted(n[len(prefix):] for n in names if n.startswith(prefix))

    for path in REQUIRED:
        if path not in files:
            problems.append(f"missing {path}")
    for pattern in REQUIRED_GLOBS:
        if not fnmatch.filter(files, pattern):
            problems.append(f"missing any {pattern}")
    for path in files:
        for pattern in FORBIDDEN:
            if fnmatch.fnmatch(path, pattern) and not path.startswith("versions/"):
                problems.append(f"must not contain {path} ({pattern})")
                break

    # Against git: tracked at HEAD, minus export-ignore.
    if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode == 0:
        tracked = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout.split("\n")
        tracked = [t for t in tracked if t]
        attrs = subprocess.run(["git", "check-attr", "export-ignore", "--stdin"], input="\n".join(tracked),
                               capture_output=True, text=True, check=True).stdout
        ignored = {m.group(1) for m in re.finditer(r"^(.*): export-ignore: set$", attrs, re.M)}
        expected = sorted(set(tracked) - ignored)
        for path in sorted(set(expected) - set(files)):
            problems.append(f"tracked but missing: {path}")
        for path in sorted(set(files) - set(expected)):
            problems.append(f"not tracked (or export-ignore) but present: {path}")

    for p in problems:
        print(f"{argv[1]}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{argv[1]}: {len(files)} files under {prefix}; required present, no build outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
