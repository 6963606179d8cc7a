/*
 * tests/interpose/test_headers.c — the public headers: PAGE_SIZE and
 * friends next to the system's own definitions (headers_sys_first.c,
 * headers_kslab_first.c, headers_cxx.cc: a "redefined" warning fails the
 * build), <kslab/vm.h> without <kslab/slab.h> (headers_alone.c), and the
 * public fields of struct vm_area_struct as find_vma() gives them.
 */
#include <sys/mman.h>

#include <kslab/kslab.h>

#include "ktest.h"

unsigned long headers_sys_first_page_mask(void);
unsigned long headers_kslab_first_page_mask(void);
unsigned long headers_cxx_page_size(void);
int headers_alone_gfp(void);

static void test_same_values_everywhere(void **s)
{
    (void)s;
    assert_int_equal(PAGE_SIZE, 4096);
    assert_int_equal(PAGE_MASK, ~4095UL);
    unsigned long expect = PAGE_MASK + PAGE_SIZE + 0x8000;
    assert_int_equal(headers_sys_first_page_mask(), expect);
    assert_int_equal(headers_kslab_first_page_mask(), expect);
    assert_int_equal(headers_cxx_page_size(), 4096);
    assert_int_equal(headers_alone_gfp(), GFP_HIGHUSER);
    /* 2.4's values */
    assert_int_equal(GFP_KERNEL, 0x87);
    assert_int_equal(GFP_ATOMIC, 0x02);
    assert_int_equal(GFP_DMA, 0x08);
}

static void test_vma_public_fields(void **s)
{
    (void)s;
    struct mm_struct *mm = mm_alloc();
    assert_non_null(mm);
    unsigned long a = do_mmap(mm, -1, 0, 2 * PAGE_SIZE, PROT_READ,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    assert_false(IS_ERR_VALUE(a));
    struct vm_area_struct *v = find_vma(mm, a + PAGE_SIZE);
    assert_non_null(v);
    assert_ptr_equal(v->vm_mm, mm);
    assert_int_equal(v->vm_start, a);
    assert_int_equal(v->vm_end, a + 2 * PAGE_SIZE);
    assert_int_equal(v->vm_flags & (VM_READ | VM_WRITE), VM_READ);
    assert_int_equal(v->vm_pgoff, 0);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_values_everywhere),
        cmocka_unit_test(test_vma_public_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
