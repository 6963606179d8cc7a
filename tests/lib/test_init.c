/*
 * tests/lib/test_init.c — the one start-up order (lib/init.c): many
 * threads making the process's first allocations at once bring kslab up
 * once; kslab_once() runs its function once, makes other threads wait for
 * it, and lets the thread running it re-enter without deadlock.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "ktest.h"
#include "lib/init.h"
#include "slab/kmalloc.h"

#define NTHREADS 8

static pthread_barrier_t barrier;
/* What the threads saw go wrong (cmocka asserts only in the main thread). */
static atomic_int failed_allocs, returned_early;

static void *first_alloc(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&barrier);
    void *p = kmalloc(100, GFP_KERNEL);
    if (!p)
        atomic_fetch_add(&failed_allocs, 1);
    kfree(p);
    return NULL;
}

/* Runs first: nothing of kslab has been used in this process yet. */
static void test_first_allocations_race(void **state)
{
    (void)state;
    pthread_t t[NTHREADS];
    assert_false(kslab_init_reached(KSLAB_INIT_OPTIONS));
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, first_alloc, NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&failed_allocs), 0);
    for (int l = 0; l < KSLAB_INIT_NR_LEVELS; l++)
        assert_true(kslab_init_reached((enum kslab_init_level)l));
    /* the kmalloc caches exist once */
    assert_null(kmem_cache_create("size-64", 64, 0, 0, NULL, NULL));
    assert_int_equal(errno, EEXIST);
    assert_int_equal(slab_set_kmalloc_flags(SLAB_POISON), -EBUSY);
}

static struct kslab_once once = KSLAB_ONCE_INIT;
static atomic_int runs, reentered, finished;

static void once_fn(void)
{
    atomic_fetch_add(&runs, 1);
    kslab_once(&once, once_fn); /* re-entry: returns at once */
    atomic_store(&reentered, 1);
    kfree(kmalloc(64, GFP_KERNEL)); /* allocating inside is fine */
    usleep(200 * 1000);
    atomic_store(&finished, 1);
}

static void *call_once(void *arg)
{
    (void)arg;
    kslab_once(&once, once_fn);
    /* back only when the function has run to its end */
    if (!atomic_load(&finished))
        atomic_fetch_add(&returned_early, 1);
    return NULL;
}

static void test_once_waits_and_is_reentrant(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, call_once, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&returned_early), 0);
    assert_int_equal(atomic_load(&runs), 1);
    assert_int_equal(atomic_load(&reentered), 1);
    kslab_once(&once, once_fn);
    assert_int_equal(atomic_load(&runs), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_allocations_race),
        cmocka_unit_test(test_once_waits_and_is_reentrant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
