#!/usr/bin/env bash
# Builds kslab twice — a normal build with -Werror and an ASan+UBSan build —
# and runs every test with ctest in each.  Usage: tools/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

run_build() {
    local dir=$1; shift
    echo "=== kslab: configure $dir ($*)"
    cmake -S . -B "$dir" -DKSLAB_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS"
    echo "=== kslab: test $dir"
    (cd "$dir" && ctest --output-on-failure -j"$JOBS" --timeout 600)
}

bash tools/lint.sh
run_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_build build-asan -DKSLAB_SANITIZE=ON -DKSLAB_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
echo "=== kslab: all tests passed"
