/*
 * tests/misuse/test_pages.c — misuse of the page allocator's API
 * (__get_free_pages/free_pages, alloc_pages/__free_pages): a block freed
 * twice (an order-0 frame, or a block that merged with its buddy), a
 * block freed with another order than it was allocated with, and a frame a
 * slab cache still owns given to free_pages(), and a frame still reserved
 * (mem_map_reserve, maybe mapped into an mm) given back, are each reported
 * in exactly one line on stderr ("kslab: <call>(): ...") and end in
 * SIGABRT.  Each case runs in a forked child.  A page block given to kfree() is
 * in test_slab.c.
 */
#include "ktest.h"

#include <sys/mman.h>

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

/* A freed order-1 block is still caught when freed again, whether it
 * stayed a free block's head or merged into a larger one. */
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

/* A frame still reserved (mem_map_reserve) given back: its page of the
 * direct map is shared with the user mappings remap_page_range made, so
 * it must not reach the free lists (2.4 skipped it and leaked it). */
static void free_reserved_frame(void *arg)
{
    (void)arg;
    unsigned long a = __get_free_pages(GFP_KERNEL, 0);
    mem_map_reserve(virt_to_page((void *)a));
    free_pages(a, 0);
}

static int map_reserved(struct file *file, struct vm_area_struct *vma)
{
    return remap_page_range(vma, vma->vm_start,
                            virt_to_phys(file->private_data),
                            vma->vm_end - vma->vm_start, vma->vm_page_prot);
}

static const struct file_operations reserved_fops = {.mmap = map_reserved};

/* The second frame of an order-1 block reserved and mapped into an mm,
 * the block freed through __free_pages. */
static void free_mapped_reserved_frame(void *arg)
{
    (void)arg;
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    char *buf = page_address(p);
    mem_map_reserve(virt_to_page(buf + PAGE_SIZE));
    struct file dev = {.f_op = &reserved_fops, .private_data = buf};
    struct mm_struct *mm = mm_alloc();
    unsigned long u = do_mmap_pgoff(mm, &dev, 0, 2 * PAGE_SIZE,
                                    PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    if (IS_ERR_VALUE(u))
        _exit(3);
    __free_pages(p, 1);
}

static void test_freeing_a_reserved_frame_always(void **state)
{
    (void)state;
    expect_one_line(free_reserved_frame,
                    "free_pages(): frame "); /* ... is reserved */
    expect_one_line(free_reserved_frame, "is reserved (mem_map_reserve)");
    expect_one_line(free_mapped_reserved_frame, "__free_pages(): frame ");
    expect_one_line(free_mapped_reserved_frame, "mem_map_unreserve it first");
    /* unreserved first, the same frees are fine */
    unsigned long a = __get_free_pages(GFP_KERNEL, 1);
    assert_true(a != 0);
    for (int i = 0; i < 2; i++)
        mem_map_reserve(virt_to_page((void *)(a + i * PAGE_SIZE)));
    assert_true(PageReserved(virt_to_page((void *)(a + PAGE_SIZE))));
    for (int i = 0; i < 2; i++)
        mem_map_unreserve(virt_to_page((void *)(a + i * PAGE_SIZE)));
    free_pages(a, 1);
    assert_int_equal(kslab_verify(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_always),
        cmocka_unit_test(test_free_pages_wrong_order_always),
        cmocka_unit_test(test_freeing_a_slab_frame_always),
        cmocka_unit_test(test_freeing_a_reserved_frame_always),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
