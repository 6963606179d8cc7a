/*
 * tests/lib/test_options.c — the one options table (lib/options.c) in a
 * program that links only kslab_core: the options are read by start-up
 * itself (no interposer), KSLAB_LOWMEM_MB sizes the direct map, an
 * unknown KSLAB_* variable or a malformed value gives exactly one warning
 * line, and every option of the table has its row in README.md.
 * The program runs itself again with the environment to test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <limits.h>
#include <sys/wait.h>
#include <time.h>

#include "ktest.h"
#include "lib/options.h"
#include "vm/frames/page.h"
#include "slab/kmalloc.h"

static const char *self;
static char err[1 << 14];

/* Runs `self mode` with extra environment entries; the wait status, and
 * the child's stderr in err. */
static int run_self(const char *mode, const char *const *env)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        unsetenv("KSLAB_STATS");
        unsetenv("KSLAB_DEBUG");
        unsetenv("KSLAB_LOWMEM_MB");
        for (; *env; env++)
            putenv((char *)*env);
        alarm(30);
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof err &&
           (r = read(pfd[0], err + n, sizeof err - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* The child: allocates, then exits with the direct map's size in MiB / 32
 * (below 8 GiB), or 255 for a larger one (the default is 64 GiB). */
static int child_lowmem(void)
{
    kfree(kmalloc(100, GFP_KERNEL));
    unsigned long mb = vm_lowmem.reserved_pages >> (20 - PAGE_SHIFT);
    return mb / 32 < 255 ? (int)(mb / 32) : 255;
}

static void test_lowmem_mb_sizes_the_direct_map(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_LOWMEM_MB=256", NULL};
    int st = run_self("lowmem", env);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 256 / 32);
    assert_string_equal(err, "");
}

/* The child of KSLAB_DECAY_MS=never: frees 12 MiB (enough for the
 * background purge to start when there is a decay), sleeps past the
 * default decay and exits with the number of threads it has (1: no
 * background purge was started) — 100 + it when the decay is not off. */
static int child_no_decay(void)
{
    enum { N = 192 };
    static unsigned long b[N];
    for (int i = 0; i < N; i++)
        b[i] = __get_free_pages(GFP_KERNEL, 4);
    for (int i = 0; i < N; i++)
        free_pages(b[i], 4);
    kfree(kmalloc(100, GFP_KERNEL));
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    int threads = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8))
            threads = atoi(line + 8);
    if (f)
        fclose(f);
    return vm_purge_decay_ms == ULONG_MAX ? threads : 100 + threads;
}

static void test_decay_never_starts_no_thread(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_DECAY_MS=never", NULL};
    int st = run_self("nodecay", env);
    assert_true(WIFEXITED(st));
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer's own background thread may be there */
    assert_true(WEXITSTATUS(st) >= 1 && WEXITSTATUS(st) <= 2);
#else
    assert_int_equal(WEXITSTATUS(st), 1);
#endif
    assert_string_equal(err, "");
    /* a decay longer than the child lives: the 12 MiB all wait at once,
     * however slow the machine, and start the background purge */
    const char *env2[] = {"KSLAB_DECAY_MS=20000", NULL};
    st = run_self("nodecay", env2);
    assert_true(WIFEXITED(st));
    assert_true(WEXITSTATUS(st) >= 102); /* (a sanitizer adds threads) */
}

static void test_unknown_option_one_line(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_FOO=1", "KSLAB_LOWMEM_MB=128", NULL};
    int st = run_self("lowmem", env);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 128 / 32); /* the rest still read */
    assert_int_equal(count(err, "\n"), 1);
    assert_int_equal(count(err, "KSLAB_FOO"), 1);
    assert_non_null(strstr(err, "unknown option"));
}

static void test_malformed_value_one_line(void **s)
{
    (void)s;
    const char *cases[] = {
        "KSLAB_LOWMEM_MB=12",       "KSLAB_LOWMEM_MB=abc",
        "KSLAB_LOWMEM_MB=",         "KSLAB_LOWMEM_MB=99999999999",
        "KSLAB_DEBUG=poison,bogus", "KSLAB_STATS=maybe"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i], NULL};
        int st = run_self("lowmem", env);
        assert_true(WIFEXITED(st));
        if (count(err, "\n") != 1 || count(err, cases[i]) != 1)
            fail_msg("%s: stderr: %s", cases[i], err);
        /* ignored: the default reservation (64 GiB, or less under a
         * limit), not the malformed value */
        assert_true(WEXITSTATUS(st) != 0);
    }
}

/* One row per option in the README's options table. */
static void test_every_option_documented(void **s)
{
    (void)s;
    static char text[1 << 16];
    FILE *f = fopen(KSLAB_SOURCE_DIR "/README.md", "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    for (size_t i = 0; i < kslab_nr_options; i++) {
        char row[64];
        snprintf(row, sizeof row, "| `%s` |", kslab_option_table[i].name);
        if (count(text, row) != 1)
            fail_msg("README.md: %zu rows \"%s\"", count(text, row), row);
    }
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1 && !strcmp(argv[1], "lowmem"))
        return child_lowmem();
    if (argc > 1 && !strcmp(argv[1], "nodecay"))
        return child_no_decay();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowmem_mb_sizes_the_direct_map),
        cmocka_unit_test(test_decay_never_starts_no_thread),
        cmocka_unit_test(test_unknown_option_one_line),
        cmocka_unit_test(test_malformed_value_one_line),
        cmocka_unit_test(test_every_option_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
