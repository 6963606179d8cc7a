/*
 * tests/interpose/fork_quarantine.c — fork() while other threads free
 * through the quarantine (interpose/tool.c, under memcheck): the
 * quarantine's lock is in the one fork protocol (lib/fork.c, level
 * KSLAB_FORK_IP), so no child starts with it held by a thread that did not
 * come along.  Each child frees a block (into the quarantine) and exits;
 * a child that hangs is killed by its alarm, and the test fails.
 *
 * Run under valgrind by ctest (interpose_test_fork_quarantine); on its own,
 * or without valgrind's headers, it exits 77 (skipped).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#define THREADS 3
#define MAX_FORKS 60
#define MIN_FORKS 5
#define MAX_SECONDS 240
#define CHILD_ALARM 60

static atomic_int stop;
static atomic_long frees;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        void *p = malloc(48);
        if (!p)
            abort();
        memset(p, 1, 48);
        free(p);
        atomic_fetch_add(&frees, 1);
    }
    return NULL;
}

static void child(void)
{
    alarm(CHILD_ALARM);
    for (int i = 0; i < 4; i++) {
        void *p = malloc(48);
        if (!p)
            _exit(2);
        free(p); /* into the quarantine: takes its lock */
    }
    _exit(0);
}

int main(void)
{
#ifndef HAVE_VALGRIND
    fprintf(stderr, "fork_quarantine: no valgrind headers: skipped\n");
    return 77;
#else
    if (!RUNNING_ON_VALGRIND) {
        fprintf(stderr, "fork_quarantine: not under valgrind: skipped\n");
        return 77;
    }
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, churn, NULL))
            return 1;
    time_t start = time(NULL);
    int forks = 0, bad = 0;
    while (forks < MAX_FORKS && time(NULL) - start < MAX_SECONDS) {
        long before = atomic_load(&frees);
        while (atomic_load(&frees) < before + 50)
            sched_yield(); /* the threads are inside free again */
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            child();
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        forks++;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr,
                    "fork_quarantine: child %d of fork %d: %s %d (hung on "
                    "a lock held at fork?)\n",
                    (int)pid, forks, WIFSIGNALED(st) ? "signal" : "status",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            bad++;
            break;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (bad)
        return 1;
    if (forks < MIN_FORKS) {
        fprintf(stderr, "fork_quarantine: only %d forks\n", forks);
        return 1;
    }
    printf("fork_quarantine: %d forks, %ld frees in the threads\n", forks,
           atomic_load(&frees));
    return 0;
#endif
}
