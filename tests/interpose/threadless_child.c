/*
 * tests/interpose/threadless_child.c — a program that does not link kslab,
 * run by test_threadless.c with libkslab-preload.so preloaded.  argv[1]
 * says what it does; it checks its own thread count and RSS
 * (/proc/self/stat, /proc/self/statm) and exits 0 when all held, else
 * prints the first failure on stderr and exits 1.
 *   small  the work of a short program (a script, ls): thousands of small
 *          blocks and a few large ones, freed, again after a while; one
 *          thread all along.
 *   big    frees 200 MiB of 1000-byte blocks and sleeps: RSS falls within
 *          10 s, and only then is there a second thread (the background
 *          purge, which such a program needs).
 *   trim   (KSLAB_DECAY_MS=never) malloc_trim(0) gives a freed heap back
 *          at once, with no thread.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ktest.h"

#define MiB (1UL << 20)

static int failed(const char *what, long a, long b)
{
    fprintf(stderr, "threadless_child: %s (%ld, %ld)\n", what, a, b);
    return 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A short program's allocations: 4000 blocks of 16 B ... 4 KiB, 8 of
 * 64 KiB ... 1 MiB, most freed (about 3 MiB in all). */
static void small_work(void)
{
    enum { N = 4000, B = 8 };
    static void *v[N], *b[B];
    for (int i = 0; i < N; i++) {
        size_t n = 16UL << (i % 9);
        v[i] = malloc(n);
        if (v[i])
            memset(v[i], i, n);
    }
    for (int i = 0; i < B; i++) {
        b[i] = malloc((64UL << 10) << (i % 5));
        if (b[i])
            memset(b[i], i, 4096);
    }
    for (int i = 0; i < N; i++)
        if (i % 10)
            free(v[i]);
    for (int i = 0; i < B; i++)
        free(b[i]);
}

static int run_small(void)
{
    if (ktest_threads() != 1)
        return failed("threads at start", ktest_threads(), 1);
    small_work();
    if (ktest_threads() != 1)
        return failed("threads after the work", ktest_threads(), 1);
    sleep_ms(1500); /* past the decay time: a thread would have started */
    small_work();
    if (ktest_threads() != 1)
        return failed("threads after a while", ktest_threads(), 1);
    return 0;
}

enum { BIG_N = 200 * 1024 * 1024 / 1000 };
static char *big[BIG_N];

static int run_big(void)
{
    int before = ktest_threads();
    for (int i = 0; i < BIG_N; i++) {
        big[i] = malloc(1000);
        if (!big[i])
            return failed("malloc", i, 0);
        memset(big[i], 1, 1000);
    }
    long high = (long)ktest_rss();
    int during = ktest_threads();
    for (int i = 0; i < BIG_N; i++)
        free(big[i]);
    if (before != 1 || during != 1)
        return failed("threads before the free", before, during);
    long rss = high;
    int most = 1;
    for (int t = 0; t < 200 && rss > high - (long)(150 * MiB); t++) {
        sleep_ms(50); /* no allocator call */
        rss = (long)ktest_rss();
        if (ktest_threads() > most)
            most = ktest_threads();
    }
    if (rss > high - (long)(150 * MiB))
        return failed("RSS did not fall within 10 s (KiB)", rss >> 10,
                      high >> 10);
    if (most < 2)
        return failed("no background purge gave it back", most, 2);
    return 0;
}

static int run_trim(void)
{
    enum { N = 64 * 1024, L = 256 };
    static void *v[N], *l[L];
    for (int i = 0; i < N; i++) {
        v[i] = malloc(1000);
        if (!v[i])
            return failed("malloc", i, 0);
        memset(v[i], 2, 1000);
    }
    for (int i = 0; i < L; i++) { /* 100 KiB: runs of frames */
        l[i] = malloc(100 << 10);
        if (!l[i])
            return failed("malloc", i, 0);
        memset(l[i], 3, 100 << 10);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
    for (int i = 0; i < L; i++)
        free(l[i]);
    long high = (long)ktest_rss();
    sleep_ms(300);
    if ((long)ktest_rss() < high - (long)(16 * MiB))
        return failed("RSS fell with KSLAB_DECAY_MS=never", high >> 10,
                      (long)ktest_rss() >> 10);
    int r = malloc_trim(0);
    long low = (long)ktest_rss();
    if (r != 1)
        return failed("malloc_trim(0) returned", r, 1);
    if (low > high - (long)(64 * MiB))
        return failed("RSS after malloc_trim (KiB)", low >> 10, high >> 10);
    if (ktest_threads() != 1)
        return failed("threads", ktest_threads(), 1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "small"))
        return run_small();
    if (!strcmp(argv[1], "big"))
        return run_big();
    if (!strcmp(argv[1], "trim"))
        return run_trim();
    return 2;
}
