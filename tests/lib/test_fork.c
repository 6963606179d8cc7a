/*
 * tests/lib/test_fork.c — the one fork protocol (lib/fork.c), in a program
 * that links only kslab_core (no interposer, no pthread_atfork of its
 * own): a host fork() while other threads allocate, or hold a kslab lock,
 * neither deadlocks nor leaves the child a held lock; the child allocates.
 * Every child is bounded in time (alarm), every wait too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>

#include "ktest.h"
#include "slab/kmalloc.h"
#include "vm/mm/mm.h"

#define CHILD_SECONDS 10

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A child's exit, straight to the kernel: under TSan, _exit() would
 * report the parent's other threads, absent here, as leaked. */
static __attribute__((noreturn)) void child_exit(int code)
{
    syscall(SYS_exit_group, code);
    _exit(code);
}

/* Waits for a child; fails unless it exited 0. */
static void expect_child_ok(pid_t pid, const char *what)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: child status %#x (%s)", what, st,
                 WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM
                     ? "deadlocked: killed by its alarm"
                     : "failed");
}

/* What a child does: allocate from every path and check the caches. */
static void child_allocates(void)
{
    alarm(CHILD_SECONDS);
    for (int j = 0; j < 20000; j++) {
        void *p = kmalloc((size_t)(j * 37) % 70000 + 1, GFP_KERNEL);
        if (!p)
            child_exit(3);
        kfree(p);
    }
    kmem_cache_t *c = kmem_cache_create("forked-child", 96, 0, 0, NULL, NULL);
    if (!c)
        child_exit(4);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    if (!o)
        child_exit(5);
    kmem_cache_free(c, o);
    if (kmem_cache_destroy(c))
        child_exit(6);
    vm_check_zones();
    child_exit(0);
}

/* ---- threads allocating beside the fork ---- */

static atomic_int stop;
/* The work of the threads beside the forks: each makes MIN_BESIDE_OPS
 * operations before the forks begin, and MIN_FORKS forks are made
 * whatever the time. */
#define MIN_FORKS 20
#define MIN_BESIDE_OPS 200
static _Atomic unsigned long beside_ops[3];

/* Waits (up to a minute) until each of the 3 threads beside the forks
 * made MIN_BESIDE_OPS operations; whether they did. */
static int beside_threads_working(void)
{
    double give_up = now_ms() + 60000;
    for (int i = 0; i < 3; i++)
        while (atomic_load(&beside_ops[i]) < MIN_BESIDE_OPS) {
            if (now_ms() > give_up)
                return 0;
            usleep(1000);
        }
    return 1;
}

static void *allocator(void *arg)
{
    unsigned int seed = (unsigned int)(uintptr_t)arg;
    _Atomic unsigned long *ops = &beside_ops[(uintptr_t)arg - 1];
    void *keep[64] = {0};
    while (!atomic_load(&stop)) {
        atomic_fetch_add(ops, 1);
        seed = seed * 1103515245u + 12345u;
        unsigned int i = (seed >> 8) % 64;
        if (keep[i]) {
            kfree(keep[i]);
            keep[i] = NULL;
        } else {
            keep[i] = kmalloc((seed >> 16) % 40000 + 1, GFP_KERNEL);
        }
    }
    for (int i = 0; i < 64; i++)
        kfree(keep[i]);
    return NULL;
}

/* Takes the chain, cache and zone locks over and over. */
static void *reclaimer(void *arg)
{
    (void)arg;
    kmem_cache_t *c =
        kmem_cache_create("reclaimer", 200, 0, SLAB_RED_ZONE, NULL, NULL);
    if (!c)
        return (void *)1;
    while (!atomic_load(&stop)) {
        atomic_fetch_add(&beside_ops[2], 1);
        void *o = kmem_cache_alloc(c, GFP_KERNEL); /* a locked path */
        kmem_cache_free(c, o);
        kmem_cache_shrink(c);
        kmem_cache_reap(GFP_KERNEL);
        vm_release_free(0, 0);
    }
    return kmem_cache_destroy(c) ? (void *)1 : NULL;
}

/* kslab is started before the threads (a fork made while the very first
 * start-up runs in another thread, before its fork level, is the one case
 * the protocol cannot cover: lib/fork.c). */
static void test_fork_while_threads_allocate(void **state)
{
    (void)state;
    pthread_t t[3];
    kfree(kmalloc(1, GFP_KERNEL));
    atomic_store(&stop, 0);
    for (int i = 0; i < 3; i++)
        atomic_store(&beside_ops[i], 0);
    assert_int_equal(pthread_create(&t[0], NULL, allocator, (void *)1), 0);
    assert_int_equal(pthread_create(&t[1], NULL, allocator, (void *)2), 0);
    assert_int_equal(pthread_create(&t[2], NULL, reclaimer, NULL), 0);
    int working = beside_threads_working();
    int forks = 0;
    for (double until = now_ms() + 1500;
         working && (forks < MIN_FORKS || now_ms() < until); forks++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child_allocates();
        expect_child_ok(pid, "fork beside allocating threads");
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    printf("fork: %d forks beside 3 threads (%lu, %lu, %lu operations)\n",
           forks, atomic_load(&beside_ops[0]), atomic_load(&beside_ops[1]),
           atomic_load(&beside_ops[2]));
    assert_true(working);
    assert_true(forks >= MIN_FORKS);
}

/* ---- a lock held by another thread at the fork, deterministically ---- */

static sem_t held;

/* A stream whose write blocks for a while at the first cache line of the
 * slabinfo text: kmem_slabinfo() holds the cache chain lock then. */
static ssize_t slow_write(void *cookie, const char *buf, size_t n)
{
    int *once = cookie;
    if (!*once && memmem(buf, n, "kmem_cache", 10)) {
        *once = 1;
        sem_post(&held);
        usleep(300 * 1000);
    }
    return (ssize_t)n;
}

static void *print_slabinfo(void *arg)
{
    (void)arg;
    int once = 0;
    cookie_io_functions_t io = {.write = slow_write};
    FILE *f = fopencookie(&once, "w", io);
    if (!f)
        abort();
    setvbuf(f, NULL, _IONBF, 0);
    kmem_slabinfo(f);
    fclose(f);
    return NULL;
}

/* Without the core's fork protocol the child would find the chain lock
 * held by a thread it does not have, and hang in kmem_cache_create. */
static void test_fork_while_chain_lock_held(void **state)
{
    (void)state;
    pthread_t t;
    kfree(kmalloc(1, GFP_KERNEL)); /* start-up done */
    sem_init(&held, 0, 0);
    assert_int_equal(pthread_create(&t, NULL, print_slabinfo, NULL), 0);
    sem_wait(&held);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_allocates();
    expect_child_ok(pid, "fork while the chain lock is held");
    pthread_join(t, NULL);
}

/* ---- the emulator's part of the protocol ---- */

static void *vmallocator(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        char *p = vmalloc(16 * PAGE_SIZE); /* under vmlist_lock a while */
        if (!p)
            return (void *)1;
        p[0] = 1;
        vfree(p);
    }
    return NULL;
}

/* vmalloc alone (no mm yet) puts the emulator in the protocol: a fork
 * beside a thread that vmallocs leaves the child a usable vmalloc. */
static void test_fork_while_a_thread_vmallocs(void **state)
{
    (void)state;
    pthread_t t;
    void *r;
    vfree(vmalloc(PAGE_SIZE));
    atomic_store(&stop, 0);
    assert_int_equal(pthread_create(&t, NULL, vmallocator, NULL), 0);
    for (int i = 0; i < 100; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(CHILD_SECONDS);
            char *p = vmalloc(4 * PAGE_SIZE);
            if (!p)
                child_exit(2);
            p[3 * PAGE_SIZE] = 1;
            vfree(p);
            child_exit(0);
        }
        expect_child_ok(pid, "fork beside vmalloc");
    }
    atomic_store(&stop, 1);
    pthread_join(t, &r);
    assert_null(r);
}

struct mm_hold {
    struct mm_struct *mm;
};

static void *hold_mmap_sem(void *arg)
{
    struct mm_hold *h = arg;
    pthread_mutex_lock(&h->mm->mmap_sem);
    sem_post(&held);
    usleep(300 * 1000);
    pthread_mutex_unlock(&h->mm->mmap_sem);
    return NULL;
}

/* The emulator registered its hook at its first mm: a fork waits for the
 * mmap_sem another thread holds, and the child can use the mm. */
static void test_fork_while_mmap_sem_held(void **state)
{
    (void)state;
    struct mm_hold h = {mm_alloc()};
    assert_non_null(h.mm);
    sem_init(&held, 0, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_mmap_sem, &h), 0);
    sem_wait(&held);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        unsigned long a =
            do_mmap(h.mm, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, 0);
        if (IS_ERR_VALUE(a))
            child_exit(2);
        *(volatile char *)mm_host(h.mm, a) = 1;
        struct mm_struct *copy = mm_fork(h.mm);
        if (!copy)
            child_exit(3);
        mmput(copy);
        child_allocates();
    }
    expect_child_ok(pid, "fork while an mmap_sem is held");
    pthread_join(t, NULL);
    mmput(h.mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_while_threads_allocate),
        cmocka_unit_test(test_fork_while_chain_lock_held),
        cmocka_unit_test(test_fork_while_a_thread_vmallocs),
        cmocka_unit_test(test_fork_while_mmap_sem_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
