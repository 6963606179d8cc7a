/*
 * kslab_api.c — kslab's own allocation API, bound at run time.  The benchmark
 * binary links no allocator, so the same binary runs under every LD_PRELOAD;
 * kmem_cache_* and kmalloc/kfree exist only when libkslab.so is preloaded,
 * and are found with dlsym(RTLD_DEFAULT).  Beside each API workload sits a
 * malloc twin doing the same batches with malloc/free, which every allocator
 * runs: that is the comparison the table shows.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdlib.h>

#include "bench.h"

#define BENCH_GFP_KERNEL 0x87 /* GFP_KERNEL of <kslab/slab.h> */

const struct bench_kslab *bench_kslab(void)
{
    static struct bench_kslab api;
    static int state; /* 0 unknown, 1 present, -1 absent */

    if (state == 0) {
        api.kmem_cache_create = dlsym(RTLD_DEFAULT, "kmem_cache_create");
        api.kmem_cache_destroy = dlsym(RTLD_DEFAULT, "kmem_cache_destroy");
        api.kmem_cache_alloc = dlsym(RTLD_DEFAULT, "kmem_cache_alloc");
        api.kmem_cache_free = dlsym(RTLD_DEFAULT, "kmem_cache_free");
        api.kmalloc = dlsym(RTLD_DEFAULT, "kmalloc");
        api.kfree = dlsym(RTLD_DEFAULT, "kfree");
        state = api.kmem_cache_create && api.kmem_cache_destroy &&
                        api.kmem_cache_alloc && api.kmem_cache_free &&
                        api.kmalloc && api.kfree
                    ? 1
                    : -1;
    }
    return state > 0 ? &api : NULL;
}

#define MAX_BATCH 256

uint64_t wl_cache_batch(kmem_cache_t *c, size_t batch, uint64_t rounds)
{
    const struct bench_kslab *k = bench_kslab();
    void *obj[MAX_BATCH];
    if (batch > MAX_BATCH)
        batch = MAX_BATCH;
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            char *p = k->kmem_cache_alloc(c, BENCH_GFP_KERNEL);
            p[0] = 1;
            obj[i] = p;
        }
        bench_escape(obj);
        for (size_t i = batch; i-- > 0;)
            k->kmem_cache_free(c, obj[i]);
    }
    return rounds * batch;
}

uint64_t wl_kmalloc_batch(size_t size, size_t batch, uint64_t rounds)
{
    const struct bench_kslab *k = bench_kslab();
    void *obj[MAX_BATCH];
    if (batch > MAX_BATCH)
        batch = MAX_BATCH;
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            char *p = k->kmalloc(size, BENCH_GFP_KERNEL);
            p[0] = 1;
            obj[i] = p;
        }
        bench_escape(obj);
        for (size_t i = batch; i-- > 0;)
            k->kfree(obj[i]);
    }
    return rounds * batch;
}

uint64_t wl_malloc_batch(size_t size, size_t batch, uint64_t rounds)
{
    void *obj[MAX_BATCH];
    if (batch > MAX_BATCH)
        batch = MAX_BATCH;
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < batch; i++) {
            char *p = malloc(size);
            p[0] = 1;
            obj[i] = p;
        }
        bench_escape(obj);
        for (size_t i = batch; i-- > 0;)
            free(obj[i]);
    }
    return rounds * batch;
}
