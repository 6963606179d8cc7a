/*
 * tests/vm/test_uffd.c — the userfaultfd back end (vm/mm/uffd.c): private
 * anonymous 2 MiB ranges mapped whole ("linear"), so that scattered
 * resident memory is not limited by the host's vm.max_map_count, and
 * every change the SIGSEGV back end knows (fork's COW, munmap, mprotect,
 * swap-out, a host fork) still comes out right on such ranges.  Skipped
 * (77) where the back end is not in use (KSLAB_VM_BACKEND=sigsegv, a host
 * without userfaultfd, a sanitizer build).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "swaptest.h"

#define MB (1UL << 20)

static unsigned long map_rw(struct mm_struct *mm, unsigned long len)
{
    if (len > TASK_UNMAPPED_BASE) {
        /* more than the room above the mmap base: at 512 MiB, fixed */
        unsigned long a = anon(mm, 0x20000000UL, len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_FIXED);
        assert_int_equal(a, 0x20000000UL);
        return a;
    }
    /* 2 MiB aligned, so every pmd range of it can be linear */
    unsigned long a =
        anon(mm, 0, len + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    unsigned long b = (a + PMD_SIZE - 1) & PMD_MASK;
    if (b > a)
        assert_int_equal(do_munmap(mm, a, b - a), 0);
    if (b + len < a + len + PMD_SIZE)
        assert_int_equal(do_munmap(mm, b + len, a + PMD_SIZE - b), 0);
    return b;
}

static unsigned long val(unsigned long a, unsigned long tag)
{
    return (a * 0x9e3779b97f4a7c15UL) ^ tag;
}

/* Host VMAs of this process (lines of /proc/self/maps). */
static long host_vmas(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int setup(void **state)
{
    struct mm_struct *mm = mm_alloc();
    int on = mm && vm_uffd_enabled();
    mmput(mm);
    if (!on) {
        print_message("userfaultfd back end not in use: skipped\n");
        exit(KTEST_SKIP);
    }
    return swap_dir_setup(state);
}

/*
 * Every other page of 768 MiB written: 98304 resident pages scattered one
 * in two, half as many again as the host's default vm.max_map_count
 * (65530), where the page-by-page back end needs a host VMA per resident
 * page (and one per hole between), held in a few hundred host VMAs.  A
 * fixed count, not one read from /proc/sys/vm/max_map_count: the test is
 * the same on every host, and a host that raised the limit (a million on
 * some distributions) would make it hours of faults.  What one process can
 * hold (two mms of 2 GiB each, a million faults: minutes on a loaded
 * machine) is examples/vmfault_bench --maxmap's figure, not a test's.
 */
#define SCATTERED_PAGES 98304UL

static void test_scattered_beyond_max_map_count(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 2 * SCATTERED_PAGES * PAGE_SIZE, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 1);
    assert_int_equal(stat_of(mm).rss, SCATTERED_PAGES);
    assert_int_equal(mm->uffd_nr, len / PMD_SIZE);
    long v = host_vmas();
    assert_true(v > 0 && v < 10000);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE) {
        if (U64(mm, a + o) != val(a + o, 1))
            fail_msg("page %lx lost its value", a + o);
        if (o % (64 * PAGE_SIZE) == 0 && U64(mm, a + o + PAGE_SIZE))
            fail_msg("hole %lx does not read zero", a + o + PAGE_SIZE);
    }
    mmput(mm);
}

/* A read of a hole of a linear range: its own zeroed frame, counted. */
static void test_read_fault(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_rw(mm, 2 * MB);
    U64(mm, a) = 7; /* links the range */
    assert_int_equal(mm->uffd_nr, 1);
    assert_int_equal(U64(mm, a + 5 * PAGE_SIZE), 0);
    assert_int_equal(stat_of(mm).rss, 2);
    U64(mm, a + 5 * PAGE_SIZE) = 9;
    assert_int_equal(U64(mm, a + 5 * PAGE_SIZE), 9);
    assert_int_equal(stat_of(mm).rss, 2);
    mmput(mm);
}

/* mm_fork: COW on both sides, the parent's range made page by page. */
static void test_fork_cow(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 4 * MB, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 1);
    assert_int_equal(mm->uffd_nr, 2);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    for (unsigned long o = 0; o < len; o += 4 * PAGE_SIZE)
        U64(child, a + o) = val(a + o, 2);
    for (unsigned long o = 2 * PAGE_SIZE; o < len; o += 4 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 3);
    U64(mm, a + PAGE_SIZE) = 11;    /* a hole of the parent */
    U64(child, a + PAGE_SIZE) = 12; /* and of the child */
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE) {
        int mod = (o / (2 * PAGE_SIZE)) % 2;
        assert_int_equal(U64(mm, a + o), val(a + o, mod ? 3 : 1));
        assert_int_equal(U64(child, a + o), val(a + o, mod ? 1 : 2));
    }
    assert_int_equal(U64(mm, a + PAGE_SIZE), 11);
    assert_int_equal(U64(child, a + PAGE_SIZE), 12);
    assert_true(stat_of(child).cow_flt >= len / PAGE_SIZE / 4);
    mmput(child);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        assert_int_equal(U64(mm, a + o),
                         val(a + o, (o / (2 * PAGE_SIZE)) % 2 ? 3 : 1));
    mmput(mm);
}

/* munmap across the boundary of two linear ranges: the rest keeps its
 * bytes, the frames of the hole go back, and the gap maps afresh. */
static void test_munmap_across(void **state)
{
    (void)state;
    unsigned long free0 = vm_free_user_frames();
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 4 * MB, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 4);
    assert_int_equal(mm->uffd_nr, 2);
    unsigned long cut = a + PMD_SIZE - 16 * PAGE_SIZE;
    assert_int_equal(do_munmap(mm, cut, 32 * PAGE_SIZE), 0);
    assert_int_equal(mm->uffd_nr, 0);
    assert_int_equal(stat_of(mm).rss, len / PAGE_SIZE - 32);
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        if (a + o < cut || a + o >= cut + 32 * PAGE_SIZE)
            assert_int_equal(U64(mm, a + o), val(a + o, 4));
    unsigned long b = anon(mm, cut, 32 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(b, cut);
    assert_int_equal(U64(mm, cut + PAGE_SIZE), 0);
    mmput(mm);
    assert_int_equal(vm_free_user_frames(), free0);
}

/* mprotect read-only on part of a linear range: a write there is a
 * SIGSEGV (in a host fork's child), the bytes stay. */
static void test_mprotect(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_rw(mm, 2 * MB);
    for (unsigned long o = 0; o < 2 * MB; o += 2 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 5);
    assert_int_equal(mm->uffd_nr, 1);
    assert_int_equal(sys_mprotect(mm, a + MB, MB, PROT_READ), 0);
    for (unsigned long o = 0; o < 2 * MB; o += 2 * PAGE_SIZE)
        assert_int_equal(U64(mm, a + o), val(a + o, 5));
    U64(mm, a + PAGE_SIZE) = 1; /* still writable below */
    assert_int_equal(U64(mm, a + MB + PAGE_SIZE), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_default_segv();
        U64(mm, a + MB) = 1;
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    assert_int_equal(U64(mm, a + MB), val(a + MB, 5));
    mmput(mm);
}

/* Reclaim on linear ranges: pages swapped out and back keep their bytes,
 * and the ranges give their reserved frames back. */
static void test_swap(void **state)
{
    (void)state;
    swap_on("uffd", 4096, 0);
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 8 * MB, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 6);
    assert_int_equal(mm->uffd_nr, len / PMD_SIZE);
    vm_set_ram_pages(len / PAGE_SIZE / 4);
    assert_true(stat_of(mm).swap_out > 0);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        if (U64(mm, a + o) != val(a + o, 6))
            fail_msg("page %lx lost its value", a + o);
    mmput(mm);
}

/* The aging scan on a linear range, with no swap to write to: pages are
 * armed (host PROT_NONE) and stay, and an access to one is a reference
 * that maps it back. */
static void test_aging(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 4 * MB, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 10);
    assert_int_equal(mm->uffd_nr, len / PMD_SIZE);
    vm_set_ram_pages(vm_highmem.nr_frames - 1 - vm_free_user_frames());
    unsigned long armed = 0;
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        armed += (pte_val(pte_of(mm, a + o)) & _PAGE_OLD) != 0;
    assert_true(armed > 0);
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        if (U64(mm, a + o) != val(a + o, 10))
            fail_msg("page %lx lost its value", a + o);
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        assert_false(pte_val(pte_of(mm, a + o)) & _PAGE_OLD);
    vm_set_ram_pages(0);
    mmput(mm);
}

/* A host fork: the child sees the parent's bytes, its own writes and
 * fresh pages stay its own; the parent's holes still fault. */
static void test_host_fork(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long len = 4 * MB, a = map_rw(mm, len);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE)
        U64(mm, a + o) = val(a + o, 7);
    unsigned long rss = stat_of(mm).rss;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE) {
            bad += U64(mm, a + o) != val(a + o, 7);
            U64(mm, a + o) = val(a + o, 8);
            bad += U64(mm, a + o + PAGE_SIZE) != 0;
            U64(mm, a + o + PAGE_SIZE) = val(a + o, 9);
        }
        bad += stat_of(mm).rss != len / PAGE_SIZE;
        _exit(bad ? 1 : 0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(stat_of(mm).rss, rss);
    for (unsigned long o = 0; o < len; o += 2 * PAGE_SIZE) {
        assert_int_equal(U64(mm, a + o), val(a + o, 7));
        assert_int_equal(U64(mm, a + o + PAGE_SIZE), 0);
    }
    assert_int_equal(stat_of(mm).rss, len / PAGE_SIZE);
    mmput(mm);
}

/* A host fork while another thread writes fresh pages of linear ranges:
 * the fork's copy of user memory must not fill the ranges' holes (a
 * store there would no longer fault, and a later punch of the holes
 * would throw it away).  Every store survives any number of forks. */
struct fork_writer {
    struct mm_struct *mm;
    unsigned long a, len;
    volatile int done;
};

static void *fork_writer_main(void *arg)
{
    struct fork_writer *w = arg;
    for (unsigned long o = 0; o < w->len; o += PAGE_SIZE)
        U64(w->mm, w->a + o) = val(w->a + o, 11);
    w->done = 1;
    return NULL;
}

static void test_host_fork_beside_writer(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    for (int round = 0; round < 4; round++) {
        struct fork_writer w = {.mm = mm, .len = 32 * MB};
        w.a = map_rw(mm, w.len);
        U64(mm, w.a) = 1; /* the first range is linear before forking */
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, fork_writer_main, &w), 0);
        fflush(NULL);
        for (int i = 0; i < 200 && !w.done; i++) {
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            assert_true(pid > 0);
            assert_int_equal(waitpid(pid, NULL, 0), pid);
        }
        pthread_join(t, NULL);
        unsigned long lost = 0;
        for (unsigned long o = 0; o < w.len; o += PAGE_SIZE)
            lost += U64(mm, w.a + o) != val(w.a + o, 11);
        assert_int_equal(lost, 0);
        assert_int_equal(do_munmap(mm, w.a, w.len), 0);
    }
    mmput(mm);
}

/* The program's SIGBUS handler, installed after the back end's, gets the
 * SIGBUS of a page beyond the end of a file, while linear ranges keep
 * faulting in. */
static sigjmp_buf bus_env;
static volatile int bus_seen;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    bus_seen++;
    siglongjmp(bus_env, 1);
}

static void test_sigbus_chain(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
    unsigned long a = map_rw(mm, 2 * MB);
    U64(mm, a) = 1;
    U64(mm, a + MB) = 2;
    assert_int_equal(mm->uffd_nr, 1);
    int fd = tmp_file();
    assert_int_equal(ftruncate(fd, 100), 0);
    unsigned long f =
        do_mmap(mm, fd, 0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(f));
    if (!sigsetjmp(bus_env, 1))
        (void)U8(mm, f + PAGE_SIZE);
    assert_int_equal(bus_seen, 1);
    U64(mm, a + 3 * PAGE_SIZE) = 3;
    assert_int_equal(U64(mm, a + 3 * PAGE_SIZE) + U64(mm, a + MB), 5);
    assert_int_equal(sigaction(SIGBUS, &old, NULL), 0);
    close(fd);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_fault, fault_around_off,
                                        fault_around_restore),
        cmocka_unit_test(test_fork_cow),
        cmocka_unit_test(test_munmap_across),
        cmocka_unit_test(test_mprotect),
        swap_unit_test(test_swap),
        swap_unit_test(test_aging),
        cmocka_unit_test(test_host_fork),
        cmocka_unit_test(test_host_fork_beside_writer),
        cmocka_unit_test(test_sigbus_chain),
        cmocka_unit_test_setup_teardown(test_scattered_beyond_max_map_count,
                                        fault_around_off, fault_around_restore),
    };
    return cmocka_run_group_tests(tests, setup, swap_dir_teardown);
}
