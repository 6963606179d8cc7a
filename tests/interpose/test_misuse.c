/*
 * tests/interpose/test_misuse.c — misuse of the malloc family is caught:
 * free/realloc/malloc_usable_size of a pointer kslab never returned (a stack
 * address, an interior pointer, memory of another mapping) and the
 * immediate double free, for small, large and huge blocks.  Each case runs
 * in a child that must die of SIGABRT after one line naming the call and
 * the address.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
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

static char expected[128];

static void expect(const char *fn, const void *p)
{
    snprintf(expected, sizeof expected, "kslab: %s(): ", fn);
    (void)p;
}

#define DEATH(fnname, body)                                                    \
    static void fnname##_child(void *arg)                                      \
    {                                                                          \
        (void)arg;                                                             \
        body;                                                                  \
    }

DEATH(free_stack, {
    char buf[64];
    free(launder(buf + 16));
})
DEATH(free_interior_small, {
    char *p = malloc(100);
    free(launder(p + 16));
})
DEATH(free_interior_large, {
    char *p = malloc(1 << 20);
    free(launder(p + 8192));
})
DEATH(free_interior_huge, {
    char *p = malloc(16 << 20);
    free(launder(p + 4096));
})
DEATH(free_foreign_mapping, {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    free(launder(m));
})
DEATH(double_free_small, {
    void *p = malloc(40);
    free(p);
    free(launder(p));
})
DEATH(double_free_mid, {
    void *p = malloc(20000);
    free(p);
    free(launder(p));
})
DEATH(double_free_large, {
    void *p = malloc(300000);
    free(p);
    free(launder(p));
})
DEATH(double_free_huge, {
    void *p = malloc(20 << 20);
    free(p);
    free(launder(p));
})
DEATH(realloc_stack, {
    char buf[64];
    sink = realloc(launder(buf), 100);
})
DEATH(realloc_interior, {
    char *p = malloc(500000);
    sink = realloc(launder(p + 4096), 600000);
})
DEATH(usable_size_stack, {
    char buf[64];
    sink = (void *)malloc_usable_size(launder(buf));
})

static void run(void (*fn)(void *), const char *call)
{
    expect(call, NULL);
    ktest_expect_death(fn, NULL, SIGABRT, expected);
}

static void test_free_of_stack_address(void **s)
{
    (void)s;
    run(free_stack_child, "free");
}

static void test_free_of_interior_pointer(void **s)
{
    (void)s;
    run(free_interior_small_child, "free");
    run(free_interior_large_child, "free");
    run(free_interior_huge_child, "free");
}

static void test_free_of_foreign_mapping(void **s)
{
    (void)s;
    run(free_foreign_mapping_child, "free");
}

static void test_double_free(void **s)
{
    (void)s;
    run(double_free_small_child, "free");
    run(double_free_mid_child, "free");
    run(double_free_large_child, "free");
    run(double_free_huge_child, "free");
}

static void test_realloc_of_bad_pointer(void **s)
{
    (void)s;
    run(realloc_stack_child, "realloc");
    run(realloc_interior_child, "realloc");
}

static void test_usable_size_of_bad_pointer(void **s)
{
    (void)s;
    run(usable_size_stack_child, "malloc_usable_size");
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_of_stack_address),
        cmocka_unit_test(test_free_of_interior_pointer),
        cmocka_unit_test(test_free_of_foreign_mapping),
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_realloc_of_bad_pointer),
        cmocka_unit_test(test_usable_size_of_bad_pointer),
        cmocka_unit_test(test_message_names_address),
        cmocka_unit_test(test_loader_pointer_is_not_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
