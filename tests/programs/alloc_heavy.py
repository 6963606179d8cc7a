# tests/programs/alloc_heavy.py — an allocation-heavy Python workload with
# threads: strings, lists, dicts, bytes of all sizes (some above 128 KiB),
# built and dropped in four threads; prints results that do not depend on
# the scheduling.
import hashlib
import threading

results = {}

def work(tid):
    h = hashlib.sha256()
    table = {}
    for i in range(30000):
        key = "k%d-%d" % (tid, i * 7919 % 30011)
        table[key] = [i, str(i) * (i % 13), (i, tid)]
        if i % 3 == 0:
            table.pop("k%d-%d" % (tid, (i // 2) * 7919 % 30011), None)
        if i % 500 == 0:
            blob = bytes((i + j) & 0xFF for j in range(1000)) * (i % 300 + 1)
            h.update(blob[:: max(1, len(blob) // 64)])
            arr = bytearray(blob)
            arr.extend(arr)
            h.update(bytes(arr[-32:]))
    for k in sorted(table):
        h.update(k.encode())
    results[tid] = (len(table), h.hexdigest())

threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for tid in sorted(results):
    print(tid, *results[tid])
