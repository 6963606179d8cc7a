/*
 * tests/ktest.h — the helpers every cmocka test shares: cmocka's includes,
 * RSS from /proc/self/statm, the thread count from /proc/self/stat,
 * running a function (or this program again) in a forked child with its
 * stderr captured, checking that it dies with the expected signal and
 * stderr line, and checks that work in worker threads.
 */
#ifndef KSLAB_TESTS_KTEST_H
#define KSLAB_TESTS_KTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>

#include <cmocka.h>

/* The exit status of a test program that cannot run here: ctest shows it
 * as skipped (SKIP_RETURN_CODE, set for every test by kslab_add_test). */
#define KTEST_SKIP 77

/*
 * Skips that ctest sees.  cmocka's skip() alone is a pass to ctest (the
 * program exits 0), so a test that cannot run here calls ktest_skip(why)
 * instead, and its program lists it apart from the others, in ktest_main's
 * alone array as ktest_alone(fn).  kslab_add_test (tests/CMakeLists.txt)
 * makes each ktest_alone(fn) of a source its own ctest entry,
 * <test>.<fn>, which runs "program --only fn" and exits KTEST_SKIP when fn
 * skipped; the program's own entry runs the rest.  A ktest_skip among the
 * rest makes the whole program exit KTEST_SKIP: shown skipped, never
 * passed.  tools/lint.sh refuses a bare skip() under tests/.
 */
static int ktest_skipped;

#define ktest_skip(why)                                                        \
    do {                                                                       \
        print_message("[  SKIPPED ] %s\n", (why));                             \
        ktest_skipped++;                                                       \
        skip();                                                                \
    } while (0)

#define ktest_alone(f) cmocka_unit_test(f)

/* cmocka's count of failed tests, or KTEST_SKIP if none failed and one
 * skipped. */
static inline int ktest_finish(int failed)
{
    if (failed)
        return failed;
    return ktest_skipped ? KTEST_SKIP : 0;
}

/* cmocka_run_group_tests for a program without an alone array. */
#define ktest_run_group(tests, setup, teardown)                                \
    ktest_finish(cmocka_run_group_tests(tests, setup, teardown))

/* Runs tests, or with "--only fn" the one test fn of alone. */
#define ktest_main(argc, argv, tests, alone, setup, teardown)                  \
    ktest_main_at(argc, argv, #tests, tests,                                   \
                  sizeof(tests) / sizeof((tests)[0]), alone,                   \
                  sizeof(alone) / sizeof((alone)[0]), setup, teardown)

static inline int ktest_main_at(int argc, char **argv, const char *name,
                                const struct CMUnitTest *tests, size_t n,
                                const struct CMUnitTest *alone, size_t nalone,
                                CMFixtureFunction setup,
                                CMFixtureFunction teardown)
{
    if (argc < 3 || strcmp(argv[1], "--only") != 0)
        return ktest_finish(
            _cmocka_run_group_tests(name, tests, n, setup, teardown));
    for (size_t i = 0; i < nalone; i++)
        if (strcmp(alone[i].name, argv[2]) == 0)
            return ktest_finish(_cmocka_run_group_tests(argv[2], &alone[i], 1,
                                                        setup, teardown));
    fprintf(stderr, "%s: no test %s among those run alone\n", argv[0], argv[2]);
    return 1;
}

/* Resident set size of this process in bytes. */
static inline size_t ktest_rss(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Threads of this process now (/proc/self/stat field 20, num_threads),
 * or -1.  The comm field (2) may hold spaces and parentheses: the fields
 * after it are counted from its last ')'. */
static inline int ktest_threads(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    for (int field = 2; p && *p; p++)
        if (*p == ' ' && ++field == 20)
            return atoi(p + 1);
    return -1;
}

/*
 * The one child-stderr capture: runs fn(arg) in a forked child whose
 * stderr goes to a pipe.  Returns the child's wait status; its stderr (up
 * to size-1 bytes, the rest read and dropped) is in err.  fn may exec
 * (ktest_exec_self) or return (the child then exits 0).
 */
static inline int ktest_run_child(void (*fn)(void *), void *arg, char *err,
                                  size_t size)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        close(pfd[1]);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
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
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

/* What ktest_exec_self runs: this program again with argv[1] = mode, after
 * unsetting every KSLAB_* option and putting the entries of env (NULL
 * ended; may be NULL). */
struct ktest_exec {
    const char *self;
    const char *mode;
    const char *const *env;
};

static inline void ktest_exec_self(void *arg)
{
    const struct ktest_exec *x = arg;
    unsetenv("KSLAB_STATS");
    unsetenv("KSLAB_DEBUG");
    unsetenv("KSLAB_LOWMEM_MB");
    for (const char *const *e = x->env; e && *e; e++)
        putenv((char *)*e);
    execl(x->self, x->self, x->mode, (char *)NULL);
    _exit(127);
}

/* Asserts the child died of sig and its stderr contains needle. */
#define ktest_expect_death(fn, arg, sig, needle)                               \
    do {                                                                       \
        char _err[4096];                                                       \
        int _st = ktest_run_child(fn, arg, _err, sizeof _err);                 \
        if (!WIFSIGNALED(_st) || WTERMSIG(_st) != (sig))                       \
            fail_msg("child status %#x, expected signal %d; stderr: %s", _st,  \
                     (sig), _err);                                             \
        if (!strstr(_err, (needle)))                                           \
            fail_msg("stderr lacks \"%s\": %s", (needle), _err);               \
    } while (0)

/* Fails unless the child (wait status st, stderr err) died of sig after
 * exactly one line "kslab: ..." that contains needle; what names the case
 * in the failure message. */
static inline void ktest_assert_one_line(const char *what, int st,
                                         const char *err, int sig,
                                         const char *needle)
{
    if (!WIFSIGNALED(st) || WTERMSIG(st) != sig)
        fail_msg("%s: child status %#x, expected signal %d; stderr: %s", what,
                 st, sig, err);
    const char *nl = strchr(err, '\n');
    if (strncmp(err, "kslab: ", 7) != 0 || !nl || nl[1] != 0)
        fail_msg("%s: stderr is not one \"kslab: \" line: %s", what, err);
    if (!strstr(err, needle))
        fail_msg("%s: stderr lacks \"%s\": %s", what, needle, err);
}

/*
 * Checks in worker threads.  cmocka's assert_* and fail_msg long-jump to
 * the test's frame, which only the thread running the test has: a thread
 * function uses ktest_check / ktest_fail instead.  In a worker they record
 * the first failure and end the thread (pthread_exit); in the test's own
 * thread (a helper shared by both) they fail the test at once.  After
 * joining its workers the test calls ktest_workers_ok(), which fails the
 * test with the first recorded failure.
 */
static pthread_mutex_t ktest_wlock = PTHREAD_MUTEX_INITIALIZER;
static char ktest_wmsg[512];
static int ktest_wfailures;

static inline int ktest_in_main_thread(void)
{
    return syscall(SYS_gettid) == getpid();
}

__attribute__((format(printf, 3, 4))) static inline void
ktest_fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ktest_in_main_thread())
        fail_msg("%s:%d: %s", file, line, msg);
    pthread_mutex_lock(&ktest_wlock);
    if (ktest_wfailures++ == 0)
        snprintf(ktest_wmsg, sizeof ktest_wmsg, "%s:%d: %s", file, line, msg);
    pthread_mutex_unlock(&ktest_wlock);
    pthread_exit(NULL);
}

#define ktest_fail(...) ktest_fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define ktest_check(cond)                                                      \
    do {                                                                       \
        if (!(cond))                                                           \
            ktest_fail("%s", #cond);                                           \
    } while (0)

/* In the test's thread, after joining the workers. */
static inline void ktest_workers_ok(void)
{
    pthread_mutex_lock(&ktest_wlock);
    int n = ktest_wfailures;
    ktest_wfailures = 0;
    pthread_mutex_unlock(&ktest_wlock);
    if (n)
        fail_msg("%d worker thread(s) failed; first: %s", n, ktest_wmsg);
}

#endif /* KSLAB_TESTS_KTEST_H */
