/*
 * tests/slab/test_cache.c — kmem_cache_*: argument checking, layout
 * (alignment, on/off-slab, colouring), constructor/destructor semantics,
 * destroy, shrink and reap, slabinfo.
 */
#include <errno.h>

#include "ktest.h"
#include "slab/slab_internal.h"

static int ctor_calls, dtor_calls, verify_calls;

static void ctor(void *obj, kmem_cache_t *c, unsigned long flags)
{
    assert_true(flags & SLAB_CTOR_CONSTRUCTOR);
    if (flags & SLAB_CTOR_VERIFY) {
        verify_calls++;
        return;
    }
    ctor_calls++;
    memset(obj, 0xC7, kmem_cache_size(c));
}

static void dtor(void *obj, kmem_cache_t *c, unsigned long flags)
{
    (void)flags;
    dtor_calls++;
    /* Objects are still constructed when their slab goes. */
    assert_int_equal(((unsigned char *)obj)[kmem_cache_size(c) - 1], 0xC7);
}

static void nop_ctor(void *o, kmem_cache_t *c, unsigned long f)
{
    (void)o;
    (void)c;
    (void)f;
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    char longname[64];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    struct {
        const char *name;
        size_t size;
        unsigned long flags;
        int with_dtor_only;
        int err;
    } cases[] = {
        {NULL, 64, 0, 0, EINVAL},
        {"", 64, 0, 0, EINVAL},
        {longname, 64, 0, 0, EINVAL},
        {"zero", 0, 0, 0, EINVAL},
        {"huge", KMALLOC_MAX_SIZE + 1, 0, 0, EINVAL},
        {"dtoronly", 64, 0, 1, EINVAL},
        {"badflag", 64, 0x80000000UL, 0, EINVAL},
        {"size-64", 64, 0, 0, EEXIST},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        kmem_cache_t *c =
            kmem_cache_create(cases[i].name, cases[i].size, 0, cases[i].flags,
                              NULL, cases[i].with_dtor_only ? dtor : NULL);
        assert_null(c);
        assert_int_equal(errno, cases[i].err);
    }
    kmem_cache_t *c = kmem_cache_create("dup", 64, 0, 0, NULL, NULL);
    assert_non_null(c);
    errno = 0;
    assert_null(kmem_cache_create("dup", 128, 0, 0, NULL, NULL));
    assert_int_equal(errno, EEXIST);
    assert_int_equal(kmem_cache_destroy(c), 0);
    /* The name is free again once the cache is gone. */
    c = kmem_cache_create("dup", 64, 0, 0, NULL, NULL);
    assert_non_null(c);
    assert_int_equal(kmem_cache_destroy(c), 0);
    assert_true(kmem_cache_destroy(NULL) != 0);
    assert_true(kmem_cache_shrink(NULL) < 0);
}

static void test_alignment_for_every_size_and_flag(void **state)
{
    (void)state;
    unsigned long flagsets[] = {
        0,           SLAB_HWCACHE_ALIGN, SLAB_RED_ZONE,
        SLAB_POISON, SLAB_CACHE_DMA,     SLAB_HWCACHE_ALIGN | SLAB_RED_ZONE};
    size_t sizes[] = {1,   7,   8,    24,   33,   100,   200,
                      511, 512, 1000, 4096, 5000, 40000, 131072};
    for (size_t f = 0; f < sizeof flagsets / sizeof flagsets[0]; f++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            char name[32];
            snprintf(name, sizeof name, "al-%zu-%zu", f, s);
            kmem_cache_t *c =
                kmem_cache_create(name, sizes[s], 0, flagsets[f], NULL, NULL);
            assert_non_null(c);
            size_t align = sizes[s] >= 16 ? 16 : 8;
            if ((flagsets[f] & SLAB_HWCACHE_ALIGN) && sizes[s] > 32)
                align = 64;
            void *objs[3];
            for (int i = 0; i < 3; i++) {
                objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
                assert_non_null(objs[i]);
                assert_int_equal((uintptr_t)objs[i] % align, 0);
                assert_true(kmem_cache_size(c) >= sizes[s]);
                memset(objs[i], 0x11, sizes[s]);
                if (flagsets[f] & SLAB_CACHE_DMA)
                    assert_true(vm_addr_is_dma(objs[i]));
            }
            for (int i = 0; i < 3; i++)
                kmem_cache_free(c, objs[i]);
            slab_check_cache(c);
            assert_int_equal(kmem_cache_destroy(c), 0);
        }
    }
}

static void test_management_on_and_off_slab(void **state)
{
    (void)state;
    kmem_cache_t *small = kmem_cache_create("onslab", 100, 0, 0, NULL, NULL);
    kmem_cache_t *big = kmem_cache_create("offslab", 1024, 0, 0, NULL, NULL);
    assert_false(small->flags & CFLGS_OFF_SLAB);
    assert_true(big->flags & CFLGS_OFF_SLAB);
    /* Waste bound: leftover × 8 ≤ slab size. */
    for (kmem_cache_t *c = small;; c = big) {
        size_t slab = PAGE_SIZE << c->gfporder;
        size_t used = (size_t)c->num * c->size +
                      ((c->flags & CFLGS_OFF_SLAB) ? 0 : c->slab_size);
        assert_true((slab - used) * 8 <= slab || c->gfporder >= 2);
        if (c == big)
            break;
    }
    void *o = kmem_cache_alloc(big, GFP_KERNEL);
    struct page *pg = virt_to_page(o);
    assert_ptr_equal(GET_PAGE_CACHE(pg), big);
    slab_t *slabp = GET_PAGE_SLAB(pg);
    /* Off-slab: the slab_t is not inside the slab's frames. */
    assert_true(virt_to_page(slabp) == NULL || !PageSlab(virt_to_page(slabp)) ||
                GET_PAGE_CACHE(virt_to_page(slabp)) != big);
    kmem_cache_free(big, o);
    assert_int_equal(kmem_cache_destroy(small), 0);
    assert_int_equal(kmem_cache_destroy(big), 0);
}

static void test_slabs_are_coloured(void **state)
{
    (void)state;
    kmem_cache_t *c =
        kmem_cache_create("colour", 250, 0, SLAB_NO_REAP, NULL, NULL);
    assert_true(c->colour > 1);
    unsigned int n = c->num * 4;
    void **objs = calloc(n, sizeof *objs);
    int offsets_seen[64] = {0};
    int distinct = 0;
    for (unsigned i = 0; i < n; i++) {
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        slab_t *s = GET_PAGE_SLAB(virt_to_page(objs[i]));
        unsigned long off = ((uintptr_t)s->s_mem & (PAGE_SIZE - 1)) / 64;
        if (!offsets_seen[off]++)
            distinct++;
    }
    assert_true(distinct >= 2);
    for (unsigned i = 0; i < n; i++)
        kmem_cache_free(c, objs[i]);
    free(objs);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_ctor_runs_at_grow_only_and_dtor_at_destroy(void **state)
{
    (void)state;
    ctor_calls = dtor_calls = 0;
    kmem_cache_t *c = kmem_cache_create("ctor", 96, 0, 0, ctor, dtor);
    assert_non_null(c);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    assert_int_equal(ctor_calls, (int)c->num); /* the whole slab */
    assert_int_equal(((unsigned char *)o)[0], 0xC7);
    ((unsigned char *)o)[0] = 0xC7; /* the user keeps it constructed */
    kmem_cache_free(c, o);
    for (int i = 0; i < 10; i++) {
        void *p = kmem_cache_alloc(c, GFP_KERNEL);
        assert_int_equal(((unsigned char *)p)[5], 0xC7);
        kmem_cache_free(c, p);
    }
    assert_int_equal(ctor_calls, (int)c->num); /* not run again on reuse */
    assert_int_equal(dtor_calls, 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
    assert_int_equal(dtor_calls, ctor_calls);
}

static void test_debug_initial_verifies_on_free(void **state)
{
    (void)state;
    verify_calls = 0;
    kmem_cache_t *c =
        kmem_cache_create("verify", 64, 0, SLAB_DEBUG_INITIAL, ctor, NULL);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, o);
    assert_int_equal(verify_calls, 1);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_live_objects_never_overlap(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("overlap", 40, 0, 0, NULL, NULL);
    enum { N = 20000 };
    unsigned char **objs = calloc(N, sizeof *objs);
    for (int i = 0; i < N; i++) {
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        memset(objs[i], i & 0xff, 40);
    }
    for (int i = 0; i < N; i += 3) {
        kmem_cache_free(c, objs[i]);
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        memset(objs[i], i & 0xff, 40);
    }
    for (int i = 0; i < N; i++)
        for (int b = 0; b < 40; b++)
            assert_int_equal(objs[i][b], i & 0xff);
    assert_true(slab_check_cache(c) >= N);
    for (int i = 0; i < N; i++)
        kmem_cache_free(c, objs[i]);
    free(objs);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_destroy_refused_while_objects_live(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("busy", 64, 0, 0, NULL, NULL);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    assert_true(kmem_cache_destroy(c) != 0);
    /* The cache is still there and works. */
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    assert_non_null(p);
    kmem_cache_free(c, p);
    kmem_cache_free(c, o);
    assert_int_equal(kmem_cache_destroy(c), 0);
    /* The general caches are permanent. */
    assert_true(kmem_cache_destroy(
                    slab_cache_of(kmalloc(8, 0), &(struct page *){0})) != 0);
}

static void test_shrink_returns_memory(void **state)
{
    (void)state;
    kmem_cache_t *c =
        kmem_cache_create("rss", 1024, 0, SLAB_NO_REAP, NULL, NULL);
    enum { N = 256 * 1024 }; /* 256 MiB of objects */
    void **objs = calloc(N, sizeof *objs);
    for (int i = 0; i < N; i++) {
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        assert_non_null(objs[i]);
        memset(objs[i], 1, 1024);
    }
    assert_int_equal(kmem_cache_shrink(c), 1); /* slabs in use */
    size_t high = ktest_rss();
    for (int i = 0; i < N; i++)
        kmem_cache_free(c, objs[i]);
    free(objs);
    assert_int_equal(kmem_cache_shrink(c), 0);
    /* The frames go back to the host once they have been free for the
     * frame layer's decay time (vm/frames/purge.c): wait for it. */
    size_t low = ktest_rss();
    for (int t = 0; t < 100 && high <= low + (200UL << 20); t++) {
        usleep(100 * 1000);
        low = ktest_rss();
    }
    assert_true(high > low + (200UL << 20));
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_reap_picks_a_victim_and_skips_no_reap(void **state)
{
    (void)state;
    kmem_cache_t *keep =
        kmem_cache_create("noreap", 2048, 0, SLAB_NO_REAP, NULL, NULL);
    enum { N = 2000 };
    void **objs = calloc(N, sizeof *objs);
    for (int i = 0; i < N; i++)
        objs[i] = kmem_cache_alloc(keep, GFP_KERNEL);
    for (int i = 0; i < N; i++)
        kmem_cache_free(keep, objs[i]);
    slab_drain_self();
    /* free: on the slabs, or in the depot's magazines */
    unsigned long free_before = keep->free_objects + slab_depot_objects(keep);
    assert_true(free_before >= N); /* NO_REAP keeps its free slabs */
    for (int i = 0; i < 40; i++)
        kmem_cache_reap(GFP_KERNEL);
    assert_int_equal(keep->free_objects + slab_depot_objects(keep),
                     free_before);
    free(objs);
    assert_int_equal(kmem_cache_destroy(keep), 0);
}

static void test_reap_frees_pages(void **state)
{
    (void)state;
    /* A cache with many free slabs: fill, then free while growing is
     * forgotten; reap should find pages somewhere. */
    kmem_cache_t *c = kmem_cache_create("reapme", 4096, 0, 0, NULL, NULL);
    c->free_limit = ~0UL; /* keep free slabs so there is work for reap */
    enum { N = 512 };
    void *objs[N];
    for (int i = 0; i < N; i++)
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
    for (int i = 0; i < N; i++)
        kmem_cache_free(c, objs[i]);
    int total = 0;
    for (int i = 0; i < 200 && c->free_objects; i++)
        total += kmem_cache_reap(GFP_KERNEL);
    assert_true(total > 0);
    assert_true(c->reaped > 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_slabinfo_format(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("info-cache", 200, 0, 0, NULL, NULL);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(kmem_slabinfo(f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "slabinfo - version: 1.1"));
    assert_non_null(strstr(buf, "\nkmem_cache "));
    assert_non_null(strstr(buf, "\nsize-131072(DMA) "));
    char *line = strstr(buf, "\ninfo-cache ");
    assert_non_null(line);
    char name[32];
    unsigned long v[18];
    int n = sscanf(line + 1,
                   "%31s %lu %lu %lu %lu %lu %lu : %lu %lu %lu %lu %lu : %lu "
                   "%lu : %lu %lu %lu %lu",
                   name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
                   &v[8], &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15],
                   &v[16]);
    assert_int_equal(n, 18);
    assert_true(v[0] >= 1);       /* active objs */
    assert_int_equal(v[2], 208);  /* objsize (200 rounded to 16) */
    assert_int_equal(v[11], 252); /* limit */
    assert_int_equal(v[12], 126); /* batchcount */
    free(buf);
    assert_int_equal(kmem_slabinfo(NULL), -EINVAL);
    kmem_cache_free(c, o);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_cache_size(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("sz", 13, 0, 0, nop_ctor, NULL);
    assert_int_equal(kmem_cache_size(c), 16);
    assert_int_equal(kmem_cache_size(NULL), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments_are_refused),
        cmocka_unit_test(test_alignment_for_every_size_and_flag),
        cmocka_unit_test(test_management_on_and_off_slab),
        cmocka_unit_test(test_slabs_are_coloured),
        cmocka_unit_test(test_ctor_runs_at_grow_only_and_dtor_at_destroy),
        cmocka_unit_test(test_debug_initial_verifies_on_free),
        cmocka_unit_test(test_live_objects_never_overlap),
        cmocka_unit_test(test_destroy_refused_while_objects_live),
        cmocka_unit_test(test_shrink_returns_memory),
        cmocka_unit_test(test_reap_picks_a_victim_and_skips_no_reap),
        cmocka_unit_test(test_reap_frees_pages),
        cmocka_unit_test(test_slabinfo_format),
        cmocka_unit_test(test_cache_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
