/*
 * tests/vm/test_sigbus.c — SIGBUS as Linux delivers it: an access to a
 * page of a file mapping wholly beyond the end of the file (also once the
 * file shrank with ftruncate) reaches the program's SIGBUS handler with
 * si_code BUS_ADRERR and si_addr the faulting address; with no handler, or
 * with SIGBUS blocked or ignored, the process dies of SIGBUS.  A partial
 * last page reads zeros past the end and is no error.
 */
#include "swaptest.h"

#include "bustest.h"

#define RW (PROT_READ | PROT_WRITE)

static int make_file(unsigned long bytes)
{
    int fd = tmp_file();
    for (unsigned long off = 0; off < bytes; off += 8) {
        unsigned long w = off / 8 + 1;
        assert_int_equal(pwrite(fd, &w, 8, (off_t)off), 8);
    }
    return fd;
}

static void test_sigbus_after_ftruncate(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = make_file(4 * PAGE_SIZE);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    assert_false(bus_on_access(mm, a + 8, 0));
    assert_int_equal(U64(mm, a + 8), 2);
    assert_int_equal(ftruncate(fd, PAGE_SIZE + 100), 0);
    /* page 1 is partly inside: zeros after the end */
    assert_false(bus_on_access(mm, a + PAGE_SIZE + 8, 0));
    assert_int_equal(U64(mm, a + PAGE_SIZE + 8), PAGE_SIZE / 8 + 2);
    assert_int_equal(U64(mm, a + PAGE_SIZE + 200), 0);
    /* pages 2 and 3 are wholly beyond it: reads and writes */
    assert_true(bus_on_access(mm, a + 2 * PAGE_SIZE + 16, 0));
    assert_true(bus_on_access(mm, a + 3 * PAGE_SIZE, 1));
    assert_int_equal(stat_of(mm).rss, 2);
    /* the file grows again: the page is there, and zero */
    assert_int_equal(ftruncate(fd, 4 * PAGE_SIZE), 0);
    assert_false(bus_on_access(mm, a + 2 * PAGE_SIZE + 16, 0));
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE + 16), 0);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

static void test_sigbus_private_and_cached_page(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = make_file(2 * PAGE_SIZE);
    struct mm_struct *mm = mm_alloc(), *other = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, 0);
    /* a page that was cached (another mm read it) before the file shrank:
     * the cache does not keep it alive */
    unsigned long b =
        do_mmap(other, fd, 0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    assert_int_equal(U64(other, b + PAGE_SIZE), PAGE_SIZE / 8 + 1);
    assert_int_equal(do_munmap(other, b, 2 * PAGE_SIZE), 0);
    assert_int_equal(ftruncate(fd, PAGE_SIZE), 0);
    assert_true(bus_on_access(mm, a + PAGE_SIZE, 0));
    assert_true(bus_on_access(mm, a + PAGE_SIZE + 64, 1));
    assert_false(bus_on_access(mm, a, 1));
    mmput(other);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

/* The death tests: no handler, a blocked SIGBUS, an ignored SIGBUS. */
static void touch_truncated(void *arg)
{
    int how = (int)(long)arg;
    child_default_segv();
    signal(SIGBUS, how == 2 ? SIG_IGN : SIG_DFL);
    if (how == 1) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGBUS);
        sigprocmask(SIG_BLOCK, &set, NULL);
    }
    int fd = make_file(2 * PAGE_SIZE);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    if (U64(mm, a) != 1)
        _exit(3);
    if (ftruncate(fd, PAGE_SIZE) != 0)
        _exit(4);
    (void)U64(mm, a + PAGE_SIZE);
    _exit(5);
}

static void test_sigbus_kills_without_handler(void **state)
{
    (void)state;
    ktest_expect_death(touch_truncated, (void *)0L, SIGBUS, "bus error");
    ktest_expect_death(touch_truncated, (void *)1L, SIGBUS, "bus error");
    ktest_expect_death(touch_truncated, (void *)2L, SIGBUS, "bus error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigbus_after_ftruncate),
        cmocka_unit_test(test_sigbus_private_and_cached_page),
        cmocka_unit_test(test_sigbus_kills_without_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
