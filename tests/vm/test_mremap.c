/*
 * tests/vm/test_mremap.c — sys_mremap (2.4's mm/mremap.c): a move takes
 * the page table entries along (the same frames, swapped-out pages still
 * in swap, pages shared with a forked mm still shared, nothing read or
 * copied); growth in place when the room after the vma is free, a move
 * when it is not and MREMAP_MAYMOVE allows it; shrinking; MREMAP_FIXED
 * over an existing mapping; a file mapping moved keeps its page cache;
 * bad calls fail with the errno of Linux and change nothing.
 */
#include "swaptest.h"

#define NP 32UL
#define RW (PROT_READ | PROT_WRITE)

static unsigned long pfn_at(struct mm_struct *mm, unsigned long addr)
{
    pte_t p = pte_of(mm, addr);
    return pte_present(p) ? pte_pfn(p) : 0;
}

/* A mapping of NP pages at a, filled, and a one-page mapping right after
 * it, so it cannot grow in place. */
static unsigned long filled_blocked(struct mm_struct *mm, unsigned long seed)
{
    unsigned long a = anon(mm, 0, (NP + 1) * PAGE_SIZE, RW, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    assert_int_equal(do_munmap(mm, a + NP * PAGE_SIZE, PAGE_SIZE), 0);
    assert_int_equal(anon(mm, a + NP * PAGE_SIZE, PAGE_SIZE, PROT_READ,
                          MAP_PRIVATE | MAP_FIXED),
                     a + NP * PAGE_SIZE);
    for (unsigned long i = 0; i < NP; i++)
        fill_page(mm, a, i, seed);
    return a;
}

static void test_move_takes_frames_and_swap_along(void **state)
{
    (void)state;
    const char *sw = swap_on("mv", 256, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = filled_blocked(mm, 1);
    unsigned long pfn[NP];
    /* the second half goes to swap */
    assert_int_equal(try_to_free_pages(NP), NP);
    for (unsigned long i = 0; i < NP / 2; i++)
        assert_true(page_ok(mm, a, i, 1));
    for (unsigned long i = 0; i < NP; i++)
        pfn[i] = pfn_at(mm, a + i * PAGE_SIZE);
    unsigned long swapped = count_swapped(mm, a, NP);
    assert_true(swapped >= NP / 2);
    struct mm_stat before = stat_of(mm);

    unsigned long b = sys_mremap(mm, a, NP * PAGE_SIZE, 2 * NP * PAGE_SIZE,
                                 MREMAP_MAYMOVE, 0);
    assert_false(IS_ERR_VALUE(b));
    assert_int_not_equal(b, a);
    struct vm_area_struct *v = find_vma(mm, a);
    assert_true(!v || v->vm_start > a); /* the old range is gone */
    /* nothing swapped in, nothing copied: the same frames, the same
     * swap entries, at the new place */
    assert_int_equal(count_swapped(mm, b, NP), swapped);
    for (unsigned long i = 0; i < NP; i++)
        assert_int_equal(pfn_at(mm, b + i * PAGE_SIZE), pfn[i]);
    struct mm_stat after = stat_of(mm);
    assert_int_equal(after.rss, before.rss);
    assert_int_equal(after.swap_in, before.swap_in);
    for (unsigned long i = 0; i < NP; i++)
        assert_true(page_ok(mm, b, i, 1));
    for (unsigned long i = NP; i < 2 * NP; i++) /* the new room: zeros */
        assert_int_equal(U64(mm, b + i * PAGE_SIZE), 0);
    vm_check_mm(mm);
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_grow_in_place_and_shrink(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, NP * PAGE_SIZE, RW, MAP_PRIVATE);
    for (unsigned long i = 0; i < NP; i++)
        fill_page(mm, a, i, 2);
    unsigned long p0 = pfn_at(mm, a);
    /* without MAYMOVE, into the free room after it */
    assert_int_equal(
        sys_mremap(mm, a, NP * PAGE_SIZE, 3 * NP * PAGE_SIZE, 0, 0), a);
    struct vm_area_struct *v = find_vma(mm, a);
    assert_int_equal(v->vm_start, a);
    assert_int_equal(v->vm_end, a + 3 * NP * PAGE_SIZE);
    assert_int_equal(pfn_at(mm, a), p0);
    U64(mm, a + 3 * NP * PAGE_SIZE - 8) = 9;
    /* shrinking unmaps the tail */
    assert_int_equal(
        sys_mremap(mm, a, 3 * NP * PAGE_SIZE, NP * PAGE_SIZE, 0, 0), a);
    assert_int_equal(find_vma(mm, a)->vm_end, a + NP * PAGE_SIZE);
    assert_int_equal(stat_of(mm).rss, NP);
    for (unsigned long i = 0; i < NP; i++)
        assert_true(page_ok(mm, a, i, 2));
    /* blocked and not allowed to move: -ENOMEM, nothing changed */
    assert_int_equal(anon(mm, a + NP * PAGE_SIZE, PAGE_SIZE, PROT_READ,
                          MAP_PRIVATE | MAP_FIXED),
                     a + NP * PAGE_SIZE);
    assert_int_equal(
        sys_mremap(mm, a, NP * PAGE_SIZE, 2 * NP * PAGE_SIZE, 0, 0),
        (unsigned long)-ENOMEM);
    assert_int_equal(find_vma(mm, a)->vm_end, a + NP * PAGE_SIZE);
    assert_true(page_ok(mm, a, NP - 1, 2));
    vm_check_mm(mm);
    mmput(mm);
}

/* After mm_fork both mms share the frames read-only; moving the child's
 * mapping keeps the sharing (no copy), and a write then breaks COW in
 * the child alone. */
static void test_move_keeps_cow_sharing(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = filled_blocked(mm, 3);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    unsigned long p5 = pfn_at(mm, a + 5 * PAGE_SIZE);
    unsigned long b = sys_mremap(child, a, NP * PAGE_SIZE, 4 * NP * PAGE_SIZE,
                                 MREMAP_MAYMOVE, 0);
    assert_false(IS_ERR_VALUE(b));
    assert_int_not_equal(b, a);
    assert_int_equal(pfn_at(child, b + 5 * PAGE_SIZE), p5);
    assert_int_equal(stat_of(child).cow_flt, 0);
    U64(child, b + 5 * PAGE_SIZE) = 77;
    assert_int_equal(stat_of(child).cow_flt, 1);
    assert_int_not_equal(pfn_at(child, b + 5 * PAGE_SIZE), p5);
    for (unsigned long i = 0; i < NP; i++) {
        assert_true(page_ok(mm, a, i, 3));
        if (i != 5)
            assert_true(page_ok(child, b, i, 3));
    }
    assert_int_equal(U64(child, b + 5 * PAGE_SIZE), 77);
    vm_check_mm(mm);
    vm_check_mm(child);
    mmput(child);
    mmput(mm);
}

static void test_fixed_replaces_what_was_there(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = filled_blocked(mm, 4);
    unsigned long t = anon(mm, 0, 2 * NP * PAGE_SIZE, RW, MAP_PRIVATE);
    for (unsigned long i = 0; i < 2 * NP; i++)
        fill_page(mm, t, i, 5);
    unsigned long b =
        sys_mremap(mm, a, NP * PAGE_SIZE, NP * PAGE_SIZE,
                   MREMAP_MAYMOVE | MREMAP_FIXED, t + NP / 2 * PAGE_SIZE);
    assert_int_equal(b, t + NP / 2 * PAGE_SIZE);
    for (unsigned long i = 0; i < NP; i++)
        assert_true(page_ok(mm, b, i, 4));
    for (unsigned long i = 0; i < NP / 2; i++)
        assert_true(page_ok(mm, t, i, 5));
    for (unsigned long i = NP + NP / 2; i < 2 * NP; i++)
        assert_true(page_ok(mm, t, i, 5));
    struct vm_area_struct *v = find_vma(mm, a);
    assert_true(!v || v->vm_start >= a + NP * PAGE_SIZE);
    vm_check_mm(mm);
    mmput(mm);
}

/* A shared file mapping moved keeps its pages: a store through the new
 * place reaches the file. */
static void test_file_mapping_moves(void **state)
{
    (void)state;
    char path[] = "/tmp/kslab-mremap-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(fd, 4 * PAGE_SIZE), 0);
    assert_int_equal(pwrite(fd, "file", 4, PAGE_SIZE), 4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    assert_int_equal(anon(mm, a + 4 * PAGE_SIZE, PAGE_SIZE, PROT_READ,
                          MAP_PRIVATE | MAP_FIXED),
                     a + 4 * PAGE_SIZE);
    assert_int_equal(U8(mm, a + PAGE_SIZE), 'f');
    unsigned long b = sys_mremap(mm, a + PAGE_SIZE, 2 * PAGE_SIZE,
                                 3 * PAGE_SIZE, MREMAP_MAYMOVE, 0);
    assert_false(IS_ERR_VALUE(b));
    assert_int_equal(U8(mm, b), 'f');
    U8(mm, b + PAGE_SIZE) = 'X'; /* file page 2 */
    assert_int_equal(sys_msync(mm, b, 3 * PAGE_SIZE, MS_SYNC), 0);
    char c = 0;
    assert_int_equal(pread(fd, &c, 1, 2 * PAGE_SIZE), 1);
    assert_int_equal(c, 'X');
    /* the head and the tail of the old mapping stay */
    assert_int_equal(find_vma(mm, a)->vm_end, a + PAGE_SIZE);
    assert_int_equal(find_vma(mm, a + 3 * PAGE_SIZE)->vm_start,
                     a + 3 * PAGE_SIZE);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
}

static void test_bad_calls_change_nothing(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = filled_blocked(mm, 6);
    unsigned long n = NP * PAGE_SIZE;
    assert_int_equal(sys_mremap(mm, a + 1, n, 2 * n, MREMAP_MAYMOVE, 0),
                     (unsigned long)-EINVAL);
    assert_int_equal(sys_mremap(mm, a, n, 0, MREMAP_MAYMOVE, 0),
                     (unsigned long)-EINVAL);
    assert_int_equal(sys_mremap(mm, a, n, 2 * n, 0x80, 0),
                     (unsigned long)-EINVAL);
    /* FIXED needs MAYMOVE; the ranges may not overlap */
    assert_int_equal(sys_mremap(mm, a, n, n, MREMAP_FIXED, a + 4 * n),
                     (unsigned long)-EINVAL);
    assert_int_equal(
        sys_mremap(mm, a, n, n, MREMAP_FIXED | MREMAP_MAYMOVE, a + PAGE_SIZE),
        (unsigned long)-EINVAL);
    /* not one vma: a hole, or across two */
    assert_int_equal(sys_mremap(mm, a + 64 * n, n, 2 * n, MREMAP_MAYMOVE, 0),
                     (unsigned long)-EFAULT);
    assert_int_equal(sys_mremap(mm, a, n + PAGE_SIZE, 2 * n, MREMAP_MAYMOVE, 0),
                     (unsigned long)-EFAULT);
    assert_int_equal(sys_mremap(NULL, a, n, n, 0, 0), (unsigned long)-EINVAL);
    /* RLIMIT_AS */
    assert_int_equal(mm_setrlimit(mm, RLIMIT_AS, 8 * n), 0);
    assert_int_equal(sys_mremap(mm, a, n, 16 * n, MREMAP_MAYMOVE, 0),
                     (unsigned long)-ENOMEM);
    struct vm_area_struct *v = find_vma(mm, a);
    assert_int_equal(v->vm_start, a);
    assert_int_equal(v->vm_end, a + n);
    for (unsigned long i = 0; i < NP; i++)
        assert_true(page_ok(mm, a, i, 6));
    vm_check_mm(mm);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        swap_unit_test(test_move_takes_frames_and_swap_along),
        swap_unit_test(test_grow_in_place_and_shrink),
        swap_unit_test(test_move_keeps_cow_sharing),
        swap_unit_test(test_fixed_replaces_what_was_there),
        swap_unit_test(test_file_mapping_moves),
        swap_unit_test(test_bad_calls_change_nothing),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
