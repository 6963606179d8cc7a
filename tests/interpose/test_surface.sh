#!/bin/bash
# tests/interpose/test_surface.sh NM OBJDUMP SRCDIR LIBKSLAB LIBKSLAB_PRELOAD
#
# The exported surface of the two shared libraries:
#  1. libkslab-preload.so exports the malloc family and kslab_* only;
#  2. libkslab.so exports the malloc family, kslab_*, and the names its
#     public headers declare KSLAB_API — no internal helper;
#  3. neither library calls through its PLT a symbol it defines itself
#     (every internal call is bound in the library: -Bsymbolic-functions),
#     so no program or library can take kslab's own calls.
set -eu
NM=$1 OBJDUMP=$2 SRC=$3 FULL=$4 PRELOAD=$5
fail=0

# glibc's malloc family, as interpose/ defines it (interpose/preload.map).
MALLOC_FAMILY="malloc free cfree calloc realloc reallocarray posix_memalign
aligned_alloc memalign valloc pvalloc malloc_usable_size __libc_malloc
__libc_free __libc_calloc __libc_realloc __libc_memalign __libc_valloc
__libc_pvalloc __posix_memalign mallinfo mallinfo2 malloc_trim malloc_stats
malloc_info mallopt"

exports() { "$NM" -D --defined-only "$1" | awk 'NF >= 3 { print $3 }' |
                sed 's/@.*//' | sort -u; }

in_list() { # name list...
    local n=$1; shift
    for x in $*; do [ "$x" = "$n" ] && return 0; done
    return 1
}

# The functions the public headers export: the identifier before the first
# '(' of each KSLAB_API declaration (declarations may span lines); and the
# objects, each KSLAB_API extern declaration's name (before '[' or ';').
HEADER_API=$( (cat "$SRC"/include/kslab/*.h | tr '\n' ' ' |
               grep -o 'KSLAB_API[^;(]*(' | grep -v 'KSLAB_API extern ' |
               sed 's/[ (]*$//; s/.*[ *]//'
               cat "$SRC"/include/kslab/*.h | tr '\n' ' ' |
               grep -o 'KSLAB_API extern [^;(]*;' |
               sed 's/\[.*//; s/[ ;]*$//; s/.*[ *]//') |
             grep -v '^__attribute__$' |
             sort -u)
[ -n "$HEADER_API" ] || { echo "no KSLAB_API declaration found"; exit 1; }

# libkslab.so keeps its SIGSEGV handler first (vm/mm/fault.c): it wraps
# libc's sigaction and signal; and it keeps SIGSEGV and SIGBUS deliverable:
# it wraps the calls that block signals.
SIGNAL_CHAIN="sigaction signal bsd_signal
              sigprocmask pthread_sigmask sigblock sigsetmask sighold"

check_exports() { # lib allow-header-api
    local lib=$1 api=$2 n
    for n in $(exports "$lib"); do
        case $n in kslab_*) continue ;; esac
        in_list "$n" $MALLOC_FAMILY && continue
        if [ "$api" = yes ] && in_list "$n" $HEADER_API $SIGNAL_CHAIN; then continue; fi
        echo "$(basename "$lib") exports $n"
        fail=1
    done
}

# Calls and jumps (conditional tail calls too) through the PLT (a PLT slot is named sym@plt) to a symbol
# the library itself exports.
check_plt() { # lib
    local lib=$1 n
    local defined called
    defined=$(exports "$lib")
    called=$("$OBJDUMP" -d --no-show-raw-insn "$lib" |
             grep -E '^\s+[0-9a-f]+:\s+((bnd|notrack) )?(call|j[a-z]+)\s' |
             grep -oE '<[^<>+]+@plt>' | sed 's/^<//; s/@plt>$//' | sort -u)
    for n in $called; do
        if in_list "$n" $defined; then
            echo "$(basename "$lib") calls its own $n through the PLT"
            fail=1
        fi
    done
}

check_exports "$PRELOAD" no
check_exports "$FULL" yes
check_plt "$PRELOAD"
check_plt "$FULL"

# The checks must have something to look at.
exports "$PRELOAD" | grep -qx malloc || { echo "no malloc in $PRELOAD"; fail=1; }
exports "$FULL" | grep -qx kmem_cache_alloc || { echo "no kmem_cache_alloc in $FULL"; fail=1; }

[ $fail = 0 ] && echo "surface ok: $(exports "$PRELOAD" | wc -l) symbols in" \
    "$(basename "$PRELOAD"), $(exports "$FULL" | wc -l) in $(basename "$FULL")"
exit $fail
