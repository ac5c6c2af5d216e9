#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over its seed corpus.
# usage: run.sh FUZZER SECONDS
# The seeds in tests/fuzz/corpus/<target>/ are copied to a scratch corpus so
# the repository is never written to. Exit status is the fuzzer's: non-zero
# means a crash, leak or sanitizer finding (the reproducer is kept and named).
set -euo pipefail
fuzzer=$1
secs=$2
name=$(basename "$fuzzer")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
if [ -d "$here/corpus/$name" ]; then cp -r "$here/corpus/$name/." "$work/corpus/"; fi
out=${FUZZ_ARTIFACTS:-$work}
set +e
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/" "$work/corpus" >"$work/log" 2>&1
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' "$work/log" || true
if [ $rc -ne 0 ]; then
  tail -50 "$work/log"
  ls -l "$out"/crash-* "$out"/leak-* "$out"/timeout-* 2>/dev/null || true
  echo "$name: FAILED (exit $rc)"
  exit $rc
fi
echo "$name: ran ${secs}s, no findings"
