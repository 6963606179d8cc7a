/*
 * tests/interpose/test_threads.c — the malloc family under threads: many
 * threads allocating and freeing each other's blocks, fork from a
 * multi-threaded parent (the child allocates, the parent goes on), and
 * thread exit giving the thread's cached objects back.  Bounded in time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include <kslab/kslab.h>

#include "ktest.h"

#define NTHREADS 4
#define RING 1024

/* A ring per thread; thread i frees what thread i-1 put in its ring. */
static _Atomic(void *) rings[NTHREADS][RING];
static atomic_int stop;

static size_t pick_size(unsigned *seed)
{
    unsigned r = rand_r(seed);
    if (r % 100 == 0)
        return 131072 + r % (3 << 20);
    return r % ((r & 0x10) ? 4096 : 300) + 16; /* room for the size */
}

static void *stress(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned seed = (unsigned)me * 7919u + 1;
    for (int i = 0; i < 60000; i++) {
        size_t n = pick_size(&seed);
        unsigned char *p = malloc(n);
        ktest_check(p);
        *(size_t *)p = n;
        p[n - 1] = (unsigned char)n;
        int slot = rand_r(&seed) % RING;
        int target = (me + 1) % NTHREADS;
        void *old = atomic_exchange(&rings[target][slot], p);
        if (old) {
            size_t m = *(size_t *)old;
            if (((unsigned char *)old)[m - 1] != (unsigned char)m)
                ktest_fail("block of %zu bytes corrupted", m);
            free(old);
        }
    }
    return NULL;
}

static void test_cross_thread_free(void **s)
{
    (void)s;
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, stress, (void *)(intptr_t)i);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    ktest_workers_ok();
    for (int i = 0; i < NTHREADS; i++)
        for (int j = 0; j < RING; j++)
            free(atomic_exchange(&rings[i][j], NULL));
}

static void *churn(void *arg)
{
    (void)arg;
    unsigned seed = 99;
    void *keep[64] = {0};
    while (!atomic_load(&stop)) {
        int k = rand_r(&seed) % 64;
        free(keep[k]);
        keep[k] = malloc(pick_size(&seed));
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return NULL;
}

static void test_fork_from_threaded_parent(void **s)
{
    (void)s;
    pthread_t t[3];
    atomic_store(&stop, 0);
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: allocate all sizes, free, and exit. */
            unsigned seed = 5;
            void *v[200];
            for (int i = 0; i < 200; i++) {
                v[i] = malloc(pick_size(&seed));
                if (!v[i])
                    _exit(3);
            }
            for (int i = 0; i < 200; i++)
                free(v[i]);
            char *big = malloc(8 << 20);
            if (!big)
                _exit(4);
            big[0] = 1;
            free(big);
            _exit(0);
        }
        assert_true(pid > 0);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        free(malloc(1000)); /* the parent goes on */
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}

/* Active objects of one slabinfo line, or -1. */
static long active_objs(const char *cache)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kmem_slabinfo(f);
    fclose(f);
    long v = -1;
    for (char *l = buf; l && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        size_t n = strlen(cache);
        if (!strncmp(l, cache, n) && l[n] == ' ') {
            v = strtol(l + n, NULL, 10);
            break;
        }
    }
    free(buf);
    return v;
}

static void *use_cache(void *arg)
{
    (void)arg;
    void *v[300];
    for (int i = 0; i < 300; i++)
        v[i] = malloc(900);
    for (int i = 0; i < 300; i++)
        free(v[i]);
    return NULL;
}

static void test_thread_exit_returns_caches(void **s)
{
    (void)s;
    pthread_t t;
    pthread_create(&t, NULL, use_cache, NULL);
    pthread_join(t, NULL);
    long base = active_objs("size-1024");
    assert_true(base >= 0);
    for (int i = 0; i < 100; i++) {
        pthread_create(&t, NULL, use_cache, NULL);
        pthread_join(t, NULL);
    }
    long after = active_objs("size-1024");
    /* Without the return, each dead thread would strand its cache. */
    if (after > base + 200)
        fail_msg("size-1024 active objects %ld -> %ld after 100 threads", base,
                 after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_thread_free),
        cmocka_unit_test(test_fork_from_threaded_parent),
        cmocka_unit_test(test_thread_exit_returns_caches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
