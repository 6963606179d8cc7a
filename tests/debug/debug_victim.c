/*
 * tests/debug/debug_victim.c — the program the KSLAB_DEBUG tests run
 * (test_debug.c), linked with libkslab.so and exporting its functions
 * (-rdynamic) so that the reports name them.  argv[1] picks the scenario;
 * the test reads what it prints and how it ends.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kslab/kslab.h>

#define NOINLINE __attribute__((noinline, noipa))

void *volatile victim_sink;
void *victim_global;              /* reachable: a root */
static __thread void *victim_tls; /* reachable: static TLS */

NOINLINE void *victim_alloc_block(size_t n)
{
    return malloc(n);
}

NOINLINE void victim_free_block(void *p)
{
    free(p);
}

NOINLINE void *victim_cache_alloc(kmem_cache_t *c)
{
    return kmem_cache_alloc(c, GFP_KERNEL);
}

NOINLINE void victim_cache_free(kmem_cache_t *c, void *p)
{
    kmem_cache_free(c, p);
}

/* Clears the stack below the caller, so that no stale copy of a pointer
 * dropped by an earlier call keeps its block reachable. */
NOINLINE void victim_scrub(void)
{
    volatile char buf[32768];
    memset((char *)buf, 0, sizeof buf);
}

static int double_free(void)
{
    void *p = victim_alloc_block(40);
    victim_free_block(p);
    victim_free_block(p);
    return 0;
}

static int invalid_free(void)
{
    char *p = victim_alloc_block(64);
    victim_free_block(p + 16);
    return 0;
}

static int cache_double_free(void)
{
    kmem_cache_t *c = kmem_cache_create("victim-cache", 72, 0, 0, NULL, NULL);
    void *p = victim_cache_alloc(c);
    victim_cache_free(c, p);
    victim_cache_free(c, p);
    return 0;
}

NOINLINE void victim_overrun(char *p, size_t n)
{
    memset(p, 'x', n + 8);
}

static int redzone(void)
{
    char *p = victim_alloc_block(64);
    victim_overrun(p, 64);
    victim_free_block(p);
    return 0;
}

/* ---- log: 8 threads ---- */

#define LOG_THREADS 8
#define LOG_ROUNDS 1000

static void *log_thread(void *arg)
{
    size_t size = 100 + (size_t)(uintptr_t)arg;
    for (int i = 0; i < LOG_ROUNDS; i++)
        victim_free_block(victim_alloc_block(size));
    return NULL;
}

static int log_threads(void)
{
    pthread_t t[LOG_THREADS];
    for (uintptr_t i = 0; i < LOG_THREADS; i++)
        pthread_create(&t[i], NULL, log_thread, (void *)i);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    kslab_log_print(stdout);
    return 0;
}

/* ---- leaks ---- */

struct node {
    struct node *next;
    char pad[88];
};

NOINLINE void victim_leak_list(void)
{
    struct node *volatile head = NULL;
    for (int i = 0; i < 3; i++) {
        struct node *n = victim_alloc_block(sizeof *n);
        n->next = head;
        head = n;
    }
    head = NULL;
}

NOINLINE void victim_keep_global(void)
{
    victim_global = victim_alloc_block(200);
}

NOINLINE void victim_tls_keep(void)
{
    victim_tls = victim_alloc_block(300);
}

NOINLINE void *victim_thread_leaker(void *arg)
{
    (void)arg;
    victim_sink = victim_alloc_block(400);
    victim_sink = NULL;
    victim_scrub();
    return NULL;
}

static pthread_barrier_t held_barrier, held_done;

NOINLINE void *victim_held_by_thread(void *arg)
{
    (void)arg;
    void *volatile mine = victim_alloc_block(500);
    pthread_barrier_wait(&held_barrier); /* main searches now */
    pthread_barrier_wait(&held_done);
    victim_free_block(mine);
    return NULL;
}

/* Leaves the only copy of a leaked block's address deep in a dead part of
 * its thread's stack, below where the thread then waits: found only when
 * the search scans a running thread's stack from its stack pointer up. */
NOINLINE void victim_stale_leak(void)
{
    void *volatile deep[1024];
    deep[0] = victim_alloc_block(700);
    deep[1023] = NULL;
    __asm__ volatile("" : : "r"(deep) : "memory"); /* the stores stay */
}

static pthread_barrier_t stale_barrier, stale_done;

NOINLINE void *victim_stale_thread(void *arg)
{
    (void)arg;
    victim_stale_leak();
    pthread_barrier_wait(&stale_barrier); /* main searches now */
    pthread_barrier_wait(&stale_done);
    return NULL;
}

NOINLINE void victim_from_dlopen(const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
        exit(2);
    }
    void (*keep)(void *) = (void (*)(void *))dlsym(h, "debug_lib_keep");
    keep(victim_alloc_block(600));
}

static int leaks(const char *lib)
{
    pthread_t t;
    victim_leak_list();
    victim_keep_global();
    victim_tls_keep();
    victim_from_dlopen(lib);
    /* the holder first: a thread made after the leaker exited would run
     * on its stack (glibc reuses them), scanned whole as a live one's */
    pthread_barrier_init(&held_barrier, NULL, 2);
    pthread_barrier_init(&held_done, NULL, 2);
    pthread_t holder, stale;
    pthread_create(&holder, NULL, victim_held_by_thread, NULL);
    pthread_barrier_wait(&held_barrier);
    pthread_barrier_init(&stale_barrier, NULL, 2);
    pthread_barrier_init(&stale_done, NULL, 2);
    pthread_create(&stale, NULL, victim_stale_thread, NULL);
    pthread_barrier_wait(&stale_barrier);
    pthread_create(&t, NULL, victim_thread_leaker, NULL);
    pthread_join(t, NULL);
    victim_scrub();
    size_t n = kslab_leak_check(stdout);
    printf("leaked %zu\n", n);
    pthread_barrier_wait(&held_done);
    pthread_join(holder, NULL);
    pthread_barrier_wait(&stale_done);
    pthread_join(stale, NULL);
    fflush(stdout);
    return 0;
}

/* No leak at all: the exit code stays 0 even with KSLAB_LEAKS_EXITCODE. */
static int clean(void)
{
    victim_free_block(victim_alloc_block(10));
    victim_keep_global();
    return 0;
}

/* A leak found at exit. */
static int exit_leak(void)
{
    victim_leak_list();
    victim_scrub();
    return 0;
}

/* A double free in a forked child, after the parent made blocks: the
 * report names the child's thread, not the parent's. */
static int fork_double_free(void)
{
    victim_free_block(victim_alloc_block(24));
    pid_t pid = fork();
    if (pid == 0) {
        printf("child %d\n", (int)getpid());
        fflush(stdout);
        return double_free();
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        raise(WTERMSIG(status));
    return 1;
}

/* Blocks of 8 sizes in turn, 20000 of one size live at a time, each
 * round allocated before the one before it is freed; then slabinfo (the
 * audit records are the objects of the cache kslab-audit). */
static int audit_spread(void)
{
    static void *blk[2][20000];
    for (int r = 0; r < 8; r++) {
        void **cur = blk[r & 1], **prev = blk[!(r & 1)];
        for (int i = 0; i < 20000; i++)
            cur[i] = victim_alloc_block(40 + (size_t)r * 48);
        for (int i = 0; r && i < 20000; i++)
            victim_free_block(prev[i]);
    }
    for (int i = 0; i < 20000; i++)
        victim_free_block(blk[1][i]);
    kmem_slabinfo(stdout);
    return 0;
}

/* Large blocks freed: their mappings are cached and the page layer's
 * background purge thread is started (from inside free()) to unmap them
 * later; the log then printed must hold only the program's own events. */
static int log_purge(void)
{
    for (int i = 0; i < 4; i++) {
        char *p = victim_alloc_block((size_t)4 << 20);
        p[0] = 1;
        victim_free_block(p);
        void *q[64];
        for (int k = 0; k < 64; k++)
            q[k] = victim_alloc_block(20000);
        for (int k = 0; k < 64; k++)
            victim_free_block(q[k]);
    }
    usleep(400000); /* the purge thread runs */
    printf("main thread %d\n", (int)gettid());
    kslab_log_print(stdout);
    return 0;
}

/* Five leak searches beside a thread that blocks every signal: printed,
 * the milliseconds they took (such a thread is not waited for). */
static pthread_barrier_t blocked_go, blocked_done;

static void *blocked_thread(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    pthread_barrier_wait(&blocked_go);
    pthread_barrier_wait(&blocked_done);
    return NULL;
}

static int leaks_blocked(void)
{
    pthread_t t;
    pthread_barrier_init(&blocked_go, NULL, 2);
    pthread_barrier_init(&blocked_done, NULL, 2);
    pthread_create(&t, NULL, blocked_thread, NULL);
    pthread_barrier_wait(&blocked_go);
    FILE *null = fopen("/dev/null", "w");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 5; i++)
        kslab_leak_check(null);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fclose(null);
    printf("searches took %ld ms\n", (long)((b.tv_sec - a.tv_sec) * 1000 +
                                            (b.tv_nsec - a.tv_nsec) / 1000000));
    pthread_barrier_wait(&blocked_done);
    pthread_join(t, NULL);
    return 0;
}

/* n malloc/free pairs of mixed sizes (the cost of an event). */
static int churn(long n)
{
    void *keep[64] = {0};
    for (long i = 0; i < n; i++) {
        size_t k = (size_t)i % 64;
        victim_free_block(keep[k]);
        keep[k] = victim_alloc_block(16 + (size_t)(i * 37 % 2000));
    }
    for (int k = 0; k < 64; k++)
        victim_free_block(keep[k]);
    return 0;
}

/* The leak search over 200000 live blocks (one leaked) and a block of 4M
 * words that point near them, in the heap's address range: prints the
 * search's CPU time per word scanned and the bytes found leaked. */
static uintptr_t *search_words; /* a root */

static int search_cost(void)
{
    enum { NBLK = 200000, NWORDS = 4 << 20 };
    void **keep = victim_alloc_block(NBLK * sizeof *keep);
    for (size_t i = 0; i < NBLK; i++)
        keep[i] = victim_alloc_block(16 + i % 7 * 16);
    uintptr_t *words = victim_alloc_block(NWORDS * sizeof *words);
    unsigned int seed = 1;
    for (size_t i = 0; i < NWORDS; i++)
        words[i] = (uintptr_t)keep[rand_r(&seed) % NBLK] + 8192;
    victim_global = keep;
    search_words = words;
    victim_sink = victim_alloc_block(4000); /* the leak */
    victim_sink = NULL;
    victim_scrub();
    FILE *null = fopen("/dev/null", "w");
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    size_t bytes = kslab_leak_check(null);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("search: %.1f ns a word, %zu bytes leaked\n",
           s * 1e9 / (NWORDS + NBLK * 3.0), bytes);
    fclose(null);
    return 0;
}

/* Leaks of sizes that are not size classes, one call site each: the
 * report must say the bytes asked for. */
NOINLINE void victim_leak_malloc(void)
{
    victim_sink = malloc(12345); /* class 14336 */
    victim_sink = NULL;
}

NOINLINE void victim_leak_memalign(void)
{
    victim_sink = memalign(64, 1000); /* the aligned path: 1024 */
    victim_sink = NULL;
}

NOINLINE void victim_leak_calloc(void)
{
    victim_sink = calloc(3, 101); /* 303: class 320 */
    victim_sink = NULL;
}

NOINLINE void victim_leak_kmalloc(void)
{
    victim_sink = kmalloc(3001, GFP_KERNEL); /* size-4096 */
    victim_sink = NULL;
}

NOINLINE void victim_leak_realloc(void)
{
    void *p = malloc(12000);
    victim_sink = realloc(p, 11001); /* the same class: in place */
    victim_sink = NULL;
    // cppcheck-suppress memleak
}

NOINLINE void victim_leak_large(void)
{
    victim_sink = malloc(300001); /* a large block of 74 pages */
    victim_sink = NULL;
}

static int sized_leaks(void)
{
    victim_leak_malloc();
    victim_leak_memalign();
    victim_leak_calloc();
    victim_leak_kmalloc();
    victim_leak_realloc();
    victim_leak_large();
    victim_scrub();
    return 0;
}

/* A double free of a block whose size is not a class. */
static int sized_double_free(void)
{
    void *p = victim_alloc_block(12345);
    victim_free_block(p);
    victim_free_block(p);
    return 0;
}

/* The program closes its stderr before exit (coreutils' close_stdout). */
static int close_stderr_leak(void)
{
    victim_leak_malloc();
    victim_scrub();
    fclose(stderr);
    return 0;
}

/* The program puts a file of its own on descriptor 2, then exits: the
 * leak report is not written into that file. */
static int dup2_stderr_leak(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, 2) != 2)
        return 3;
    close(fd);
    fprintf(stderr, "the program's own line\n");
    victim_leak_malloc();
    victim_scrub();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *m = argv[1];
    if (!strcmp(m, "double_free"))
        return double_free();
    if (!strcmp(m, "invalid_free"))
        return invalid_free();
    if (!strcmp(m, "cache_double_free"))
        return cache_double_free();
    if (!strcmp(m, "redzone"))
        return redzone();
    if (!strcmp(m, "log_threads"))
        return log_threads();
    if (!strcmp(m, "leaks") && argc > 2)
        return leaks(argv[2]);
    if (!strcmp(m, "clean"))
        return clean();
    if (!strcmp(m, "exit_leak"))
        return exit_leak();
    if (!strcmp(m, "leaks_blocked"))
        return leaks_blocked();
    if (!strcmp(m, "log_purge"))
        return log_purge();
    if (!strcmp(m, "audit_spread"))
        return audit_spread();
    if (!strcmp(m, "fork_double_free"))
        return fork_double_free();
    if (!strcmp(m, "search_cost"))
        return search_cost();
    if (!strcmp(m, "sized_leaks"))
        return sized_leaks();
    if (!strcmp(m, "sized_double_free"))
        return sized_double_free();
    if (!strcmp(m, "close_stderr_leak"))
        return close_stderr_leak();
    if (!strcmp(m, "dup2_stderr_leak") && argc > 3)
        return dup2_stderr_leak(argv[3]);
    if (!strcmp(m, "churn") && argc > 3)
        return churn(atol(argv[3]));
    return 2;
}
