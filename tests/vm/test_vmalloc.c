/*
 * tests/vm/test_vmalloc.c — vmalloc: data integrity over a large area,
 * vmalloc_to_page (the kernel page-table walk) giving one distinct
 * high-memory frame per page and the same one for every byte of a page,
 * a guard page after each area, vfree giving the frames back, and bad
 * input refused.
 */
#include "vmtest.h"

#include <sys/wait.h>

static void test_vmalloc_data_integrity(void **state)
{
    (void)state;
    size_t n = 1000; /* not a power of two */
    unsigned long *p = vmalloc(n * PAGE_SIZE);
    assert_non_null(p);
    size_t words = n * PAGE_SIZE / sizeof *p;
    for (size_t i = 0; i < words; i++)
        p[i] = i * 2654435761UL;
    unsigned long *q = vmalloc(3 * PAGE_SIZE + 1);
    assert_non_null(q);
    memset(q, 0xab, 4 * PAGE_SIZE);
    for (size_t i = 0; i < words; i++)
        if (p[i] != i * 2654435761UL)
            fail_msg("word %zu changed", i);
    /* the frames hold the data: read them through the kernel map */
    for (size_t pg = 0; pg < n; pg += 97) {
        struct page *page = vmalloc_to_page((char *)p + pg * PAGE_SIZE);
        assert_non_null(page);
        unsigned long *k = vm_kmap(page);
        assert_int_equal(k[0], (pg * PAGE_SIZE / sizeof *p) * 2654435761UL);
    }
    vfree(q);
    vfree(p);
}

static void test_vmalloc_to_page_distinct_per_page(void **state)
{
    (void)state;
    size_t n = 300;
    char *p = vmalloc(n * PAGE_SIZE);
    assert_non_null(p);
    struct page **pages = calloc(n, sizeof *pages);
    for (size_t i = 0; i < n; i++) {
        pages[i] = vmalloc_to_page(p + i * PAGE_SIZE);
        assert_non_null(pages[i]);
        assert_ptr_equal(vmalloc_to_page(p + i * PAGE_SIZE + PAGE_SIZE - 1),
                         pages[i]);
        assert_true(PageFlag(pages[i], PG_highmem));
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(pages[j], pages[i]);
    }
    assert_null(vmalloc_to_page(p + n * PAGE_SIZE)); /* the guard page */
    assert_null(vmalloc_to_page(&n));                /* not vmalloc */
    free(pages);
    vfree(p);
    assert_null(vmalloc_to_page(p));
}

static void test_guard_page_between_areas(void **state)
{
    (void)state;
    char *a = vmalloc(2 * PAGE_SIZE);
    char *b = vmalloc(PAGE_SIZE);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(b >= a + 3 * PAGE_SIZE || a >= b + 2 * PAGE_SIZE);
    char *guard = (b > a ? a + 2 * PAGE_SIZE : b + PAGE_SIZE);
    pid_t pid = fork();
    if (pid == 0) {
        child_default_segv();
        guard[0] = 1; /* must fault */
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    vfree(b);
    vfree(a);
}

static void test_vfree_gives_frames_back(void **state)
{
    (void)state;
    unsigned long before = vm_free_user_frames();
    void *p = vmalloc(64 * PAGE_SIZE);
    assert_non_null(p);
    assert_int_equal(vm_free_user_frames(), before - 64);
    vfree(p);
    assert_int_equal(vm_free_user_frames(), before);
    vfree(NULL);
}

static void test_vmalloc_bad_input(void **state)
{
    (void)state;
    errno = 0;
    assert_null(vmalloc(0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(vmalloc(1UL << 40));
    assert_int_equal(errno, ENOMEM);
    /* more than user memory holds, with no swap: refused, nothing kept */
    vm_set_ram_pages(256);
    unsigned long before = vm_free_user_frames();
    assert_null(vmalloc(512 * PAGE_SIZE));
    assert_int_equal(vm_free_user_frames(), before);
}

static void bad_vfree(void *arg)
{
    vfree((char *)arg + PAGE_SIZE);
}

static void test_vfree_of_a_bad_pointer_dies(void **state)
{
    (void)state;
    char *p = vmalloc(2 * PAGE_SIZE);
    char err[256];
    int st = ktest_run_child(bad_vfree, p, err, sizeof err);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(err, "vfree(): bad address"));
    vfree(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vmalloc_data_integrity),
        cmocka_unit_test(test_vmalloc_to_page_distinct_per_page),
        cmocka_unit_test(test_guard_page_between_areas),
        cmocka_unit_test(test_vfree_gives_frames_back),
        cmocka_unit_test_teardown(test_vmalloc_bad_input, vm_ram_teardown),
        cmocka_unit_test(test_vfree_of_a_bad_pointer_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
