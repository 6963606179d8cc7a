/*
 * run.c — kslab_run, the launcher bench/compare measures through:
 *
 *     kslab_run PRELOAD|- PROGRAM [ARGS...]
 *
 * runs PROGRAM with LD_PRELOAD=PRELOAD ("-": none) and prints, on stderr,
 * one line "kslab_run: status=S signal=N maxrss_kb=K wall_ns=T".  It exists
 * because a child's peak RSS (wait4's ru_maxrss) starts from the RSS of the
 * process that forked it — python's ~17 MiB would hide every small workload;
 * this launcher is a few hundred KiB.  It allocates nothing itself after
 * start-up and is never preloaded.  Exit status: the child's, or 128+signal.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kslab_run PRELOAD|- PROGRAM [ARGS...]\n");
        return 2;
    }
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("kslab_run: fork");
        return 2;
    }
    if (pid == 0) {
        if (strcmp(argv[1], "-") != 0)
            setenv("LD_PRELOAD", argv[1], 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[2], argv + 2);
        perror("kslab_run: exec");
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) {
        perror("kslab_run: wait4");
        return 2;
    }
    long long wall = now_ns() - t0;
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + sig;
    fprintf(stderr,
            "kslab_run: status=%d signal=%d maxrss_kb=%ld wall_ns=%lld\n",
            WIFEXITED(st) ? code : -1, sig, ru.ru_maxrss, wall);
    return code;
}
