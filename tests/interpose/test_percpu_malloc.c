/*
 * tests/interpose/test_percpu_malloc.c — the malloc family's per-CPU fast
 * paths (interpose/malloc.c, slab/percpu.h), run with KSLAB_PERCPU=1: a
 * thread whose rseq area is not registered (its cpu_id negative) still
 * allocates and frees, through the locked path; mallopt(M_PERTURB) still
 * fills blocks while the arrays are per CPU (the hooks come before the
 * per-CPU path); a double free() is caught on the per-CPU path.  Skipped
 * (77) where the library did not make per-CPU arrays (no rseq from glibc,
 * GLIBC_TUNABLES=glibc.pthread.rseq=0).
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "ktest.h"
#include "percpu_test.h"

#define RSEQ_SIG 0x53053053
#define RSEQ_FLAG_UNREGISTER 1

static int setup(void **state)
{
    (void)state;
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = malloc(24);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    if (pt_slabinfo_cpu_arrays("size-32") < 1) {
        print_message("[  SKIPPED ] no per-CPU arrays here\n");
        exit(KTEST_SKIP);
    }
    return 0;
}

/* Unregisters the calling thread's rseq area: 0 when its cpu_id then
 * reads negative (RSEQ_CPU_ID_UNINITIALIZED), -1 otherwise. */
static int rseq_unregister(void)
{
    volatile int *area = pt_rseq_area();
    if (!area)
        return -1;
    /* the length glibc registered: __rseq_size, or the original 32 */
    unsigned int lens[2] = {__rseq_size, 32};
    int done = 0;
    for (int i = 0; i < 2 && !done; i++)
        done = syscall(SYS_rseq, (void *)area, lens[i], RSEQ_FLAG_UNREGISTER,
                       RSEQ_SIG) == 0;
    return done && area[1] < 0 ? 0 : -1;
}

#define UNREG_ROUNDS 200
#define UNREG_BLOCKS 64

struct unreg {
    int skipped;
    unsigned long blocks; /* allocated, written and checked */
};

static void *unregistered_thread(void *arg)
{
    struct unreg *u = arg;
    if (rseq_unregister()) {
        u->skipped = 1;
        return NULL;
    }
    unsigned char *p[UNREG_BLOCKS];
    for (int r = 0; r < UNREG_ROUNDS; r++) {
        for (int i = 0; i < UNREG_BLOCKS; i++) {
            size_t n = 16 + (size_t)((i * 37 + r) % 1000);
            p[i] = i % 3 ? malloc(n) : calloc(1, n);
            ktest_check(p[i] != NULL);
            if (i % 5 == 0)
                p[i] = realloc(p[i], n + 200);
            ktest_check(p[i] != NULL);
            memset(p[i], i, 16);
        }
        for (int i = 0; i < UNREG_BLOCKS; i++) {
            for (int j = 0; j < 16; j++)
                ktest_check(p[i][j] == (unsigned char)i);
            free(p[i]);
            u->blocks++;
        }
    }
    return NULL;
}

/* The fast paths read the CPU number from the rseq area with no bounds
 * test: an unregistered thread's -1 must land on a guard row, so it
 * allocates and frees through the slow paths instead of crashing. */
static void test_unregistered_thread_allocates_and_frees(void **state)
{
    (void)state;
    struct unreg u = {0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, unregistered_thread, &u), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (u.skipped) {
        ktest_skip("the rseq area could not be unregistered here");
        return;
    }
    assert_true(u.blocks == (unsigned long)UNREG_ROUNDS * UNREG_BLOCKS);
    /* and this thread's per-CPU path still works */
    void *p = malloc(24);
    assert_non_null(p);
    free(p);
}

/* mallopt(M_PERTURB) fills a new block with the byte's complement while
 * the arrays are per CPU: the hooks come before the per-CPU fast path,
 * which takes over again when perturbing stops. */
static void test_perturb_with_cpu_arrays(void **state)
{
    (void)state;
    assert_int_equal(mallopt(M_PERTURB, 0x5a), 1);
    unsigned char *p = malloc(64);
    assert_non_null(p);
    for (int i = 0; i < 64; i++)
        assert_int_equal(p[i], 0xa5);
    free(p);
    assert_int_equal(mallopt(M_PERTURB, 0), 1);
    void *q[32];
    for (int i = 0; i < 32; i++)
        assert_non_null(q[i] = malloc(64));
    for (int i = 0; i < 32; i++)
        free(q[i]);
}

/* p, out of the sight of the compiler and of static checkers: the
 * pointer a child frees twice. */
static __attribute__((noinline)) void *again(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void double_free_last(void *arg)
{
    (void)arg;
    char *a = malloc(40), *a2 = again(a);
    free(a);
    free(a2);
    _exit(0);
}

static void double_free_buried(void *arg)
{
    (void)arg;
    char *a = malloc(40), *a2 = again(a);
    char *b = malloc(40);
    free(a);
    free(b);
    free(a2);
    _exit(0);
}

static void test_double_free_on_cpu_path(void **state)
{
    (void)state;
    char err[1024];
    int st = ktest_run_child(double_free_last, NULL, err, sizeof err);
    ktest_assert_one_line("double free, last freed", st, err, SIGABRT,
                          "double free");
    st = ktest_run_child(double_free_buried, NULL, err, sizeof err);
    ktest_assert_one_line("double free, under another", st, err, SIGABRT,
                          "double free");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unregistered_thread_allocates_and_frees),
        cmocka_unit_test(test_perturb_with_cpu_arrays),
        cmocka_unit_test(test_double_free_on_cpu_path),
    };
    (void)argc;
    (void)argv;
    return ktest_run_group(tests, setup, NULL);
}
