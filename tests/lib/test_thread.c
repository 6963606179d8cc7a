/*
 * tests/lib/test_thread.c — the one thread registry (lib/thread.c), in a
 * program that links only kslab_core: the malloc layer's level (IP) is
 * free here, so the test registers its own hook there and watches the
 * exits from the top of the order.  Each exiting thread runs each hook
 * once, the upper level first (the slab's slot of the
 * thread is still attached when the IP hook runs), also a thread that
 * never allocated; threads exit beside host forks without a deadlock, and
 * a child keeps its own record only.  Every child is bounded (alarm).
 * A thread whose first allocation comes after glibc ran its key
 * destructors leaves its record listed: walks stay safe when a new thread
 * gets its cached stack (glibc re-initialises that TLS), and that thread
 * takes the record over.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <kslab/kslab.h>

#include "ktest.h"
#include "lib/thread.h"
#include "slab/kmalloc.h"

#define CHILD_SECONDS 20

/* What the test's IP hook saw, per kind of thread. */
static atomic_int exits;           /* hook calls */
static atomic_int exits_with_slot; /* with the slot the thread attached */
static atomic_int lower_attached;  /* the slab's slot still there */
static atomic_int lower_detached;  /* ... already gone */
static atomic_int twice;           /* a marker seen a second time */

struct marker {
    atomic_int seen;
};

static void test_exit(void *slot)
{
    atomic_fetch_add(&exits, 1);
    struct marker *m = slot;
    if (m) {
        atomic_fetch_add(&exits_with_slot, 1);
        if (atomic_fetch_add(&m->seen, 1))
            atomic_fetch_add(&twice, 1);
    }
    if (kslab_thread_slot(KSLAB_THREAD_SLAB))
        atomic_fetch_add(&lower_attached, 1);
    else
        atomic_fetch_add(&lower_detached, 1);
}

static const struct kslab_thread_hook test_hook = {test_exit};

static void reset(void)
{
    atomic_store(&exits, 0);
    atomic_store(&exits_with_slot, 0);
    atomic_store(&lower_attached, 0);
    atomic_store(&lower_detached, 0);
    atomic_store(&twice, 0);
}

/* Allocates from the slab (it attaches), and attaches at
 * the test's level when arg is a marker. */
static void *allocate_and_exit(void *arg)
{
    void *p[64];
    for (int i = 0; i < 64; i++)
        p[i] = kmalloc(64 + 32 * (size_t)i, GFP_KERNEL);
    for (int i = 0; i < 64; i++)
        kfree(p[i]);
    free_pages(__get_free_pages(GFP_KERNEL, 0), 0);
    if (arg && kslab_thread_attach(KSLAB_THREAD_IP, &test_hook, arg))
        return (void *)1;
    return NULL;
}

/* Attaches at the test's level only: no allocation at all. */
static void *attach_only(void *arg)
{
    return kslab_thread_attach(KSLAB_THREAD_IP, &test_hook, arg) ? (void *)1
                                                                 : NULL;
}

static void join_ok(pthread_t t)
{
    void *r = (void *)1;
    assert_int_equal(pthread_join(t, &r), 0);
    assert_null(r);
}

/* Each hook runs once per exiting thread, the top level first. */
static void test_hooks_once_in_level_order(void **state)
{
    (void)state;
    enum { N = 8 };
    struct marker m[N];
    pthread_t t[N];
    kfree(kmalloc(1, GFP_KERNEL));
    reset();
    for (int i = 0; i < N; i++) {
        atomic_store(&m[i].seen, 0);
        assert_int_equal(pthread_create(&t[i], NULL, allocate_and_exit, &m[i]),
                         0);
    }
    for (int i = 0; i < N; i++)
        join_ok(t[i]);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&m[i].seen), 1);
    assert_int_equal(atomic_load(&exits), N);
    assert_int_equal(atomic_load(&exits_with_slot), N);
    assert_int_equal(atomic_load(&twice), 0);
    /* the IP level ran before the slab's */
    assert_int_equal(atomic_load(&lower_attached), N);
    assert_int_equal(atomic_load(&lower_detached), 0);
    assert_int_equal(kslab_verify(), 0);
}

/* A thread that allocated but never attached at the test's level: its
 * hook runs once, with no slot.  One that never allocated (attached at
 * the test's level only): the hook runs once with its slot, and the
 * slab's hook, with none, leave everything consistent. */
static void test_hooks_for_threads_without_a_slot(void **state)
{
    (void)state;
    struct marker m = {0};
    pthread_t t;
    reset();
    assert_int_equal(pthread_create(&t, NULL, allocate_and_exit, NULL), 0);
    join_ok(t);
    assert_int_equal(atomic_load(&exits), 1);
    assert_int_equal(atomic_load(&exits_with_slot), 0);
    reset();
    assert_int_equal(pthread_create(&t, NULL, attach_only, &m), 0);
    join_ok(t);
    assert_int_equal(atomic_load(&exits), 1);
    assert_int_equal(atomic_load(&exits_with_slot), 1);
    assert_int_equal(atomic_load(&m.seen), 1);
    assert_int_equal(atomic_load(&lower_detached), 1); /* it had none */
    assert_int_equal(kslab_verify(), 0);
}

/* ---- threads exiting beside host forks ---- */

static __attribute__((noreturn)) void child_exit(int code)
{
    syscall(SYS_exit_group, code); /* TSan: no report of absent threads */
    _exit(code);
}

static int records_at(enum kslab_thread_level level)
{
    int n = 0;
    kslab_thread_lock(level);
    for (struct kslab_thread *pos = NULL; kslab_thread_next(level, &pos);)
        n++;
    kslab_thread_unlock(level);
    return n;
}

/* The child: the forking thread is the only one the registry knows at
 * the slab's level; it allocates, and a thread of its
 * own exits cleanly (not under the sanitizers: below). */
static void child_checks(void)
{
    alarm(CHILD_SECONDS);
    kfree(kmalloc(100, GFP_KERNEL));
    free_pages(__get_free_pages(GFP_KERNEL, 0), 0);
    if (records_at(KSLAB_THREAD_SLAB) != 1)
        child_exit(2);
/* Not under the sanitizers: TSan starts no thread after a threaded fork,
 * and ASan's allocator (libsanitizer's SizeClassAllocator64) takes no lock
 * across fork, so the child's new thread can wait forever on a region lock
 * a parent thread held (pthread_getattr_np's free). */
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
    pthread_t t;
    if (pthread_create(&t, NULL, allocate_and_exit, NULL) ||
        pthread_join(t, NULL))
        child_exit(3);
#endif
    if (records_at(KSLAB_THREAD_SLAB) != 1 || kslab_verify() != 0)
        child_exit(4);
    child_exit(0);
}

static atomic_int stop;
static atomic_ulong spawned;

/* Starts threads that allocate and exit, one after the other. */
static void *spawner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        pthread_t t;
        if (pthread_create(&t, NULL, allocate_and_exit, NULL))
            return (void *)1;
        if (pthread_join(t, NULL))
            return (void *)1;
        atomic_fetch_add(&spawned, 1);
    }
    return NULL;
}

#define MIN_FORKS 20
#define MIN_EXITS 20

static void test_exits_beside_forks(void **state)
{
    (void)state;
    pthread_t s[2];
    kfree(kmalloc(1, GFP_KERNEL));
    atomic_store(&stop, 0);
    atomic_store(&spawned, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&s[i], NULL, spawner, NULL), 0);
    int forks = 0;
    while (forks < MIN_FORKS || atomic_load(&spawned) < MIN_EXITS) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child_checks();
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("child status %#x (%s)", st,
                     WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM
                         ? "deadlocked: killed by its alarm"
                         : "failed");
        forks++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        join_ok(s[i]);
    printf("registry: %d forks beside %lu thread exits\n", forks,
           atomic_load(&spawned));
    assert_int_equal(kslab_verify(), 0);
}

/* ---- a thread that attaches after its key destructors ran ---- */

static pthread_key_t late_key;
static __thread int late_round;
static __thread char tls_marker;

/* Keeps itself set through glibc's destructor rounds; in the last one it
 * makes the thread's first allocation, so the registry's key (made
 * before this one) is set when no round is left to run its destructor. */
static void late_destructor(void *v)
{
    (void)v;
    if (++late_round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, (void *)1);
        return;
    }
    kfree(kmalloc(200, GFP_KERNEL));
    free_pages(__get_free_pages(GFP_KERNEL, 0), 0);
}

static void *late_attacher(void *arg)
{
    *(char **)arg = &tls_marker;
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static atomic_int walk_now, walked;

/* Waits (its TLS untouched by kslab) while the main thread walks, then
 * allocates: its first attach. */
static void *successor(void *arg)
{
    *(char **)arg = &tls_marker;
    atomic_store(&walk_now, 1);
    while (!atomic_load(&walked))
        sched_yield();
    return allocate_and_exit(NULL);
}

static void test_record_left_by_a_late_attach(void **state)
{
    (void)state;
    kfree(kmalloc(1, GFP_KERNEL)); /* the registry's key comes first */
    assert_int_equal(pthread_key_create(&late_key, late_destructor), 0);
    int base = records_at(KSLAB_THREAD_SLAB);
    pthread_attr_t attr;
    /* a stack size of its own: glibc gives the cached stack back to the
     * next thread of that size */
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(
        pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN + (300UL << 10)), 0);
    char *first = NULL, *second = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, late_attacher, &first), 0);
    join_ok(t);
    int left = records_at(KSLAB_THREAD_SLAB) - base;
    assert_true(left == 0 || left == 1); /* 0: another glibc's rounds */
    atomic_store(&walk_now, 0);
    atomic_store(&walked, 0);
    assert_int_equal(pthread_create(&t, &attr, successor, &second), 0);
    while (!atomic_load(&walk_now))
        sched_yield();
    /* the successor runs in the dead thread's TLS block, if glibc gave it
     * the cached stack: the walks read the record left listed */
    for (int l = 0; l < KSLAB_THREAD_NR_LEVELS; l++)
        records_at(l);
    assert_int_equal(kslab_verify(), 0);
    atomic_store(&walked, 1);
    join_ok(t);
    pthread_attr_destroy(&attr);
    int after = records_at(KSLAB_THREAD_SLAB) - base;
    printf("late attach: %d record(s) left; TLS block %s\n", left,
           first == second ? "reused (the record taken over)" : "not reused");
    if (first == second)
        assert_int_equal(after, 0);
    else
        assert_int_equal(after, left);
    assert_int_equal(kslab_verify(), 0);
    pthread_key_delete(late_key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_once_in_level_order),
        cmocka_unit_test(test_hooks_for_threads_without_a_slot),
        cmocka_unit_test(test_exits_beside_forks),
        cmocka_unit_test(test_record_left_by_a_late_attach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
