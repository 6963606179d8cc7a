/*
 * tests/misuse/test_pages.c — misuse of the page allocator's API
 * (__get_free_pages/free_pages, alloc_pages/__free_pages): a block freed
 * twice (from the zone's free lists or from the thread's page list), a
 * block freed with another order than it was allocated with, and a frame a
 * slab cache still owns given to free_pages(), are each reported in exactly
 * one line on stderr ("kslab: <call>(): ...") and end in SIGABRT.  Each case
 * runs in a forked child.  A page block given to kfree() is in test_slab.c.
 */
#include "ktest.h"

#include <kslab/kslab.h>

/* Exactly one line, starting "kslab: " and containing needle. */
static void expect_one_line(void (*fn)(void *), const char *needle)
{
    char err[4096];
    int st = ktest_run_child(fn, NULL, err, sizeof err);
    ktest_assert_one_line("child", st, err, SIGABRT, needle);
}

/* An order-0 block freed twice. */
static void double_free_order0(void *arg)
{
    (void)arg;
    unsigned long a = __get_free_pages(GFP_KERNEL, 0);
    free_pages(a, 0);
    free_pages(a, 0);
}

/* A freed block waiting on the thread's page list is still caught when
 * freed again. */
static void double_free_listed(void *arg)
{
    (void)arg;
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    __free_pages(p, 1);
    __free_pages(p, 1);
}

static void test_double_free_always(void **state)
{
    (void)state;
    expect_one_line(double_free_order0, "free_pages(): double free of frame");
    expect_one_line(double_free_listed, "__free_pages(): double free of frame");
}

/* A block freed with another order than it was allocated with: the
 * frames a smaller order would keep, or a larger one would take from
 * someone else, are caught at the free. */
static void free_pages_smaller_order(void *arg)
{
    (void)arg;
    unsigned long a = __get_free_pages(GFP_KERNEL, 2);
    free_pages(a, 0);
}

static void free_pages_larger_order(void *arg)
{
    (void)arg;
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    __free_pages(p, 3);
}

static void test_free_pages_wrong_order_always(void **state)
{
    (void)state;
    expect_one_line(free_pages_smaller_order, "free_pages(): block at 0x");
    expect_one_line(free_pages_larger_order, "__free_pages(): block at 0x");
}

/* A slab frame given to free_pages(): the buddy lists must not take a
 * frame that a cache still owns. */
static void free_slab_frame(void *arg)
{
    (void)arg;
    char *p = kmalloc(100, GFP_KERNEL);
    free_pages((unsigned long)p & PAGE_MASK, 0);
}

static void test_freeing_a_slab_frame_always(void **state)
{
    (void)state;
    expect_one_line(free_slab_frame, "still belongs to a slab cache");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_always),
        cmocka_unit_test(test_free_pages_wrong_order_always),
        cmocka_unit_test(test_freeing_a_slab_frame_always),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
