#!/usr/bin/env bash
# tools/fuzz.sh [SECONDS] [JOBS] — builds the libFuzzer target (build-fuzz/,
# clang) and fuzzes the public API for SECONDS (default 60: the CI smoke
# run) with JOBS workers (default 1), starting from fuzz/corpus.  New
# inputs go to build-fuzz/corpus (the seeds stay untouched); a crash is
# written to build-fuzz/crash-* and the script fails.
#   Long run:  tools/fuzz.sh 14400 2      # four hours, two workers
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
JOBS=${2:-1}
CC=${CC:-clang}
CC=$CC cmake -S . -B build-fuzz -DKSLAB_FUZZ=ON -DKSLAB_TESTS=OFF \
    -DKSLAB_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_api -j"${BUILD_JOBS:-2}"
mkdir -p build-fuzz/corpus
echo "=== kslab: fuzzing for ${SECS}s with ${JOBS} job(s)"
ARGS=(-max_total_time="$SECS" -max_len=4096 -timeout=20 -rss_limit_mb=4096
      -artifact_prefix=build-fuzz/ -print_final_stats=1)
if [ "$JOBS" -gt 1 ]; then
    ARGS+=(-fork="$JOBS" -ignore_crashes=0)
fi
./build-fuzz/fuzz/fuzz_api "${ARGS[@]}" build-fuzz/corpus fuzz/corpus \
    2>&1 | tee build-fuzz/fuzz.log | grep -E "^#[0-9]+.*(pulse|NEW|DONE)|stat::|ERROR|check failed|SUMMARY|artifact" \
    | tail -n 40
status=${PIPESTATUS[0]}
if ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/timeout-* >/dev/null 2>&1; then
    echo "=== kslab: the fuzzer found a problem: $(ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/timeout-* 2>/dev/null)"
    exit 1
fi
exit "$status"
