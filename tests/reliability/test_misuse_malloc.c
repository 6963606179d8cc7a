/*
 * tests/reliability/test_misuse_malloc.c — misuse through the malloc
 * family of libkslab.so (this program's malloc is kslab's): free() of a
 * block from another allocator (glibc's, looked up in libc.so.6),
 * free() of an object of a destroyed cache, double free at once and later,
 * an interior pointer; and, with KSLAB_DEBUG=redzone / KSLAB_DEBUG=poison,
 * a write past the end of a malloc block and a write after free.  Each case
 * runs in a fresh process (this program executed again with the case name
 * and the environment it needs: options are read at start) that must die
 * of SIGABRT after exactly one line "kslab: <call>(): ...".
 */
#include "ktest.h"

#include <dlfcn.h>
#include <pthread.h>

#include <kslab/kslab.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

static void *volatile sink;

static __attribute__((noinline)) void *launder(void *p)
{
    sink = p;
    return sink;
}

static void case_other_allocator(void)
{
    /* glibc's own malloc: looked up in libc.so.6 itself (RTLD_NEXT from
     * here would find libkslab.so's) */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void *(*glibc_malloc)(size_t) =
        libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
    if (!glibc_malloc)
        exit(3);
    free(launder(glibc_malloc(64)));
}

static void case_destroyed_cache(void)
{
    kmem_cache_t *c = kmem_cache_create("rel-gone", 200, 0, 0, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    if (kmem_cache_destroy(c) != 0)
        exit(3);
    free(launder(p));
}

static void case_double_free(void)
{
    char *p = malloc(100);
    free(p);
    free(launder(p));
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

static void *alloc_free_exit(void *arg)
{
    void **pp = arg;
    *pp = malloc(100);
    free(*pp);
    return NULL;
}

/* p freed by a thread that then exits (its arrays go back to the slabs),
 * freed again here: caught when this thread's array is flushed before p
 * is allocated again (README, "Which misuse is caught"). */
static void case_double_free_after_exit(void)
{
    void *p = NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, alloc_free_exit, &p) != 0)
        exit(3);
    pthread_join(t, NULL);
    free(launder(p));
    for (int i = 0; i < 1000; i++) /* a full turn of the reap clock */
        kmem_cache_reap(GFP_KERNEL);
}

static void case_interior(void)
{
    char *p = malloc(100);
    free(launder(p + 8));
    free(p); // not reached
}

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

static const struct {
    const char *name;
    void (*fn)(void);
    const char *env; /* KSLAB_DEBUG value, or NULL */
    const char *needle;
} cases[] = {
    {"other_allocator", case_other_allocator, NULL, "free(): invalid pointer"},
    {"destroyed_cache", case_destroyed_cache, NULL, "free(): invalid pointer"},
    {"double_free", case_double_free, NULL, "free(): double free of 0x"},
    {"double_free_after_exit", case_double_free_after_exit, NULL,
     "double free of 0x"},
    {"interior", case_interior, NULL, "free(): invalid pointer 0x"},
    {"redzone", case_redzone, "redzone", "red zone overwritten at object 0x"},
    {"poison", case_poison, "poison", "was written after it was freed"},
    {"double_free_debug", case_double_free_later, "redzone",
     "free(): double free of 0x"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static char self[4096];

/* Runs case i in a new process; returns its status, stderr in err. */
static int run_case(size_t i, char *err, size_t size)
{
    char envbuf[64];
    const char *env[] = {envbuf, NULL};
    snprintf(envbuf, sizeof envbuf, "KSLAB_DEBUG=%s",
             cases[i].env ? cases[i].env : "");
    struct ktest_exec x = {self, cases[i].name, cases[i].env ? env : NULL};
    return ktest_run_child(ktest_exec_self, &x, err, size);
}

static void test_each_misuse_one_line_and_abort(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        char err[4096];
        int st = run_case(i, err, sizeof err);
        ktest_assert_one_line(cases[i].name, st, err, SIGABRT, cases[i].needle);
        printf("%-18s %s", cases[i].name, err);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (size_t i = 0; i < NCASES; i++)
            if (!strcmp(argv[1], cases[i].name)) {
                cases[i].fn();
                return 0;
            }
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_misuse_one_line_and_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
