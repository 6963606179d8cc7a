#!/usr/bin/env bash
# Builds kslab three times — a normal build with -Werror, an ASan+UBSan
# build and a TSan build — and runs every test with ctest in each; then
# fuzzes the public API for FUZZ_SECONDS (default 60; 0 skips) with the
# libFuzzer target (clang).  Usage: tools/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

run_build() {
    local dir=$1; shift
    echo "=== kslab: configure $dir ($*)"
    cmake -S . -B "$dir" -DKSLAB_WERROR=ON -DKSLAB_TESTS=ON "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS"
    echo "=== kslab: test $dir"
    (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 600)
}

bash tools/lint.sh
run_build build -DKSLAB_BENCH=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_build build-asan -DKSLAB_SANITIZE=ON -DKSLAB_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
run_build build-tsan -DKSLAB_TSAN=ON -DKSLAB_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
    BUILD_JOBS=$JOBS bash tools/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
echo "=== kslab: all tests passed"
