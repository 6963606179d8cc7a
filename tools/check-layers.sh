#!/usr/bin/env bash
# Fails when an #include in the library goes up a layer (the map:
# tools/layers.txt).  A layer may include its own headers, the public
# <kslab/...> headers and the headers of the layers below it, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

# layer directory -> the project directories its files may include from
declare -A allowed=()
layers=()
while read -r layer _ below; do
    layers+=("$layer")
    allowed[$layer]=$(echo ${below//-/} "$layer")
done < <(grep -Ev '^[[:space:]]*(#|$)' tools/layers.txt)

status=0
for layer in "${layers[@]}"; do
    [ -d "$layer" ] || continue
    for f in "$layer"/*.[ch]; do
        [ -e "$f" ] || continue
        while IFS= read -r line; do
            inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/' <<<"$line")
            dir=$(dirname "$inc")
            ok=0
            for a in ${allowed[$layer]}; do
                [ "$dir" = "$a" ] && ok=1
            done
            if [ $ok = 0 ]; then
                echo "$f: includes \"$inc\": $layer may include only from: ${allowed[$layer]}"
                status=1
            fi
        done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$f" || true)
    done
done
# lib/ is below every layer, and each public header is the API of a layer
# above it: lib/ includes none of them.
if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+<kslab/' lib/*.[ch]; then
    echo "lib: includes a public <kslab/...> header: lib/ includes nothing from the layers above it"
    status=1
fi
# Public headers include only each other.
if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' include/kslab/*.h; then
    echo "include/kslab: public headers include only <kslab/...> and system headers"
    status=1
fi
[ $status = 0 ] && echo "kslab: layers clean"
exit $status
