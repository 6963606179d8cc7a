/*
 * tests/slab/test_percpu.c — the per-CPU arrays (slab/percpu.c), run with
 * KSLAB_PERCPU=1: they are used where glibc registered rseq (slabinfo's
 * cpu_arrays column), objects freed on one CPU are allocated on another,
 * a storm of threads hopping between CPUs while they allocate and free
 * loses or corrupts no object, a fork child allocates and frees, exiting
 * threads lose nothing (shrink and destroy find every object), the
 * double-free checks see the CPUs' arrays, and the objects held in arrays
 * stay bounded by the CPUs, not the threads.  Skipped (77) where the host
 * gives no per-CPU arrays: no rseq registration (older glibc,
 * GLIBC_TUNABLES=glibc.pthread.rseq=0), sanitizer builds.
 */
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include <kslab/kslab.h>

#include "ktest.h"
#include "percpu_test.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"

static int setup(void **state)
{
    (void)state;
    kmem_cache_init();
    if (!SLAB_PERCPU || !pt_rseq_registered()) {
        print_message("[  SKIPPED ] no per-CPU arrays here (%s)\n",
                      SLAB_PERCPU ? "rseq not registered"
                                  : "sanitizer or non-x86-64 build");
        exit(KTEST_SKIP);
    }
    return 0;
}

/* ---- per-CPU mode is the one used ---- */

static void test_percpu_used(void **state)
{
    (void)state;
    assert_true(slab_percpu_on());
    kmem_cache_t *c = kmem_cache_create("pcpu-used", 96, 0, 0, NULL, NULL);
    assert_non_null(c);
    void *o[8];
    for (int i = 0; i < 8; i++)
        assert_non_null(o[i] = kmem_cache_alloc(c, GFP_KERNEL));
    for (int i = 0; i < 8; i++)
        kmem_cache_free(c, o[i]);
    long n = pt_slabinfo_cpu_arrays("pcpu-used");
    assert_true(n >= 1);
    assert_true(n <= (long)slab_pcpu.nr);
    /* the freed objects are in a CPU's array, not a thread's */
    assert_true(slab_percpu_count(c->id) >= 1);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- freed on one CPU, allocated on another ---- */

#define HANDOFF 64

struct handoff {
    int cpu;
    kmem_cache_t *cache;
    void **objs;
    int got_back; /* objects of objs allocated again here */
};

static void *alloc_on(void *arg)
{
    struct handoff *h = arg;
    ktest_check(pt_pin(h->cpu) == 0);
    for (int i = 0; i < HANDOFF; i++) {
        h->objs[i] = kmem_cache_alloc(h->cache, GFP_KERNEL);
        ktest_check(h->objs[i] != NULL);
        memset(h->objs[i], i, 128);
    }
    return NULL;
}

static void *free_then_alloc_on(void *arg)
{
    struct handoff *h = arg;
    ktest_check(pt_pin(h->cpu) == 0);
    for (int i = 0; i < HANDOFF; i++) {
        unsigned char *p = h->objs[i];
        ktest_check(p[0] == (unsigned char)i && p[127] == (unsigned char)i);
        kmem_cache_free(h->cache, p);
    }
    void *again[HANDOFF];
    for (int i = 0; i < HANDOFF; i++) {
        again[i] = kmem_cache_alloc(h->cache, GFP_KERNEL);
        ktest_check(again[i] != NULL);
        for (int j = 0; j < HANDOFF; j++)
            if (again[i] == h->objs[j])
                h->got_back++;
    }
    for (int i = 0; i < HANDOFF; i++)
        kmem_cache_free(h->cache, again[i]);
    return NULL;
}

static void test_freed_on_one_cpu_allocated_on_another(void **state)
{
    (void)state;
    int cpus[2];
    if (pt_allowed_cpus(cpus, 2) < 2)
        ktest_skip("one CPU allowed");
    kmem_cache_t *c = kmem_cache_create("pcpu-handoff", 128, 0, 0, NULL, NULL);
    assert_non_null(c);
    void *objs[HANDOFF];
    struct handoff a = {cpus[0], c, objs, 0}, b = {cpus[1], c, objs, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, alloc_on, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(pthread_create(&t, NULL, free_then_alloc_on, &b), 0);
    pthread_join(t, NULL);
    ktest_workers_ok();
    /* CPU b's array took the objects CPU a's array handed out */
    assert_int_equal(b.got_back, HANDOFF);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- a migration storm ---- */

#define STORM_THREADS 6
#define STORM_SECONDS 1.5
#define STORM_MIN_OPS 20000UL
#define STORM_LIVE 48

struct stormer {
    kmem_cache_t *cache;
    int ncpus, *cpus;
    unsigned int seed;
    unsigned long ops, hops;
};

/* Each live object carries its address and a tag in every word. */
static void stamp(void *o, size_t size, uintptr_t tag)
{
    uintptr_t *w = o;
    for (size_t i = 0; i < size / sizeof *w; i++)
        w[i] = (uintptr_t)o ^ tag ^ i;
}

static int stamped(const void *o, size_t size, uintptr_t tag)
{
    const uintptr_t *w = o;
    for (size_t i = 0; i < size / sizeof *w; i++)
        if (w[i] != ((uintptr_t)o ^ tag ^ i))
            return 0;
    return 1;
}

static void *storm(void *arg)
{
    struct stormer *s = arg;
    void *live[STORM_LIVE] = {0};
    void *klive[STORM_LIVE] = {0};
    size_t ksize_of[STORM_LIVE] = {0};
    uintptr_t tag = (uintptr_t)s * 0x9E3779B97F4A7C15ULL;
    size_t sz = kmem_cache_size(s->cache);
    double end = pt_now_s() + STORM_SECONDS;
    while (pt_now_s() < end) {
        for (int k = 0; k < 256; k++) {
            unsigned int r = rand_r(&s->seed);
            int i = (int)(r % STORM_LIVE);
            if (live[i]) {
                ktest_check(stamped(live[i], sz, tag));
                kmem_cache_free(s->cache, live[i]);
                live[i] = NULL;
            } else {
                live[i] = kmem_cache_alloc(s->cache, GFP_KERNEL);
                ktest_check(live[i] != NULL);
                stamp(live[i], sz, tag);
            }
            if (klive[i]) {
                ktest_check(stamped(klive[i], ksize_of[i], tag));
                kfree(klive[i]);
                klive[i] = NULL;
            } else {
                ksize_of[i] = 32u << (r >> 8) % 6;
                klive[i] = kmalloc(ksize_of[i], GFP_KERNEL);
                ktest_check(klive[i] != NULL);
                stamp(klive[i], ksize_of[i], tag);
            }
            s->ops += 2;
        }
        /* hop to another CPU */
        ktest_check(pt_pin(s->cpus[s->hops++ % (unsigned)s->ncpus]) == 0);
    }
    for (int i = 0; i < STORM_LIVE; i++) {
        if (live[i]) {
            ktest_check(stamped(live[i], sz, tag));
            kmem_cache_free(s->cache, live[i]);
        }
        if (klive[i]) {
            ktest_check(stamped(klive[i], ksize_of[i], tag));
            kfree(klive[i]);
        }
    }
    return NULL;
}

static void test_migration_storm(void **state)
{
    (void)state;
    int cpus[64];
    int n = pt_allowed_cpus(cpus, 64);
    if (n < 2)
        ktest_skip("one CPU allowed");
    kmem_cache_t *c = kmem_cache_create("pcpu-storm", 72, 0, 0, NULL, NULL);
    assert_non_null(c);
    struct stormer s[STORM_THREADS];
    pthread_t t[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++) {
        s[i] = (struct stormer){c, n, cpus, (unsigned)i * 7919u + 1, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, storm, &s[i]), 0);
    }
    unsigned long ops = 0, hops = 0;
    for (int i = 0; i < STORM_THREADS; i++) {
        pthread_join(t[i], NULL);
        ops += s[i].ops;
        hops += s[i].hops;
    }
    ktest_workers_ok();
    assert_true(ops >= STORM_MIN_OPS);
    assert_true(hops >= STORM_THREADS);
    assert_int_equal(kslab_verify(), 0);
    /* every object came back: nothing in use after the arrays drain */
    assert_int_equal(kmem_cache_shrink(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- a full magazine goes to the depot whole ---- */

/* Is ac one of the full magazines of the depot of cachep? */
static int depot_has_array(kmem_cache_t *cachep, const struct array_cache *ac)
{
    struct slab_depot *d = &cachep->depot;
    struct list_head *p;
    int found = 0;
    pthread_mutex_lock(&d->lock);
    list_for_each(p, &d->full)
    {
        if (&list_entry(p, struct slab_magazine, list)->ac == ac)
            found = 1;
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

struct whole {
    int cpu;
    kmem_cache_t *cache;
    int on_cpu;   /* the array was the CPU's loaded one */
    int in_depot; /* and then one of the depot's magazines */
    unsigned long mags_in;
};

static void *overflow_on(void *arg)
{
    struct whole *w = arg;
    kmem_cache_t *c = w->cache;
    unsigned int n = 4 * c->batchcount;
    void **o = calloc(n, sizeof *o);
    ktest_check(o != NULL && pt_pin(w->cpu) == 0);
    for (unsigned int i = 0; i < n; i++)
        ktest_check((o[i] = kmem_cache_alloc(c, GFP_KERNEL)) != NULL);
    unsigned long in0 = c->depot.mags_in;
    kmem_cache_free(c, o[0]);
    const struct array_cache *loaded = slab_cpu_acs[w->cpu][c->id];
    w->on_cpu = loaded != &slab_empty_ac && slab_array_holds(loaded, o[0]);
    /* enough frees to fill it and the previous magazine and overflow */
    for (unsigned int i = 1; i < n; i++)
        kmem_cache_free(c, o[i]);
    w->in_depot = depot_has_array(c, loaded);
    w->mags_in = c->depot.mags_in - in0;
    free(o);
    return NULL;
}

/* The CPU's array is a magazine of the depot: when it and the previous
 * one are full, a free hands the full one over whole, no object copied
 * (the array loaded on the CPU is then on the depot's list). */
static void test_full_magazine_handed_over_whole(void **state)
{
    (void)state;
    int cpus[1] = {0};
    if (pt_allowed_cpus(cpus, 1) < 1)
        ktest_skip("no CPU allowed");
    kmem_cache_t *c = kmem_cache_create("pcpu-whole", 64, 0, 0, NULL, NULL);
    assert_non_null(c);
    /* 2.4's tunables: the CPU's two magazines hold limit objects */
    assert_true(c->batchcount == c->limit / 2);
    struct whole w = {cpus[0], c, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, overflow_on, &w), 0);
    pthread_join(t, NULL);
    ktest_workers_ok();
    assert_true(w.on_cpu);
    assert_true(w.mags_in >= 1);
    assert_true(w.in_depot);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- magazine exchanges under migration: every object once ---- */

#define XCHG_THREADS 8
#define XCHG_SECONDS 1.5
#define XCHG_MIN_OPS 20000UL
#define XCHG_HOP 61 /* operations between two moves to another CPU */

/* One byte per 64-byte granule of the first section: 1 while a thread
 * holds the object there.  A second claim is an object handed out twice. */
static _Atomic unsigned char *xchg_owned;
static unsigned long xchg_granules;

struct xchger {
    kmem_cache_t *cache;
    int ncpus, *cpus;
    unsigned long ops, hops;
};

static _Atomic unsigned char *owned_byte(const void *p)
{
    unsigned long g = (unsigned long)((const char *)p - vm_lowmem.base) >> 6;
    ktest_check(g < xchg_granules);
    return g < xchg_granules ? &xchg_owned[g] : NULL;
}

static void xchg_hop(struct xchger *x)
{
    if (++x->ops % XCHG_HOP == 0)
        ktest_check(pt_pin(x->cpus[x->hops++ % (unsigned)x->ncpus]) == 0);
}

static void *xchg_thread(void *arg)
{
    struct xchger *x = arg;
    kmem_cache_t *c = x->cache;
    /* three CPUs' worth: every batch crosses magazine boundaries */
    unsigned int n = 3 * c->limit;
    void **o = calloc(n, sizeof *o);
    ktest_check(o != NULL);
    uintptr_t tag = (uintptr_t)x * 0x9E3779B97F4A7C15ULL;
    double end = pt_now_s() + XCHG_SECONDS;
    while (o && (pt_now_s() < end || x->ops < XCHG_MIN_OPS / XCHG_THREADS)) {
        unsigned int k = n / 2 + (unsigned int)(x->ops % (n / 2));
        for (unsigned int i = 0; i < k; i++) {
            o[i] = kmem_cache_alloc(c, GFP_KERNEL);
            ktest_check(o[i] != NULL);
            _Atomic unsigned char *b = owned_byte(o[i]);
            if (b)
                ktest_check(atomic_exchange(b, 1) == 0);
            stamp(o[i], 64, tag);
            xchg_hop(x);
        }
        for (unsigned int i = 0; i < k; i++) {
            ktest_check(stamped(o[i], 64, tag));
            _Atomic unsigned char *b = owned_byte(o[i]);
            if (b)
                ktest_check(atomic_exchange(b, 0) == 1);
            kmem_cache_free(c, o[i]);
            xchg_hop(x);
        }
    }
    free(o);
    return NULL;
}

static _Atomic int xchg_stop;

/* Shrinks the cache over and over: each shrink takes every CPU's
 * magazines by an exchange of the slot while the threads' sequences
 * commit theirs by a compare-and-swap. */
static void *xchg_shrinker(void *arg)
{
    kmem_cache_t *c = arg;
    unsigned long n = 0;
    while (!atomic_load(&xchg_stop)) {
        kmem_cache_shrink(c);
        n++;
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    return (void *)n;
}

/* Threads move to another CPU every few operations while their batches
 * overflow and drain the CPUs' magazines and another thread shrinks the
 * cache: no object is handed out twice (the claim table, the stamps),
 * none is lost (the cache shrinks to nothing), and the depot moved whole
 * magazines both ways. */
static void test_magazine_exchanges_under_migration(void **state)
{
    (void)state;
    int cpus[64];
    int n = pt_allowed_cpus(cpus, 64);
    if (n < 2)
        ktest_skip("one CPU allowed");
    kmem_cache_t *c = kmem_cache_create("pcpu-xchg", 64, 0, 0, NULL, NULL);
    assert_non_null(c);
    assert_int_equal(c->size, 64);
    xchg_granules = vm_lowmem.fast_pages * (PAGE_SIZE / 64);
    xchg_owned = mmap(NULL, xchg_granules, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(xchg_owned != MAP_FAILED);
    unsigned long in0 = c->depot.mags_in, out0 = c->depot.mags_out;
    struct xchger x[XCHG_THREADS];
    pthread_t t[XCHG_THREADS];
    for (int i = 0; i < XCHG_THREADS; i++) {
        x[i] = (struct xchger){c, n, cpus, 0, (unsigned long)i};
        assert_int_equal(pthread_create(&t[i], NULL, xchg_thread, &x[i]), 0);
    }
    pthread_t shrinker;
    atomic_store(&xchg_stop, 0);
    assert_int_equal(pthread_create(&shrinker, NULL, xchg_shrinker, c), 0);
    unsigned long ops = 0, hops = 0;
    for (int i = 0; i < XCHG_THREADS; i++) {
        pthread_join(t[i], NULL);
        ops += x[i].ops;
        hops += x[i].hops;
    }
    atomic_store(&xchg_stop, 1);
    void *shrinks;
    pthread_join(shrinker, &shrinks);
    ktest_workers_ok();
    print_message("%lu operations, %lu moves, %lu shrinks, %lu magazines in, "
                  "%lu out\n",
                  ops, hops, (unsigned long)shrinks, c->depot.mags_in - in0,
                  c->depot.mags_out - out0);
    assert_true((unsigned long)shrinks >= 1);
    assert_true(ops >= XCHG_MIN_OPS);
    assert_true(hops >= XCHG_THREADS);
    assert_true(c->depot.mags_in - in0 >= 1);
    assert_true(c->depot.mags_out - out0 >= 1);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_shrink(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
    munmap((void *)xchg_owned, xchg_granules);
}

/* ---- fork ---- */

static _Atomic int churn_stop;

static void *churn(void *arg)
{
    kmem_cache_t *c = arg;
    while (!atomic_load(&churn_stop)) {
        void *o[16];
        for (int i = 0; i < 16; i++) {
            o[i] = kmem_cache_alloc(c, GFP_KERNEL);
            ktest_check(o[i] != NULL);
        }
        for (int i = 0; i < 16; i++)
            kmem_cache_free(c, o[i]);
    }
    return NULL;
}

static kmem_cache_t *fork_cache;

static void child_work(void *arg)
{
    (void)arg;
    if (!slab_percpu_on())
        _exit(3);
    for (int round = 0; round < 100; round++) {
        void *o[300], *k[300];
        for (int i = 0; i < 300; i++) {
            o[i] = kmem_cache_alloc(fork_cache, GFP_KERNEL);
            k[i] = kmalloc(64, GFP_KERNEL);
            if (!o[i] || !k[i])
                _exit(4);
            memset(o[i], 0x5c, 160);
        }
        for (int i = 0; i < 300; i++) {
            kmem_cache_free(fork_cache, o[i]);
            kfree(k[i]);
        }
    }
    if (kslab_verify() != 0)
        _exit(5);
    _exit(0);
}

static void test_fork_child_works(void **state)
{
    (void)state;
    fork_cache = kmem_cache_create("pcpu-fork", 160, 0, 0, NULL, NULL);
    assert_non_null(fork_cache);
    pthread_t t[3];
    atomic_store(&churn_stop, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, fork_cache), 0);
    for (int i = 0; i < 10; i++) {
        char err[1024];
        int st = ktest_run_child(child_work, NULL, err, sizeof err);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("fork %d: child status %#x: %s", i, st, err);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    ktest_workers_ok();
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_destroy(fork_cache), 0);
}

/* ---- threads exit, nothing is lost; arrays bounded by the CPUs ---- */

#define EXIT_THREADS 64
#define EXIT_OBJS 100

static pthread_barrier_t exit_barrier;

static void *alloc_free_wait(void *arg)
{
    kmem_cache_t *c = arg;
    void *o[EXIT_OBJS];
    for (int i = 0; i < EXIT_OBJS; i++) {
        o[i] = kmem_cache_alloc(c, GFP_KERNEL);
        ktest_check(o[i] != NULL);
    }
    for (int i = 0; i < EXIT_OBJS; i++)
        kmem_cache_free(c, o[i]);
    pthread_barrier_wait(&exit_barrier); /* all alive: main counts */
    pthread_barrier_wait(&exit_barrier);
    return NULL;
}

static void test_arrays_flat_and_exit_loses_nothing(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("pcpu-exit", 200, 0, 0, NULL, NULL);
    assert_non_null(c);
    pthread_t t[EXIT_THREADS];
    assert_int_equal(
        pthread_barrier_init(&exit_barrier, NULL, EXIT_THREADS + 1), 0);
    for (int i = 0; i < EXIT_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, alloc_free_wait, c), 0);
    pthread_barrier_wait(&exit_barrier);
    /* 64 live threads freed 100 objects each: the arrays hold at most
     * one array's worth per CPU (the rest went to the depot or slabs) */
    struct slab_usage u = {0};
    slab_cache_usage(c, &u);
    unsigned long in_arrays = u.array_objs - slab_depot_objects(c);
    assert_true(in_arrays <= (unsigned long)slab_pcpu.nr * c->limit);
    assert_true(pt_slabinfo_cpu_arrays("pcpu-exit") <= (long)slab_pcpu.nr);
    pthread_barrier_wait(&exit_barrier);
    for (int i = 0; i < EXIT_THREADS; i++)
        pthread_join(t[i], NULL);
    ktest_workers_ok();
    pthread_barrier_destroy(&exit_barrier);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_shrink(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- the double-free checks see the CPUs' arrays ---- */

static void double_free_unkeyed(void *arg)
{
    (void)arg;
    kmem_cache_t *c = kmem_cache_create("pcpu-df", 64, 0, 0, NULL, NULL);
    void *o = kmem_cache_alloc(c, GFP_KERNEL);
    kmem_cache_free(c, o);
    kmem_cache_free(c, o);
    _exit(0);
}

static void double_free_keyed(void *arg)
{
    (void)arg;
    void *a = kmalloc(100, GFP_KERNEL);
    void *b = kmalloc(100, GFP_KERNEL);
    kfree(a);
    kfree(b);
    kfree(a);
    _exit(0);
}

static void test_double_free_in_cpu_array(void **state)
{
    (void)state;
    char err[1024];
    int st = ktest_run_child(double_free_unkeyed, NULL, err, sizeof err);
    ktest_assert_one_line("unkeyed double free", st, err, SIGABRT,
                          "double free");
    st = ktest_run_child(double_free_keyed, NULL, err, sizeof err);
    ktest_assert_one_line("keyed double free", st, err, SIGABRT, "double free");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percpu_used),
        cmocka_unit_test(test_fork_child_works),
        cmocka_unit_test(test_arrays_flat_and_exit_loses_nothing),
        cmocka_unit_test(test_double_free_in_cpu_array),
        cmocka_unit_test(test_full_magazine_handed_over_whole),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_freed_on_one_cpu_allocated_on_another),
        ktest_alone(test_migration_storm),
        ktest_alone(test_magazine_exchanges_under_migration),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
