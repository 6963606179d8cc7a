/*
 * tests/misuse/test_slab.c — misuse of the slab API (kmalloc/kfree,
 * kmem_cache_alloc/kmem_cache_free): every misuse the slab layer can see
 * is reported in exactly one line on stderr ("kslab: <call>(): ...") and
 * ends in SIGABRT: double free (at once, later at the flush, and of an
 * object already back on its slab), free of a pointer kslab never returned
 * (stack, glibc's malloc, a page block, the middle of an object), write
 * past the end or before the start (red zone), write after free (poison),
 * free of an object of a destroyed cache, and kmem_cache_free with the
 * wrong cache.  Each case runs in a forked child.  Bad input that is not
 * corruption (no cache at all) is an error and changes nothing.
 *
 * Which case is caught in which mode is what docs/debugging.md ("Which
 * misuse is caught") states; the tests named *_always run with no debug
 * flag.  The page allocator's misuse is in test_pages.c, the malloc
 * family's in test_malloc.c.
 */
#include "ktest.h"

#include <kslab/kslab.h>

#include "slab/slab_internal.h"

/* Exactly one line, starting "kslab: " and containing needle (and also,
 * if not NULL, more). */
static void expect_one_line2(void (*fn)(void *), void *arg, const char *needle,
                             const char *more)
{
    char err[4096];
    int st = ktest_run_child(fn, arg, err, sizeof err);
    ktest_assert_one_line("child", st, err, SIGABRT, needle);
    if (more && !strstr(err, more))
        fail_msg("stderr lacks \"%s\": %s", more, err);
}

static void expect_one_line(void (*fn)(void *), void *arg, const char *needle)
{
    expect_one_line2(fn, arg, needle, NULL);
}

/* ---- caught always (no debug flag) ---- */

static void double_free_at_once(void *arg)
{
    (void)arg;
    void *p = kmalloc(100, GFP_KERNEL);
    kfree(p);
    kfree(p);
}

static void double_free_later(void *arg)
{
    (void)arg;
    /* p is not on top of the array any more: caught when the array is
     * flushed to the slabs (here by kmem_cache_shrink) */
    void *p = kmalloc(100, GFP_KERNEL);
    void *q = kmalloc(100, GFP_KERNEL);
    kfree(p);
    kfree(q);
    kfree(p);
    kmem_cache_shrink(kmem_find_general_cachep(100));
}

static void double_free_back_on_slab(void *arg)
{
    (void)arg;
    /* SLAB_NO_REAP: the emptied slab stays, so the second free finds the
     * object free on it (a kmalloc slab might already be gone, which gives
     * "invalid pointer" instead). */
    kmem_cache_t *c = kmem_cache_create("dbl", 64, 0, SLAB_NO_REAP, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    void *q = kmem_cache_alloc(c, GFP_KERNEL);
    kfree(p);
    kfree(q);          /* p is no longer on top of the thread's array */
    slab_drain_self(); /* p is back on its slab */
    kfree(p);          /* accepted into the array ... */
    slab_drain_self(); /* ... and caught when it reaches the slab */
}

static void invalid_free_stack(void *arg)
{
    (void)arg;
    char buf[64];
    memset(buf, 1, sizeof buf);
    kfree(buf);
}

static void invalid_free_glibc(void *arg)
{
    (void)arg;
    char *p = malloc(100); /* glibc's: this program does not link libkslab */
    memset(p, 1, 100);
    kfree(p);
}

static void invalid_free_page_block(void *arg)
{
    (void)arg;
    kfree((void *)__get_free_pages(GFP_KERNEL, 0));
}

static void interior_pointer(void *arg)
{
    (void)arg;
    char *p = kmalloc(100, GFP_KERNEL);
    kfree(p + 16);
}

static void interior_pointer_cache(void *arg)
{
    (void)arg;
    kmem_cache_t *c = kmem_cache_create("interior", 200, 0, 0, NULL, NULL);
    char *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p + 8);
}

static void destroyed_cache(void *arg)
{
    (void)arg;
    kmem_cache_t *c = kmem_cache_create("destroyed", 96, 0, 0, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    assert_int_equal(kmem_cache_destroy(c), 0);
    kfree(p); /* its slab went back to the page layer */
}

static void wrong_cache(void *arg)
{
    (void)arg;
    kmem_cache_t *a = kmem_cache_create("rel-a", 64, 0, 0, NULL, NULL);
    kmem_cache_t *b = kmem_cache_create("rel-b", 64, 0, 0, NULL, NULL);
    kmem_cache_free(b, kmem_cache_alloc(a, GFP_KERNEL));
}

static void test_double_free_at_once_always(void **state)
{
    (void)state;
    expect_one_line(double_free_at_once, NULL, "kfree(): double free of 0x");
}

static void test_double_free_later_always(void **state)
{
    (void)state;
    expect_one_line(double_free_later, NULL, "double free of 0x");
    expect_one_line(double_free_back_on_slab, NULL, "double free of 0x");
}

static void test_invalid_free_always(void **state)
{
    (void)state;
    expect_one_line(invalid_free_stack, NULL, "kfree(): invalid pointer 0x");
    expect_one_line(invalid_free_glibc, NULL, "kfree(): invalid pointer 0x");
    expect_one_line(invalid_free_page_block, NULL, "(not a slab object)");
}

static void test_interior_pointer_always(void **state)
{
    (void)state;
    expect_one_line2(interior_pointer, NULL, "kfree(): invalid pointer 0x",
                     "(not the start of an object of cache `size-128')");
    expect_one_line(interior_pointer_cache, NULL,
                    "(not the start of an object of cache `interior')");
}

static void test_destroyed_cache_always(void **state)
{
    (void)state;
    expect_one_line(destroyed_cache, NULL, "kfree(): invalid pointer 0x");
}

static void test_wrong_cache_always(void **state)
{
    (void)state;
    expect_one_line(wrong_cache, NULL, "belongs to cache `rel-a', not `rel-b'");
}

/* ---- caught with the debug flags (SLAB_RED_ZONE, SLAB_POISON) ---- */

static void overflow_redzone(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("rel-rz", 40, 0, SLAB_RED_ZONE, NULL, NULL);
    volatile char *p = kmem_cache_alloc(c, GFP_KERNEL);
    p[40] = 1;
    kmem_cache_free(c, (void *)p);
}

static void underflow_redzone(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("rel-rz-under", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    volatile char *p = kmem_cache_alloc(c, GFP_KERNEL);
    p[-1] = 1; /* one byte before the start */
    kmem_cache_free(c, (void *)p);
}

static void use_after_free_poison(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("rel-poison", 40, 0, SLAB_POISON, NULL, NULL);
    volatile char *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, (void *)p);
    p[3] = 7;
    for (int i = 0; i < 100; i++)
        kmem_cache_alloc(c, GFP_KERNEL);
}

static void double_free_at_once_redzone(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("rel-rz3", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    kmem_cache_free(c, p);
}

static void double_free_after_reuse_redzone(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("rel-rz2", 64, 0, SLAB_RED_ZONE, NULL, NULL);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    void *q = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, p);
    kmem_cache_free(c, q);
    kmem_cache_free(c, p);
}

static void test_red_zone_debug(void **state)
{
    (void)state;
    expect_one_line(overflow_redzone, NULL,
                    "kmem_cache_free(): cache `rel-rz': red zone overwritten "
                    "at object 0x");
    expect_one_line(underflow_redzone, NULL,
                    "cache `rel-rz-under': red zone overwritten at object 0x");
}

static void test_poison_debug(void **state)
{
    (void)state;
    expect_one_line(use_after_free_poison, NULL,
                    "cache `rel-poison': object 0x");
}

static void test_double_free_any_order_debug(void **state)
{
    (void)state;
    expect_one_line(double_free_at_once_redzone, NULL,
                    "kmem_cache_free(): double free of 0x");
    expect_one_line(double_free_after_reuse_redzone, NULL,
                    "kmem_cache_free(): double free of 0x");
}

/* ---- bad input: an error, nothing changed ---- */

/* The slab's entry points given no cache. */
static void test_null_cache_is_einval(void **state)
{
    (void)state;
    errno = 0;
    assert_null(kmem_cache_alloc(NULL, GFP_KERNEL));
    assert_int_equal(errno, EINVAL);
    kmem_cache_free(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_at_once_always),
        cmocka_unit_test(test_double_free_later_always),
        cmocka_unit_test(test_invalid_free_always),
        cmocka_unit_test(test_interior_pointer_always),
        cmocka_unit_test(test_destroyed_cache_always),
        cmocka_unit_test(test_wrong_cache_always),
        cmocka_unit_test(test_red_zone_debug),
        cmocka_unit_test(test_poison_debug),
        cmocka_unit_test(test_double_free_any_order_debug),
        cmocka_unit_test(test_null_cache_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
