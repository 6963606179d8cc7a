// peers.cc — registers the workloads of peers.h (and the four-thread
// larson of bench.h) with google-benchmark, after shim.cc's own rows.
// The sweep rows run their fixed work once per process and report
// cached_MiB: RSS with every thread parked holding nothing, less RSS with
// the same threads parked before they allocated.
#include <benchmark/benchmark.h>

#include <string>

#include "bench.h"
#include "peers.h"

void RegisterPeerShapes();

namespace
{

void Items(benchmark::State &st, uint64_t ops)
{
    st.SetItemsProcessed(static_cast<int64_t>(ops));
}

void ProdConsMN(benchmark::State &st, int producers, int consumers)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_prodcons_mn(producers, consumers,
                              bench_scaled(40000 / producers, 200));
    Items(st, ops);
}

void Larson(benchmark::State &st, int threads)
{
    wl_larson *l = wl_larson_init(bench_scaled(20000, 100));
    if (!l) {
        st.SkipWithError("mmap failed");
        return;
    }
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_larson_run(l, threads, 40000 / threads);
    wl_larson_fini(l);
    Items(st, ops);
}

void GlibcSimple(benchmark::State &st, size_t size)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_glibc_simple(size);
    Items(st, ops);
}

void GlibcThread(benchmark::State &st, int threads)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_glibc_thread(threads,
                               bench_scaled(200000 / threads, 2000 / threads));
    Items(st, ops);
}

void Sweep(benchmark::State &st, int threads)
{
    uint64_t ops = 0;
    size_t cached = 0;
    for (auto _ : st)
        ops += wl_sweep(threads, bench_scaled(20000, 200), &cached);
    if (!ops) {
        st.SkipWithError("threads could not be started");
        return;
    }
    Items(st, ops);
    st.counters["cached_MiB"] = cached / (1024.0 * 1024.0);
}

template <class F> void Add(const std::string &name, F f)
{
    benchmark::RegisterBenchmark(name.c_str(), f)->UseRealTime();
}

} // namespace

void RegisterPeerShapes()
{
    for (int n : {2, 4})
        Add("prodcons_" + std::to_string(n) + "p" + std::to_string(n) + "c",
            [n](benchmark::State &st) { ProdConsMN(st, n, n); });
    Add("larson_4t", [](benchmark::State &st) { Larson(st, 4); });
    for (size_t s : {16, 32, 64, 128})
        Add("glibc_simple_" + std::to_string(s),
            [s](benchmark::State &st) { GlibcSimple(st, s); });
    for (int t : {1, 8, 32})
        Add("glibc_thread_" + std::to_string(t) + "t",
            [t](benchmark::State &st) { GlibcThread(st, t); });
    for (int t : {1, 2, 16, 64, 256})
        benchmark::RegisterBenchmark(
            ("sweep_" + std::to_string(t) + "t").c_str(),
            [t](benchmark::State &st) { Sweep(st, t); })
            ->UseRealTime()
            ->Iterations(1);
}
