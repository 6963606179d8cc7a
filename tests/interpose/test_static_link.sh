#!/bin/bash
# tests/interpose/test_static_link.sh CC LIBKSLAB_A INCLUDE SRC WORK STATIC_OK
#
# interpose/README.md's command, and nothing more: `cc prog.c libkslab.a
# -lpthread', dynamic and -static (where libc.a is installed).  Both link
# whether or not libunwind is installed (libkslab.a references it weakly
# and never references dlopen, so the -static link also gives no glibc
# warning), and both run plainly and with KSLAB_DEBUG=audit,log, whose
# stacks then come from backtrace() (or a libunwind the program linked).
# SRC is test_static.c: the malloc family, mallopt, mallinfo2 and
# malloc_trim, which must not pull glibc's malloc.o out of libc.a.
set -u
CC=$1 LIB=$2 INC=$3 SRC=$4 WORK=$5 STATIC_OK=${6:-}
rm -rf "$WORK" && mkdir -p "$WORK"
fail=0
try() { # name, link flags...
    local name=$1
    shift
    if ! "$CC" -o "$WORK/$name" -I"$INC" "$SRC" "$LIB" -lpthread "$@" \
        > "$WORK/$name.link" 2>&1; then
        echo "FAIL: $CC $* $SRC libkslab.a -lpthread does not link:"
        cat "$WORK/$name.link"
        fail=1
        return
    fi
    if grep -q "warning" "$WORK/$name.link"; then
        echo "FAIL: $name: the link warns:"
        cat "$WORK/$name.link"
        fail=1
    fi
    for debug in "" "audit,log"; do
        out=$(env -u KSLAB_STATS KSLAB_DEBUG="$debug" \
              timeout 60 "$WORK/$name" stacks 2>&1)
        rc=$?
        if [ $rc != 0 ] || ! grep -q "test_static: ok" <<< "$out"; then
            echo "FAIL: $name with KSLAB_DEBUG=$debug: exit $rc"
            echo "$out" | tail -20
            fail=1
        else
            echo "ok: $name, KSLAB_DEBUG=$debug"
        fi
    done
}
try dynamic
if [ "$STATIC_OK" = 1 ] || [ "$STATIC_OK" = ON ] || [ "$STATIC_OK" = TRUE ]; then
    try static -static
else
    echo "static linking unavailable here (no libc.a): -static not tried"
fi
[ $fail = 0 ] && echo "static link test: ok"
exit $fail
