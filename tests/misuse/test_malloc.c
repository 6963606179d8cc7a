/*
 * tests/misuse/test_malloc.c — misuse of the malloc family of libkslab.so
 * (this program's malloc is kslab's) is caught: free/realloc/
 * malloc_usable_size of a pointer kslab never returned (a stack address, an
 * interior pointer, memory of another mapping, a block of glibc's malloc,
 * an object of a destroyed cache) and the double free, for small, large
 * and huge blocks (small ones also when the block waits behind others, on
 * its slab, in another thread's array, or was freed by a thread that has
 * exited).  Each case runs in a forked child that must die of SIGABRT after
 * one line naming the call, the misuse ("double free of" or "invalid
 * pointer") and the address.  With KSLAB_DEBUG=redzone / poison (options
 * are read at start, so these run this program again with the option set):
 * a write past the end of a block, a write after free, a later double free
 * caught at once.  Which misuse is caught when: interpose/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "ktest.h"

#include <kslab/kslab.h>

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
DEATH(free_other_allocator, {
    /* glibc's own malloc: looked up in libc.so.6 itself (RTLD_NEXT from
     * here would find libkslab.so's) */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void *(*glibc_malloc)(size_t) =
        libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
    if (!glibc_malloc)
        _exit(3);
    free(bad(glibc_malloc(64)));
})
DEATH(free_destroyed_cache_object, {
    kmem_cache_t *c = kmem_cache_create("rel-gone", 200, 0, 0, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    if (kmem_cache_destroy(c) != 0)
        _exit(3);
    free(bad(p));
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
/* ... or was freed by a thread that has exited since (its arrays went back
 * to the slabs): caught when this thread's array is flushed before the
 * block is allocated again (docs/debugging.md, "Which misuse is caught"). */
static void *alloc_free_exit(void *arg)
{
    void **pp = arg;
    *pp = malloc(100);
    free(*pp);
    return NULL;
}
DEATH(double_free_after_exit, {
    void *p = NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, alloc_free_exit, &p) != 0)
        _exit(3);
    pthread_join(t, NULL);
    free(bad(p));
    for (int i = 0; i < 1000; i++) /* a full turn of the reap clock */
        kmem_cache_reap(GFP_KERNEL);
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

static void test_free_of_other_allocators_block(void **s)
{
    (void)s;
    run(free_other_allocator_child, "free", INVALID);
}

/* The cache's slabs went back to the page layer with it. */
static void test_free_of_destroyed_cache_object(void **s)
{
    (void)s;
    run(free_destroyed_cache_object_child, "free", INVALID);
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
 * thread's array.  Freed by a thread that has exited, it is caught at the
 * flush of this thread's array, in whichever call flushes it. */
static void test_double_free_later(void **s)
{
    (void)s;
    run(double_free_later_child, "free", DOUBLE);
    run(double_free_after_flush_child, "free", DOUBLE);
    run(double_free_other_thread_child, "free", DOUBLE);
    char err[4096];
    int st =
        ktest_run_child(double_free_after_exit_child, NULL, err, sizeof err);
    ktest_assert_one_line("double_free_after_exit", st, err, SIGABRT,
                          "double free of 0x");
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

/* ---- with KSLAB_DEBUG (read at start: this program run again) ---- */

static void case_redzone(void)
{
    /* stores through a volatile lvalue: not dead before free() */
    volatile char *p = launder(malloc(64));
    p[64] = 1; /* one past the end */
    free((void *)p);
}

static void case_poison(void)
{
    volatile char *p = launder(malloc(64));
    free((void *)p);
    p[5] = 1; /* write after free */
    for (int i = 0; i < 1000; i++)
        sink = malloc(64);
}

static void case_double_free_later(void)
{
    /* not on top of the array: with KSLAB_DEBUG the caches take the locked
     * path, where the red-zone words catch it at once */
    char *p = malloc(100), *q = malloc(100);
    free(p);
    free(q);
    free(launder(p));
}

static const struct {
    const char *name;
    void (*fn)(void);
    const char *env; /* KSLAB_DEBUG value */
    const char *needle;
} debug_cases[] = {
    {"redzone", case_redzone, "redzone", "red zone overwritten at object 0x"},
    {"poison", case_poison, "poison", "was written after it was freed"},
    {"double_free_debug", case_double_free_later, "redzone",
     "free(): double free of 0x"},
};
#define NDEBUG_CASES (sizeof debug_cases / sizeof debug_cases[0])

static char self[4096];

static void test_debug_misuse_one_line_and_abort(void **s)
{
    (void)s;
    for (size_t i = 0; i < NDEBUG_CASES; i++) {
        char envbuf[64], err[4096];
        const char *env[] = {envbuf, NULL};
        snprintf(envbuf, sizeof envbuf, "KSLAB_DEBUG=%s", debug_cases[i].env);
        struct ktest_exec x = {self, debug_cases[i].name, env};
        int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
        ktest_assert_one_line(debug_cases[i].name, st, err, SIGABRT,
                              debug_cases[i].needle);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < NDEBUG_CASES; i++)
            if (!strcmp(argv[1], debug_cases[i].name)) {
                debug_cases[i].fn();
                return 0;
            }
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    bad_addr = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (bad_addr == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_of_stack_address),
        cmocka_unit_test(test_free_of_interior_pointer),
        cmocka_unit_test(test_free_of_foreign_mapping),
        cmocka_unit_test(test_free_of_other_allocators_block),
        cmocka_unit_test(test_free_of_destroyed_cache_object),
        cmocka_unit_test(test_double_free),
        cmocka_unit_test(test_double_free_later),
        cmocka_unit_test(test_free_key_in_live_block),
        cmocka_unit_test(test_realloc_of_bad_pointer),
        cmocka_unit_test(test_usable_size_of_bad_pointer),
        cmocka_unit_test(test_message_names_address),
        cmocka_unit_test(test_loader_pointer_is_not_misuse),
        cmocka_unit_test(test_debug_misuse_one_line_and_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
