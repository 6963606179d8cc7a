/*
 * tests/slab/test_debug.c — SLAB_POISON and SLAB_RED_ZONE on a cache in
 * use: objects of a debug cache hold their contents through rounds of
 * allocation and free.  The corruption these flags catch (red zone, write
 * after free, double free) is in tests/misuse/test_slab.c.
 */
#include "ktest.h"
#include "slab/kmalloc.h"

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
        cmocka_unit_test(test_poisoned_objects_read_back_intact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
