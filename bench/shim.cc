// shim.cc — registers the C workloads of bench.h with google-benchmark and
// reports them; nothing else.  Each benchmark calls one workload per
// iteration, counts its operations as items (so items_per_second is ops/s),
// and measures real time, since some workloads run two threads.  The kslab
// API rows skip themselves (SkipWithError) unless libkslab.so is preloaded.
//
// Extra flag, handled before google-benchmark's: --bench_info prints which
// library serves malloc (bench/compare checks that LD_PRELOAD took effect).
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include <unistd.h>

#include "bench.h"

void RegisterPeerShapes(); // peers.cc

namespace
{

void Count(benchmark::State &st, uint64_t ops)
{
    st.SetItemsProcessed(static_cast<int64_t>(ops));
}

void MallocFree(benchmark::State &st, size_t size)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_malloc_free(size, 1000);
    Count(st, ops);
}

void Batch(benchmark::State &st, bench_order order)
{
    wl_batch b;
    if (wl_batch_init(&b, 1000) != 0) {
        st.SkipWithError("mmap failed");
        return;
    }
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_batch_run(&b, order);
    wl_batch_fini(&b);
    Count(st, ops);
}

void Realloc(benchmark::State &st, size_t max, size_t step)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_realloc_grow(max, step);
    Count(st, ops);
}

void ProdCons(benchmark::State &st)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_prodcons(20000);
    Count(st, ops);
}

void Larson(benchmark::State &st)
{
    wl_larson *l = wl_larson_init(bench_scaled(20000, 100));
    if (!l) {
        st.SkipWithError("mmap failed");
        return;
    }
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_larson_run(l, 2, 20000);
    wl_larson_fini(l);
    Count(st, ops);
}

void CacheApi(benchmark::State &st, size_t size)
{
    const struct bench_kslab *k = bench_kslab();
    if (!k) {
        st.SkipWithError("kslab API not preloaded");
        return;
    }
    kmem_cache_t *c =
        k->kmem_cache_create("bench-cache", size, 0, 0, nullptr, nullptr);
    if (!c) {
        st.SkipWithError("kmem_cache_create failed");
        return;
    }
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_cache_batch(c, 64, 16);
    k->kmem_cache_destroy(c);
    Count(st, ops);
}

void KmallocApi(benchmark::State &st, size_t size)
{
    if (!bench_kslab()) {
        st.SkipWithError("kslab API not preloaded");
        return;
    }
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_kmalloc_batch(size, 64, 16);
    Count(st, ops);
}

void MallocBatch(benchmark::State &st, size_t size)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_malloc_batch(size, 64, 16);
    Count(st, ops);
}

void Large(benchmark::State &st, size_t size)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_large(size, 1);
    Count(st, ops);
}

void Frag(benchmark::State &st)
{
    wl_frag_result r = {};
    uint64_t ops = 0;
    for (auto _ : st)
        ops += wl_frag(bench_scaled(200000, 1000), &r);
    Count(st, ops);
    const double mib = 1024.0 * 1024.0;
    st.counters["peak_rss_MiB"] = r.peak_rss / mib;
    st.counters["rss_after_alloc_MiB"] = r.rss_after_alloc / mib;
    st.counters["rss_after_free_MiB"] = r.rss_after_free / mib;
    st.counters["rss_after_refill_MiB"] = r.rss_after_refill / mib;
    st.counters["live_after_free_MiB"] = r.live_after_free / mib;
}

// The shapes of other benchmarks (shapes.c): one run of a fixed amount of
// work (so the pause below is taken once), then, with everything freed, a
// pause of a second (10 ms in smoke runs, BENCH_SCALE < 0.1) and the RSS:
// what the allocator gives back by itself.
template <class F> void Shape(benchmark::State &st, F run)
{
    uint64_t ops = 0;
    for (auto _ : st)
        ops += run();
    Count(st, ops);
    usleep(bench_scale() < 0.1 ? 10000 : 1000000);
    st.counters["rss_1s_MiB"] = bench_rss() / (1024.0 * 1024.0);
}

template <class F> void AddShape(const std::string &name, F run)
{
    benchmark::RegisterBenchmark(
        name.c_str(), [run](benchmark::State &st) { Shape(st, run); })
        ->UseRealTime()
        ->Iterations(1);
}

template <class F> void Add(const std::string &name, F f)
{
    benchmark::RegisterBenchmark(name.c_str(), f)->UseRealTime();
}

void RegisterAll()
{
    for (size_t s = 16; s <= 4096; s *= 2)
        Add("malloc_free_" + std::to_string(s),
            [s](benchmark::State &st) { MallocFree(st, s); });
    Add("batch_lifo", [](benchmark::State &st) { Batch(st, ORDER_LIFO); });
    Add("batch_fifo", [](benchmark::State &st) { Batch(st, ORDER_FIFO); });
    Add("batch_random", [](benchmark::State &st) { Batch(st, ORDER_RANDOM); });
    Add("realloc_grow_x1.5",
        [](benchmark::State &st) { Realloc(st, 1 << 20, 0); });
    Add("realloc_grow_16B",
        [](benchmark::State &st) { Realloc(st, 4096, 16); });
    Add("prodcons_2t", ProdCons);
    Add("larson_2t", Larson);
    Add("cache200_kmem_cache", [](benchmark::State &st) { CacheApi(st, 200); });
    Add("cache200_malloc", [](benchmark::State &st) { MallocBatch(st, 200); });
    Add("kmalloc64_kmalloc", [](benchmark::State &st) { KmallocApi(st, 64); });
    Add("kmalloc64_malloc", [](benchmark::State &st) { MallocBatch(st, 64); });
    for (size_t s = 256 << 10; s <= 8 << 20; s *= 2)
        Add("large_" + std::to_string(s >> 10) + "K",
            [s](benchmark::State &st) { Large(st, s); });
    benchmark::RegisterBenchmark("frag", Frag)->UseRealTime()->Iterations(1);
    for (int t : {2, 4})
        AddShape("shape_tree_" + std::to_string(t) + "t",
                 [t] { return wl_tree(t, 4000, bench_scaled(80 / t, 1)); });
    AddShape("shape_mstress_4t",
             [] { return wl_mstress(4, bench_scaled(200000, 500)); });
    AddShape("shape_large_5_25M",
             [] { return wl_large_loop(bench_scaled(400, 5)); });
    for (int t : {1, 2})
        AddShape("shape_alloctest_" + std::to_string(t) + "t", [t] {
            return wl_alloctest(t, bench_scaled(1000000 / t, 2000));
        });
    RegisterPeerShapes();
}

} // namespace

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (std::strcmp(argv[i], "--bench_info") == 0) {
            bench_print_info(stdout);
            return 0;
        }
    RegisterAll();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
