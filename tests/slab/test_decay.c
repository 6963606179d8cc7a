/*
 * tests/slab/test_decay.c — the decay of empty slabs: a slab that has been
 * empty for the decay time goes back by the background purge pass, while
 * the program makes no allocator call (after a free of enough memory to
 * start that thread: page_alloc.c); a slab freed within the decay time
 * is kept; caches with SLAB_NO_REAP or a dtor are left alone.
 */
#include <limits.h>
#include <time.h>

#include "ktest.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"
#include "vm/frames/page.h"

static void set_decay(unsigned long ms)
{
    __atomic_store_n(&vm_purge_decay_ms, ms, __ATOMIC_RELAXED);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Empty slabs on the cache's slabs_free list. */
static unsigned long free_slabs(kmem_cache_t *c)
{
    unsigned long n = 0;
    struct list_head *p;
    pthread_mutex_lock(&c->spinlock);
    list_for_each(p, &c->slabs_free) n++;
    pthread_mutex_unlock(&c->spinlock);
    return n;
}

/* 12 MiB of objects, allocated then freed: the free path keeps free_limit
 * objects on empty slabs, the rest goes back to the zones, more than the
 * 8 MiB of dirty memory that is worth the background purge. */
enum { NOBJ = 49152, NKMALLOC = 12288 };
static void *objs[NOBJ];

static void churn(kmem_cache_t *c)
{
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
        assert_non_null(objs[i]);
        memset(objs[i], 0x11, 200);
    }
    for (int i = 0; i < NOBJ; i++)
        kmem_cache_free(c, objs[i]);
}

/* Waits up to 4 s, without allocator calls, for c to hold no empty slab. */
static unsigned long wait_no_free_slabs(kmem_cache_t *c)
{
    unsigned long n = free_slabs(c);
    for (int t = 0; t < 40 && n; t++) {
        sleep_ms(100);
        n = free_slabs(c);
    }
    return n;
}

static void ctor(void *obj, kmem_cache_t *c, unsigned long flags)
{
    (void)c;
    (void)flags;
    memset(obj, 0, 8);
}

static void dtor(void *obj, kmem_cache_t *c, unsigned long flags)
{
    (void)obj;
    (void)c;
    (void)flags;
}

static void test_empty_slabs_go_back_while_the_program_sleeps(void **state)
{
    (void)state;
    /* While the memory is freed nothing is past the decay time, whatever
     * the machine's speed: all 12 MiB wait at once and start the
     * background purge; the short decay then lets it work. */
    set_decay(60000);
    kmem_cache_t *c = kmem_cache_create("decay_test", 256, 0, 0, NULL, NULL);
    assert_non_null(c);
    churn(c);
    set_decay(200);
    assert_true(free_slabs(c) > 0); /* kept by the free path (free_limit) */
    assert_int_equal(wait_no_free_slabs(c), 0);
    /* kmalloc's caches too, a size whose slabs are off-slab included */
    kmem_cache_t *k = kmem_find_general_cachep(1024);
    assert_non_null(k);
    set_decay(60000);
    for (int i = 0; i < NKMALLOC; i++) {
        assert_non_null(objs[i] = kmalloc(1000, GFP_KERNEL));
        memset(objs[i], 0x22, 1000);
    }
    for (int i = 0; i < NKMALLOC; i++)
        kfree(objs[i]);
    set_decay(200);
    assert_true(free_slabs(k) > 0);
    assert_int_equal(wait_no_free_slabs(k), 0);
    slab_check_cache(c);
    slab_check_cache(k);
    /* the cache works on */
    churn(c);
    slab_check_cache(c);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static void test_slabs_freed_within_the_decay_time_are_kept(void **state)
{
    (void)state;
    set_decay(60000);
    sleep_ms(300); /* a pass under the old decay ends */
    kmem_cache_t *c = kmem_cache_create("decay_keep", 256, 0, 0, NULL, NULL);
    assert_non_null(c);
    churn(c);
    unsigned long n = free_slabs(c);
    assert_true(n > 0);
    sleep_ms(500);
    assert_int_equal(free_slabs(c), n);
    kmem_cache_shrink(c);
    assert_int_equal(kmem_cache_destroy(c), 0);
    set_decay(200);
}

static void test_no_reap_and_dtor_caches_are_left_alone(void **state)
{
    (void)state;
    set_decay(200);
    kmem_cache_t *a =
        kmem_cache_create("decay_noreap", 256, 0, SLAB_NO_REAP, NULL, NULL);
    kmem_cache_t *b = kmem_cache_create("decay_dtor", 256, 0, 0, ctor, dtor);
    assert_non_null(a);
    assert_non_null(b);
    churn(a);
    churn(b);
    unsigned long na = free_slabs(a), nb = free_slabs(b);
    assert_true(na > 0 && nb > 0);
    sleep_ms(1000);
    assert_int_equal(free_slabs(a), na);
    assert_int_equal(free_slabs(b), nb);
    kmem_cache_shrink(a);
    kmem_cache_shrink(b);
    assert_int_equal(kmem_cache_destroy(a), 0);
    assert_int_equal(kmem_cache_destroy(b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_slabs_go_back_while_the_program_sleeps),
        cmocka_unit_test(test_slabs_freed_within_the_decay_time_are_kept),
        cmocka_unit_test(test_no_reap_and_dtor_caches_are_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
