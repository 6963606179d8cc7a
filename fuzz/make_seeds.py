#!/usr/bin/env python3
"""fuzz/make_seeds.py — writes the hand-made seeds of fuzz/corpus/: one
short program per area of the API (opcode bytes as fuzz_api.c reads them),
so the fuzzer starts from inputs that reach every operation."""
import os, random, sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
os.makedirs(out, exist_ok=True)
rnd = random.Random(7)

def b(*xs):
    return bytes(x & 0xff for x in xs)

seeds = {
    # cache create (op 0), allocs (1), free by alloc again, shrink/destroy (3)
    "cache_basic": b(0, 0, 5, 0) + b(1, 0, 0) + b(1, 0, 1) + b(2, 0, 0) + b(3, 0, 2) + b(3, 0, 1),
    "cache_debug": b(0, 1, 3, 6) + b(1, 1, 0) + b(1, 1, 1) + b(1, 1, 0) + b(3, 1, 0),
    "cache_ctor_dtor": b(0, 2, 8, 96) + b(1, 2, 0) + b(2, 2, 3) + b(1, 2, 0) + b(3, 2, 1),
    "cache_offslab": b(0, 3, 9, 1) + bytes(sum(([1, 3, i] for i in range(20)), [])) + b(3, 3, 0),
    "kmalloc_sizes": b().join(b(4, i, i & 1, 3, (i * 16) & 0xff, 0) for i in range(18)),
    "kmalloc_free": b(4, 1, 0, 1, 100, 0) + b(4, 1) + b(5, 2, 1, 2, 0xff, 0xff) + b(5, 2),
    "pages": b(6, 0, 0) + b(6, 1, 5) + b(6, 0, 0) + b(6, 2, 3),
    "malloc": b().join(b(7, i, i & 3, i & 3, 50 + i, 1) for i in range(16)),
    "malloc_large": b(7, 0, 0x80, 0, 0, 0, 20) + b(7, 0, 3, 0, 0, 0) + b(7, 0),
    # mmap (8): mm, region, how, pages; write (12): mm, region, page, off
    "vm_mmap_write": b(8, 0, 0, 0, 3) + b(12, 0, 0, 1, 0) + b(12, 0, 0, 2, 8) + b(9, 0, 0, 1, 0),
    "vm_shared": b(8, 0, 1, 2, 4) + b(12, 0, 1, 0, 0) + b(13, 0, 1) + b(12, 1, 1, 0, 0),
    "vm_fork_cow": b(8, 0, 0, 0, 8) + b(12, 0, 0, 0, 0) + b(12, 0, 0, 3, 0) + b(13, 0, 1) + b(12, 1, 0, 0, 0) + b(14, 0) + b(12, 1, 0, 3, 0),
    "vm_mprotect": b(8, 0, 0, 0, 8) + b(12, 0, 0, 2, 0) + b(10, 0, 0, 1, 2, 1) + b(12, 0, 0, 2, 0) + b(10, 0, 0, 0, 8, 2) + b(12, 0, 0, 5, 0),
    "vm_brk": b(11, 0, 60) + b(12, 0, 5, 0, 0) + b(11, 0, 0) + b(11, 0, 40),
    "vm_fixed": b(8, 0, 0, 0, 8) + b(12, 0, 0, 1, 0) + b(8, 0, 0, 4, 2, 1) + b(12, 0, 0, 1, 0),
    "vm_mlock": b(8, 0, 0, 0, 4) + b(0x1d, 0, 0, 0, 2, 0) + b(0x1d, 0, 0, 0, 2, 1),
    "reap": b(0, 0, 2, 0) + b(1, 0, 0) + b(3, 0, 0) + b(0x1f) + b(15),
}
for i in range(8):
    seeds["random_%d" % i] = bytes(rnd.randrange(256) for _ in range(400))
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), out))
