#!/bin/sh
# tests/docs/quickstart_vm.sh SOURCE BUILD — the README's third quick-start
# command, taken from the README and run as written from a directory
# where build/ is BUILD: it must print 67108864, and KSLAB_STATS's report
# must show the emulated mm swapping (64 MiB through 32 MiB of frames).
src=$1 build=$2
command -v python3 > /dev/null || { echo "no python3"; exit 77; }
cmd=$(grep '^LD_PRELOAD=build/libkslab-vm.so ' "$src/README.md")
[ -n "$cmd" ] || { echo "README: no libkslab-vm.so quick-start line"; exit 1; }
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
ln -s "$build" "$dir/build"
cd "$dir" || exit 1
out=$(sh -c "$cmd" 2> err) || { cat err; echo "exit status $?"; exit 1; }
[ "$out" = 67108864 ] || { echo "stdout: $out"; exit 1; }
for key in MemTotal: SwapTotal: pgfault pswpout pswpin; do
    grep -q "^$key" err || { cat err; echo "no $key line"; exit 1; }
done
n=$(sed -n 's/^pswpout \([0-9]*\)$/\1/p' err | sort -n | tail -1) # a wrapper script's processes report too
[ "${n:-0}" -gt 0 ] || { cat err; echo "pswpout ${n:-missing}: nothing swapped"; exit 1; }
echo "ok: pswpout $n"
