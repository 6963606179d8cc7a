/*
 * tests/vm/test_bad_input.c — the address-space API given NULL or a
 * length that rounds past the end of the address space returns an error
 * and changes nothing: do_mmap, do_munmap, do_brk, mm_fork, mm_get_stat,
 * vm_meminfo, find_vma, sys_brk, mm_dump_maps and handle_mm_fault with
 * NULL (kmem_cache_alloc with NULL: tests/misuse/test_slab.c); mm_alloc
 * past the last window (errno ENOMEM); sys_mprotect, do_brk, sys_mlock,
 * sys_munlock with a length near SIZE_MAX (-ENOMEM, where 2.4's PAGE_ALIGN
 * wrapped to 0 and reported success).
 */
#include <stdint.h>

#include "vmtest.h"

static void test_null_mm_is_einval(void **state)
{
    (void)state;
    assert_int_equal((long)do_mmap(NULL, -1, 0, PAGE_SIZE, PROT_READ,
                                   MAP_PRIVATE | MAP_ANONYMOUS, 0),
                     -EINVAL);
    assert_int_equal(do_munmap(NULL, 0, PAGE_SIZE), -EINVAL);
    assert_int_equal((long)do_brk(NULL, VM_DEFAULT_BRK, PAGE_SIZE), -EINVAL);
    assert_int_equal(sys_mprotect(NULL, 0, PAGE_SIZE, PROT_READ), -EINVAL);
    assert_int_equal(sys_mlock(NULL, 0, PAGE_SIZE), -EINVAL);
    errno = 0;
    assert_null(mm_fork(NULL));
    assert_int_equal(errno, EINVAL);
    struct mm_stat st;
    memset(&st, 0xff, sizeof st);
    mm_get_stat(NULL, &st);
    assert_int_equal(st.rss, 0);
    assert_true(vm_meminfo(NULL) < 0);
    assert_null(find_vma(NULL, 0));
    struct vm_area_struct *prev = (void *)1;
    assert_null(find_vma_prev(NULL, 0, &prev));
    assert_int_equal((long)sys_brk(NULL, 0), -EINVAL);
    assert_int_equal(mm_dump_maps(NULL, stderr), -EINVAL);
    assert_int_equal(handle_mm_fault(NULL, NULL, 0, 0), 0);
}

static void test_length_near_size_max_is_enomem(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(mm, a) = 1;
    assert_int_equal(sys_mprotect(mm, a, SIZE_MAX, PROT_READ), -ENOMEM);
    assert_int_equal(sys_mprotect(mm, a, SIZE_MAX - 100, PROT_READ), -ENOMEM);
    assert_int_equal((long)do_brk(mm, VM_DEFAULT_BRK, SIZE_MAX), -ENOMEM);
    assert_int_equal(sys_mlock(mm, a, SIZE_MAX), -ENOMEM);
    assert_int_equal(sys_mlock(mm, a + 8, SIZE_MAX - 8), -ENOMEM);
    assert_int_equal(sys_munlock(mm, a, SIZE_MAX), -ENOMEM);
    /* nothing changed: still writable, still one vma */
    U64(mm, a) = 2;
    assert_int_equal(U64(mm, a), 2);
    assert_int_equal(count_vmas(mm), 1);
    vm_check_mm(mm);
    mmput(mm);
}

static struct mm_struct *many[5000];

static void test_mm_alloc_past_the_limit_sets_enomem(void **state)
{
    (void)state;
    int n = 0;
    errno = 0;
    while (n < 5000 && (many[n] = mm_alloc()))
        n++;
    assert_true(n < 5000);
    assert_int_equal(errno, ENOMEM);
    while (n--)
        mmput(many[n]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_mm_is_einval),
        cmocka_unit_test(test_length_near_size_max_is_enomem),
        cmocka_unit_test(test_mm_alloc_past_the_limit_sets_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
