#!/usr/bin/env bash
# scripts/format.sh check|fix — clang-format (.clang-format) over every C++ file of src/, test/unit/
# and bench/ (`make format-check`, part of `make lint`; `make format`).
# The tree is formatted with clang-format CLANG_FORMAT_MAJOR (Debian 12's); other majors format
# some constructs differently, so with none of that major installed the check says so and is
# skipped (the chroots of `make test-all` have another one), unless POOLGUARD_REQUIRE_FORMAT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT_MAJOR=14
mode=${1:-check}

tool=
for t in "${CLANG_FORMAT:-}" clang-format-$CLANG_FORMAT_MAJOR clang-format; do
    [ -n "$t" ] && command -v "$t" >/dev/null || continue
    if "$t" --version | grep -qE "version $CLANG_FORMAT_MAJOR\."; then
        tool=$t
        break
    fi
done
if [ -z "$tool" ]; then
    echo "format: clang-format $CLANG_FORMAT_MAJOR not installed (make deps installs it): not checked" >&2
    [ "${POOLGUARD_REQUIRE_FORMAT:-0}" = 1 ] && exit 1
    exit 0
fi

mapfile -t files < <(find src test/unit bench \( -name '*.cpp' -o -name '*.h' \) -type f | sort)
case $mode in
fix) "$tool" -i "${files[@]}" ;;
check)
    "$tool" --dry-run -Werror "${files[@]}"
    echo "format: ok (${#files[@]} files, $("$tool" --version | grep -oE 'version [0-9.]+'))"
    ;;
*)
    echo "usage: $0 check|fix" >&2
    exit 2
    ;;
esac
