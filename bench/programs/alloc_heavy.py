"""alloc_heavy.py — an allocation-heavy python3 program for bench/compare
--programs: builds and drops many small objects (dicts, lists, strings,
tuples) the way interpreters stress malloc.  Argument: scale (1 = about
1-2 s on one core).  Prints a checksum so the work cannot be skipped."""
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rounds = max(1, int(40 * scale))
total = 0
keep = []
for r in range(rounds):
    d = {}
    for i in range(20000):
        key = "k%d_%d" % (r, i)
        d[key] = [i, str(i) * (i % 7 + 1), (i, r)]
    total += sum(len(v[1]) for v in d.values())
    keep.append([v for k, v in d.items() if hash(k) % 10 == 0])
    if len(keep) > 8:
        keep.pop(0)
    s = "".join(str(x) for x in range(3000))
    total += len(s.split("9"))
print(total)
