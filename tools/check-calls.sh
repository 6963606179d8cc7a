#!/usr/bin/env bash
# Fails when a call goes up a layer (the map: tools/layers.txt): no object
# file of a layer may use a symbol that only a layer not below it defines
# (a higher one, or one beside it: vm/mm and interpose).
# Usage: tools/check-calls.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
objs="$build/CMakeFiles"
# Each layer, where its objects are, the layers it may use.
declare -A objdir=() below=() above=()
order=()
while read -r layer dir uses; do
    order+=("$layer")
    objdir[$layer]=$dir
    below[$layer]=" ${uses//-/} "
done < <(grep -Ev '^[[:space:]]*(#|$)' "$(dirname "$0")/layers.txt")
# The layers it may not use: every other layer not below it.
for layer in "${order[@]}"; do
    for other in "${order[@]}"; do
        [[ $other = "$layer" || ${below[$layer]} = *" $other "* ]] ||
            above[$layer]+="$other "
    done
done
# A layer's definitions, less the libc functions it interposes (vmmode's
# read, write, mmap ...): a call of those below is a call of libc's.
libc=$(${CC:-cc} -print-file-name=libc.so.6)
libc_defs=$(nm -D --defined-only "$libc" 2>/dev/null |
            awk '{ sub(/@.*/, "", $3); print $3 }' | sort -u)
defs() { nm --defined-only "$objs/${objdir[$1]}"/*.o 2>/dev/null |
         awk 'NF == 3 && $2 ~ /[TDBRW]/ { print $3 }' | sort -u |
         comm -23 - <(echo "$libc_defs"); }
status=0
for layer in "${order[@]}"; do
    ls "$objs/${objdir[$layer]}"/*.o >/dev/null 2>&1 || continue
    for o in "$objs/${objdir[$layer]}"/*.o; do
        undef=$(nm -u "$o" | awk '{ print $2 }' | sort -u)
        for up in ${above[$layer]:-}; do
            bad=$(comm -12 <(echo "$undef") <(defs "$up") | tr '\n' ' ')
            if [ -n "$bad" ]; then
                echo "$layer/$(basename "$o" .o): calls up into $up: $bad"
                status=1
            fi
        done
    done
done
[ $status = 0 ] && echo "kslab: calls go down only"
exit $status
