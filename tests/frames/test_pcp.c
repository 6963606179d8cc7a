/*
 * tests/frames/test_pcp.c — the threads' page lists (pcp.c): a thread
 * allocates and frees low-order blocks without its zone's lock, and the
 * frames on the lists go back to the zones where every free frame must be
 * seen: malloc_trim (vm_release_free), thread exit, the purge of an idle
 * thread, a fork child (the threads that did not come along), and an
 * allocation that finds the zones exhausted.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ktest.h"
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

static int flag_get(int *f)
{
    return __atomic_load_n(f, __ATOMIC_ACQUIRE);
}

static void flag_set(int *f, int v)
{
    __atomic_store_n(f, v, __ATOMIC_RELEASE);
}

/* ---- no zone lock on the hot path ---- */

static int warmed, worked, failed;

static void *churn_under_lock(void *arg)
{
    (void)arg;
    for (unsigned int o = 0; o < 4; o++) { /* fill the lists */
        struct page *p = alloc_pages(GFP_KERNEL, o);
        if (!p)
            return (void *)1;
        __free_pages(p, o);
    }
    flag_set(&warmed, 1);
    while (flag_get(&warmed) != 2)
        sleep_ms(1);
    for (int i = 0; i < 1000; i++) {
        unsigned int o = (unsigned int)i % 4;
        struct page *p = alloc_pages(GFP_KERNEL, o);
        if (!p) {
            flag_set(&failed, 1);
            break;
        }
        memset(page_address(p), i, PAGE_SIZE << o);
        __free_pages(p, o);
    }
    flag_set(&worked, 1);
    return NULL;
}

/* Another thread holds the zone lock: a thread whose lists hold blocks
 * still allocates and frees blocks of orders 0 ... 3. */
static void test_low_orders_do_not_take_the_zone_lock(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, churn_under_lock, NULL), 0);
    while (!flag_get(&warmed))
        sleep_ms(1);
    pthread_mutex_lock(&vm_zones[ZONE_NORMAL].lock);
    flag_set(&warmed, 2);
    for (int i = 0; i < 2000 && !flag_get(&worked); i++)
        sleep_ms(1);
    int done = flag_get(&worked);
    pthread_mutex_unlock(&vm_zones[ZONE_NORMAL].lock);
    void *ret;
    pthread_join(t, &ret);
    assert_null(ret);
    assert_false(flag_get(&failed));
    assert_true(done);
    vm_check_zones();
    set_decay(1000);
}

/* ---- draining ---- */

enum { NFREE = 48 }; /* fewer than a list's cap: all stay on it */
static struct page *held[NFREE];

/* Frees NFREE order-0 frames into the calling thread's list. */
static void fill_list(void)
{
    for (int i = 0; i < NFREE; i++) {
        held[i] = alloc_pages(GFP_KERNEL, 0);
        assert_non_null(held[i]);
        memset(page_address(held[i]), 0x77, PAGE_SIZE);
    }
    for (int i = 0; i < NFREE; i++)
        __free_pages(held[i], 0);
}

static void *fill_and_exit(void *arg)
{
    (void)arg;
    fill_list();
    return NULL;
}

/* Frames on a list count as free, and malloc_trim's pass gives them
 * back: none left on any list, none dirty. */
static void test_release_free_drains_the_lists(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    __free_pages(alloc_pages(GFP_KERNEL, 0), 0); /* this thread's lists */
    unsigned long before = vm_check_zones();
    fill_list();
    assert_true(vm_pcp_pages() >= NFREE);
    assert_int_equal(vm_check_zones(), before); /* still counted free */
    for (int i = 0; i < NFREE; i++)
        assert_true(PageFlag(held[i], PG_pcp));
    vm_release_free(0, 0);
    assert_int_equal(vm_pcp_pages(), 0);
    pthread_mutex_lock(&vm_zones[ZONE_NORMAL].lock);
    unsigned long dirty = vm_zones[ZONE_NORMAL].dirty_pages;
    pthread_mutex_unlock(&vm_zones[ZONE_NORMAL].lock);
    assert_int_equal(dirty, 0);
    for (int i = 0; i < NFREE; i++) {
        assert_false(PageFlag(held[i], PG_pcp));
        assert_int_equal(*(unsigned char *)page_address(held[i]), 0);
    }
    vm_check_zones();
    set_decay(1000);
}

/* A thread's lists go back to the zones when it exits. */
static void test_thread_exit_drains_its_lists(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    vm_drain_pages();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_exit, NULL), 0);
    pthread_join(t, NULL);
    for (int i = 0; i < NFREE; i++)
        assert_false(PageFlag(held[i], PG_pcp));
    assert_int_equal(vm_pcp_pages(), 0);
    vm_check_zones();
    set_decay(1000);
}

static int parked;

static void *fill_and_park(void *arg)
{
    (void)arg;
    fill_list();
    flag_set(&parked, 1);
    while (flag_get(&parked) != 2)
        sleep_ms(5);
    return NULL;
}

/* The purge empties the lists of a thread that stopped using them, and
 * their frames then decay like the zone's. */
static void test_purge_drains_an_idle_thread(void **state)
{
    (void)state;
    set_decay(300);
    vm_drain_pages();
    flag_set(&parked, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_park, NULL), 0);
    while (!flag_get(&parked))
        sleep_ms(1);
    /* this thread frees enough to start the background purge (8 MiB
     * dirty) if it does not run yet */
    struct page *p[6];
    set_decay(60000); /* the 12 MiB wait at once, however slow the frees */
    for (int i = 0; i < 6; i++)
        assert_non_null(p[i] = alloc_pages(GFP_KERNEL, 9));
    for (int i = 0; i < 6; i++)
        __free_pages(p[i], 9);
    /* in a process with threads a free only asks for it: the next
     * allocation starts it (purge.c) */
    __free_pages(alloc_pages(GFP_KERNEL, 0), 0);
    set_decay(300);
    int drained = 0;
    for (int i = 0; i < 100 && !drained; i++) {
        sleep_ms(50);
        drained = 1;
        for (int k = 0; k < NFREE; k++)
            if (PageFlag(held[k], PG_pcp))
                drained = 0;
    }
    flag_set(&parked, 2);
    pthread_join(t, NULL);
    assert_true(drained);
    vm_check_zones();
    set_decay(1000);
}

/* In a fork child the lists of the threads that did not come along are
 * back in the zones. */
static void test_fork_child_gets_other_threads_lists(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    vm_drain_pages();
    flag_set(&parked, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_park, NULL), 0);
    while (!flag_get(&parked))
        sleep_ms(1);
    for (int k = 0; k < NFREE; k++)
        assert_true(PageFlag(held[k], PG_pcp));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        for (int k = 0; k < NFREE; k++)
            bad += (int)PageFlag(held[k], PG_pcp);
        vm_check_zones();
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    flag_set(&parked, 2);
    pthread_join(t, NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    set_decay(1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_low_orders_do_not_take_the_zone_lock),
        cmocka_unit_test(test_release_free_drains_the_lists),
        cmocka_unit_test(test_thread_exit_drains_its_lists),
        cmocka_unit_test(test_purge_drains_an_idle_thread),
        cmocka_unit_test(test_fork_child_gets_other_threads_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
