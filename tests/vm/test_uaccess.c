/*
 * tests/vm/test_uaccess.c — copy_to_user / copy_from_user /
 * get_user_pages / make_pages_present: emulated memory handed to code
 * that must not fault (the host kernel in a system call).  Copies fault
 * pages in, break COW, stop at the first page the mm does not allow and
 * report the bytes not copied; after get_user_pages, read(2) and write(2)
 * on window addresses work where they failed with EFAULT before, and
 * keep working while the pages are pinned, whatever reclaim and mm_fork
 * do meanwhile.
 */
#include "swaptest.h"

static void test_copy_to_and_from_fresh_pages(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    char src[3 * 4096], dst[3 * 4096];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)(i * 7 + 1);
    assert_int_equal(copy_to_user(mm, a + 100, src, sizeof src), 0);
    assert_int_equal(U8(mm, a + 100), (unsigned char)src[0]);
    assert_int_equal(U8(mm, a + 100 + 5000), (unsigned char)src[5000]);
    assert_int_equal(copy_from_user(mm, dst, a + 100, sizeof dst), 0);
    assert_memory_equal(src, dst, sizeof src);
    /* a never touched page reads as zero */
    memset(dst, 1, 16);
    assert_int_equal(copy_from_user(mm, dst, a + 3 * PAGE_SIZE + 200, 16), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(dst[i], 0);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_copy_stops_at_forbidden_page(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    unsigned long r = anon(mm, a + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ,
                           MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(r, a + 2 * PAGE_SIZE);
    char buf[3 * 4096] = {0};
    /* 100 bytes before the read-only page are copied, the rest are not */
    assert_int_equal(copy_to_user(mm, a + 2 * PAGE_SIZE - 100, buf, 300), 200);
    assert_int_equal(copy_from_user(mm, buf, a + 2 * PAGE_SIZE - 100, 300), 0);
    /* past the last vma nothing can be read */
    assert_int_equal(copy_from_user(mm, buf, a + 3 * PAGE_SIZE - 10, 20), 10);
    assert_int_equal(copy_to_user(NULL, a, buf, 5), 5);
    assert_int_equal(copy_to_user(mm, TASK_SIZE - 2, buf, 5), 5);
    mmput(mm);
}

static void test_copy_to_user_breaks_cow(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(p, a) = 111;
    struct mm_struct *c = mm_fork(p);
    unsigned long v = 222;
    assert_int_equal(copy_to_user(c, a, &v, sizeof v), 0);
    assert_int_equal(U64(c, a), 222);
    assert_int_equal(U64(p, a), 111);
    mmput(c);
    mmput(p);
}

static void test_syscalls_after_get_user_pages(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "hello", 5), 5);
    /* not present: the kernel does not fault into kslab */
    assert_int_equal(read(fds[0], mm_host(mm, a), 5), -1);
    assert_int_equal(errno, EFAULT);
    struct page *pages[2];
    assert_int_equal(get_user_pages(mm, a, 2, 1, pages), 2);
    assert_int_equal(read(fds[0], mm_host(mm, a), 5), 5);
    assert_memory_equal(mm_host(mm, a), "hello", 5);
    unpin_user_pages(pages, 2);
    assert_int_equal(make_pages_present(mm, a, a + 2 * PAGE_SIZE), 0);
    assert_int_equal(write(fds[1], mm_host(mm, a), 5), 5);
    assert_int_equal(get_user_pages(mm, a + 8 * PAGE_SIZE, 1, 0, NULL),
                     -EFAULT);
    close(fds[0]);
    close(fds[1]);
    mmput(mm);
}

/* Pages the aging scan armed (present, _PAGE_OLD: inaccessible on the
 * host until their next fault) are mapped back by get_user_pages: the
 * host kernel's access to them then works.  Without swap, reclaim can
 * only arm them. */
static void test_get_user_pages_maps_armed_pages(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (int i = 0; i < 8; i++)
        memset(mm_host(mm, a + (unsigned long)i * PAGE_SIZE), 'a' + i,
               PAGE_SIZE);
    try_to_free_pages(64);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* armed: the kernel's read of the window fails */
    assert_int_equal(write(fds[1], mm_host(mm, a), PAGE_SIZE), -1);
    assert_int_equal(errno, EFAULT);
    struct page *pages[8];
    assert_int_equal(get_user_pages(mm, a, 8, 0, pages), 8);
    char buf[PAGE_SIZE];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(write(fds[1],
                               mm_host(mm, a + (unsigned long)i * PAGE_SIZE),
                               PAGE_SIZE),
                         PAGE_SIZE);
        assert_int_equal(read(fds[0], buf, PAGE_SIZE), PAGE_SIZE);
        assert_int_equal(buf[0], 'a' + i);
        assert_int_equal(buf[PAGE_SIZE - 1], 'a' + i);
    }
    unpin_user_pages(pages, 8);
    close(fds[0]);
    close(fds[1]);
    mmput(mm);
}

/* A system call into pinned pages works after reclaim ran over the mm:
 * the pinned pages are neither armed nor swapped out, the others are;
 * once unpinned they go too. */
static void test_pinned_pages_survive_reclaim(void **state)
{
    (void)state;
    enum { N = 64 };
    swap_on("pin", 4 * N, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, N * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < N; i++)
        fill_page(mm, a, i, 7);
    struct page *pages[2];
    assert_int_equal(get_user_pages(mm, a, 2, 1, pages), 2);
    /* two laps of the clock: arm, then evict */
    try_to_free_pages(4 * N);
    try_to_free_pages(4 * N);
    assert_true(count_swapped(mm, a + 2 * PAGE_SIZE, N - 2) > 0);
    assert_int_equal(count_swapped(mm, a, 2), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "pinned", 6), 6);
    assert_int_equal(read(fds[0], mm_host(mm, a + 100), 6), 6);
    assert_int_equal(write(fds[1], mm_host(mm, a + PAGE_SIZE), 64), 64);
    assert_memory_equal(mm_host(mm, a + 100), "pinned", 6);
    unpin_user_pages(pages, 2);
    try_to_free_pages(4 * N);
    try_to_free_pages(4 * N);
    assert_int_equal(count_swapped(mm, a, 2), 2);
    char back[6];
    assert_int_equal(copy_from_user(mm, back, a + 100, 6), 0);
    assert_memory_equal(back, "pinned", 6);
    for (unsigned long i = 2; i < N; i++)
        assert_true(page_ok(mm, a, i, 7));
    vm_check_mm(mm);
    mmput(mm);
    close(fds[0]);
    close(fds[1]);
}

/* mm_fork while a page is pinned: the parent's window stays writable (a
 * read(2) into it still works), the child has its own copy of the
 * contents at fork time, and later stores on either side stay apart. */
static void test_fork_copies_pinned_page(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(p, a) = 1;
    U64(p, a + PAGE_SIZE) = 2;
    struct page *pg;
    assert_int_equal(get_user_pages(p, a, 1, 1, &pg), 1);
    struct mm_struct *c = mm_fork(p);
    assert_non_null(c);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "parent!!", 8), 8);
    assert_int_equal(read(fds[0], mm_host(p, a), 8), 8);
    assert_memory_equal(mm_host(p, a), "parent!!", 8);
    assert_int_equal(U64(c, a), 1);
    U64(c, a) = 3;
    assert_memory_equal(mm_host(p, a), "parent!!", 8);
    /* the unpinned page is shared COW as usual */
    assert_int_equal(U64(c, a + PAGE_SIZE), 2);
    unpin_user_page(pg);
    U64(p, a + PAGE_SIZE) = 4;
    assert_int_equal(U64(c, a + PAGE_SIZE), 2);
    vm_check_mm(p);
    vm_check_mm(c);
    mmput(c);
    mmput(p);
    close(fds[0]);
    close(fds[1]);
}

/* A write fault on a pinned page whose other reference is its pte keeps
 * the page (no copy behind the pin's back). */
static void test_write_fault_keeps_pinned_page(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    U64(mm, a) = 5;
    struct page *pg;
    assert_int_equal(get_user_pages(mm, a, 1, 0, &pg), 1);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
    U64(mm, a) = 6;
    assert_ptr_equal(pte_page(pte_of(mm, a)), pg);
    assert_int_equal(((unsigned long *)vm_kmap(pg))[0], 6);
    unpin_user_page(pg);
    mmput(mm);
}

static void test_unpin_twice_dies(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        struct mm_struct *mm = mm_alloc();
        unsigned long a =
            anon(mm, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
        struct page *pg;
        if (get_user_pages(mm, a, 1, 1, &pg) != 1)
            _exit(3);
        unpin_user_page(pg);
        unpin_user_page(pg);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_to_and_from_fresh_pages),
        cmocka_unit_test(test_copy_stops_at_forbidden_page),
        cmocka_unit_test(test_copy_to_user_breaks_cow),
        cmocka_unit_test(test_syscalls_after_get_user_pages),
        cmocka_unit_test(test_get_user_pages_maps_armed_pages),
        swap_unit_test(test_pinned_pages_survive_reclaim),
        cmocka_unit_test(test_fork_copies_pinned_page),
        cmocka_unit_test(test_write_fault_keeps_pinned_page),
        cmocka_unit_test(test_unpin_twice_dies),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
