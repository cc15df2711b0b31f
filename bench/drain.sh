#!/usr/bin/env bash
# bench/drain.sh — the cost of one publisher drain (the time it holds the queue lock that
# committing backends wait for), former ring scan vs per-database lists, side by side in one
# run.  Pure C++ (bench/drain_cost.cpp), no cluster; writes bench/measured/drain.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
${CXX:-g++} -O2 -std=c++17 -Isrc -o build/drain_cost bench/drain_cost.cpp
out=bench/measured/drain.md
{
    echo "# Drain cost under the queue lock"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); pg_poolguard $(git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "- command: \`bash bench/drain.sh\` (bench/drain_cost.cpp: the former ring scan and the per-database"
    echo "  lists on the same ~1.1 kB entries, caches evicted before each drain, median of 51 drains each,"
    echo "  one run)"
    echo "- scenario: the queue is full of other databases' entries (a stuck database, or busy ones);"
    echo "  the draining database has its entries queued last; one drain takes up to 256 entries"
    echo
    echo "| queue size | entries of the draining database | ring scan, µs | per-database list, µs | ratio |"
    echo "|---|---|---|---|---|"
    for q in 4096 65536; do
        for mine in 1 256; do
            read -r qs m ring list < <(build/drain_cost "$q" "$mine" 51)
            ratio=$(awk -v a="$ring" -v b="$list" 'BEGIN { printf "%.0f×", (b > 0 ? a / b : 0) }')
            echo "| $qs | $m | $ring | $list | $ratio |"
        done
    done
} >"$out"
cat "$out"
