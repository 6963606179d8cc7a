/*
 * tests/interpose/test_dlopen.c — libkslab.so opened with dlopen() by a
 * program that was started with glibc's malloc.  Supported, with a limit
 * the README states: the slab and page API work, and the library's own
 * malloc/free (reached through dlsym on its handle) work as a pair, but the
 * process's malloc stays glibc's — symbols already bound are not rebound,
 * and blocks glibc handed out before the dlopen must go back to glibc.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

static void test_dlopen_api_works(void **s)
{
    (void)s;
    void *before = malloc(100); /* glibc's */
    void *h = dlopen(KSLAB_SO, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail_msg("dlopen: %s", dlerror());
    void *(*kmalloc_fn)(size_t, int) =
        (void *(*)(size_t, int))dlsym(h, "kmalloc");
    void (*kfree_fn)(const void *) = (void (*)(const void *))dlsym(h, "kfree");
    void *(*kmalloc_api)(size_t) = (void *(*)(size_t))dlsym(h, "malloc");
    void (*kfree_api)(void *) = (void (*)(void *))dlsym(h, "free");
    assert_non_null(kmalloc_fn);
    assert_non_null(kfree_fn);
    assert_non_null(kmalloc_api);
    assert_non_null(kfree_api);
    assert_true(kmalloc_api != malloc); /* the process keeps glibc's */
    for (int i = 0; i < 1000; i++) {
        char *p = kmalloc_fn((size_t)i * 13 + 1, 0);
        assert_non_null(p);
        memset(p, 1, (size_t)i * 13 + 1);
        kfree_fn(p);
        char *q = kmalloc_api((size_t)i * 300 + 1);
        assert_non_null(q);
        memset(q, 2, (size_t)i * 300 + 1);
        kfree_api(q);
    }
    free(before); /* glibc's block goes back to glibc */
    void *after = malloc(200);
    assert_non_null(after);
    free(after);
    /* No dlclose: the library's fork handlers and exit hook stay valid. */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlopen_api_works),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
