#!/usr/bin/env bash
# tests/reliability/test_valgrind.sh VG_PLANT LIBKSLAB — memcheck on a
# program preloaded with kslab reports the program's own bugs as under
# glibc: the planted leak (2 blocks, 200 bytes, definitely lost), the read
# past the end of a 40-byte block and the read after its free, each with
# the program's stack; and nothing else.  The stacks must go through
# kslab's malloc (ip_tool_alloc), not valgrind's replacement:
# --soname-synonyms=somalloc=nouserintercepts keeps memcheck's own malloc
# out of the preloaded library.
set -uo pipefail
PLANT=$1
LIB=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
LD_PRELOAD=$LIB valgrind --leak-check=full --error-exitcode=0 \
    --soname-synonyms=somalloc=nouserintercepts "$PLANT" >"$log" 2>&1
status=0
expect() {
    if ! grep -qE "$1" "$log"; then
        echo "test_valgrind: missing: $1"
        status=1
    fi
}
expect "vg_plant: done"
expect "Invalid read of size 1"
expect "is 0 bytes after a (recently re-allocated )?block of size 40 alloc'd"
expect "is 0 bytes inside a (recently re-allocated )?block of size 40 free'd"
expect "at .*: plant_invalid_read \\(vg_plant.c"
expect "by .*: plant_leak \\(vg_plant.c"
expect "definitely lost: 200 bytes in 2 blocks"
expect "ERROR SUMMARY: 4 errors from 4 contexts"
expect "ip_tool_alloc"
if [ $status -ne 0 ]; then
    cat "$log"
else
    grep -E "Invalid|lost:|ERROR SUMMARY" "$log"
fi
exit $status
