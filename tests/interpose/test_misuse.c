/*
 * tests/interpose/test_misuse.c — misuse of the malloc family is caught:
 * free/realloc/malloc_usable_size of a pointer kslab never returned (a stack
 * address, an interior pointer, memory of another mapping) and the
 * double free, for small, large and huge blocks (small ones also when
 * the block waits behind others, on its slab or in another thread).  Each case
 * runs in a child that must die of SIGABRT after one line naming the call, the
 * misuse ("double free of" or "invalid pointer") and the address.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "ktest.h"

/* These tests misuse the API on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

/* Keeps the compiler from seeing through our misuse. */
static void *volatile sink;

static __attribute__((noinline)) void *launder(void *p)
{
    sink = p;
    return sink;
}

/* The address a child misuses, put where the parent can read it: a
 * shared page mapped before the children are forked. */
static void *volatile *bad_addr;

static void *bad(void *p)
{
    *bad_addr = p;
    return launder(p);
}

#define DEATH(fnname, body)                                                    \
    static void fnname##_child(void *arg)                                      \
    {                                                                          \
        (void)arg;                                                             \
        body;                                                                  \
    }

DEATH(free_stack, {
    char buf[64];
    free(bad(buf + 16));
})
DEATH(free_interior_small, {
    char *p = malloc(100);
    free(bad(p + 16));
})
DEATH(free_interior_large, {
    char *p = malloc(1 << 20);
    free(bad(p + 8192));
})
DEATH(free_interior_huge, {
    char *p = malloc(16 << 20);
    free(bad(p + 4096));
})
DEATH(free_foreign_mapping, {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    free(bad(m));
})
DEATH(double_free_small, {
    void *p = malloc(40);
    free(p);
    free(bad(p));
})
DEATH(double_free_mid, {
    void *p = malloc(20000);
    free(p);
    free(bad(p));
})
DEATH(double_free_large, {
    void *p = malloc(300000);
    free(p);
    free(bad(p));
})
DEATH(double_free_huge, {
    void *p = malloc(20 << 20);
    free(p);
    free(bad(p));
})
/* Double frees glibc's tcache catches (the free key): the block waits in
 * the thread's array behind others, ... */
DEATH(double_free_later, {
    void *d = malloc(40);
    void *x = malloc(40);
    void *y = malloc(40);
    free(d);
    free(x);
    free(y);
    free(bad(d));
})
/* ... went back to its slab with a full array's flush, ... */
DEATH(double_free_after_flush, {
    enum { N = 4000 };
    static void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = malloc(40);
    void *d = malloc(40);
    free(d);
    for (int i = 0; i < N; i++)
        free(v[i]);
    free(bad(d));
})
/* ... or waits in another thread's array. */
static pthread_barrier_t other_bar;
static void *other_frees(void *p)
{
    free(p);
    pthread_barrier_wait(&other_bar); /* freed */
    pthread_barrier_wait(&other_bar); /* never: the process aborts */
    return NULL;
}
DEATH(double_free_other_thread, {
    void *d = malloc(40);
    pthread_t t;
    pthread_barrier_init(&other_bar, NULL, 2);
    pthread_create(&t, NULL, other_frees, d);
    pthread_barrier_wait(&other_bar);
    free(bad(d));
})
DEATH(realloc_stack, {
    char buf[64];
    sink = realloc(bad(buf), 100);
})
DEATH(realloc_interior, {
    char *p = malloc(500000);
    sink = realloc(bad(p + 4096), 600000);
})
DEATH(usable_size_stack, {
    char buf[64];
    sink = (void *)malloc_usable_size(bad(buf));
})

/* The child dies of SIGABRT after exactly one line "kslab: call(): what
 * <address>" naming the address it misused. */
static void run(void (*fn)(void *), const char *call, const char *what)
{
    char err[4096], want[160];
    *bad_addr = NULL;
    int st = ktest_run_child(fn, NULL, err, sizeof err);
    ktest_assert_one_line(call, st, err, SIGABRT, "");
    assert_non_null(*bad_addr);
    snprintf(want, sizeof want, "kslab: %s(): %s %p", call, what, *bad_addr);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("stderr is not \"%s...\": %s", want, err);
}

#define INVALID "invalid pointer"
#define DOUBLE "double free of"

static void test_free_of_stack_address(void **s)
{
    (void)s;
    run(free_stack_child, "free", INVALID);
}

static void test_free_of_interior_pointer(void **s)
{
    (void)s;
    run(free_interior_small_child, "free", INVALID);
    run(free_interior_large_child, "free", INVALID);
    run(free_interior_huge_child, "free", INVALID);
}

static void test_free_of_foreign_mapping(void **s)
{
    (void)s;
    run(free_foreign_mapping_child, "free", INVALID);
}

/* A slab object freed twice is named a double free.  A large block freed
 * twice has no record left (its frames went back to the buddy zones, its
 * mapping to the host): it is reported as an invalid pointer. */
static void test_double_free(void **s)
{
    (void)s;
    run(double_free_small_child, "free", DOUBLE);
    run(double_free_mid_child, "free", DOUBLE);
    run(double_free_large_child, "free", INVALID);
    run(double_free_huge_child, "free", INVALID);
}

/* A double free of a small block is caught wherever the block waits:
 * behind other frees in the thread's array, on its slab, in another
 * thread's array. */
static void test_double_free_later(void **s)
{
    (void)s;
    run(double_free_later_child, "free", DOUBLE);
    run(double_free_after_flush_child, "free", DOUBLE);
    run(double_free_other_thread_child, "free", DOUBLE);
}

/* A live block whose second word holds the free key (read from a freed
 * block) is freed as usual: the key alone never makes a report. */
static void test_free_key_in_live_block(void **s)
{
    (void)s;
    for (size_t size = 16; size <= 4096; size *= 4) {
        uintptr_t *f = malloc(size), *spare = malloc(size);
        free(f);
        uintptr_t key = ((volatile uintptr_t *)launder(f))[1];
        uintptr_t *live[64];
        for (int i = 0; i < 64; i++) {
            live[i] = malloc(size);
            assert_non_null(live[i]);
            live[i][0] = 1;
            live[i][1] = key;
        }
        for (int i = 0; i < 64; i++)
            free(live[i]);
        free(spare);
    }
}

static void test_realloc_of_bad_pointer(void **s)
{
    (void)s;
    run(realloc_stack_child, "realloc", INVALID);
    run(realloc_interior_child, "realloc", INVALID);
}

static void test_usable_size_of_bad_pointer(void **s)
{
    (void)s;
    run(usable_size_stack_child, "malloc_usable_size", INVALID);
}

/* The line names the address. */
static void free_known(void *arg)
{
    free(arg);
}

static void test_message_names_address(void **s)
{
    (void)s;
    char buf[32];
    char *p = launder(buf + 8);
    char want[64];
    snprintf(want, sizeof want, "kslab: free(): invalid pointer %p", p);
    ktest_expect_death(free_known, p, SIGABRT, want);
}

/* A pointer into the dynamic loader's image (where its early minimal
 * malloc puts blocks) is not reported: such a block was never kslab's and
 * is not misuse either.  The address: inside ld.so's writable segment. */
static void free_loader_pointer(void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0, hi = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "ld-linux") && strstr(line, " rw-p "))
            sscanf(line, "%lx-%lx", &lo, &hi);
    if (f)
        fclose(f);
    if (!lo)
        _exit(0); /* no loader (static program): nothing to test */
    free(launder((void *)(lo + 64)));
}

static void test_loader_pointer_is_not_misuse(void **s)
{
    (void)s;
    char err[256];
    int st = ktest_run_child(free_loader_pointer, NULL, err, sizeof err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(err, "");
}

int main(void)
{
    bad_addr = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (bad_addr == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_of_stack_address),
        cmocka_unit_test(test_free_of_interior_pointer),
        cmocka_unit_test(test_free_of_foreign_mapping),
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_double_free_later),
        cmocka_unit_test(test_free_key_in_live_block),
        cmocka_unit_test(test_realloc_of_bad_pointer),
        cmocka_unit_test(test_usable_size_of_bad_pointer),
        cmocka_unit_test(test_message_names_address),
        cmocka_unit_test(test_loader_pointer_is_not_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
