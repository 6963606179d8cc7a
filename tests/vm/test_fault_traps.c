/*
 * tests/vm/test_fault_traps.c — an emulated fault costs one host fault
 * trap, no more: the SIGSEGV that starts it.  The retried access finds the
 * host pte filled (an anonymous write fault whose page was premapped gets
 * it populated after the mprotect), and a COW break does not trap on the
 * fresh frame's kmap.  Traps are counted with perf's software page-fault
 * event (where a CPU fault enters the kernel); the test is skipped where
 * perf events or MADV_POPULATE_WRITE (Linux 5.14) are not available, and
 * in sanitizer builds.
 */
#include <linux/perf_event.h>
#include <sys/syscall.h>

#include "vmtest.h"

#define PAGES 256

static int counter = -1;

static long traps(void)
{
    long long n = 0;
    if (read(counter, &n, sizeof n) != sizeof n)
        return -1;
    return (long)n;
}

/* Under ASan or TSan the test's own accesses fault in shadow memory, and
 * those traps would be counted too. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static int setup(void **state)
{
    (void)state;
#ifdef SANITIZED
    fprintf(stderr, "sanitizer shadow faults would be counted: skipped\n");
    exit(KTEST_SKIP);
#endif
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_PAGE_FAULTS;
    counter = (int)syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
    char *p = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int populate = madvise(p, PAGE_SIZE, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(p, PAGE_SIZE);
    if (counter < 0 || !populate) {
        fprintf(stderr, "no perf events or no MADV_POPULATE_WRITE: skipped\n");
        exit(KTEST_SKIP);
    }
    return 0;
}

static void test_anonymous_write_fault_traps_once(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    volatile char *p = mm_host(mm, a);
    p[0] = 1; /* the first fault maps its page alone */
    long t = traps();
    for (int i = 1; i < PAGES; i++)
        p[(long)i * PAGE_SIZE] = (char)i;
    t = traps() - t;
    assert_int_equal(stat_of(mm).rss, PAGES);
    /* one trap per fault (without the populate, two) */
    assert_true(t >= PAGES - 1);
    assert_true(t < (PAGES - 1) + PAGES / 4);
    for (int i = 1; i < PAGES; i++)
        assert_int_equal(p[(long)i * PAGE_SIZE], (char)i);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_cow_break_traps_once(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (int i = 0; i < PAGES; i++)
        U8(mm, a + (unsigned long)i * PAGE_SIZE) = (unsigned char)i;
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    volatile unsigned char *c = mm_host(child, a);
    long t = traps();
    for (int i = 0; i < PAGES; i++)
        c[(long)i * PAGE_SIZE] = (unsigned char)(c[(long)i * PAGE_SIZE] + 1);
    t = traps() - t;
    assert_int_equal(stat_of(child).cow_flt, PAGES);
    /* one trap per COW break (without the populate of the new frame,
     * two); reading the old frames through the kmap traps once per 16
     * pages or so (the host's fault-around) */
    assert_true(t >= PAGES);
    assert_true(t < PAGES + PAGES / 4);
    for (int i = 0; i < PAGES; i++) {
        assert_int_equal(c[(long)i * PAGE_SIZE], (unsigned char)(i + 1));
        assert_int_equal(U8(mm, a + (unsigned long)i * PAGE_SIZE),
                         (unsigned char)i);
    }
    mmput(child);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_anonymous_write_fault_traps_once,
                                        fault_around_off, fault_around_restore),
        cmocka_unit_test(test_cow_break_traps_once),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
