/*
 * tests/interpose/test_threadless.c — no thread in a process that does not
 * need one, and memory given back when it is asked for: a program that
 * does not link kslab runs with libkslab-preload.so preloaded
 * (threadless_child.c) and checks its own thread count and RSS.  A short
 * program keeps one thread, before and after the decay time; a program
 * that frees 200 MiB and sleeps gets its RSS back within seconds (the
 * background purge then starts); malloc_trim(0) gives a freed heap back at
 * once with KSLAB_DECAY_MS=never.
 */
#include "ktest.h"

static char err[4096];

static void run(const char *mode, const char *decay)
{
    const char *env[] = {"LD_PRELOAD=" KSLAB_PRELOAD_SO, decay, NULL};
    struct ktest_exec x = {THREADLESS_CHILD, mode, env};
    int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child `%s' (%s): status %#x, stderr: %s", mode, decay, st,
                 err);
}

static void test_a_short_program_has_one_thread(void **state)
{
    (void)state;
    run("small", "KSLAB_DECAY_MS=1000");
}

static void test_a_big_free_then_sleep_gives_rss_back(void **state)
{
    (void)state;
    run("big", "KSLAB_DECAY_MS=1000");
}

static void test_malloc_trim_gives_back_now_with_decay_never(void **state)
{
    (void)state;
    run("trim", "KSLAB_DECAY_MS=never");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_short_program_has_one_thread),
        cmocka_unit_test(test_a_big_free_then_sleep_gives_rss_back),
        cmocka_unit_test(test_malloc_trim_gives_back_now_with_decay_never),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
