/*
 * tests/ktest.h — helpers shared by the cmocka tests: cmocka's includes,
 * RSS from /proc/self/statm, and running a function in a forked child to
 * check that it dies with the expected signal and stderr line.
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
#include <sys/wait.h>

#include <cmocka.h>

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

/*
 * Runs fn(arg) in a forked child with stderr captured.  Returns the
 * child's wait status; the child's stderr (up to size-1 bytes) is in err.
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
    waitpid(pid, &status, 0);
    return status;
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

#endif /* KSLAB_TESTS_KTEST_H */
