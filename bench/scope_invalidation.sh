#!/usr/bin/env bash
# bench/scope_invalidation.sh — whole-scope invalidation cost in the Node.js client at 10k and
# 100k cached entries: the code before the scope index (commit $BASE, every scope item scanned
# every entry) and the current clients/node, side by side in one process.  No server needed.
# Writes bench/measured/scope_invalidation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=954102e   # the last commit with the unindexed LRU (issue 10's "before")
OLD=$(mktemp -d)
trap 'rm -rf "$OLD"' EXIT
git show "$BASE:clients/node/index.js" >"$OLD/index.js"
git show "$BASE:clients/node/lru.js" >"$OLD/lru.js"
json=$(node bench/scope_invalidation.js "$OLD" clients/node)
{
    echo "## Node.js client: whole-scope invalidation"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Node.js $(node --version)."
    echo "Command: \`bash bench/scope_invalidation.sh\`. Entries spread over 1,000 scopes; K whole-scope items (in payloads under 8000 bytes, as the"
    echo "publisher sends them) handled by the listener code (parse, checks, drops); median of 7 fresh caches each."
    echo "Before: commit $BASE (each scope item scans every entry). After: this tree (scope index)."
    echo
    echo "| entries | whole-scope items | entries dropped | before (ms) | after (ms) | speed-up |"
    echo "|---|---|---|---|---|---|"
    node -e '
      for (const r of JSON.parse(process.argv[1])) {
        console.log(`| ${r.n.toLocaleString("en")} | ${r.k} | ${r.dropped.toLocaleString("en")} | ${r.before.toFixed(3)} | ${r.after.toFixed(3)} | ${(r.before / r.after).toFixed(0)}× |`);
      }' "$json"
} >bench/measured/scope_invalidation.md
cat bench/measured/scope_invalidation.md
