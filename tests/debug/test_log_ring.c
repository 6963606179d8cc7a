/*
 * tests/debug/test_log_ring.c — the KSLAB_DEBUG=log ring written by many
 * threads at once.  The test runs with a ring of a couple of events, far
 * fewer than the threads write, so that writers meet at a slot all the
 * time, and a thread sends the writers signals whose handler sleeps: a
 * writer is stopped half way through an event now and then, as a
 * preemption does on a loaded machine, while the others go a lap round
 * the ring.  After each round of writes the ring holds exactly the newest
 * events, numbered without a gap, each one whole (its thread, size and
 * address belong together); a fork child, whose parent's writers may have
 * been stopped half way through an event, writes its own events over
 * theirs and does not wait for them.
 */
#include "ktest.h"

#include <kslab/kslab.h>

#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The ring's size, KSLAB_DEBUG=log=N (tests/debug/CMakeLists.txt). */
static unsigned long long log_slots;
#define LOG_SLOTS log_slots
#define WRITERS 8
#define ROUNDS 16000 /* rounds of all the writers at once */
#define FORKS 40
#define MAX_ADDRS 16

struct writer {
    pthread_t thread;
    int tid;
    size_t size; /* 32 << index: a kmalloc cache of its own */
    int naddrs;  /* the blocks it was given, in that cache */
    uintptr_t addr[MAX_ADDRS];
};

static struct writer writers[WRITERS];
static pthread_barrier_t go, done;
static _Atomic int stop, stop_stalls, running;
static int pairs; /* kmalloc/kfree pairs of a writer in a round */
static pthread_t staller;

/* A writer stopped anywhere, half way through an event sometimes, while
 * the others go on: what a preemption does on a loaded machine, here
 * many times a round. */
static void stall(int sig)
{
    (void)sig;
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
}

static void *staller_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_stalls)) {
        for (int i = 0; i < WRITERS; i++)
            pthread_kill(writers[i].thread, SIGUSR1);
        struct timespec ts = {0, 20 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void note_addr(struct writer *w, void *p)
{
    for (int i = 0; i < w->naddrs; i++)
        if (w->addr[i] == (uintptr_t)p)
            return;
    ktest_check(w->naddrs < MAX_ADDRS);
    w->addr[w->naddrs++] = (uintptr_t)p;
}

static void write_pairs(struct writer *w, int n)
{
    for (int i = 0; i < n; i++) {
        void *p = kmalloc(w->size, GFP_KERNEL);
        ktest_check(p);
        note_addr(w, p);
        kfree(p);
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    w->tid = (int)syscall(SYS_gettid);
    write_pairs(w, 1); /* the cache's first slab, before any round */
    for (;;) {
        pthread_barrier_wait(&go);
        if (atomic_load(&stop))
            return NULL;
        write_pairs(w, pairs);
        pthread_barrier_wait(&done);
    }
}

static const struct writer *writer_of(int tid)
{
    for (int i = 0; i < WRITERS; i++)
        if (writers[i].tid == tid)
            return &writers[i];
    return NULL;
}

static int has_addr(const struct writer *w, uintptr_t a)
{
    for (int i = 0; i < w->naddrs; i++)
        if (w->addr[i] == a)
            return 1;
    return 0;
}

/* Prints the ring into buf; the events it names: first and last.  0, or
 * -1 when the header is not that of a full ring (no cmocka assertion: a
 * fork child calls it too). */
static int print_ring(char *buf, size_t len, unsigned long long *first,
                      unsigned long long *last)
{
    FILE *f = fmemopen(buf, len, "w");
    if (!f)
        return -1;
    kslab_log_print(f);
    int full = ftell(f) >= (long)len - 1;
    fclose(f);
    unsigned long long n;
    if (full ||
        sscanf(buf, "kslab: log of %llu events (%llu to %llu)", &n, first,
               last) != 3 ||
        n != LOG_SLOTS || *last - *first + 1 != LOG_SLOTS)
        return -1;
    return 0;
}

/* The ring after a round: the newest LOG_SLOTS events, in order, each
 * of one writer with its size (allocations) and one of its addresses. */
static void check_ring(int round)
{
    static char buf[1 << 16];
    unsigned long long first, last;
    if (print_ring(buf, sizeof buf, &first, &last))
        fail_msg("round %d: the ring's header: %.100s", round, buf);
    unsigned long long expect = first;
    for (const char *p = strchr(buf, '\n'); p; p = strchr(p + 1, '\n')) {
        unsigned long long seq;
        int tid;
        char op[8];
        void *addr;
        size_t size;
        if (sscanf(p + 1, "#%llu %*s s thread %d %7s %p size %zu", &seq, &tid,
                   op, &addr, &size) != 5)
            continue;
        if (seq != expect)
            fail_msg("round %d: event %llu where %llu was expected (the ring "
                     "holds %llu to %llu)",
                     round, seq, expect, first, last);
        expect++;
        const struct writer *w = writer_of(tid);
        if (!w)
            fail_msg("round %d: event %llu of an unknown thread %d", round, seq,
                     tid);
        if (!has_addr(w, (uintptr_t)addr) ||
            (!strcmp(op, "alloc") && size != w->size) ||
            (strcmp(op, "alloc") && strcmp(op, "free")))
            fail_msg("round %d: event %llu is not whole: thread %d (size "
                     "%zu) %s %p size %zu",
                     round, seq, tid, w->size, op, addr, size);
    }
    assert_int_equal(expect, last + 1);
}

static void start_writers(void)
{
    struct sigaction sa = {.sa_handler = stall, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
    pthread_barrier_init(&go, NULL, WRITERS + 1);
    pthread_barrier_init(&done, NULL, WRITERS + 1);
    atomic_store(&stop, 0);
    for (int i = 0; i < WRITERS; i++) {
        writers[i].size = (size_t)32 << i;
        writers[i].naddrs = 0;
        assert_int_equal(
            pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]),
            0);
    }
    atomic_store(&stop_stalls, 0);
    assert_int_equal(pthread_create(&staller, NULL, staller_main, NULL), 0);
    atomic_store(&running, 1);
}

/* The writers wait at `go' (the tests check after `done'): they stop.
 * Also the teardown of a test that failed. */
static int stop_writers(void **state)
{
    (void)state;
    if (!atomic_exchange(&running, 0))
        return 0;
    atomic_store(&stop_stalls, 1);
    pthread_join(staller, NULL);
    atomic_store(&stop, 1);
    pthread_barrier_wait(&go);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(writers[i].thread, NULL);
    pthread_barrier_destroy(&go);
    pthread_barrier_destroy(&done);
    return 0;
}

/* 8 writers, rounds of 2 pairs each begun together: after each round
 * the ring holds the newest events whole, none lost to an older one. */
static void ring_keeps_newest_events_whole(void **state)
{
    (void)state;
    pairs = 2;
    start_writers();
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&go);
        pthread_barrier_wait(&done);
        check_ring(round);
    }
    stop_writers(NULL);
    ktest_workers_ok();
}

/* The child of a fork taken while 8 threads write: its own events fill
 * the ring, slots its parent's writers held half written included. */
static void fork_child_writes_over_parents_slots(void **state)
{
    (void)state;
    pairs = 1000;
    start_writers();
    for (int i = 0; i < FORKS; i++) {
        pthread_barrier_wait(&go); /* the writers run during the fork */
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(120); /* a slot waited for forever is a failure */
            for (unsigned long long j = 0; j < 4 * LOG_SLOTS; j++)
                kfree(kmalloc(24, GFP_KERNEL));
            char buf[1 << 14];
            unsigned long long first, last;
            if (print_ring(buf, sizeof buf, &first, &last))
                _exit(2);
            int mine = (int)syscall(SYS_gettid);
            unsigned long long events = 0;
            for (const char *p = strchr(buf, '\n'); p;
                 p = strchr(p + 1, '\n')) {
                int tid;
                if (sscanf(p + 1, "#%*u %*s s thread %d", &tid) == 1) {
                    if (tid != mine)
                        _exit(3);
                    events++;
                }
            }
            _exit(events == LOG_SLOTS ? 0 : 4);
        }
        pthread_barrier_wait(&done);
        assert_true(pid > 0);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("fork %d: child status %#x", i, st);
    }
    stop_writers(NULL);
    ktest_workers_ok();
}

int main(void)
{
    const char *d = getenv("KSLAB_DEBUG");
    if (!d || sscanf(d, "log=%llu", &log_slots) != 1 || log_slots > 64) {
        fprintf(stderr, "test_log_ring: KSLAB_DEBUG=log=N (N <= 64) wanted\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(ring_keeps_newest_events_whole, stop_writers),
        cmocka_unit_test_teardown(fork_child_writes_over_parents_slots,
                                  stop_writers),
    };
    return ktest_run_group(tests, NULL, NULL);
}
