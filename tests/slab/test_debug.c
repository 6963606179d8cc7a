/*
 * tests/slab/test_debug.c — SLAB_POISON and SLAB_RED_ZONE: corruption is
 * reported with one line naming the cache and the address, then abort();
 * and kmem_cache_free() with the wrong cache.
 */
#include "ktest.h"
#include "slab/kmalloc.h"

static void write_after_free(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("poisoned", 64, 0, SLAB_POISON, NULL, NULL);
    char *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    p[10] = 1; /* use after free */
    for (int i = 0; i < 1000; i++)
        kmem_cache_alloc(c, GFP_KERNEL);
}

static void overflow(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("redzoned", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    char *p = kmem_cache_alloc(c, GFP_KERNEL);
    p[64] = 1; /* one byte past the end */
    kmem_cache_free(c, p);
}

static void underflow(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("redzoned2", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    char *p = kmem_cache_alloc(c, GFP_KERNEL);
    p[-1] = 1;
    kmem_cache_free(c, p);
}

static void redzone_double_free(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("redzoned3", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    char *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    kmem_cache_free(c, p);
}

static void wrong_cache(void *arg)
{
    (void)arg;
    kmem_cache_t *a = kmem_cache_create("cache-a", 64, 0, 0, NULL, NULL);
    kmem_cache_t *b = kmem_cache_create("cache-b", 64, 0, 0, NULL, NULL);
    void *p = kmem_cache_alloc(a, GFP_KERNEL);
    kmem_cache_free(b, p);
}

static void destroyed_cache_object(void *arg)
{
    (void)arg;
    kmem_cache_t *a = kmem_cache_create("gone", 64, 0, 0, NULL, NULL);
    void *p = kmem_cache_alloc(a, GFP_KERNEL);
    kmem_cache_free(a, p);
    kmem_cache_destroy(a);
    kfree(p);
}

static void test_poison_catches_write_after_free(void **state)
{
    (void)state;
    ktest_expect_death(write_after_free, NULL, SIGABRT,
                       "cache `poisoned': object 0x");
}

static void test_red_zone_catches_overflow_and_underflow(void **state)
{
    (void)state;
    ktest_expect_death(overflow, NULL, SIGABRT,
                       "cache `redzoned': red zone overwritten at object 0x");
    ktest_expect_death(underflow, NULL, SIGABRT, "red zone overwritten");
    ktest_expect_death(redzone_double_free, NULL, SIGABRT, "double free");
}

static void test_wrong_or_destroyed_cache(void **state)
{
    (void)state;
    ktest_expect_death(wrong_cache, NULL, SIGABRT,
                       "belongs to cache `cache-a', not `cache-b'");
    ktest_expect_death(destroyed_cache_object, NULL, SIGABRT,
                       "kfree(): invalid pointer");
}

static void test_poisoned_objects_read_back_intact(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create(
        "both", 100, 0, SLAB_POISON | SLAB_RED_ZONE, NULL, NULL);
    void *objs[500];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 500; i++) {
            objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
            memset(objs[i], i, 100);
        }
        for (int i = 0; i < 500; i++) {
            for (int b = 0; b < 100; b++)
                assert_int_equal(((unsigned char *)objs[i])[b], i & 0xff);
            kmem_cache_free(c, objs[i]);
        }
    }
    assert_int_equal(kmem_cache_destroy(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poison_catches_write_after_free),
        cmocka_unit_test(test_red_zone_catches_overflow_and_underflow),
        cmocka_unit_test(test_wrong_or_destroyed_cache),
        cmocka_unit_test(test_poisoned_objects_read_back_intact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
