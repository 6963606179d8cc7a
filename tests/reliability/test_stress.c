/*
 * tests/reliability/test_stress.c — bounded stress of the slab and of the
 * address-space emulator, each case a few seconds at most:
 *
 *  - 2 and 8 threads doing random kmalloc / kfree / "realloc" (allocate,
 *    copy, free) and kmem_cache_alloc/free with every byte verified, and
 *    handing objects to each other through a mailbox (cross-thread frees);
 *  - threads created and exiting in a loop, each leaving objects behind for
 *    the main thread to free;
 *  - fork() from a process whose other threads keep allocating; the child
 *    checks and uses the heap, and exits;
 *  - threads faulting, mm_fork'ing and unmapping in one emulated mm.
 *
 * After each case every cache has as many objects in use as at its start
 * and, with every cache shrunk (kmem_cache_shrink: every free slab and the
 * zones' free frames go back, whatever the decay says), the low-memory
 * frames in use are as at the start within a slack that does not depend on
 * the work done (SLACK_PAGES): nothing is lost.  Each case also runs
 * on past its time until it did a floor of work (MIN_*), and asserts it:
 * the work done does not depend on the machine's speed or load.
 */
#include "reltest.h"
#include "stress_util.h"

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "vm/mm/mm.h"

/* Bound of each case. */
#define RUN_MS 1500
/* What the allocator may hold after a case whatever its work, every cache
 * shrunk: a free slab of cache_cache (the root, which the snapshot does not
 * shrink) and the thread page and page-list page of a background purge
 * thread started meanwhile.  (Frames of a purge pass under way count as
 * free: vm_check_zones.) */
#define SLACK_PAGES 16

/* Floors of work, reached whatever the time. */
#define MIN_OPS 5000     /* a random worker's operations */
#define MIN_CHURN 20     /* rounds of 4 short-lived threads */
#define MIN_FORKS 10     /* forks beside allocating threads */
#define MIN_BG_OPS 1000  /* a background thread's operations before them */
#define MIN_VM_ROUNDS 40 /* a vm worker's map, fault, unmap rounds */

/* Waits (up to a minute) until every counter of n is at least floor;
 * whether they are. */
static int wait_for_work(_Atomic unsigned long *counts, int n,
                         unsigned long floor)
{
    double give_up = now_ms() + 60000;
    for (int i = 0; i < n; i++)
        while (atomic_load(&counts[i]) < floor) {
            if (now_ms() > give_up)
                return 0;
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    return 1;
}

static size_t rnd_size(unsigned int *seed)
{
    unsigned int r = rnd(seed);
    switch (r & 7) {
    case 0:
        return (r >> 8) % 131072 + 1;
    case 1:
    case 2:
        return (r >> 8) % 4096 + 1;
    default:
        return (r >> 8) % 256 + 1;
    }
}

/* ---- the mailbox: objects passed between threads ---- */

#define MAILBOX 64
static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk mailbox[MAILBOX];
static int nmail;

static int post(struct blk *b)
{
    int ok = 0;
    pthread_mutex_lock(&mail_lock);
    if (nmail < MAILBOX) {
        mailbox[nmail++] = *b;
        ok = 1;
    }
    pthread_mutex_unlock(&mail_lock);
    return ok;
}

static int fetch(struct blk *b)
{
    int ok = 0;
    pthread_mutex_lock(&mail_lock);
    if (nmail) {
        *b = mailbox[--nmail];
        ok = 1;
    }
    pthread_mutex_unlock(&mail_lock);
    return ok;
}

static void drain_mailbox(void)
{
    struct blk b;
    while (fetch(&b)) {
        blk_check(&b);
        kfree(b.p);
    }
}

/* ---- random allocate / free / realloc ---- */

#define SLOTS 128
static kmem_cache_t *shared_cache;
static const size_t shared_size = 72;
static _Atomic unsigned long total_ops;

struct worker {
    pthread_t tid;
    unsigned int seed;
    double until;
};

static void *random_worker(void *arg)
{
    struct worker *w = arg;
    struct blk slot[SLOTS] = {{0}};
    struct blk cobj[16] = {{0}};
    unsigned long ops = 0;
    while ((ops & 255) || ops < MIN_OPS || now_ms() < w->until) {
        ops++;
        unsigned int r = rnd(&w->seed);
        struct blk *b = &slot[r % SLOTS];
        switch ((r >> 8) % 8) {
        case 0: { /* realloc: a new object, the old contents, free */
            if (!b->p)
                break;
            blk_check(b);
            size_t n = rnd_size(&w->seed);
            unsigned char *q = kmalloc(n, GFP_KERNEL);
            ktest_check(q);
            memcpy(q, b->p, n < b->size ? n : b->size);
            kfree(b->p);
            b->p = q;
            b->size = n < b->size ? n : b->size;
            blk_check(b);
            b->size = n;
            blk_fill(b, &w->seed);
            break;
        }
        case 1: /* cross-thread: post ours, free someone's */
            if (b->p && post(b)) {
                b->p = NULL;
            } else {
                struct blk m;
                if (fetch(&m)) {
                    blk_check(&m);
                    kfree(m.p);
                }
            }
            break;
        case 2: { /* a shared user cache */
            struct blk *c = &cobj[r % 16];
            if (c->p) {
                blk_check(c);
                kmem_cache_free(shared_cache, c->p);
                c->p = NULL;
            } else {
                c->p = kmem_cache_alloc(shared_cache, GFP_KERNEL);
                ktest_check(c->p);
                c->size = shared_size;
                blk_fill(c, &w->seed);
            }
            break;
        }
        default:
            if (b->p) {
                blk_check(b);
                ktest_check(ksize(b->p) >= b->size);
                kfree(b->p);
                b->p = NULL;
            } else {
                b->size = rnd_size(&w->seed);
                b->p = kmalloc(b->size, GFP_KERNEL);
                ktest_check(b->p);
                blk_fill(b, &w->seed);
            }
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i].p) {
            blk_check(&slot[i]);
            kfree(slot[i].p);
        }
    for (int i = 0; i < 16; i++)
        if (cobj[i].p) {
            blk_check(&cobj[i]);
            kmem_cache_free(shared_cache, cobj[i].p);
        }
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

static void run_random(int nthreads)
{
    struct rel_snapshot before, after;
    rel_snapshot(&before);
    shared_cache =
        kmem_cache_create("stress-shared", shared_size, 0, 0, NULL, NULL);
    assert_non_null(shared_cache);
    struct worker w[8];
    double until = now_ms() + RUN_MS;
    atomic_store(&total_ops, 0);
    for (int i = 0; i < nthreads; i++) {
        w[i].seed = 0x9e3779b9u * (unsigned int)(i + 1);
        w[i].until = until;
        assert_int_equal(pthread_create(&w[i].tid, NULL, random_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(w[i].tid, NULL);
    ktest_workers_ok();
    drain_mailbox();
    assert_int_equal(kmem_cache_destroy(shared_cache), 0);
    rel_snapshot(&after);
    rel_expect_nothing_lost(&before, &after, SLACK_PAGES);
    printf("stress: %d threads, %lu operations in %d ms, nothing lost\n",
           nthreads, atomic_load(&total_ops), RUN_MS);
    assert_true(atomic_load(&total_ops) >= (unsigned long)nthreads * MIN_OPS);
}

static void test_random_2_threads(void **state)
{
    (void)state;
    run_random(2);
}

static void test_random_8_threads(void **state)
{
    (void)state;
    run_random(8);
}

/* ---- threads created and exiting in a loop ---- */

static _Atomic unsigned long churned; /* short-lived threads that ended */

static void *short_lived(void *arg)
{
    unsigned int seed = (unsigned int)(uintptr_t)arg | 1;
    struct blk keep[8];
    for (int i = 0; i < 64; i++) {
        struct blk b = {.size = rnd_size(&seed)};
        b.p = kmalloc(b.size, GFP_KERNEL);
        ktest_check(b.p);
        blk_fill(&b, &seed);
        if (i < 8)
            keep[i] = b;
        else
            kfree(b.p);
    }
    for (int i = 0; i < 8; i++)
        while (!post(&keep[i]))
            drain_mailbox();
    atomic_fetch_add(&churned, 1);
    return NULL;
}

static void test_thread_churn(void **state)
{
    (void)state;
    struct rel_snapshot before, after;
    rel_snapshot(&before);
    int rounds = 0;
    double until = now_ms() + RUN_MS;
    atomic_store(&churned, 0);
    for (; rounds < MIN_CHURN || now_ms() < until; rounds++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(
                pthread_create(&t[i], NULL, short_lived,
                               (void *)(uintptr_t)(rounds * 4 + i)),
                0);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        ktest_workers_ok();
        drain_mailbox();
    }
    rel_snapshot(&after);
    rel_expect_nothing_lost(&before, &after, SLACK_PAGES);
    printf("stress: %d threads created and exited, nothing lost\n", rounds * 4);
    assert_true(rounds >= MIN_CHURN);
    assert_int_equal(atomic_load(&churned), (unsigned long)rounds * 4);
}

/* ---- fork from a multi-threaded process ---- */

static _Atomic int stop_bg;
static struct worker bg_workers[3];
static _Atomic unsigned long bg_ops[3];

static void *background(void *arg)
{
    struct worker *w = arg;
    _Atomic unsigned long *ops = &bg_ops[w - bg_workers];
    struct blk slot[32] = {{0}};
    while (!atomic_load(&stop_bg)) {
        atomic_fetch_add_explicit(ops, 1, memory_order_relaxed);
        struct blk *b = &slot[rnd(&w->seed) % 32];
        if (b->p) {
            blk_check(b);
            kfree(b->p);
            b->p = NULL;
        } else {
            b->size = rnd_size(&w->seed);
            b->p = kmalloc(b->size, GFP_KERNEL);
            ktest_check(b->p);
            blk_fill(b, &w->seed);
        }
    }
    for (int i = 0; i < 32; i++)
        if (slot[i].p)
            kfree(slot[i].p);
    return NULL;
}

static void fork_child(struct blk *mine)
{
    /* the parent's object is intact; the heap works; the child's own
     * threads are gone and their array caches went back to the slabs */
    for (size_t i = 0; i < mine->size; i++)
        if (mine->p[i] != mine->fill)
            _exit(2);
    unsigned int seed = 77;
    for (int i = 0; i < 2000; i++) {
        size_t n = rnd_size(&seed);
        unsigned char *p = kmalloc(n, GFP_KERNEL);
        if (!p)
            _exit(3);
        memset(p, 0x3c, n);
        if (p[n - 1] != 0x3c)
            _exit(4);
        kfree(p);
    }
    kfree(mine->p);
    struct rel_snapshot s;
    rel_snapshot(&s); /* validates every cache and zone */
    _exit(0);
}

static void test_fork_while_threads_allocate(void **state)
{
    (void)state;
    struct rel_snapshot before, after;
    rel_snapshot(&before);
    struct worker *w = bg_workers;
    atomic_store(&stop_bg, 0);
    for (int i = 0; i < 3; i++) {
        atomic_store(&bg_ops[i], 0);
        w[i].seed = 1234u + (unsigned int)i;
        assert_int_equal(pthread_create(&w[i].tid, NULL, background, &w[i]), 0);
    }
    /* the forks begin once every thread is allocating */
    int bg_running = wait_for_work(bg_ops, 3, MIN_BG_OPS);
    int forks = 0;
    unsigned int seed = 99;
    double until = now_ms() + RUN_MS;
    for (; bg_running && (forks < MIN_FORKS || now_ms() < until); forks++) {
        struct blk mine = {.size = rnd_size(&seed)};
        mine.p = kmalloc(mine.size, GFP_KERNEL);
        assert_non_null(mine.p);
        blk_fill(&mine, &seed);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            fork_child(&mine);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("fork %d: child status %#x", forks, st);
        blk_check(&mine);
        kfree(mine.p);
    }
    atomic_store(&stop_bg, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(w[i].tid, NULL);
    ktest_workers_ok();
    rel_snapshot(&after);
    rel_expect_nothing_lost(&before, &after, SLACK_PAGES);
    printf("stress: %d forks beside 3 allocating threads (%lu, %lu, %lu "
           "operations), nothing lost\n",
           forks, atomic_load(&bg_ops[0]), atomic_load(&bg_ops[1]),
           atomic_load(&bg_ops[2]));
    assert_true(bg_running);
    assert_true(forks >= MIN_FORKS);
}

/* ---- the emulator: threads faulting, forking, unmapping one mm ---- */

#define VM_PAGES 8
static struct mm_struct *shared_mm;
static _Atomic unsigned long vm_faults_done, vm_forks_done;

static void *vm_worker(void *arg)
{
    struct worker *w = arg;
    unsigned long rounds = 0, forks = 0, faults = 0;
    while (rounds < MIN_VM_ROUNDS || now_ms() < w->until) {
        rounds++;
        unsigned long a =
            do_mmap(shared_mm, -1, 0, VM_PAGES * PAGE_SIZE,
                    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0);
        ktest_check(!IS_ERR_VALUE(a));
        unsigned long tag = (unsigned long)rnd(&w->seed) << 8;
        for (int i = 0; i < VM_PAGES; i++, faults++) /* faults */
            *(volatile unsigned long *)mm_host(shared_mm, a + i * PAGE_SIZE) =
                tag + i;
        if (rounds % 4 == 0) {
            struct mm_struct *c = mm_fork(shared_mm);
            ktest_check(c);
            forks++;
            for (int i = 0; i < VM_PAGES; i++) {
                volatile unsigned long *pc = mm_host(c, a + i * PAGE_SIZE);
                ktest_check((*pc) == (tag + i));
                *pc = ~tag; /* COW: the parent keeps its value */
            }
            vm_check_mm(c);
            mmput(c);
        }
        for (int i = 0; i < VM_PAGES; i++)
            ktest_check((*(volatile unsigned long *)mm_host(
                            shared_mm, a + i * PAGE_SIZE)) == (tag + i));
        ktest_check((do_munmap(shared_mm, a, VM_PAGES * PAGE_SIZE)) == (0));
    }
    atomic_fetch_add(&vm_faults_done, faults);
    atomic_fetch_add(&vm_forks_done, forks);
    return NULL;
}

static void test_vm_threads_fault_fork_unmap(void **state)
{
    (void)state;
    struct rel_snapshot before, after;
    /* the first mm makes the vm caches; measure from the second */
    mmput(mm_alloc());
    rel_snapshot(&before);
    shared_mm = mm_alloc();
    assert_non_null(shared_mm);
    struct worker w[4];
    double until = now_ms() + RUN_MS;
    for (int i = 0; i < 4; i++) {
        w[i].seed = 555u + (unsigned int)i;
        w[i].until = until;
        assert_int_equal(pthread_create(&w[i].tid, NULL, vm_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(w[i].tid, NULL);
    ktest_workers_ok();
    vm_check_mm(shared_mm);
    assert_null(shared_mm->mmap);
    mmput(shared_mm);
    rel_snapshot(&after);
    rel_expect_nothing_lost(&before, &after, SLACK_PAGES);
    printf("stress: 4 threads, %lu page faults, %lu mm_forks in one mm, "
           "nothing lost\n",
           atomic_load(&vm_faults_done), atomic_load(&vm_forks_done));
    /* a round faults VM_PAGES pages, every fourth mm_forks */
    assert_true(atomic_load(&vm_faults_done) >= 4UL * MIN_VM_ROUNDS * VM_PAGES);
    assert_true(atomic_load(&vm_forks_done) >= 4UL * (MIN_VM_ROUNDS / 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_2_threads),
        cmocka_unit_test(test_random_8_threads),
        cmocka_unit_test(test_thread_churn),
        cmocka_unit_test(test_fork_while_threads_allocate),
        cmocka_unit_test(test_vm_threads_fault_fork_unmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
