#!/bin/bash
# tests/install/install_test.sh CMAKE BUILDDIR CONSUMERSRC WORK
set -eu
CMAKE=$1 BUILD=$2 SRC=$3 WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK"
PREFIX=$WORK/prefix
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" > "$WORK/install.log"
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libkslab.so' | head -1)")

# find_package(kslab)
"$CMAKE" -S "$SRC" -B "$WORK/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" > "$WORK/cmake.log"
"$CMAKE" --build "$WORK/cmake" -j2 > "$WORK/build.log"
LD_LIBRARY_PATH=$LIBDIR "$WORK/cmake/consumer"
LD_LIBRARY_PATH=$LIBDIR "$WORK/cmake/consumer_static"

# pkg-config
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
cc -o "$WORK/consumer_pc" "$SRC/consumer.c" $(pkg-config --cflags --libs kslab)
LD_LIBRARY_PATH=$LIBDIR "$WORK/consumer_pc"
cc -o "$WORK/consumer_pc_static" "$SRC/consumer.c" $(pkg-config --cflags kslab) \
    "$LIBDIR/libkslab.a" $(pkg-config --libs-only-other --static kslab) \
    $(pkg-config --libs-only-l --static kslab | sed 's/-lkslab\b//')
"$WORK/consumer_pc_static"
# -static with pkg-config --static: links, and KSLAB_DEBUG's stacks come
# from libunwind.a when kslab.pc names it (the fast unwinder)
if cc -static -o "$WORK/consumer_pc_fullstatic" "$SRC/consumer.c" \
    $(pkg-config --cflags kslab) "$LIBDIR/libkslab.a" \
    $(pkg-config --libs-only-other --static kslab) \
    $(pkg-config --libs-only-l --static kslab | sed 's/-lkslab\b//') \
    2> "$WORK/fullstatic.log"; then
    KSLAB_DEBUG=audit "$WORK/consumer_pc_fullstatic"
    if pkg-config --libs --static kslab | grep -q -- -lunwind; then
        nm "$WORK/consumer_pc_fullstatic" | grep -qw "T unw_backtrace"
        # linked dynamically: bound to libunwind.so (not a weak "w")
        nm "$WORK/cmake/consumer_static" | grep -Eq "[TU] unw_backtrace$"
    fi
elif cc -static -o "$WORK/empty" -x c - <<< 'int main(void){return 0;}' 2>/dev/null; then
    cat "$WORK/fullstatic.log"
    exit 1
fi
echo "install test ok"
