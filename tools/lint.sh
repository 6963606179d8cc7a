#!/usr/bin/env bash
# Static checks: cppcheck on the library and tests, and clang-format
# (the repository's .clang-format) on every C/C++ source.  Non-zero exit on
# any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=()
for d in lib vm slab interpose vmmode bench tests examples; do [ -d "$d" ] && dirs+=("$d"); done
echo "=== kslab: cppcheck"
cppcheck -q --error-exitcode=1 --enable=warning,performance,portability \
    --std=c11 -I include -I . -D__GNUC__ --inline-suppr \
    --suppress=missingIncludeSystem "${dirs[@]}"
echo "=== kslab: clang-format"
files=$(git ls-files '*.c' '*.h' '*.cc' '*.cpp')
clang-format --dry-run -Werror $files
echo "=== kslab: test skips"
bash tools/check-skips.sh
echo "=== kslab: layers"
bash tools/check-layers.sh
echo "=== kslab: lint clean"
