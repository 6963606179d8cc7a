/*
 * tests/vm/test_fork.c — mm_fork: copy-on-write isolation in both
 * directions, shared mappings staying shared, fork of a fork, mmput of
 * any side leaving the others intact, and the COW counters.
 */
#include "vmtest.h"

#define NPAGES 16

static unsigned long filled(struct mm_struct *mm, int flags, unsigned long v)
{
    unsigned long a =
        anon(mm, 0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, flags);
    for (int i = 0; i < NPAGES; i++)
        U64(mm, a + i * PAGE_SIZE) = v + i;
    return a;
}

static void test_child_write_invisible_to_parent(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 100);
    struct mm_struct *c = mm_fork(p);
    assert_non_null(c);
    assert_int_equal(stat_of(c).rss, NPAGES);
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 100 + i);
    U64(c, a) = 1;
    assert_int_equal(U64(p, a), 100);
    assert_int_equal(U64(c, a), 1);
    assert_int_equal(stat_of(c).cow_flt, 1);
    /* the parent's page is now its own: reused, not copied */
    U64(p, a) = 2;
    assert_int_equal(stat_of(p).cow_flt, 0);
    assert_int_equal(U64(c, a), 1);
    vm_check_mm(p);
    vm_check_mm(c);
    mmput(c);
    mmput(p);
}

static void test_parent_write_invisible_to_child(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 200);
    struct mm_struct *c = mm_fork(p);
    for (int i = 0; i < NPAGES; i++)
        U64(p, a + i * PAGE_SIZE) = 7;
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 200 + i);
    assert_int_equal(stat_of(p).cow_flt, NPAGES);
    mmput(p); /* parent first: the child keeps its frames */
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 200 + i);
    U64(c, a) = 3; /* last reference: reused */
    assert_int_equal(stat_of(c).cow_flt, 0);
    vm_check_mm(c);
    mmput(c);
}

static void test_shared_visible_both_sides(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
    U64(p, a) = 11; /* touched before the fork */
    struct mm_struct *c = mm_fork(p);
    U64(c, a) = 12;
    assert_int_equal(U64(p, a), 12);
    /* first touched after the fork: still one page */
    U64(p, a + 5 * PAGE_SIZE) = 13;
    assert_int_equal(U64(c, a + 5 * PAGE_SIZE), 13);
    (void)U64(c, a + 6 * PAGE_SIZE);
    U64(p, a + 6 * PAGE_SIZE) = 14;
    assert_int_equal(U64(c, a + 6 * PAGE_SIZE), 14);
    assert_int_equal(stat_of(c).cow_flt, 0);
    mmput(p);
    assert_int_equal(U64(c, a + 5 * PAGE_SIZE), 13);
    vm_check_mm(c);
    mmput(c);
}

static void test_fork_of_fork(void **state)
{
    (void)state;
    struct mm_struct *a = mm_alloc();
    unsigned long x = filled(a, MAP_PRIVATE, 300);
    struct mm_struct *b = mm_fork(a);
    U64(b, x + PAGE_SIZE) = 1;
    struct mm_struct *c = mm_fork(b);
    U64(c, x + 2 * PAGE_SIZE) = 2;
    U64(a, x + 3 * PAGE_SIZE) = 3;
    assert_int_equal(U64(a, x + PAGE_SIZE), 301);
    assert_int_equal(U64(b, x + PAGE_SIZE), 1);
    assert_int_equal(U64(c, x + PAGE_SIZE), 1);
    assert_int_equal(U64(a, x + 2 * PAGE_SIZE), 302);
    assert_int_equal(U64(b, x + 2 * PAGE_SIZE), 302);
    assert_int_equal(U64(c, x + 2 * PAGE_SIZE), 2);
    assert_int_equal(U64(b, x + 3 * PAGE_SIZE), 303);
    assert_int_equal(U64(c, x + 3 * PAGE_SIZE), 303);
    mmput(b); /* the middle one goes */
    assert_int_equal(U64(a, x), 300);
    assert_int_equal(U64(c, x), 300);
    U64(c, x) = 9;
    assert_int_equal(U64(a, x), 300);
    vm_check_mm(a);
    vm_check_mm(c);
    mmput(a);
    assert_int_equal(U64(c, x + 3 * PAGE_SIZE), 303);
    mmput(c);
}

static void test_fork_keeps_zero_page_and_layout(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    (void)U64(p, a); /* zero page */
    unsigned long r = anon(p, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE);
    assert_int_equal(sys_brk(p, sys_brk(p, 0) + 3 * PAGE_SIZE),
                     VM_DEFAULT_BRK + 3 * PAGE_SIZE);
    struct mm_struct *c = mm_fork(p);
    assert_int_equal(count_vmas(c), count_vmas(p));
    assert_int_equal(sys_brk(c, 0), sys_brk(p, 0));
    assert_int_equal(stat_of(c).rss, 0);
    assert_int_equal(U64(c, a), 0);
    assert_int_equal(U64(c, r), 0);
    U64(c, a) = 5;
    assert_int_equal(U64(p, a), 0);
    vm_check_mm(c);
    mmput(c);
    mmput(p);
}

static void child_write_ro_after_fork(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 1);
    if (sys_mprotect(p, a, PAGE_SIZE, PROT_READ) != 0)
        _exit(3);
    struct mm_struct *c = mm_fork(p);
    U64(c, a + PAGE_SIZE) = 1; /* fine: COW */
    U64(c, a) = 1;             /* read-only vma: dies */
    _exit(4);
}

static void test_forked_mm_read_only_write_dies(void **state)
{
    (void)state;
    ktest_expect_death(child_write_ro_after_fork, NULL, SIGSEGV, "read-only");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_write_invisible_to_parent),
        cmocka_unit_test(test_parent_write_invisible_to_child),
        cmocka_unit_test(test_shared_visible_both_sides),
        cmocka_unit_test(test_fork_of_fork),
        cmocka_unit_test(test_fork_keeps_zero_page_and_layout),
        cmocka_unit_test(test_forked_mm_read_only_write_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
