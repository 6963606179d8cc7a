/*
 * tests/vm/test_fork_reclaim.c — mm_fork, exit and faults racing with
 * reclaim and swap.  Four threads, each with its own mm of 600 pages,
 * read and now and then rewrite their pages, and now and then mm_fork
 * their mm, make copy-on-write writes in the child, keep the child a
 * while and mmput it — with user memory limited to 1500 frames and swap
 * on, so every thread's faults reclaim pages of the others' mms and
 * children while they are being forked, written and torn down.  Every
 * value read back is checked (parent and child), and now and then a host
 * fork()'s child checks (and writes) its copies; at the end the swap
 * counts must add up.  Bounded in time (~6 s of work, less under TSan;
 * VM_STRESS_MS sets it, see tools/vm_stress.sh) and in work: each thread
 * goes on past the time until it made MIN_ROUNDS rounds (thread 0 until
 * it made a host fork too), so the work asserted at the end (reads,
 * mm_forks, COW writes, host forks) does not depend on the machine's
 * speed or load.  (A round takes about 0.1 s on a loaded 2-core machine:
 * its faults reclaim and swap.)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "swaptest.h"

#define THREADS 4
#define PAGES 600
#define RAM 1500
#define SWAP_PAGES 8192
#define RUN_MS 6000
#define MIN_ROUNDS 10 /* a thread's rounds, whatever the time */

static double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned int xs(unsigned int *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static _Atomic unsigned long wrong, reads, forks, cows;
static char first_wrong[256];
static atomic_flag first_set = ATOMIC_FLAG_INIT;
static double stop_at;

static void bad(const char *who, unsigned long page, unsigned long got,
                unsigned long want)
{
    atomic_fetch_add(&wrong, 1);
    if (!atomic_flag_test_and_set(&first_set))
        snprintf(first_wrong, sizeof first_wrong,
                 "%s page %lu read %#lx, expected %#lx", who, page, got, want);
}

/* A page holds its value in word 0 and at its end, so a torn or stale
 * page shows. */
static void put_val(struct mm_struct *mm, unsigned long a, unsigned long v)
{
    U64(mm, a) = v;
    U64(mm, a + PAGE_SIZE - 8) = ~v;
}

static void check_val(const char *who, struct mm_struct *mm, unsigned long a,
                      unsigned long i, unsigned long v)
{
    unsigned long x = U64(mm, a), y = U64(mm, a + PAGE_SIZE - 8);
    atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
    if (x != v)
        bad(who, i, x, v);
    else if (y != ~v)
        bad(who, i, ~y, v);
}

struct child {
    struct mm_struct *mm;
    unsigned long val[PAGES];
};

static void child_check_all(struct child *c, unsigned long a)
{
    for (unsigned long i = 0; i < PAGES; i++)
        check_val("child", c->mm, a + i * PAGE_SIZE, i, c->val[i]);
}

static _Atomic unsigned long host_forks;

/* Whether the thread id has more work to do: its rounds, the time, and
 * for thread 0 a host fork. */
static int more_work(unsigned long id, unsigned long round)
{
    if (round < MIN_ROUNDS || ms_now() < stop_at)
        return 1;
#if !defined(__SANITIZE_THREAD__)
    if (id == 0 && atomic_load(&host_forks) == 0)
        return 1;
#else
    (void)id;
#endif
    return 0;
}

#if !defined(__SANITIZE_THREAD__)
static void host_fork_check(struct mm_struct *mm, unsigned long a,
                            const unsigned long *v, struct child *kid)
{
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        child_default_segv();
        int bad = 0;
        for (unsigned long i = 0; i < PAGES; i += 3) {
            bad += U64(mm, a + i * PAGE_SIZE) != v[i];
            bad += U64(kid->mm, a + i * PAGE_SIZE) != kid->val[i];
            U64(mm, a + i * PAGE_SIZE) = ~v[i]; /* never seen by the parent */
        }
        _exit(bad ? 1 : 0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        bad("host fork child", 0, (unsigned long)st, 0);
    atomic_fetch_add(&host_forks, 1);
}
#endif

static void *worker(void *arg)
{
    unsigned long id = (unsigned long)arg;
    unsigned int seed = 0x9e3779b9u * (unsigned int)(id + 1);
    static unsigned long val[THREADS][PAGES];
    static struct child kids[THREADS];
    unsigned long *v = val[id];
    struct child *kid = &kids[id];

    struct mm_struct *mm = mm_alloc();
    assert_non_null(mm);
    unsigned long a =
        anon(mm, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    for (unsigned long i = 0; i < PAGES; i++) {
        v[i] = (id << 48) | (i << 16) | 1;
        put_val(mm, a + i * PAGE_SIZE, v[i]);
    }
    kid->mm = NULL;
    unsigned long round = 0;
    while (more_work(id, round)) {
        round++;
        /* mostly a hot window of 200 pages that moves on, some anywhere:
         * reclaim keeps evicting, yet the threads get on with forking */
        unsigned long hot = (round * 7) % PAGES;
        for (int k = 0; k < 64; k++) {
            unsigned long i =
                (k & 7) ? (hot + xs(&seed) % 200) % PAGES : xs(&seed) % PAGES;
            check_val("parent", mm, a + i * PAGE_SIZE, i, v[i]);
            if (!(xs(&seed) & 7)) {
                v[i] += 1UL << 8;
                put_val(mm, a + i * PAGE_SIZE, v[i]);
            }
        }
        if (kid->mm && (xs(&seed) & 3) == 0) {
            child_check_all(kid, a);
            mmput(kid->mm);
            kid->mm = NULL;
        }
        if (!kid->mm) {
            struct mm_struct *c = mm_fork(mm);
            if (!c) {
                bad("mm_fork failed", 0, 0, 0);
                continue;
            }
            atomic_fetch_add(&forks, 1);
            memcpy(kid->val, v, sizeof kid->val);
            kid->mm = c;
            /* copy-on-write in the child: some pages change there only */
            for (int k = 0; k < 16; k++) {
                unsigned long i = (hot + xs(&seed) % 200) % PAGES;
                check_val("child", c, a + i * PAGE_SIZE, i, kid->val[i]);
                kid->val[i] ^= 0xc0de0000UL | round;
                put_val(c, a + i * PAGE_SIZE, kid->val[i]);
                atomic_fetch_add(&cows, 1);
            }
#if !defined(__SANITIZE_THREAD__)
            /* now and then a host fork(): the child checks its own copy
             * of this mm and of the child mm, and changes them, while
             * the parent goes on (TSan: no fork of a threaded process) */
            if (id == 0 && (xs(&seed) & 15) == 0)
                host_fork_check(mm, a, v, kid);
#endif
            if (xs(&seed) & 1) { /* or gone at once */
                child_check_all(kid, a);
                mmput(c);
                kid->mm = NULL;
            }
        }
    }
    if (kid->mm) {
        child_check_all(kid, a);
        mmput(kid->mm);
    }
    for (unsigned long i = 0; i < PAGES; i++)
        check_val("parent", mm, a + i * PAGE_SIZE, i, v[i]);
    mmput(mm);
    return NULL;
}

static void test_fork_exit_fault_race_reclaim(void **state)
{
    (void)state;
    const char *sw = swap_on("fork_reclaim", SWAP_PAGES, 0);
    vm_set_ram_pages(RAM);
    pthread_t t[THREADS];
    /* VM_STRESS_MS: a longer run (tools/vm_stress.sh) */
    const char *env = getenv("VM_STRESS_MS");
    double run_ms = env ? atof(env) : RUN_MS;
#if defined(__SANITIZE_THREAD__)
    if (!env)
        run_ms /= 2;
#endif
    stop_at = ms_now() + run_ms;
    for (unsigned long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("fork_reclaim: %lu reads, %lu mm_forks, %lu COW writes, "
           "%lu host forks, %lu wrong\n",
           atomic_load(&reads), atomic_load(&forks), atomic_load(&cows),
           atomic_load(&host_forks), atomic_load(&wrong));
    if (atomic_load(&wrong))
        fail_msg("%lu wrong values; first: %s", atomic_load(&wrong),
                 first_wrong);
    /* The work done: a round reads 64 pages and, when the thread has no
     * child (at least one round in four on average), mm_forks one and
     * writes 16 of its pages; thread 0 host-forks after one mm_fork in 16,
     * and goes on until it did. */
    assert_true(atomic_load(&reads) >= THREADS * MIN_ROUNDS * 64);
    assert_true(atomic_load(&forks) >= THREADS * MIN_ROUNDS / 8);
    assert_int_equal(atomic_load(&cows), 16 * atomic_load(&forks));
#if !defined(__SANITIZE_THREAD__)
    assert_true(atomic_load(&host_forks) >= 1);
#endif
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
    vm_set_ram_pages(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_exit_fault_race_reclaim),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
