#!/bin/bash
# bench/programs/bench.sh LIBKSLAB HELPERDIR [RUNS] [PROGRAM...] — wall time
# of each real-program workload of tests/programs/run.sh (the test's own
# definitions, sourced) under kslab, under jemalloc (Debian libjemalloc2)
# and under glibc, interleaved, median of RUNS (5).  HELPERDIR holds the
# helper programs the tests build (build/tests/programs).  A benchmark, not
# a test: prints a Markdown table.
set -u
LIB=$1 HELPERS=$2 RUNS=${3:-5}
shift 3 2>/dev/null || shift $#
PROGS=${*:-python cxx_aligned_new sort xz gcc git bash fork_threads}
JEMALLOC=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
RUN_SH_SOURCED=1
NAME=x WORK=$(mktemp -d /tmp/kslab-bench.XXXXXX)
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/programs/run.sh" x "$LIB" "$WORK" "$HELPERS"
export LC_ALL=C

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

one() { # lib name -> seconds
    local s e
    s=$(date +%s%N)
    (cd "$WORK/scratch" && export LD_PRELOAD="$1" && "run_$2" "$WORK/scratch") > /dev/null 2>&1
    e=$(date +%s%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }'
}

echo "| program | kslab (s) | jemalloc (s) | glibc (s) | kslab / jemalloc |"
echo "|---|---|---|---|---|"
for p in $PROGS; do
    rm -rf "$WORK/input" "$WORK/scratch"
    mkdir -p "$WORK/input" "$WORK/scratch"
    "prepare_$p" > /dev/null
    : > "$WORK/k"; : > "$WORK/j"; : > "$WORK/g"
    for r in $(seq 1 "$RUNS"); do
        one "$LIB" "$p" >> "$WORK/k"
        one "$JEMALLOC" "$p" >> "$WORK/j"
        one "" "$p" >> "$WORK/g"
    done
    k=$(median < "$WORK/k") j=$(median < "$WORK/j") g=$(median < "$WORK/g")
    echo "| $p | $k | $j | $g | $(awk -v k="$k" -v j="$j" 'BEGIN { printf "%.2f", k / j }') |"
done
rm -rf "$WORK"
