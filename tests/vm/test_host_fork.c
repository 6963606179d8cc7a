/*
 * tests/vm/test_host_fork.c — a host fork() leaves the parent's and the
 * child's emulated memory as independent as their ordinary memory: a
 * child's writes to its copy of an mm, its fresh pages and its swapping
 * never show in the parent, the parent's writes after the fork never show
 * in the child, and fresh pages of either side never hold the other's
 * bytes.  Also prints the time of a host fork() with 64 MiB of emulated
 * memory resident.
 */
#include <sys/wait.h>
#include <time.h>

#include "swaptest.h"

#define NP 64
#define FRESH 256

static unsigned long pval(unsigned long i)
{
    return 0x5041524e54000000UL | i; /* "PARNT" */
}

static unsigned long cval(unsigned long i)
{
    return 0x4348494c44000000UL | i; /* "CHILD" */
}

static unsigned long map_rw(struct mm_struct *mm, unsigned long pages)
{
    unsigned long a =
        anon(mm, 0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    return a;
}

/* A fresh page written at word 0 must read zero everywhere else. */
static int fresh_pages_clean(struct mm_struct *mm, unsigned long pages,
                             unsigned long mark)
{
    unsigned long f = map_rw(mm, pages);
    int bad = 0;
    for (unsigned long i = 0; i < pages; i++) {
        unsigned long a = f + i * PAGE_SIZE;
        U64(mm, a) = mark + i;
        for (unsigned long w = 8; w < PAGE_SIZE; w += 512)
            if (U64(mm, a + w))
                bad++;
        if (U64(mm, a + PAGE_SIZE - 8))
            bad++;
    }
    return bad;
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_child_writes_and_fresh_pages_stay_in_child(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_rw(mm, NP);
    for (unsigned long i = 0; i < NP; i++)
        U64(mm, a + i * PAGE_SIZE) = pval(i);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_default_segv();
        int bad = 0;
        for (unsigned long i = 0; i < NP; i++)
            bad += U64(mm, a + i * PAGE_SIZE) != pval(i);
        /* the child writes its copy and fills fresh pages, over and over,
         * so its allocator hands out whatever frames it has */
        for (unsigned long i = 0; i < NP; i++)
            U64(mm, a + i * PAGE_SIZE) = cval(i);
        unsigned long f = map_rw(mm, FRESH);
        for (unsigned long i = 0; i < FRESH; i++)
            for (unsigned long w = 0; w < PAGE_SIZE; w += 8)
                U64(mm, f + i * PAGE_SIZE + w) = cval(i);
        char c;
        /* wait until the parent wrote its pages after the fork */
        if (read(go[0], &c, 1) != 1)
            bad++;
        for (unsigned long i = 0; i < NP; i++)
            bad += U64(mm, a + i * PAGE_SIZE) != cval(i);
        bad += fresh_pages_clean(mm, FRESH, 1) != 0;
        _exit(bad ? 1 : 0);
    }
    for (unsigned long i = NP / 2; i < NP; i++)
        U64(mm, a + i * PAGE_SIZE) = pval(i) + 1;
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(wait_child(pid), 0);
    for (unsigned long i = 0; i < NP; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE),
                         i < NP / 2 ? pval(i) : pval(i) + 1);
    /* the frames the child wrote are free again here: fresh pages must
     * not show the child's bytes */
    assert_int_equal(fresh_pages_clean(mm, 2 * FRESH, 7), 0);
    vm_check_mm(mm);
    close(go[0]);
    close(go[1]);
    mmput(mm);
}

/* Swap too is the child's own: its swap-ins, writes and swap-outs reuse
 * slots in its copy of the swap map, never the parent's data. */
static void test_child_swapping_leaves_parent_swap_intact(void **state)
{
    (void)state;
    const char *sw = swap_on("hostfork", 4096, 0);
    vm_set_ram_pages(256);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 1024, a = map_rw(mm, n);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 11);
    assert_true(count_swapped(mm, a, n) > n / 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_default_segv();
        int bad = 0;
        for (int round = 0; round < 2; round++)
            for (unsigned long i = 0; i < n; i++) {
                bad += !page_ok(mm, a, i, 11 + (unsigned long)round * 22);
                fill_page(mm, a, i, 33);
            }
        _exit(bad ? 1 : 0);
    }
    assert_int_equal(wait_child(pid), 0);
    for (unsigned long i = 0; i < n; i++)
        if (!page_ok(mm, a, i, 11))
            fail_msg("page %lu of %lu changed by the child", i, n);
    vm_check_swap();
    mmput(mm);
    assert_int_equal(sys_swapoff(sw), 0);
    vm_set_ram_pages(0);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The cost: a host fork() of a process with 64 MiB of emulated memory
 * resident, against one with none (printed, not asserted). */
static void test_host_fork_cost_64mib(void **state)
{
    (void)state;
    double base = 1e9, with = 1e9;
    for (int k = 0; k < 5; k++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        double ms = ms_since(&t0);
        wait_child(pid);
        base = ms < base ? ms : base;
    }
    struct mm_struct *mm = mm_alloc();
    unsigned long pages = (64UL << 20) >> PAGE_SHIFT, a = map_rw(mm, pages);
    for (unsigned long i = 0; i < pages; i++)
        U64(mm, a + i * PAGE_SIZE) = i;
    for (int k = 0; k < 5; k++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0) {
            child_default_segv();
            _exit(U64(mm, a + 5 * PAGE_SIZE) == 5 ? 0 : 1);
        }
        double ms = ms_since(&t0);
        assert_int_equal(wait_child(pid), 0);
        with = ms < with ? ms : with;
    }
    printf("host fork(): %.2f ms with 64 MiB of emulated memory resident, "
           "%.2f ms without (best of 5)\n",
           with, base);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_writes_and_fresh_pages_stay_in_child),
        cmocka_unit_test(test_child_swapping_leaves_parent_swap_intact),
        cmocka_unit_test(test_host_fork_cost_64mib),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
