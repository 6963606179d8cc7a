/*
 * tests/slab/test_threads.c — per-thread array caches under threads:
 * cross-thread frees with every object's contents checked, thread exit
 * giving cached objects back, fork from a threaded process.  Bounded.
 */
#include <pthread.h>

#include "ktest.h"
#include "slab/kmalloc.h"

enum { RING = 4096, ROUNDS = 200000 };

struct ring {
    void *volatile slot[RING];
    volatile size_t size[RING];
};

static struct ring ring;
static kmem_cache_t *objcache;

static void fill(unsigned char *p, size_t n, size_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(tag + i);
}

static int intact(const unsigned char *p, size_t n, size_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(tag + i))
            return 0;
    return 1;
}

/* Each thread replaces random slots: it frees what the other allocated. */
static void *swapper(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        unsigned k = rand_r(&seed) % RING;
        size_t n = rand_r(&seed) % 700 + 1;
        void *mine = (r & 1) ? kmalloc(n, GFP_KERNEL)
                             : kmem_cache_alloc(objcache, GFP_KERNEL);
        if (!mine)
            return (void *)1;
        if (!(r & 1))
            n = 0;
        fill(mine, n ? n : 200, (uintptr_t)mine >> 4);
        void *old = __atomic_exchange_n(&ring.slot[k], mine, __ATOMIC_ACQ_REL);
        size_t oldn = __atomic_exchange_n(&ring.size[k], n, __ATOMIC_ACQ_REL);
        (void)oldn;
        if (old) {
            struct page *pg = virt_to_page(old);
            kmem_cache_t *c = GET_PAGE_CACHE(pg);
            size_t len = c == objcache ? 200 : 1;
            if (!intact(old, len, (uintptr_t)old >> 4))
                return (void *)2;
            if (c == objcache)
                kmem_cache_free(objcache, old);
            else
                kfree(old);
        }
    }
    return NULL;
}

static void test_two_threads_free_each_others_objects(void **state)
{
    (void)state;
    objcache = kmem_cache_create("stress200", 200, 0, 0, NULL, NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, swapper, (void *)(uintptr_t)(i * 77 + 1));
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    for (int k = 0; k < RING; k++) {
        void *p = ring.slot[k];
        if (!p)
            continue;
        if (GET_PAGE_CACHE(virt_to_page(p)) == objcache)
            kmem_cache_free(objcache, p);
        else
            kfree(p);
        ring.slot[k] = NULL;
    }
    slab_drain_self();
    /* Both threads exited: their arrays went back, nothing is in use. */
    assert_int_equal(slab_check_cache(objcache), 0);
    assert_int_equal(kmem_cache_destroy(objcache), 0);
}

static void *alloc_and_exit(void *arg)
{
    kmem_cache_t *c = arg;
    void *objs[100];
    for (int i = 0; i < 100; i++)
        objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
    for (int i = 0; i < 100; i++)
        kmem_cache_free(c, objs[i]); /* stays in this thread's array */
    return NULL;
}

static void test_thread_exit_returns_cached_objects(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("exiting", 128, 0, 0, NULL, NULL);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        pthread_create(&t, NULL, alloc_and_exit, c);
        pthread_join(t, NULL);
    }
    assert_int_equal(slab_check_cache(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

static _Atomic int stop_threads; /* read by busy() while main writes */

static void *busy(void *arg)
{
    (void)arg;
    while (!stop_threads)
        kfree(kmalloc(100, GFP_KERNEL));
    return NULL;
}

/* A plain fork(): the core's own fork protocol (lib/fork.c) runs; the
 * child is bounded in time. */
static void test_fork_from_threaded_process(void **state)
{
    (void)state;
    pthread_t t;
    stop_threads = 0;
    pthread_create(&t, NULL, busy, NULL);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            for (int j = 0; j < 10000; j++)
                kfree(kmalloc((size_t)j % 5000 + 1, GFP_KERNEL));
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    stop_threads = 1;
    pthread_join(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_free_each_others_objects),
        cmocka_unit_test(test_thread_exit_returns_cached_objects),
        cmocka_unit_test(test_fork_from_threaded_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
