/*
 * tests/vm/test_swap.c — reclaim and swap-in: a working set four times
 * user memory written and read back intact with rss never above the
 * limit; the aging scan keeping a referenced page; clean pages dropped
 * without I/O; readahead cutting major faults; a forked pair sharing
 * swapped pages (swapped once, found in the swap cache by the second mm,
 * isolated after writes); mlocked pages never swapped; two threads
 * faulting swapped pages of one mm.
 */
#include "swaptest.h"

#include <pthread.h>

#define RAM 256UL /* user memory for these tests, in pages */

static void test_working_set_4x_ram_intact(void **state)
{
    (void)state;
    const char *sw = swap_on("ws", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 4 * RAM;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++) {
        fill_page(mm, a, i, 1);
        assert_true(stat_of(mm).rss <= RAM);
    }
    for (int round = 0; round < 2; round++)
        for (unsigned long i = 0; i < n; i++) {
            assert_true(page_ok(mm, a, i, 1));
            assert_true(stat_of(mm).rss <= RAM);
        }
    struct mm_stat st = stat_of(mm);
    assert_true(st.swap_out >= n - RAM);
    assert_true(st.swap_in > 0);
    assert_true(st.maj_flt >= st.swap_in);
    vm_check_mm(mm);
    vm_check_swap();
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_referenced_page_not_swapped(void **state)
{
    (void)state;
    const char *sw = swap_on("ref", 256, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 32;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 2);
    /* one lap arms every page, the next takes page 0 */
    assert_int_equal(try_to_free_pages(1), 1);
    assert_true(pte_is_swap(pte_of(mm, a)));
    assert_true(pte_val(pte_of(mm, a + 5 * PAGE_SIZE)) & _PAGE_OLD);
    /* page 5 is referenced (a fault on the armed page) ... */
    assert_true(page_ok(mm, a, 5, 2));
    assert_false(pte_val(pte_of(mm, a + 5 * PAGE_SIZE)) & _PAGE_OLD);
    /* ... so the hand passes it and takes every other one */
    assert_int_equal(try_to_free_pages(n - 2), n - 2);
    assert_true(pte_present(pte_of(mm, a + 5 * PAGE_SIZE)));
    assert_int_equal(count_swapped(mm, a, n), n - 1);
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(mm, a, i, 2));
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_clean_pages_dropped_without_io(void **state)
{
    (void)state;
    const char *sw = swap_on("clean", 256, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 64;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 3);
    unsigned long out0 = vm_pswpout;
    assert_int_equal(try_to_free_pages(n), n);
    assert_int_equal(vm_pswpout - out0, n);
    assert_int_equal(stat_of(mm).rss, 0);
    for (unsigned long i = 0; i < n; i++) /* read: clean, still cached */
        assert_true(page_ok(mm, a, i, 3));
    assert_int_equal(stat_of(mm).rss, n);
    assert_true(meminfo("SwapCached:") >= n * 4);
    try_to_free_pages(2 * n);
    assert_int_equal(stat_of(mm).rss, 0);
    assert_int_equal(vm_pswpout - out0, n); /* no second write */
    /* a written page is dirty again and is written */
    U64(mm, a) = 7;
    try_to_free_pages(2 * n);
    assert_int_equal(vm_pswpout - out0, n + 1);
    assert_int_equal(U64(mm, a), 7);
    mmput(mm);
    assert_int_equal(meminfo("SwapCached:"), 0);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static unsigned long majors_reading_back(int cluster)
{
    const char *sw = swap_on("ra", 512, 0);
    int old = vm_set_page_cluster(cluster);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 128;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 4);
    assert_int_equal(try_to_free_pages(n), n);
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(mm, a, i, 4));
    unsigned long maj = stat_of(mm).maj_flt;
    assert_int_equal(stat_of(mm).swap_in, maj);
    mmput(mm);
    vm_set_page_cluster(old);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
    unlink(sw);
    return maj;
}

static void test_readahead_reads_aligned_cluster(void **state)
{
    (void)state;
    assert_int_equal(majors_reading_back(0), 128);
    /* slots 1..128 were given in order (0 is the header): one major
     * fault per aligned cluster of 8 — 1-7, 8-15, ..., 128 */
    assert_int_equal(majors_reading_back(3), 128 / 8 + 1);
    assert_int_equal(vm_set_page_cluster(9), -EINVAL);
}

static void test_forked_pair_shares_swapped_pages(void **state)
{
    (void)state;
    const char *sw = swap_on("fork", 512, 0);
    struct mm_struct *p = mm_alloc();
    unsigned long n = 64;
    unsigned long a =
        anon(p, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(p, a, i, 5);
    struct mm_struct *c = mm_fork(p);
    assert_non_null(c);
    unsigned long out0 = vm_pswpout, in0 = vm_pswpin;
    assert_int_equal(try_to_free_pages(2 * n), n);
    assert_int_equal(stat_of(p).rss, 0);
    assert_int_equal(stat_of(c).rss, 0);
    assert_int_equal(vm_pswpout - out0, n); /* each page written once */
    /* both ptes hold the same entry */
    for (unsigned long i = 0; i < n; i++)
        assert_int_equal(pte_val(pte_of(p, a + i * PAGE_SIZE)),
                         pte_val(pte_of(c, a + i * PAGE_SIZE)));
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(p, a, i, 5));
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(c, a, i, 5));
    assert_int_equal(vm_pswpin - in0, n); /* read once */
    assert_true(stat_of(p).swap_in > 0);
    assert_int_equal(stat_of(c).swap_in, 0); /* found in the swap cache */
    assert_int_equal(stat_of(c).maj_flt, 0);
    /* isolated after writes, both ways */
    for (unsigned long i = 0; i < n; i += 2)
        fill_page(c, a, i, 6);
    for (unsigned long i = 1; i < n; i += 2)
        fill_page(p, a, i, 7);
    for (unsigned long i = 0; i < n; i++) {
        assert_true(page_ok(p, a, i, i & 1 ? 7 : 5));
        assert_true(page_ok(c, a, i, i & 1 ? 5 : 6));
    }
    /* and again through swap */
    try_to_free_pages(4 * n);
    for (unsigned long i = 0; i < n; i++) {
        assert_true(page_ok(p, a, i, i & 1 ? 7 : 5));
        assert_true(page_ok(c, a, i, i & 1 ? 5 : 6));
    }
    vm_check_mm(p);
    vm_check_mm(c);
    vm_check_swap();
    mmput(p);
    mmput(c);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_mlocked_pages_never_swapped(void **state)
{
    (void)state;
    const char *sw = swap_on("mlock", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *mm = mm_alloc();
    unsigned long nl = RAM / 4, n = 3 * RAM;
    unsigned long l =
        anon(mm, 0, nl * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < nl; i++)
        fill_page(mm, l, i, 8);
    assert_int_equal(sys_mlock(mm, l, nl * PAGE_SIZE), 0);
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 9);
    try_to_free_pages(RAM);
    for (unsigned long i = 0; i < nl; i++) {
        pte_t pte = pte_of(mm, l + i * PAGE_SIZE);
        assert_true(pte_present(pte));
        assert_false(pte_val(pte) & _PAGE_OLD);
    }
    assert_true(stat_of(mm).swap_out > 0);
    unsigned long maj = stat_of(mm).maj_flt, minf = stat_of(mm).min_flt;
    for (unsigned long i = 0; i < nl; i++)
        assert_true(page_ok(mm, l, i, 8));
    assert_int_equal(stat_of(mm).maj_flt, maj); /* not a single fault */
    assert_int_equal(stat_of(mm).min_flt, minf);
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(mm, a, i, 9));
    /* mlock of a swapped range brings it back */
    assert_int_equal(try_to_free_pages(RAM) > 0, 1);
    assert_true(count_swapped(mm, a, 16) > 0);
    assert_int_equal(sys_mlock(mm, a, 16 * PAGE_SIZE), 0);
    assert_int_equal(count_swapped(mm, a, 16), 0);
    vm_check_mm(mm);
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

struct reader {
    struct mm_struct *mm;
    unsigned long a, from, n;
    int bad;
};

static void *read_half(void *arg)
{
    struct reader *r = arg;
    for (int round = 0; round < 3; round++)
        for (unsigned long i = r->from; i < r->from + r->n; i++)
            if (!page_ok(r->mm, r->a, i, 10))
                r->bad++;
    return NULL;
}

static void test_two_threads_fault_swapped_pages(void **state)
{
    (void)state;
    const char *sw = swap_on("threads", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 3 * RAM;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 10);
    assert_true(count_swapped(mm, a, n) >= n - RAM);
    struct reader r[2] = {{mm, a, 0, n / 2, 0}, {mm, a, n / 2, n - n / 2, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, read_half, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r[0].bad + r[1].bad, 0);
    assert_true(stat_of(mm).rss <= RAM);
    assert_true(stat_of(mm).swap_in > 0);
    vm_check_mm(mm);
    vm_check_swap();
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_reclaim_takes_pages_of_other_mms(void **state)
{
    (void)state;
    const char *sw = swap_on("other", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *a = mm_alloc(), *b = mm_alloc();
    unsigned long n = RAM - 32;
    unsigned long x =
        anon(a, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(a, x, i, 11);
    /* b's faults reclaim; a's idle pages are taken too (trylock) */
    unsigned long y =
        anon(b, 0, 2 * RAM * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < 2 * RAM; i++)
        fill_page(b, y, i, 12);
    assert_true(stat_of(a).swap_out > n / 2);
    assert_true(stat_of(a).rss + stat_of(b).rss <= RAM);
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(a, x, i, 11));
    for (unsigned long i = 0; i < 2 * RAM; i++)
        assert_true(page_ok(b, y, i, 12));
    vm_check_swap();
    mmput(a);
    mmput(b);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        swap_unit_test(test_working_set_4x_ram_intact),
        swap_unit_test(test_referenced_page_not_swapped),
        swap_unit_test(test_clean_pages_dropped_without_io),
        swap_unit_test(test_readahead_reads_aligned_cluster),
        swap_unit_test(test_forked_pair_shares_swapped_pages),
        swap_unit_test(test_mlocked_pages_never_swapped),
        swap_unit_test(test_two_threads_fault_swapped_pages),
        swap_unit_test(test_reclaim_takes_pages_of_other_mms),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
