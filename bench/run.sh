#!/usr/bin/env bash
# bench/run.sh — `make bench`: every benchmark, each side by side with its baseline, and
# bench/RESULTS.md assembled from their results.  Loopback only; bounded run time.
set -euo pipefail
cd "$(dirname "$0")/.."
# The invalidation benchmark's listener uses the Node.js client's dependencies.
[ -d clients/node/node_modules ] || (cd clients/node && npm ci --no-audit --no-fund >/dev/null)
# ONLY_ASSEMBLE=1: rebuild bench/RESULTS.md from the recorded sections without measuring.
for b in $([ "${ONLY_ASSEMBLE:-0}" = 1 ] || echo bench/*.sh); do
    # (bench/lib.sh is what the scripts source, not a benchmark)
    case $b in bench/run.sh | bench/lib.sh) continue ;; esac
    echo "==> $b"
    bash "$b"
done
{
    echo "# pg_poolguard benchmarks"
    echo
    echo "Each figure is measured side by side with its baseline in one run on this machine."
    echo "Re-measure with \`make bench\`; each section names its own command."
    for r in bench/measured/*.md; do echo; cat "$r"; done
} >bench/RESULTS.md
echo "wrote bench/RESULTS.md"
