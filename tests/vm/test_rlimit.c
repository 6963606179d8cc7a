/*
 * tests/vm/test_rlimit.c — mm_setrlimit: each of RLIMIT_AS, RLIMIT_DATA,
 * RLIMIT_STACK and RLIMIT_MEMLOCK is enforced by the calls that grow an
 * mm, with Linux's errors, and not below the limit; the defaults; mm_fork
 * copies the limits; bad arguments are rejected with nothing changed.
 */
#include "vmtest.h"

#define P PAGE_SIZE
#define RW (PROT_READ | PROT_WRITE)

static void test_defaults(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm->rlim[RLIMIT_STACK], 8UL << 20);
    assert_int_equal(mm->rlim[RLIMIT_MEMLOCK], 8UL << 20);
    assert_int_equal(mm->rlim[RLIMIT_AS], RLIM_INFINITY);
    assert_int_equal(mm->rlim[RLIMIT_DATA], RLIM_INFINITY);
    /* 8 MiB may be locked, not one page more */
    unsigned long a = anon(mm, 0, (8UL << 20) + P, RW, MAP_PRIVATE);
    assert_int_equal(sys_mlock(mm, a, 8UL << 20), 0);
    assert_int_equal(sys_mlock(mm, a + (8UL << 20), P), -ENOMEM);
    mmput(mm);
}

static void test_as_limit(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_AS, 16 * P), 0);
    unsigned long a = anon(mm, 0, 12 * P, RW, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    /* up to the limit exactly: allowed */
    unsigned long b = anon(mm, 0, 4 * P, PROT_READ, MAP_SHARED);
    assert_false(IS_ERR_VALUE(b));
    assert_int_equal(anon(mm, 0, P, PROT_READ, MAP_PRIVATE),
                     (unsigned long)-ENOMEM);
    /* MAP_FIXED over what is there gives it back first */
    assert_int_equal(anon(mm, a, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED), a);
    assert_int_equal(
        anon(mm, 0x70000000UL, P, PROT_READ, MAP_PRIVATE | MAP_FIXED),
        (unsigned long)-ENOMEM);
    /* brk */
    unsigned long brk = sys_brk(mm, 0);
    assert_int_equal(sys_brk(mm, brk + P), brk);
    assert_int_equal(do_brk(mm, brk, P), (unsigned long)-ENOMEM);
    /* room again after an munmap */
    assert_int_equal(do_munmap(mm, b, 4 * P), 0);
    assert_int_equal(sys_brk(mm, brk + 2 * P), brk + 2 * P);
    assert_int_equal(do_brk(mm, 0x70000000UL, 2 * P), 0x70000000UL);
    assert_int_equal(do_brk(mm, 0x70010000UL, P), (unsigned long)-ENOMEM);
    /* a stack does not grow past it either */
    assert_int_equal(do_munmap(mm, 0x70000000UL, 2 * P), 0);
    unsigned long s = anon(mm, 0x80000000UL - P, P, RW,
                           MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED);
    assert_int_equal(s, 0x80000000UL - P);
    unsigned char c = 1;
    assert_int_equal(copy_to_user(mm, s - P, &c, 1), 0);
    assert_int_equal(copy_to_user(mm, s - 2 * P, &c, 1), 1);
    assert_int_equal(find_vma(mm, s - 2 * P)->vm_start, s - P);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_data_limit(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_DATA, 8 * P), 0);
    unsigned long brk = sys_brk(mm, 0);
    /* brk: the old break when the new one would pass the limit */
    assert_int_equal(sys_brk(mm, brk + 9 * P), brk);
    assert_int_equal(sys_brk(mm, brk + 8 * P), brk + 8 * P);
    assert_int_equal(sys_brk(mm, brk + 8 * P + 1), brk + 8 * P);
    /* private writable mappings count as data (current Linux) */
    assert_int_equal(anon(mm, 0, P, RW, MAP_PRIVATE), (unsigned long)-ENOMEM);
    assert_int_equal(do_brk(mm, 0x70000000UL, P), (unsigned long)-ENOMEM);
    /* read-only, shared and stack mappings do not */
    assert_false(IS_ERR_VALUE(anon(mm, 0, 16 * P, PROT_READ, MAP_PRIVATE)));
    assert_false(IS_ERR_VALUE(anon(mm, 0, 16 * P, RW, MAP_SHARED)));
    assert_false(IS_ERR_VALUE(anon(mm, 0x80000000UL - 16 * P, 16 * P, RW,
                                   MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED)));
    /* shrinking the break makes room for a private mapping */
    assert_int_equal(sys_brk(mm, brk + 4 * P), brk + 4 * P);
    assert_false(IS_ERR_VALUE(anon(mm, 0, 4 * P, RW, MAP_PRIVATE)));
    assert_int_equal(anon(mm, 0, P, RW, MAP_PRIVATE), (unsigned long)-ENOMEM);
    /* a limit lowered below the break: brk checks the new break against
     * it first (check_data_rlimit), so even a shrink that stays beyond it
     * fails, and one to within it works */
    assert_int_equal(mm_setrlimit(mm, RLIMIT_DATA, 2 * P), 0);
    assert_int_equal(sys_brk(mm, brk + 3 * P), brk + 4 * P);
    assert_int_equal(sys_brk(mm, brk + 2 * P), brk + 2 * P);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_stack_limit(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, 4 * P), 0);
    unsigned long s = anon(mm, 0x80000000UL - P, P, RW,
                           MAP_PRIVATE | MAP_GROWSDOWN | MAP_FIXED);
    unsigned char c = 1;
    assert_int_equal(copy_to_user(mm, s - 3 * P, &c, 1), 0);
    assert_int_equal(copy_to_user(mm, s - 4 * P, &c, 1), 1);
    /* raised: it grows on */
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, 5 * P), 0);
    assert_int_equal(copy_to_user(mm, s - 4 * P, &c, 1), 0);
    assert_int_equal(find_vma(mm, 0)->vm_start, s - 4 * P);
    mmput(mm);
}

static void test_memlock_limit(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_MEMLOCK, 4 * P), 0);
    unsigned long a = anon(mm, 0, 16 * P, RW, MAP_PRIVATE);
    assert_int_equal(sys_mlock(mm, a, 4 * P), 0);
    assert_int_equal(sys_mlock(mm, a + 4 * P, P), -ENOMEM);
    assert_false(find_vma(mm, a + 4 * P)->vm_flags & VM_LOCKED);
    /* pages already locked are not counted twice */
    assert_int_equal(sys_mlock(mm, a, 4 * P), 0);
    assert_int_equal(sys_mlock(mm, a + 2 * P, 2 * P), 0);
    /* MAP_LOCKED past the limit: -EAGAIN */
    assert_int_equal(anon(mm, 0, P, RW, MAP_PRIVATE | MAP_LOCKED),
                     (unsigned long)-EAGAIN);
    assert_int_equal(sys_munlock(mm, a, 2 * P), 0);
    assert_int_equal(sys_mlock(mm, a + 8 * P, 2 * P), 0);
    assert_int_equal(sys_mlock(mm, a + 12 * P, P), -ENOMEM);
    /* a limit of 0: no locking at all (no capabilities) */
    assert_int_equal(mm_setrlimit(mm, RLIMIT_MEMLOCK, 0), 0);
    assert_int_equal(sys_mlock(mm, a + 12 * P, P), -EPERM);
    assert_int_equal(anon(mm, 0, P, RW, MAP_PRIVATE | MAP_LOCKED),
                     (unsigned long)-EPERM);
    /* munlock is never limited */
    assert_int_equal(sys_munlock(mm, a, 16 * P), 0);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_MEMLOCK, RLIM_INFINITY), 0);
    assert_int_equal(sys_mlock(mm, a, 16 * P), 0);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_fork_copies_limits(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    assert_int_equal(mm_setrlimit(mm, RLIMIT_AS, 8 * P), 0);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_DATA, 6 * P), 0);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_STACK, 3 * P), 0);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_MEMLOCK, 2 * P), 0);
    unsigned long a = anon(mm, 0, 4 * P, RW, MAP_PRIVATE);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    assert_int_equal(child->rlim[RLIMIT_AS], 8 * P);
    assert_int_equal(child->rlim[RLIMIT_DATA], 6 * P);
    assert_int_equal(child->rlim[RLIMIT_STACK], 3 * P);
    assert_int_equal(child->rlim[RLIMIT_MEMLOCK], 2 * P);
    /* and enforces them */
    assert_int_equal(anon(child, 0, 5 * P, PROT_READ, MAP_PRIVATE),
                     (unsigned long)-ENOMEM);
    assert_int_equal(anon(child, 0, 3 * P, RW, MAP_PRIVATE),
                     (unsigned long)-ENOMEM); /* RLIMIT_DATA */
    assert_int_equal(sys_mlock(child, a, 3 * P), -ENOMEM);
    /* the child's own changes stay its own */
    assert_int_equal(mm_setrlimit(child, RLIMIT_AS, RLIM_INFINITY), 0);
    assert_int_equal(mm->rlim[RLIMIT_AS], 8 * P);
    mmput(child);
    mmput(mm);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long before[RLIM_NLIMITS];
    memcpy(before, mm->rlim, sizeof before);
    assert_int_equal(mm_setrlimit(NULL, RLIMIT_AS, P), -EINVAL);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_NOFILE, P), -EINVAL);
    assert_int_equal(mm_setrlimit(mm, RLIMIT_CPU, P), -EINVAL);
    assert_int_equal(mm_setrlimit(mm, -1, P), -EINVAL);
    assert_int_equal(mm_setrlimit(mm, RLIM_NLIMITS, P), -EINVAL);
    assert_int_equal(mm_setrlimit(mm, 1 << 20, P), -EINVAL);
    assert_memory_equal(before, mm->rlim, sizeof before);
    /* nothing is limited that was not */
    assert_false(IS_ERR_VALUE(anon(mm, 0, 64 * P, RW, MAP_PRIVATE)));
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_as_limit),
        cmocka_unit_test(test_data_limit),
        cmocka_unit_test(test_stack_limit),
        cmocka_unit_test(test_memlock_limit),
        cmocka_unit_test(test_fork_copies_limits),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
