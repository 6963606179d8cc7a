#!/usr/bin/env bash
# Fails when a call goes up a layer (tools/architecture.md): no object file
# of a layer may use a symbol that only a higher layer defines.
# Usage: tools/check-calls.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
objs="$build/CMakeFiles"
order=(lib vm/frames slab vm/mm interpose)
# Where each layer's objects are.
declare -A objdir=(
    [lib]=kslab_base_objs.dir/lib
    [vm/frames]=kslab_base_objs.dir/vm/frames
    [slab]=kslab_base_objs.dir/slab
    [vm/mm]=kslab_mm_objs.dir/vm/mm
    [interpose]=kslab_ip_objs.dir/interpose
)
# vm/mm and interpose sit side by side above slab: neither may call the other.
declare -A above=(
    [lib]="vm/frames slab vm/mm interpose"
    [vm/frames]="slab vm/mm interpose"
    [slab]="vm/mm interpose"
    [vm/mm]="interpose"
    [interpose]="vm/mm"
)
defs() { nm --defined-only "$objs/${objdir[$1]}"/*.o 2>/dev/null |
         awk 'NF == 3 && $2 ~ /[TDBRW]/ { print $3 }' | sort -u; }
status=0
for layer in "${order[@]}"; do
    ls "$objs/${objdir[$layer]}"/*.o >/dev/null 2>&1 || continue
    for o in "$objs/${objdir[$layer]}"/*.o; do
        undef=$(nm -u "$o" | awk '{ print $2 }' | sort -u)
        for up in ${above[$layer]}; do
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
