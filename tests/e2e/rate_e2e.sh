#!/usr/bin/env bash
# The rating app in headless Chromium: two raters rate 10 samples through the real pages, then
# `rate report` must count exactly what they clicked. Exit 77 (skipped) without chromium or
# playwright-core (scripts/bootstrap installs both).
#   rate_e2e.sh CAPFORGE_BIN
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
pw=${CAPFORGE_PLAYWRIGHT_DIR:-${CAPFORGE_CACHE:-$HOME/.cache/capforge}/deps/playwright-core}
browser=${CAPFORGE_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -f "$pw/index.mjs" ] || { echo "skipped: no playwright-core in $pw (run scripts/bootstrap)"; exit 77; }
[ -n "$browser" ] || { echo "skipped: no chromium (run scripts/bootstrap)"; exit 77; }
command -v node >/dev/null || { echo "skipped: no node"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Ten synthetic images whose truth is the "human" caption; the model captions are made up here so
# the test needs no model. Samples 1 and 2 carry hostile captions on both sides, so every rater sees two.
"$bin" synth --out "$tmp/shards" --count 10 --seed 11 2>/dev/null
"$bin" caption "$tmp/shards" --out "$tmp/refs" --captioner none --progress off 2>/dev/null
"$bin" sql "SELECT key, CASE row_number() OVER (ORDER BY key)
                 WHEN 1 THEN '<script>alert(1)</script>'
                 WHEN 2 THEN '\" onmouseover=\"alert(2)\" autofocus onfocus=\"alert(3)'
                 ELSE 'a picture of ' || truth END AS re_caption,
               CASE row_number() OVER (ORDER BY key)
                 WHEN 1 THEN '\" onmouseover=\"alert(4)\" autofocus onfocus=\"alert(5)'
                 WHEN 2 THEN '<script>alert(6)</script><img src=x onerror=alert(7)>'
                 ELSE truth END AS truth,
               'success' AS status
             FROM read_parquet('$tmp/refs/*.parquet') ORDER BY key" > "$tmp/pred.jsonl"
node "$here/rate_e2e.mjs" "$bin" "$pw" "$browser" "$tmp"
