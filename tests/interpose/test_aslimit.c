/*
 * tests/interpose/test_aslimit.c — malloc under an address-space limit
 * (ulimit -v, RLIMIT_AS), as glibc's malloc behaves there: low memory is
 * reserved as it is used, so a program may map most of the limit itself
 * and still malloc the rest; past the limit malloc returns NULL with errno
 * ENOMEM (no abort) and works again once blocks are freed, and the address
 * space of what was freed is the program's again: for malloc at once, for
 * its own mmap at once after huge blocks and within the decay time after
 * small ones.  Whether freed memory kslab keeps for reuse holds address
 * space must not decide any of it: that made the outcome depend on how
 * fast the machine filled memory against the decay time.  Runs
 * aslimit_child.c, linked with libkslab.so and under
 * LD_PRELOAD=libkslab-preload.so, with the limit set before exec.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "ktest.h"

/* Runs path with argv[1] = mode under a limit of limit bytes, preloading
 * preload when not NULL; returns its exit status or 100 + the signal. */
static const char *run_decay; /* KSLAB_DECAY_MS for the child, or NULL */

static int run(const char *path, const char *mode, unsigned long limit,
               const char *preload)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {limit, limit};
        if (setrlimit(RLIMIT_AS, &rl))
            _exit(126);
        unsetenv("KSLAB_LOWMEM_MB");
        if (run_decay)
            setenv("KSLAB_DECAY_MS", run_decay, 1);
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execl(path, path, mode, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

#define GIB (1UL << 30)

static void test_map_then_malloc_linked(void **s)
{
    (void)s;
    assert_int_equal(run(CHILD_LINKED, "map", 4 * GIB, NULL), 0);
}

static void test_map_then_malloc_preloaded(void **s)
{
    (void)s;
    assert_int_equal(run(CHILD_PLAIN, "map", 4 * GIB, KSLAB_PRELOAD_SO), 0);
}

static void test_past_the_limit_linked(void **s)
{
    (void)s;
    assert_int_equal(run(CHILD_LINKED, "exhaust", GIB / 2, NULL), 0);
}

static void test_past_the_limit_preloaded(void **s)
{
    (void)s;
    assert_int_equal(run(CHILD_PLAIN, "exhaust", GIB / 2, KSLAB_PRELOAD_SO), 0);
}

/* The same with a decay time far longer than the fill: freed memory kept
 * for reuse must not hold address space the limit counts (a huge block
 * freed before the fill would otherwise serve the 64 MiB block after it).
 * With the default decay the outcome hung on whether the fill outran it. */
static void test_past_the_limit_long_decay(void **s)
{
    (void)s;
    run_decay = "600000";
    int linked = run(CHILD_LINKED, "exhaust", GIB / 2, NULL);
    int preloaded = run(CHILD_PLAIN, "exhaust", GIB / 2, KSLAB_PRELOAD_SO);
    run_decay = NULL;
    assert_int_equal(linked, 0);
    assert_int_equal(preloaded, 0);
}

/* The same program with glibc's malloc: what the others match. */
static void test_glibc_does_the_same(void **s)
{
    (void)s;
    assert_int_equal(run(CHILD_PLAIN, "map", 4 * GIB, NULL), 0);
    assert_int_equal(run(CHILD_PLAIN, "exhaust", GIB / 2, NULL), 0);
}

/* Fill to the limit, free, then 256 MiB again (aslimit_child.c): by
 * malloc and by the program's own mmap, after blocks of 1000 bytes, 100
 * KiB and 3 MiB, each mode NULL-terminated list. */
static void check_again(const char *path, const char *preload,
                        const char *const *modes)
{
    for (; *modes; modes++) {
        int st = run(path, *modes, GIB, preload);
        if (st != 0)
            fail_msg("%s: exit %d", *modes, st);
    }
}

static void test_space_back_after_free_preloaded(void **s)
{
    (void)s;
    static const char *const all[] = {
        "refill-small", "refill-mid", "refill-huge", "map-small",
        "map-mid",      "map-huge",   NULL};
    check_again(CHILD_PLAIN, KSLAB_PRELOAD_SO, all);
}

/* Linked, the same code: one mode of each path. */
static void test_space_back_after_free_linked(void **s)
{
    (void)s;
    static const char *const some[] = {"refill-mid", "map-huge", NULL};
    check_again(CHILD_LINKED, NULL, some);
}

/* What glibc 2.36 does too.  Not map-small: once brk fails glibc's main
 * arena goes on in mmap'd chunks that free() never unmaps, so the
 * program's mmap fails after it as well. */
static void test_space_back_after_free_glibc(void **s)
{
    (void)s;
    static const char *const some[] = {"refill-mid", "refill-huge", "map-mid",
                                       "map-huge", NULL};
    check_again(CHILD_PLAIN, NULL, some);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glibc_does_the_same),
        cmocka_unit_test(test_map_then_malloc_linked),
        cmocka_unit_test(test_map_then_malloc_preloaded),
        cmocka_unit_test(test_past_the_limit_linked),
        cmocka_unit_test(test_past_the_limit_preloaded),
        cmocka_unit_test(test_past_the_limit_long_decay),
        cmocka_unit_test(test_space_back_after_free_glibc),
        cmocka_unit_test(test_space_back_after_free_linked),
        cmocka_unit_test(test_space_back_after_free_preloaded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
