#!/usr/bin/env bash
# Every skip of a test is one ctest shows (tests/README.md).  cmocka's
# skip() alone ends the test as a pass to ctest, so tests/ use
# ktest_skip() (tests/ktest.h) instead, in a program that reports it
# (ktest_main or ktest_run_group: exit 77).  Non-zero exit on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files 'tests/*.c' 'tests/*.cc' 'tests/*.h' | grep -v '^tests/ktest\.h$' || true)
[ -z "$files" ] && exit 0
# a bare skip(): not ktest_skip( or another name ending in skip(
if bare=$(grep -nE '(^|[^A-Za-z0-9_])skip[[:space:]]*\(' $files); then
    echo "kslab: bare cmocka skip() under tests/ (ctest would count a pass;"
    echo "       use ktest_skip() and ktest_alone(), tests/ktest.h):"
    echo "$bare"
    status=1
fi
# a program that calls ktest_skip must report it
for f in $(grep -lE 'ktest_skip[[:space:]]*\(' $files || true); do
    if ! grep -qE 'ktest_(main|run_group)[[:space:]]*\(' "$f"; then
        echo "kslab: $f calls ktest_skip() but runs its tests without"
        echo "       ktest_main or ktest_run_group (its skips would pass)"
        status=1
    fi
done
exit $status
