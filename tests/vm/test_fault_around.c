/*
 * tests/vm/test_fault_around.c — fault-around for anonymous memory
 * (memory.c, KSLAB_VM_FAULT_AROUND): a write fault maps the untouched
 * pages of its aligned window too, zeroed and writable, so the accesses
 * there take no fault of their own (pgfault grows by fewer than the pages
 * touched); a neighbour in another vma, beyond vm_end, present or swapped
 * out is left as it was; reads still map the ZERO_PAGE one page a fault;
 * with the option off every page takes its own fault.  Each test runs
 * with a small vma (mapped page by page) and a 4 MiB one (whose 2 MiB
 * ranges the userfaultfd back end maps whole), and the whole program also
 * as vm_test_fault_around_sigsegv.
 */
#include "swaptest.h"

#define WINDOW 16UL /* the window these tests set */
#define BIG (4UL << 20)

static unsigned long saved_around;

static int around_setup(void **state)
{
    (void)state;
    saved_around = kslab_opt.vm_fault_around;
    kslab_opt.vm_fault_around = WINDOW;
    return 0;
}

static int around_teardown(void **state)
{
    kslab_opt.vm_fault_around = saved_around;
    return swap_test_teardown(state);
}

static int pte_state(struct mm_struct *mm, unsigned long addr)
{
    pte_t p = pte_of(mm, addr);
    return pte_none(p) ? 'n' : pte_is_swap(p) ? 's' : 'p';
}

/* A private anonymous mapping of len bytes aligned to 2 MiB (so that its
 * windows, and for BIG its pmd ranges, start where it starts). */
static unsigned long map_aligned(struct mm_struct *mm, unsigned long len)
{
    unsigned long a =
        anon(mm, 0x40000000UL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_int_equal(a, 0x40000000UL);
    return a;
}

static void write_maps_window(unsigned long len)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, len);
    U64(mm, a + 3 * PAGE_SIZE) = 33;
    if (len == BIG && vm_uffd_enabled())
        assert_int_equal(mm->uffd_nr, 1); /* the userfaultfd path */
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.min_flt, 1);
    assert_int_equal(st.rss, WINDOW);
    for (unsigned long i = 0; i < WINDOW; i++)
        assert_int_equal(pte_state(mm, a + i * PAGE_SIZE), 'p');
    assert_int_equal(pte_state(mm, a + WINDOW * PAGE_SIZE), 'n');
    /* the neighbours are zeroed, writable, and take no fault */
    for (unsigned long i = 0; i < WINDOW; i++) {
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 8), 0);
        U64(mm, a + i * PAGE_SIZE) = i + 1;
    }
    assert_int_equal(stat_of(mm).min_flt, 1);
    for (unsigned long i = 0; i < WINDOW; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), i + 1);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_write_maps_its_window(void **state)
{
    (void)state;
    write_maps_window(64 * PAGE_SIZE);
    write_maps_window(BIG);
}

/* A heap written in order: pgfault grows by fewer than the pages. */
static void sequential_touch(unsigned long len)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, len), n = len / PAGE_SIZE;
    for (unsigned long i = 0; i < n; i++)
        U64(mm, a + i * PAGE_SIZE) = i;
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.rss, n);
    /* a window whose frames were not free together may take more than
     * one fault; on the whole, far fewer faults than pages */
    assert_true(st.min_flt < n / 4);
    for (unsigned long i = 0; i < n; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), i);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_sequential_writes_fault_less_than_once_a_page(void **state)
{
    (void)state;
    sequential_touch(256 * PAGE_SIZE);
    sequential_touch(BIG);
}

/* The window stops at vm_end and at another vma's start. */
static void test_other_vma_and_end_untouched(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, 5 * PAGE_SIZE);
    unsigned long b = anon(mm, a + 5 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ,
                           MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(b, a + 5 * PAGE_SIZE);
    unsigned long c = anon(mm, a + 9 * PAGE_SIZE, 7 * PAGE_SIZE,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(c, a + 9 * PAGE_SIZE);
    assert_int_equal(count_vmas(mm), 3); /* b's flags keep them apart */
    U64(mm, a) = 1;
    assert_int_equal(stat_of(mm).rss, 5);
    for (unsigned long i = 5; i < WINDOW; i++)
        assert_int_equal(pte_state(mm, a + i * PAGE_SIZE), 'n');
    /* the third vma: from its own start, not into the second */
    U64(mm, c + 6 * PAGE_SIZE) = 2;
    assert_int_equal(stat_of(mm).rss, 5 + 7);
    for (unsigned long i = 5; i < 9; i++)
        assert_int_equal(pte_state(mm, a + i * PAGE_SIZE), 'n');
    assert_int_equal(stat_of(mm).min_flt, 2);
    vm_check_mm(mm);
    mmput(mm);
}

/* A present or swapped-out neighbour ends the run: it keeps its page or
 * its swap entry, and nothing past it is mapped. */
static void test_present_and_swapped_neighbours_kept(void **state)
{
    (void)state;
    const char *sw = swap_on("around", 256, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, 64 * PAGE_SIZE);
    kslab_opt.vm_fault_around = 1;
    U64(mm, a + 6 * PAGE_SIZE) = 66;
    assert_int_equal(try_to_free_pages(1), 1);
    assert_int_equal(pte_state(mm, a + 6 * PAGE_SIZE), 's');
    U64(mm, a + 5 * PAGE_SIZE) = 55;
    U64(mm, a + 9 * PAGE_SIZE) = 99;
    assert_int_equal(stat_of(mm).rss, 2);
    kslab_opt.vm_fault_around = WINDOW;
    unsigned long flt = stat_of(mm).min_flt;
    U64(mm, a + 2 * PAGE_SIZE) = 22;
    assert_int_equal(stat_of(mm).min_flt, flt + 1);
    assert_int_equal(stat_of(mm).rss, 2 + 5);
    for (unsigned long i = 0; i < 5; i++)
        assert_int_equal(pte_state(mm, a + i * PAGE_SIZE), 'p');
    assert_int_equal(pte_state(mm, a + 6 * PAGE_SIZE), 's');
    assert_int_equal(pte_state(mm, a + 7 * PAGE_SIZE), 'n');
    assert_int_equal(pte_state(mm, a + 8 * PAGE_SIZE), 'n');
    /* between the swapped page and the present one: the run of 7..8 */
    U64(mm, a + 7 * PAGE_SIZE) = 77;
    assert_int_equal(pte_state(mm, a + 8 * PAGE_SIZE), 'p');
    assert_int_equal(pte_state(mm, a + 6 * PAGE_SIZE), 's');
    assert_int_equal(pte_state(mm, a + 10 * PAGE_SIZE), 'n');
    assert_int_equal(U64(mm, a + 5 * PAGE_SIZE), 55);
    assert_int_equal(U64(mm, a + 9 * PAGE_SIZE), 99);
    assert_int_equal(U64(mm, a + 6 * PAGE_SIZE), 66); /* swapped in */
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE), 22);
    vm_check_mm(mm);
    mmput(mm);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

/* Reads map the ZERO_PAGE, one page a fault; a ZERO_PAGE neighbour stays
 * one (its write faults to a frame of its own later). */
static void test_reads_do_not_fault_around(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, 64 * PAGE_SIZE);
    assert_int_equal(U64(mm, a + PAGE_SIZE), 0);
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.rss, 0);
    assert_int_equal(st.zero_flt, 1);
    assert_int_equal(pte_state(mm, a), 'n');
    assert_int_equal(pte_state(mm, a + 2 * PAGE_SIZE), 'n');
    U64(mm, a) = 1; /* the run is page 0 alone: page 1 is present */
    assert_int_equal(stat_of(mm).rss, 1);
    assert_int_equal(pte_pfn(pte_of(mm, a + PAGE_SIZE)), ZERO_PAGE_PFN);
    U64(mm, a + 2 * PAGE_SIZE) = 2; /* pages 2..15 */
    assert_int_equal(stat_of(mm).rss, 1 + 14);
    assert_int_equal(pte_pfn(pte_of(mm, a + PAGE_SIZE)), ZERO_PAGE_PFN);
    vm_check_mm(mm);
    mmput(mm);
}

/* Off: one fault a page, as 2.4 took them. */
static void off_one_fault_a_page(unsigned long len)
{
    kslab_opt.vm_fault_around = 1;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, len);
    for (unsigned long i = 0; i < 64; i++)
        U64(mm, a + i * PAGE_SIZE) = i;
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.min_flt, 64);
    assert_int_equal(st.rss, 64);
    assert_int_equal(pte_state(mm, a + 64 * PAGE_SIZE), 'n');
    mmput(mm);
    kslab_opt.vm_fault_around = WINDOW;
}

static void test_off_one_fault_a_page(void **state)
{
    (void)state;
    off_one_fault_a_page(128 * PAGE_SIZE);
    off_one_fault_a_page(BIG);
}

/* mlock faults the vma in: fault-around leaves nothing out or doubled. */
static void test_mlock_with_fault_around(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_aligned(mm, 100 * PAGE_SIZE);
    U64(mm, a + 40 * PAGE_SIZE) = 4;
    assert_int_equal(sys_mlock(mm, a, 100 * PAGE_SIZE), 0);
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.rss, 100);
    for (unsigned long i = 0; i < 100; i++)
        assert_int_equal(pte_state(mm, a + i * PAGE_SIZE), 'p');
    assert_int_equal(U64(mm, a + 40 * PAGE_SIZE), 4);
    assert_int_equal(stat_of(mm).min_flt, st.min_flt);
    vm_check_mm(mm);
    mmput(mm);
}

#define AROUND(f)                                                              \
    cmocka_unit_test_setup_teardown(f, around_setup, around_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        AROUND(test_write_maps_its_window),
        AROUND(test_sequential_writes_fault_less_than_once_a_page),
        AROUND(test_other_vma_and_end_untouched),
        AROUND(test_present_and_swapped_neighbours_kept),
        AROUND(test_reads_do_not_fault_around),
        AROUND(test_off_one_fault_a_page),
        AROUND(test_mlock_with_fault_around),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
