#!/bin/bash
# tests/programs/run.sh NAME LIBKSLAB WORKDIR HELPERDIR [VMMEM] — runs one real
# program workload twice, without and with LD_PRELOAD=LIBKSLAB, compares
# the outputs, and checks from KSLAB_STATS that the process under test (by
# its pid) was on kslab and served allocations from it.
# With libkslab-vm.so, VMMEM is KSLAB_VM_MEM ("ample": unset, nothing
# swaps; a size: the emulated memory, which must then have swapped), the
# swap file goes to WORKDIR (and must be gone afterwards), and the vmstat
# lines of the processes under test are summed up.
# Exit 77 = skipped (the program is not installed).  Also sourced by
# bench/programs/bench.sh for the workload definitions (RUN_SH_SOURCED=1).
set -u
NAME=$1 LIB=$2 WORK=$3 HELPERS=$4 VMMEM=${5:-}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C

need() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || { echo "SKIP: $p not installed"; exit 77; }
    done
}

# under_test CMD...: runs CMD as a process under test.  Its pid (kept by
# exec) is appended to $UNDER_TEST_PIDS, and the check at the end asks
# that this very process wrote kslab statistics: another process of the
# pipeline (md5sum, cmp) on kslab does not count.
under_test() {
    bash -c 'echo $$ >> "${UNDER_TEST_PIDS:-/dev/null}"; exec "$@"' under_test "$@"
}

# prepare_NAME: make the input once in $WORK/input; run_NAME DIR: run the
# workload with DIR as scratch and print what must not change; the program
# the workload is named for runs through under_test.
prepare_python() { need /usr/bin/python3; }
run_python() { PYTHONMALLOC=malloc under_test /usr/bin/python3 "$SRC/alloc_heavy.py"; }

# Modules of CPython's own test suite, from the first python3 that has
# them (Debian's /usr/bin/python3 needs libpython3-testsuite); the
# runner's timings are not printed.
prepare_python_test() {
    local p
    PY_TEST=
    for p in $(command -v python3) /usr/bin/python3; do
        "$p" -c 'import test.test_bisect, test.test_heapq, test.test_json' 2>/dev/null || continue
        PY_TEST=$("$p" -c 'import sys; print(sys.executable)')
        break
    done
    [ -n "$PY_TEST" ] || { echo "SKIP: no python3 with its test package"; exit 77; }
}
run_python_test() {
    under_test "$PY_TEST" -c '
import io, unittest
names = ["test.test_bisect", "test.test_heapq", "test.test_json"]
suite = unittest.defaultTestLoader.loadTestsFromNames(names)
r = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
print(r.testsRun, "tests", len(r.failures), "failures", len(r.errors), "errors")'
}

prepare_cxx_aligned_new() { :; }
run_cxx_aligned_new() { under_test "$HELPERS/prog_aligned_new"; }

prepare_sort() {
    need sort awk
    awk 'BEGIN { for (i = 0; i < 400000; i++)
        printf "%d %s line %d\n", (i * 7919) % 1000003, substr("qwertyuiopasdfgh", i % 16 + 1), i }' \
        > "$WORK/input/lines.txt"
}
run_sort() { under_test sort --parallel=2 -S 32M "$WORK/input/lines.txt" | md5sum; }

prepare_xz() {
    need xz awk
    awk 'BEGIN { srand(7); for (i = 0; i < 120000; i++)
        printf "%06d %s %d\n", i, (i % 7 ? "alpha beta gamma" : "delta"), int(rand() * 100000) }' \
        > "$WORK/input/data.txt"
}
run_xz() {
    under_test xz -T2 -6 --block-size=1MiB -c "$WORK/input/data.txt" > "$1/data.xz" || return 1
    under_test xz -T2 -d -c "$1/data.xz" | cmp - "$WORK/input/data.txt" && echo "round trip ok"
    md5sum < "$1/data.xz"
}

prepare_gcc() {
    need gcc
    {
        echo '#include <stdio.h>'
        echo '#include <string.h>'
        for i in $(seq 1 250); do
            echo "struct s$i { int a[$((i % 9 + 1))]; double d; char name[$((i % 17 + 4))]; };"
            echo "static int f$i(struct s$i *p, int n) { int t = 0; for (int k = 0; k < n; k++) { t += p->a[k % $((i % 9 + 1))] * $i; if (t > 1000) t -= strlen(p->name); } return t; }"
        done
        echo 'int main(void) { int t = 0;'
        for i in $(seq 1 250); do
            echo "  { struct s$i v; memset(&v, $((i % 3)), sizeof v); t += f$i(&v, $i); }"
        done
        echo '  printf("%d\n", t); return 0; }'
    } > "$WORK/input/gen.c"
}
run_gcc() {
    (cd "$1" && cp "$WORK/input/gen.c" . && under_test gcc -O2 -c gen.c -o gen.o && gcc gen.o -o gen && ./gen && md5sum < gen.o)
}

prepare_git() {
    need git awk
    mkdir -p "$WORK/input/tree"
    for d in $(seq 1 20); do
        mkdir -p "$WORK/input/tree/dir$d"
        for f in $(seq 1 15); do
            awk -v d=$d -v f=$f 'BEGIN { for (i = 0; i < 200; i++) printf "file %d/%d line %d %d\n", d, f, i, (i * d * f) % 977 }' \
                > "$WORK/input/tree/dir$d/file$f.txt"
        done
    done
}
run_git() {
    (
        export HOME="$1" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=kslab GIT_AUTHOR_EMAIL=k@example.org \
               GIT_COMMITTER_NAME=kslab GIT_COMMITTER_EMAIL=k@example.org \
               GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"
        rm -rf "$1/repo" && cp -r "$WORK/input/tree" "$1/repo" && cd "$1/repo" || exit 1
        git -c init.defaultBranch=main init -q .
        under_test git add -A && under_test git commit -q -m "first"
        sed -i 's/line 1 /line one /' dir*/file3.txt
        git commit -q -a -m "second"
        git log --stat | md5sum
        under_test git log -p | md5sum
        git rev-parse HEAD
        under_test git repack -adq && git count-objects -v | grep -E '^(count|in-pack|packs)'
        git show --format=%s HEAD~1 | head -3
    )
}

prepare_bash() { need bash; }
run_bash() { under_test bash "$SRC/script.sh"; }

# Under an address-space limit the program starts, runs out of memory
# cleanly (MemoryError, not a crash) and goes on allocating.
prepare_rlimit_as() { need /usr/bin/python3; }
run_rlimit_as() {
    (
        ulimit -v 400000
        under_test /usr/bin/python3 -c '
x = []
try:
    while True:
        x.append(bytearray(10**7))
except MemoryError:
    print("MemoryError")
del x
print("ok", len([bytes(1000) for i in range(10000)]))'
    )
}

prepare_fork_threads() { :; }
run_fork_threads() { under_test "$HELPERS/prog_fork_threads"; }

[ "${RUN_SH_SOURCED:-0}" = 1 ] && return 0

rm -rf "$WORK"
mkdir -p "$WORK/input" "$WORK/ref" "$WORK/kslab"
"prepare_$NAME" || { echo "FAIL: preparing $NAME"; exit 1; }
STATS="$WORK/stats.txt"
PIDS="$WORK/pids.txt"

(cd "$WORK/ref" && unset LD_PRELOAD KSLAB_STATS KSLAB_DEBUG && "run_$NAME" "$WORK/ref") \
    > "$WORK/out.ref" 2> "$WORK/err.ref"
rc_ref=$?
VM=0
case $LIB in *libkslab-vm.so) VM=1 ;; esac
VMENV=()
if [ $VM = 1 ]; then
    VMENV=(KSLAB_VM_SWAP_DIR="$WORK" KSLAB_VM_SWAP=1G)
    [ -n "$VMMEM" ] && [ "$VMMEM" != ample ] && VMENV+=(KSLAB_VM_MEM="$VMMEM")
fi
(cd "$WORK/kslab" && export LD_PRELOAD="$LIB" KSLAB_STATS="$STATS" UNDER_TEST_PIDS="$PIDS" "${VMENV[@]}" && "run_$NAME" "$WORK/kslab") \
    > "$WORK/out.kslab" 2> "$WORK/err.kslab"
rc_kslab=$?

status=0
if [ $rc_ref != $rc_kslab ]; then
    echo "FAIL: exit status $rc_ref without kslab, $rc_kslab with it"
    status=1
fi
if ! diff -u "$WORK/out.ref" "$WORK/out.kslab"; then
    echo "FAIL: output differs under kslab"
    status=1
fi
if ! diff -u "$WORK/err.ref" "$WORK/err.kslab" > /dev/null; then
    echo "FAIL: stderr differs under kslab:"
    diff -u "$WORK/err.ref" "$WORK/err.kslab" | head -20
    status=1
fi
# kslab was really used by every process under test: each of their pids
# wrote a statistics block ("kslab: statistics of pid N", at exit) with
# kmalloc caches that served objects.
procs=$(grep -c '^kslab: statistics of pid' "$STATS" 2>/dev/null)
tested=0
for pid in $(cat "$PIDS" 2>/dev/null); do
    tested=$((tested + 1))
    used=$(awk -v pid="$pid" '/^kslab: statistics of pid/ { mine = ($5 == pid) }
        mine && /^size-/ && $3 > 0 { n++ } END { print n + 0 }' "$STATS" 2>/dev/null)
    if [ "${used:-0}" -lt 1 ]; then
        echo "FAIL: process under test $pid was not on kslab (no statistics with caches in use)"
        status=1
    fi
done
if [ $tested -lt 1 ]; then
    echo "FAIL: no process under test ran (under_test not reached)"
    status=1
fi
# libkslab-vm.so: the vmstat lines of every process of the run, summed
# (gcc's work is done by its children cc1 and as); under a small
# KSLAB_VM_MEM something must have swapped; no swap file stays.
if [ $VM = 1 ]; then
    vmsum=$(awk '/^vm: vmstat/ { n++ }
        /^(pgfault|pgmajfault|pswpin|pswpout|pgscan|pgsteal) / { s[$1] += $2 }
        END { printf "%d pgfault %d pgmajfault %d pswpin %d pswpout %d pgscan %d pgsteal %d",
              n, s["pgfault"], s["pgmajfault"], s["pswpin"], s["pswpout"], s["pgscan"], s["pgsteal"] }' "$STATS" 2>/dev/null)
    set -- ${vmsum:-0 pgfault 0 pgmajfault 0 pswpin 0 pswpout 0 pgscan 0 pgsteal 0}
    echo "vm (KSLAB_VM_MEM=${VMMEM:-ample}): $1 processes, $2 $3 $4 $5 $6 $7 $8 $9 ${10} ${11} ${12} ${13}"
    if [ "$1" -lt 1 ]; then
        echo "FAIL: no process printed the mm's vmstat"
        status=1
    fi
    if [ -n "$VMMEM" ] && [ "$VMMEM" != ample ] && [ "$9" -lt 1 ]; then
        echo "FAIL: KSLAB_VM_MEM=$VMMEM, and nothing was swapped out"
        status=1
    fi
    if ls "$WORK"/kslab-swap.* >/dev/null 2>&1; then
        echo "FAIL: a swap file was left behind"
        status=1
    fi
fi
echo "$NAME: exit $rc_kslab, $(wc -l < "$WORK/out.ref") lines of output agree: $([ $status = 0 ] && echo yes || echo no); $tested process(es) under test on kslab, statistics from ${procs:-0} process(es)"
head -5 "$WORK/out.kslab"
exit $status
