/*
 * tests/interpose/test_preload_scope.c — a preloaded kslab takes no name
 * from the program or its libraries.  Run with
 * LD_PRELOAD=libkslab-preload.so; the program does not link kslab.  It
 * dlopens libkslab_test_kernel.so, a library with its own kmalloc,
 * vmalloc, find_vma and mm_alloc, and shows both sides keep working: the
 * library's calls reach its own functions (libkslab-preload.so exports
 * none of those names, interpose/preload.map), while malloc and free, the
 * program's and the library's, are kslab's.
 *
 * With the argument "full" it is run under LD_PRELOAD=libkslab.so instead
 * and checks the other, documented behaviour: the full library exports the
 * 2.4 API, so a preloaded libkslab.so does take those names — which is why
 * the preload library exists.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

static int full_mode; /* LD_PRELOAD=libkslab.so */

static const char *const kernel_names[] = {
    "kmalloc",          "kfree",    "vmalloc",          "vfree",
    "find_vma",         "mm_alloc", "kmem_cache_alloc", "alloc_pages",
    "__get_free_pages", "do_mmap",
};

/* The file name of the object that defines the code at p. */
static const char *object_of(const void *p)
{
    Dl_info info;
    if (!dladdr(p, &info) || !info.dli_fname)
        return "?";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

/* Is p in the preloaded kslab (libkslab.so.0.1.0 or libkslab-preload.so)? */
static int in_kslab(const void *p)
{
    const char *name = object_of(p);
    return full_mode ? strncmp(name, "libkslab.so", 11) == 0
                     : strcmp(name, "libkslab-preload.so") == 0;
}

/* A block of malloc(100) from a kslab size class (multiples of 16: 112, or
 * 128 with the plain kmalloc classes); glibc's would have 104 bytes. */
static int is_kslab_block(void *p)
{
    size_t u = malloc_usable_size(p);
    return p && u >= 100 && u <= 128 && u % 16 == 0;
}

static void *open_kernel_lib(int mode)
{
    void *h = dlopen(KSLAB_TEST_KERNEL_SO, mode);
    if (!h)
        fail_msg("dlopen: %s", dlerror());
    return h;
}

static void test_malloc_is_kslab(void **s)
{
    (void)s;
    const char *preload = getenv("LD_PRELOAD");
    if (!preload || !strstr(preload, full_mode ? "libkslab.so" : "libkslab-"))
        fail_msg("run me with LD_PRELOAD=%s",
                 full_mode ? "libkslab.so" : "libkslab-preload.so");
    assert_true(in_kslab((void *)malloc));
    assert_true(in_kslab((void *)free));
    assert_non_null(dlsym(RTLD_DEFAULT, "kslab_stats_print"));
    void *p = malloc(100);
    assert_true(is_kslab_block(p));
    free(p);
}

static void test_no_kernel_name_in_the_process(void **s)
{
    (void)s;
    for (size_t i = 0; i < sizeof(kernel_names) / sizeof(*kernel_names); i++) {
        void *sym = dlsym(RTLD_DEFAULT, kernel_names[i]);
        if (full_mode) {
            assert_non_null(sym);
            assert_true(in_kslab(sym));
        } else if (sym) {
            fail_msg("%s is exported by %s", kernel_names[i], object_of(sym));
        }
    }
}

static void test_library_keeps_its_names(void **s)
{
    (void)s;
    void *h = open_kernel_lib(RTLD_NOW | RTLD_LOCAL);
    int (*selftest)(void) = (int (*)(void))dlsym(h, "kernlib_selftest");
    void *(*lib_malloc_addr)(void) =
        (void *(*)(void))dlsym(h, "kernlib_malloc_addr");
    void *(*lib_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "kernlib_malloc");
    assert_non_null(selftest);
    assert_non_null(lib_malloc_addr);
    assert_non_null(lib_malloc);

    /* 1 kmalloc, 2 vmalloc, 4 mm_alloc, 8 find_vma went to kslab. */
    int taken = selftest();
    if (full_mode)
        assert_int_equal(taken, 1 | 2 | 4 | 8);
    else if (taken)
        fail_msg("kslab took the library's calls (mask %#x)", taken);

    /* The library's malloc is the process's: kslab's. */
    assert_ptr_equal(lib_malloc_addr(), (void *)malloc);
    for (int i = 0; i < 1000; i++) {
        char *p = lib_malloc((size_t)i * 37 + 1);
        assert_non_null(p);
        memset(p, 3, (size_t)i * 37 + 1);
        free(p); /* the program frees what the library allocated */
    }
    char *p = lib_malloc(100);
    assert_true(is_kslab_block(p));
    free(p);
    /* No dlclose: the library stays for the next test. */
}

/* Promoted to the global scope, the library's names are found first by
 * everyone after kslab — and kslab, which binds its own calls, keeps
 * working.  Not in the "full" mode: there kslab holds those names first. */
static void test_library_global(void **s)
{
    (void)s;
    void *h = open_kernel_lib(RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int (*selftest)(void) = (int (*)(void))dlsym(h, "kernlib_selftest");
    assert_int_equal(selftest(), 0);
    assert_ptr_equal(dlsym(RTLD_DEFAULT, "kmalloc"), dlsym(h, "kmalloc"));
    assert_string_equal(object_of(dlsym(RTLD_DEFAULT, "kmalloc")),
                        "libkslab_test_kernel.so");
    void *blocks[256];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 256; i++) {
            blocks[i] = malloc((size_t)(i + round) * 61 + 1);
            assert_non_null(blocks[i]);
        }
        for (int i = 0; i < 256; i++)
            free(blocks[i]);
    }
    blocks[0] = malloc(100);
    assert_true(is_kslab_block(blocks[0]));
    free(blocks[0]);
}

int main(int argc, char **argv)
{
    full_mode = argc > 1 && strcmp(argv[1], "full") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_is_kslab),
        cmocka_unit_test(test_no_kernel_name_in_the_process),
        cmocka_unit_test(test_library_keeps_its_names),
        cmocka_unit_test(test_library_global),
    };
    /* the "full" mode has no library-global case to check */
    const struct CMUnitTest full[] = {
        cmocka_unit_test(test_malloc_is_kslab),
        cmocka_unit_test(test_no_kernel_name_in_the_process),
        cmocka_unit_test(test_library_keeps_its_names),
    };
    if (full_mode)
        return cmocka_run_group_tests(full, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
