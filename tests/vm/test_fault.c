/*
 * tests/vm/test_fault.c — demand paging through real hardware faults:
 * anonymous write and read faults, the ZERO_PAGE, write-protect faults,
 * mprotect and mlock as the CPU sees them, real errors killing the
 * process with SIGSEGV, and several threads faulting one mm.
 */
#include <pthread.h>

#include "vmtest.h"

static void test_write_fault_allocates_zeroed_frame(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_non_null(mm);
    unsigned long a =
        anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    for (int i = 0; i < 16; i++) {
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 8), 0);
        U64(mm, a + i * PAGE_SIZE) = 0x1234 + i;
    }
    for (int i = 0; i < 16; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), 0x1234 + i);
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.rss, 16);
    assert_true(st.min_flt >= 16);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_read_fault_maps_zero_page(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    unsigned long sum = 0;
    for (int i = 0; i < 8; i++)
        sum += U64(mm, a + i * PAGE_SIZE + 64);
    assert_int_equal(sum, 0);
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.zero_flt, 8);
    assert_int_equal(st.rss, 0);
    pte_t *pte = vm_pte_lookup(mm, a);
    assert_non_null(pte);
    assert_int_equal(pte_pfn(*pte), ZERO_PAGE_PFN);
    assert_false(pte_write(*pte));
    /* a write breaks away from the zero page */
    U64(mm, a) = 77;
    assert_int_equal(U64(mm, a), 77);
    assert_int_equal(U64(mm, a + PAGE_SIZE), 0);
    st = stat_of(mm);
    assert_int_equal(st.rss, 1);
    assert_int_not_equal(pte_pfn(*vm_pte_lookup(mm, a)), ZERO_PAGE_PFN);
    vm_check_mm(mm);
    mmput(mm);
}

static void touch_after_munmap(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(mm, a + PAGE_SIZE) = 1;
    if (do_munmap(mm, a, 4 * PAGE_SIZE) != 0)
        _exit(3);
    U64(mm, a + PAGE_SIZE) = 2; /* must die here */
    _exit(4);
}

static void test_munmap_then_touch_dies(void **state)
{
    (void)state;
    ktest_expect_death(touch_after_munmap, NULL, SIGSEGV, "no vma");
}

static void write_read_only(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE);
    if (U64(mm, a) != 0)
        _exit(3);
    U64(mm, a) = 1;
    _exit(4);
}

static void test_write_to_read_only_dies(void **state)
{
    (void)state;
    ktest_expect_death(write_read_only, NULL, SIGSEGV, "read-only");
}

/* UBSan would report the store instead of letting it fault. */
__attribute__((no_sanitize("undefined"))) static void null_deref(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *mm = mm_alloc();
    U64(mm, anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE)) = 1;
    *(volatile int *)arg = 1; /* arg is NULL: outside every window */
    _exit(4);
}

/* A fault outside every window is not kslab's: the process dies of
 * SIGSEGV as it would without kslab, and kslab says nothing. */
static void test_null_deref_outside_mm_dies(void **state)
{
    (void)state;
    char err[4096];
    int st = ktest_run_child(null_deref, NULL, err, sizeof err);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
        fail_msg("child status %#x, expected SIGSEGV; stderr: %s", st, err);
    assert_string_equal(err, "");
}

static void read_prot_none(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(mm, a) = 5;
    if (sys_mprotect(mm, a, PAGE_SIZE, PROT_NONE) != 0)
        _exit(3);
    (void)U64(mm, a);
    _exit(4);
}

static void test_prot_none_read_dies(void **state)
{
    (void)state;
    ktest_expect_death(read_prot_none, NULL, SIGSEGV, "no access");
}

static void test_mprotect_changes_access(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(mm, a) = 9;
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(count_vmas(mm), 2);
    pte_t *pte = vm_pte_lookup(mm, a);
    assert_false(pte_write(*pte));
    assert_int_equal(U64(mm, a), 9);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(count_vmas(mm), 1);
    U64(mm, a) = 10; /* allowed again */
    assert_int_equal(U64(mm, a), 10);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_mlock_leaves_no_faults(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 32 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_int_equal(sys_mlock(mm, a + 4 * PAGE_SIZE, 8 * PAGE_SIZE), 0);
    assert_int_equal(count_vmas(mm), 3);
    struct vm_area_struct *v = find_vma(mm, a + 4 * PAGE_SIZE);
    assert_true(v->vm_flags & VM_LOCKED);
    struct mm_stat before = stat_of(mm);
    assert_int_equal(before.rss, 8);
    for (int i = 4; i < 12; i++)
        U64(mm, a + i * PAGE_SIZE) += 1;
    struct mm_stat after = stat_of(mm);
    assert_int_equal(after.min_flt, before.min_flt);
    assert_int_equal(sys_munlock(mm, a, 32 * PAGE_SIZE), 0);
    assert_int_equal(count_vmas(mm), 1);
    /* locked at mmap time */
    unsigned long b = anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_LOCKED);
    assert_int_equal(stat_of(mm).rss, 12);
    before = stat_of(mm);
    U64(mm, b + 3 * PAGE_SIZE) = 1;
    assert_int_equal(stat_of(mm).min_flt, before.min_flt);
    assert_int_equal(sys_mlock(mm, 0x100000, PAGE_SIZE), -ENOMEM);
    vm_check_mm(mm);
    mmput(mm);
}

struct thr {
    struct mm_struct *mm;
    unsigned long base;
    int id;
};

static void *thread_toucher(void *p)
{
    struct thr *t = p;
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 256; i++) {
            unsigned long a = t->base + ((i * 7 + t->id) % 256) * PAGE_SIZE;
            if (t->id & 1)
                __atomic_fetch_add((unsigned long *)mm_host(t->mm, a), 1,
                                   __ATOMIC_RELAXED);
            else
                (void)U64(t->mm, a + 8);
        }
    return NULL;
}

static void test_threads_fault_same_mm(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 256 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    pthread_t th[4];
    struct thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){mm, a, i};
        pthread_create(&th[i], NULL, thread_toucher, &t[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 256; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), 8); /* 2 writers × 4 */
    assert_int_equal(stat_of(mm).rss, 256);
    vm_check_mm(mm);
    mmput(mm);
}

static void *own_mm_thread(void *p)
{
    (void)p;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 128 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (int round = 0; round < 3; round++) {
        struct mm_struct *c = mm_fork(mm);
        for (int i = 0; i < 128; i++)
            U64(c, a + i * PAGE_SIZE) += (unsigned long)i;
        for (int i = 0; i < 128; i++)
            U64(mm, a + i * PAGE_SIZE) += 1;
        mmput(c);
    }
    long ok = 1;
    for (int i = 0; i < 128; i++)
        ok &= U64(mm, a + i * PAGE_SIZE) == 3;
    mmput(mm);
    return (void *)ok;
}

static void test_threads_fault_different_mms(void **state)
{
    (void)state;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, own_mm_thread, NULL);
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(th[i], &ok);
        assert_true(ok == (void *)1);
    }
}

static void test_handle_mm_fault_direct(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    struct vm_area_struct *v = find_vma(mm, a);
    assert_int_equal(handle_mm_fault(mm, v, a, 1), 1);
    assert_int_equal(stat_of(mm).rss, 1);
    assert_int_equal(handle_mm_fault(mm, v, a + PAGE_SIZE, 1), 0);
    mmput(mm);
}

/* Sequential write faults map the pages ahead on the host (host_map.c,
 * vm_host_map_fresh), but their ptes stay none: nothing is counted, a read
 * there still faults to the ZERO_PAGE, and a frame the run expected that
 * went to another mm is not visible here. */
static void test_sequential_faults_premap_stays_honest(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc(), *other = mm_alloc();
    unsigned long a =
        anon(mm, 0, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    unsigned long b =
        anon(other, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (int i = 0; i < 8; i++)
        U64(mm, a + i * PAGE_SIZE) = 100 + i;
    struct mm_stat st = stat_of(mm);
    assert_int_equal(st.rss, 8);
#if !defined(__SANITIZE_THREAD__)
    assert_true(mm->premap_end > a + 8 * PAGE_SIZE);
#endif
    for (int i = 8; i < 64; i++)
        assert_true(pte_none(*vm_pte_lookup(mm, a + i * PAGE_SIZE)));
    /* a read of a premapped page faults: ZERO_PAGE, still no rss */
    assert_int_equal(U64(mm, a + 20 * PAGE_SIZE), 0);
    st = stat_of(mm);
    assert_int_equal(st.zero_flt, 1);
    assert_int_equal(st.rss, 8);
    /* the frame the run expects next goes to another mm */
    for (int i = 0; i < 4; i++)
        U64(other, b + i * PAGE_SIZE) = 0xdead;
    for (int i = 8; i < 16; i++) {
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 8), 0);
        U64(mm, a + i * PAGE_SIZE) = 100 + i;
    }
    for (int i = 0; i < 16; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), 100 + i);
    for (int i = 0; i < 4; i++)
        assert_int_equal(U64(other, b + i * PAGE_SIZE), 0xdead);
    /* munmap and map again inside the run: fresh zero pages */
    assert_int_equal(do_munmap(mm, a + 32 * PAGE_SIZE, 8 * PAGE_SIZE), 0);
    assert_false(
        IS_ERR_VALUE(anon(mm, a + 32 * PAGE_SIZE, 8 * PAGE_SIZE,
                          PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED)));
    for (int i = 16; i < 64; i++) {
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 8), 0);
        U64(mm, a + i * PAGE_SIZE) = 100 + i;
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), 100 + i);
    st = stat_of(mm);
    assert_int_equal(st.rss, 64);
    vm_check_mm(mm);
    vm_check_mm(other);
    mmput(other);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_fault_allocates_zeroed_frame),
        cmocka_unit_test(test_read_fault_maps_zero_page),
        cmocka_unit_test(test_munmap_then_touch_dies),
        cmocka_unit_test(test_write_to_read_only_dies),
        cmocka_unit_test(test_null_deref_outside_mm_dies),
        cmocka_unit_test(test_prot_none_read_dies),
        cmocka_unit_test(test_mprotect_changes_access),
        cmocka_unit_test(test_mlock_leaves_no_faults),
        cmocka_unit_test(test_threads_fault_same_mm),
        cmocka_unit_test(test_threads_fault_different_mms),
        cmocka_unit_test(test_handle_mm_fault_direct),
        cmocka_unit_test_setup_teardown(
            test_sequential_faults_premap_stays_honest, fault_around_off,
            fault_around_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
