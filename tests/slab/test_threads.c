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
};

static struct ring ring;
static kmem_cache_t *objcache;

/* An object holds its length in its first word and a pattern derived
 * from its address in every byte after it. */
static void fill(unsigned char *p, size_t n)
{
    memcpy(p, &n, sizeof n);
    for (size_t i = sizeof n; i < n; i++)
        p[i] = (unsigned char)(((uintptr_t)p >> 4) + i);
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = sizeof n; i < n; i++)
        if (p[i] != (unsigned char)(((uintptr_t)p >> 4) + i))
            return 0;
    return 1;
}

/* Each thread replaces random slots: it frees what the other allocated,
 * after checking every byte of it. */
static void *swapper(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        unsigned k = rand_r(&seed) % RING;
        size_t n = rand_r(&seed) % 700 + sizeof(size_t);
        void *mine = (r & 1) ? kmalloc(n, GFP_KERNEL)
                             : kmem_cache_alloc(objcache, GFP_KERNEL);
        if (!mine)
            return (void *)1;
        fill(mine, (r & 1) ? n : 200);
        void *old = __atomic_exchange_n(&ring.slot[k], mine, __ATOMIC_ACQ_REL);
        if (old) {
            kmem_cache_t *c = GET_PAGE_CACHE(virt_to_page(old));
            size_t len;
            memcpy(&len, old, sizeof len);
            if (c == objcache ? len != 200 : len > ksize(old))
                return (void *)3;
            if (!intact(old, len))
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
    /* per-CPU arrays (KSLAB_PERCPU=1) belong to no thread: the objects
     * stay in them after the threads exit; drain them (per thread: a no-op,
     * this thread never used the cache) */
    slab_drain_self();
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
