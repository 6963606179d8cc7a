/*
 * tests/slab/test_kmalloc.c — the general caches: every size class,
 * ksize, DMA objects, limits.  Misuse of kfree: tests/misuse/test_slab.c.
 */
#include <errno.h>
#include <signal.h>

#include "ktest.h"
#include "slab/kmalloc.h"

static void test_every_size_gets_a_big_enough_aligned_object(void **state)
{
    (void)state;
    for (size_t size = 1; size <= KMALLOC_MAX_SIZE; size = size * 5 / 4 + 1) {
        unsigned char *p = kmalloc(size, GFP_KERNEL);
        assert_non_null(p);
        assert_true(ksize(p) >= size);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, ksize(p)); /* all of ksize is usable */
        kfree(p);
    }
    for (unsigned i = 0; i < KMALLOC_NR_SIZES; i++) {
        size_t size = 32UL << i;
        void *p = kmalloc(size, GFP_KERNEL);
        assert_int_equal(ksize(p), size);
        void *q = kmalloc(size / 2 + 1, GFP_KERNEL);
        assert_int_equal(ksize(q), size);
        kfree(p);
        kfree(q);
    }
}

static void test_limits(void **state)
{
    (void)state;
    errno = 0;
    assert_null(kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL));
    assert_int_equal(errno, ENOMEM);
    assert_null(kmalloc((size_t)-1, GFP_KERNEL));
    void *z = kmalloc(0, GFP_KERNEL);
    assert_non_null(z);
    assert_int_equal(ksize(z), 32);
    kfree(z);
    kfree(NULL);
    assert_int_equal(ksize(NULL), 0);
    int x = 0;
    assert_int_equal(ksize(&x), 0);
}

static void test_dma_objects_lie_in_zone_dma(void **state)
{
    (void)state;
    for (unsigned i = 0; i < KMALLOC_NR_SIZES; i++) {
        void *p = kmalloc(32UL << i, GFP_KERNEL | GFP_DMA);
        assert_non_null(p);
        assert_true(vm_addr_is_dma(p));
        void *q = kmalloc(32UL << i, GFP_KERNEL);
        assert_false(vm_addr_is_dma(q));
        kfree(p);
        kfree(q);
    }
}

static void test_distinct_objects_hold_their_contents(void **state)
{
    (void)state;
    enum { N = 5000 };
    static unsigned char *p[N];
    static size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = (size_t)(i * 7919) % 3000 + 1;
        p[i] = kmalloc(sz[i], GFP_KERNEL);
        memset(p[i], i & 0xff, sz[i]);
    }
    for (int i = 0; i < N; i++) {
        for (size_t b = 0; b < sz[i]; b += 7)
            assert_int_equal(p[i][b], i & 0xff);
        kfree(p[i]);
    }
}

static void test_malloc_classes_waste_at_most_a_fifth_to_32k(void **state)
{
    (void)state;
    for (size_t size = 1; size <= KMALLOC_MAX_SIZE; size++) {
        unsigned int id = slab_malloc_id(size);
        kmem_cache_t *c = slab_malloc_caches[id];
        if (!c) { /* not initialised yet: the slow path sets it up */
            kfree(slab_malloc_inline(size));
            id = slab_malloc_id(size);
            c = slab_malloc_caches[id];
        }
        assert_non_null(c);
        assert_true(c->objsize >= size);
        assert_true(c->size == c->objsize || c->flags & SLAB_RED_ZONE);
        if (size > 64 && size <= 32768)
            assert_true((c->objsize - size) * 5 <= c->objsize);
        if (size % 997 == 0 || size < 300) {
            unsigned char *p = slab_malloc_inline(size);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 16, 0);
            assert_int_equal(ksize(p), c->objsize);
            memset(p, 0x5c, ksize(p));
            kfree(p);
        }
    }
    assert_null(slab_malloc_inline(KMALLOC_MAX_SIZE + 1));
    /* The 2.4 names stay what kmalloc uses. */
    void *p = kmalloc(100, GFP_KERNEL);
    assert_int_equal(ksize(p), 128);
    kfree(p);
    p = slab_malloc_inline(100);
    assert_int_equal(ksize(p), 112);
    kfree(p);
    assert_int_equal(slab_set_malloc_classes(0), -EBUSY);
}

/* The malloc path's smallest class is 16 bytes (alloc-test's mix and
 * many programs are mostly blocks of 16 bytes or less): half a size-32
 * object, 16-byte aligned, keyed like the others (a double free is
 * caught), while kmalloc keeps 2.4's size-32 for them. */
static void double_free_16(void *arg)
{
    (void)arg;
    void *a = slab_malloc_inline(16);
    void *b = slab_malloc_inline(16);
    kfree(a);
    kfree(b);
    kfree(a);
    _exit(0);
}

static void test_malloc_16_bytes_and_less_take_size_16(void **state)
{
    (void)state;
    void *p[64];
    for (size_t size = 0; size <= 16; size++) {
        for (int i = 0; i < 64; i++) {
            p[i] = slab_malloc_inline(size);
            assert_non_null(p[i]);
            assert_int_equal((uintptr_t)p[i] % 16, 0);
            assert_int_equal(ksize(p[i]), 16);
            memset(p[i], i, 16);
        }
        for (int i = 0; i < 64; i++) {
            for (int j = 0; j < 16; j++)
                assert_int_equal(((unsigned char *)p[i])[j], i);
            kfree(p[i]);
        }
    }
    void *q = slab_malloc_inline(17);
    assert_int_equal(ksize(q), 32);
    kfree(q);
    q = kmalloc(16, GFP_KERNEL);
    assert_int_equal(ksize(q), 32);
    kfree(q);
    char err[1024];
    int st = ktest_run_child(double_free_16, NULL, err, sizeof err);
    ktest_assert_one_line("double free of a 16-byte block", st, err, SIGABRT,
                          "double free");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_size_gets_a_big_enough_aligned_object),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dma_objects_lie_in_zone_dma),
        cmocka_unit_test(test_distinct_objects_hold_their_contents),
        cmocka_unit_test(test_malloc_classes_waste_at_most_a_fifth_to_32k),
        cmocka_unit_test(test_malloc_16_bytes_and_less_take_size_16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
