/*
 * tests/frames/test_purge_start.c — where the background purge thread
 * starts (vm/frames/purge.c).  glibc frees under its stack-cache lock (the
 * dtv of a thread whose stack it releases, in the exiting thread or its
 * joiner) and pthread_create takes that lock, so in a process that has
 * had a second thread a free never starts the purge: it asks, and the
 * next allocation of frames starts it.  Counted, not timed: each start is
 * one step of vm_purge_starts.
 */
#include <limits.h>
#include <pthread.h>

#include "ktest.h"
#include "vm/frames/internal.h"
#include "vm/frames/page.h"

static void *nothing(void *arg)
{
    return arg;
}

static void test_a_free_in_a_threaded_process_starts_no_thread(void **state)
{
    (void)state;
    enum { N = 6 }; /* 12 MiB of order-9 blocks: past the 8 MiB mark */
    struct page *p[N];
    pthread_t t;
    /* the process has had a second thread, as glibc sees it */
    assert_int_equal(pthread_create(&t, NULL, nothing, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* nothing goes back meanwhile: the frees stay dirty */
    __atomic_store_n(&vm_purge_decay_ms, 60000UL, __ATOMIC_RELAXED);
    unsigned long starts = __atomic_load_n(&vm_purge_starts, __ATOMIC_RELAXED);
    for (int i = 0; i < N; i++)
        assert_non_null(p[i] = alloc_pages(GFP_KERNEL, 9));
    for (int i = 0; i < N; i++)
        __free_pages(p[i], 9); /* a zone free past the mark: a kick */
    assert_true(vm_dirty_pages() >= 2048);
    assert_int_equal(__atomic_load_n(&vm_purge_starts, __ATOMIC_RELAXED),
                     starts);
    /* the next allocation of a slab frame is where it starts */
    struct page *one = alloc_pages(GFP_KERNEL, 0);
    assert_non_null(one);
    assert_int_equal(__atomic_load_n(&vm_purge_starts, __ATOMIC_RELAXED),
                     starts + 1);
    __free_pages(one, 0);
    vm_check_zones();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_free_in_a_threaded_process_starts_no_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
