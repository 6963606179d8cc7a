/*
 * tests/interpose/test_options.c — the options read from the environment
 * at start: KSLAB_STATS (stderr, a file, off), KSLAB_DEBUG (poison and red
 * zones on the kmalloc caches), KSLAB_LOWMEM_MB, and one warning for an
 * unknown or malformed option.  The program runs itself again with the
 * environment to test (argv[1] names what the child does), or a program
 * without kslab with libkslab-preload.so preloaded, and checks its stderr
 * and status.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "ktest.h"

static void *volatile sink;

/* Hides where a pointer came from (no bounds or dead-store reasoning). */
static __attribute__((noinline)) void *launder(void *p)
{
    sink = p;
    return sink;
}

static const char *self;

/* Runs `path mode` with extra environment entries; returns the wait
 * status and the child's stderr in err. */
static int run_prog(const char *path, const char *mode, const char *const *env,
                    char *err, size_t size)
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
        execl(path, path, mode, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(pfd[0], err + n, size - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    char sink[256];
    while (read(pfd[0], sink, sizeof sink) > 0)
        ;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

static int run_self(const char *mode, const char *const *env, char *err,
                    size_t size)
{
    return run_prog(self, mode, env, err, size);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static char err[1 << 16];

static void test_stats_to_stderr(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_STATS=1", NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_non_null(strstr(err, "slabinfo - version: 1.1"));
    assert_non_null(strstr(err, "size-4096"));
    assert_non_null(strstr(err, "large: "));
}

static void test_stats_off(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_STATS=0", NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(err, "");
}

static void test_stats_to_file(void **s)
{
    (void)s;
    char path[] = "/tmp/kslab-stats-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char envv[128];
    snprintf(envv, sizeof envv, "KSLAB_STATS=%s", path);
    const char *env[] = {envv, NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(err, "");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    unlink(path);
    assert_non_null(strstr(text, "slabinfo - version: 1.1"));
    assert_non_null(strstr(text, "large: "));
}

static void test_malformed_options_warn_once(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_STATS=maybe", "KSLAB_DEBUG=poison,bogus",
                         "KSLAB_FROBNICATE=1", NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(count(err, "KSLAB_STATS=maybe"), 1);
    assert_int_equal(count(err, "KSLAB_DEBUG=poison,bogus"), 1);
    assert_int_equal(count(err, "KSLAB_FROBNICATE"), 1);
    assert_int_equal(count(err, "\n"), 3);
}

/* KSLAB_LOWMEM_MB is an option of the one table: honoured (the statistics
 * show the reservation) and never called unknown. */
static void test_lowmem_mb_honoured_without_warning(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_LOWMEM_MB=256", "KSLAB_STATS=1", NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!strstr(err, "lowmem: 256 MiB reserved"))
        fail_msg("no reservation of 256 MiB in: %s", err);
    assert_null(strstr(err, "unknown option"));
    assert_null(strstr(err, "ignored"));
}

/* The same under LD_PRELOAD of libkslab-preload.so, into a program that
 * does not link kslab. */
static void test_preload_lowmem_mb_honoured_without_warning(void **s)
{
    (void)s;
    const char *env[] = {"LD_PRELOAD=" KSLAB_PRELOAD_SO, "KSLAB_LOWMEM_MB=128",
                         "KSLAB_STATS=1", NULL};
    int st = run_prog(PRELOAD_CHILD, "work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!strstr(err, "lowmem: 128 MiB reserved"))
        fail_msg("no reservation of 128 MiB in: %s", err);
    assert_null(strstr(err, "unknown option"));
    assert_null(strstr(err, "ignored"));
}

/* An unknown KSLAB_FOO under the preload: exactly one line, and the
 * known options are still read. */
static void test_preload_unknown_option_one_line(void **s)
{
    (void)s;
    const char *env[] = {"LD_PRELOAD=" KSLAB_PRELOAD_SO, "KSLAB_FOO=1",
                         "KSLAB_LOWMEM_MB=64", NULL};
    int st = run_prog(PRELOAD_CHILD, "work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(count(err, "KSLAB_FOO"), 1);
    assert_int_equal(count(err, "unknown option"), 1);
    assert_int_equal(count(err, "\n"), 1);
}

static void test_debug_redzone_catches_overflow(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_DEBUG=redzone", NULL};
    int st = run_self("overflow", env, err, sizeof err);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("status %#x; stderr: %s", st, err);
    assert_non_null(strstr(err, "kslab: "));
    /* Without the option the same overflow goes unnoticed. */
    const char *none[] = {NULL};
    st = run_self("overflow", none, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_debug_poison_fills_freed(void **s)
{
    (void)s;
    const char *env[] = {"KSLAB_DEBUG=poison,redzone", "KSLAB_STATS=1", NULL};
    int st = run_self("work", env, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_null(strstr(err, "ignored"));
}

/* The children. */
static int child_work(void)
{
    void *v[100];
    for (int i = 0; i < 100; i++)
        v[i] = malloc((size_t)i * 97 + 1);
    for (int i = 0; i < 100; i++)
        free(v[i]);
    free(malloc(4000));
    free(malloc(1 << 20));
    free(malloc(20 << 20));
    return 0;
}

/* Writes past the 64 bytes of a size-64 object, into its red zone; the
 * stores go through a laundered volatile pointer so that the compiler
 * cannot drop them as dead before free(). */
static int child_overflow(void)
{
    char *q = malloc(40);
    volatile char *p = launder(malloc(40));
    char *r = malloc(40);
    size_t n = 40;
    while (n < 64) /* past the object's usable size (size-64) */
        p[n++] = 'x';
    p[64] = 'x';
    free(q);
    free((char *)p);
    free(r);
    return 0;
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1 && !strcmp(argv[1], "work"))
        return child_work();
    if (argc > 1 && !strcmp(argv[1], "overflow"))
        return child_overflow();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_to_stderr),
        cmocka_unit_test(test_stats_off),
        cmocka_unit_test(test_stats_to_file),
        cmocka_unit_test(test_malformed_options_warn_once),
        cmocka_unit_test(test_lowmem_mb_honoured_without_warning),
        cmocka_unit_test(test_preload_lowmem_mb_honoured_without_warning),
        cmocka_unit_test(test_preload_unknown_option_one_line),
        cmocka_unit_test(test_debug_redzone_catches_overflow),
        cmocka_unit_test(test_debug_poison_fills_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
