/*
 * tests/programs/fork_threads.c — a multi-threaded program that forks while
 * its threads allocate; each child allocates, checks and frees memory of
 * every size class and exits; the parent goes on allocating.  Prints a
 * summary that does not depend on timing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    void *keep[128] = {0};
    while (!atomic_load(&stop)) {
        int k = rand_r(&seed) % 128;
        free(keep[k]);
        size_t n = rand_r(&seed) % 2000 + 1;
        if (k == 0)
            n = 200000 + rand_r(&seed) % 3000000;
        keep[k] = malloc(n);
        memset(keep[k], k, n < 64 ? n : 64);
    }
    for (int k = 0; k < 128; k++)
        free(keep[k]);
    return NULL;
}

static int child(int round)
{
    unsigned long sum = 0;
    for (size_t n = 1; n < (8u << 20); n = n * 2 + round % 3) {
        unsigned char *p = malloc(n);
        if (!p)
            return 2;
        memset(p, 7, n);
        sum += p[n - 1];
        free(p);
    }
    char *s = NULL;
    for (int i = 0; i < 1000; i++) {
        char *t = realloc(s, (size_t)i * 37 + 1);
        if (!t)
            break;
        s = t;
        s[i * 37] = 1;
    }
    free(s);
    return sum ? 0 : 3;
}

int main(void)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, worker, (void *)(size_t)(i + 1));
    int ok = 0;
    for (int round = 0; round < 30; round++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            exit(child(round));
        int st;
        waitpid(pid, &st, 0);
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        free(malloc(1000 + round));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("children ok: %d of 30\n", ok);
    return ok == 30 ? 0 : 1;
}
