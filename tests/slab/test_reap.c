/*
 * tests/slab/test_reap.c — asked to give memory back, kslab gives it back
 * now: with no decay at all (KSLAB_DECAY_MS=never), kmem_cache_reap()
 * after a freed heap returns the pages it gave back to the host and RSS
 * falls at once, and kmem_cache_shrink() of a cache does the same for its
 * empty slabs; the zones hold no dirty frame afterwards.
 */
#include <limits.h>

#include "ktest.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"
#include "vm/frames/page.h"

/* A sanitizer's shadow of the memory written stays resident: RSS says
 * nothing there (the zones' counters still do). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

#define MiB (1UL << 20)

static int setup(void **state)
{
    (void)state;
    kmem_cache_init();
    /* KSLAB_DECAY_MS=never: nothing goes back by time, no thread */
    __atomic_store_n(&vm_purge_decay_ms, ULONG_MAX, __ATOMIC_RELAXED);
    return 0;
}

/* 64 MiB of 4 KiB kmalloc objects. */
enum { NOBJ = 16384 };
static void *objs[NOBJ];

static void test_reap_gives_a_freed_heap_back_now(void **state)
{
    (void)state;
    kmem_cache_reap(GFP_KERNEL); /* what earlier work left */
    size_t base = ktest_rss();
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = kmalloc(4096, GFP_KERNEL);
        assert_non_null(objs[i]);
        memset(objs[i], 0x3c, 4096);
    }
    for (int i = 0; i < NOBJ; i++)
        kfree(objs[i]);
    size_t high = ktest_rss();
    assert_true(vm_dirty_pages() >= NOBJ * 3 / 4); /* kept: no decay */
    int pages = kmem_cache_reap(GFP_KERNEL);
    size_t low = ktest_rss();
    print_message("kmem_cache_reap: %d pages, RSS %zu -> %zu KiB\n", pages,
                  high >> 10, low >> 10);
    assert_true(pages >= NOBJ * 3 / 4);
    assert_int_equal(vm_dirty_pages(), 0);
    if (RSS_MEANINGFUL) {
        assert_true(high >= base + 48 * MiB);
        assert_true(low + 48 * MiB <= high);
    }
    /* the memory is usable again, and reads as written */
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = kmalloc(4096, GFP_KERNEL);
        assert_non_null(objs[i]);
        memset(objs[i], 0x5a, 4096);
    }
    for (int i = 0; i < NOBJ; i++) {
        assert_int_equal(((unsigned char *)objs[i])[4095], 0x5a);
        kfree(objs[i]);
    }
    kmem_cache_reap(GFP_KERNEL);
}

static void test_shrink_gives_a_cache_back_now(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("reap_shrink", 2000, 0, 0, NULL, NULL);
    assert_non_null(c);
    c->free_limit = ~0UL; /* the cache keeps every empty slab */
    kmem_cache_reap(GFP_KERNEL);
    size_t base = ktest_rss();
    for (int i = 0; i < NOBJ; i++) { /* 32 MiB */
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        assert_non_null(objs[i]);
        memset(objs[i], 0x11, 2000);
    }
    for (int i = 0; i < NOBJ; i++)
        kmem_cache_free(c, objs[i]);
    size_t high = ktest_rss();
    assert_int_equal(kmem_cache_shrink(c), 0); /* none in use */
    size_t low = ktest_rss();
    print_message("kmem_cache_shrink: RSS %zu -> %zu KiB\n", high >> 10,
                  low >> 10);
    assert_true(list_empty(&c->slabs_free));
    assert_int_equal(vm_dirty_pages(), 0);
    if (RSS_MEANINGFUL) {
        assert_true(high >= base + 24 * MiB);
        assert_true(low + 24 * MiB <= high);
    }
    assert_int_equal(kmem_cache_destroy(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reap_gives_a_freed_heap_back_now),
        cmocka_unit_test(test_shrink_gives_a_cache_back_now),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
