/*
 * tests/slab/test_magazine.c — the depot of magazines between the
 * threads' arrays and the slab lists (slab/magazine.c): a producer and a
 * consumer trade objects through it without the slab lists, shrink gives
 * everything in it back, the double-free check sees objects in it, the
 * bound holds, and it stays consistent across forks under four threads.
 */
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>

#include <kslab/kslab.h>

#include "ktest.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"

/* ---- a producer and a consumer ---- */

#define RING 1024
#define PC_OBJECTS 200000UL

struct ring {
    void *slot[RING];
    _Atomic unsigned long head, tail; /* head: next put; tail: next take */
    kmem_cache_t *cache;
};

static void *producer(void *arg)
{
    struct ring *r = arg;
    for (unsigned long i = 0; i < PC_OBJECTS; i++) {
        void *o = kmem_cache_alloc(r->cache, GFP_KERNEL);
        ktest_check(o != NULL);
        memset(o, 0x11, 64);
        while (atomic_load(&r->head) - atomic_load(&r->tail) == RING)
            sched_yield();
        unsigned long h = atomic_load(&r->head);
        r->slot[h % RING] = o;
        atomic_store(&r->head, h + 1);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct ring *r = arg;
    for (unsigned long i = 0; i < PC_OBJECTS; i++) {
        while (atomic_load(&r->tail) == atomic_load(&r->head))
            sched_yield();
        unsigned long t = atomic_load(&r->tail);
        void *o = r->slot[t % RING];
        atomic_store(&r->tail, t + 1);
        kmem_cache_free(r->cache, o);
    }
    return NULL;
}

/* Every object the consumer frees reaches the producer again through the
 * depot: over the run the slab lists see the objects that fill the ring,
 * the arrays and the depot at the start, a few per hundred moved (2.4's
 * arrays alone: every object, twice), and their lock is taken a few times
 * per thousand. */
static void test_producer_consumer_through_depot(void **state)
{
    (void)state;
    static struct ring r;
    r.cache = kmem_cache_create("mag-pc", 64, 0, 0, NULL, NULL);
    assert_non_null(r.cache);
    assert_true(r.cache->id != 0);
    pthread_t p, c;
    assert_int_equal(pthread_create(&p, NULL, producer, &r), 0);
    assert_int_equal(pthread_create(&c, NULL, consumer, &r), 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    ktest_workers_ok();
    unsigned long moved = atomic_load(&r.tail);
    pthread_mutex_lock(&r.cache->spinlock);
    unsigned long ops = r.cache->list_ops;
    unsigned long locks = r.cache->list_locks;
    pthread_mutex_unlock(&r.cache->spinlock);
    pthread_mutex_lock(&r.cache->depot.lock);
    unsigned long in = r.cache->depot.mags_in, out = r.cache->depot.mags_out;
    pthread_mutex_unlock(&r.cache->depot.lock);
    print_message("moved %lu objects: %lu through the slab lists, %lu holds "
                  "of their lock; magazines in %lu, out %lu\n",
                  moved, ops, locks, in, out);
    assert_int_equal(moved, PC_OBJECTS);
    assert_true(ops < moved / 8);
    assert_true(locks < moved / 8);
    assert_true(out * r.cache->batchcount >= moved / 2);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_destroy(r.cache), 0);
}

/* ---- shrink sees the depot ---- */

#define SHRINK_OBJECTS 4000

static void *alloc_free_exit(void *arg)
{
    kmem_cache_t *c = arg;
    static void *o[SHRINK_OBJECTS];
    for (int i = 0; i < SHRINK_OBJECTS; i++) {
        o[i] = kmem_cache_alloc(c, GFP_KERNEL);
        ktest_check(o[i] != NULL);
    }
    for (int i = 0; i < SHRINK_OBJECTS; i++)
        kmem_cache_free(c, o[i]);
    return NULL; /* the thread's array goes to the depot as it exits */
}

/* Objects a thread freed, and its array at exit, sit in the depot (no
 * more full magazines than its bound); kmem_cache_shrink() gives them all
 * back: no slab of the cache is left. */
static void test_shrink_empties_depot(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("mag-shrink", 96, 0, 0, NULL, NULL);
    assert_non_null(c);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, alloc_free_exit, c), 0);
    pthread_join(t, NULL);
    ktest_workers_ok();
    pthread_mutex_lock(&c->depot.lock);
    unsigned long nfull = c->depot.nfull, max_full = c->depot.max_full;
    pthread_mutex_unlock(&c->depot.lock);
    assert_true(nfull > 0);
    assert_true(nfull <= max_full);
    assert_int_equal(kslab_verify(), 0);
    assert_int_equal(kmem_cache_shrink(c), 0);
    pthread_mutex_lock(&c->spinlock);
    assert_true(list_empty(&c->slabs_free));
    assert_true(list_empty(&c->slabs_partial));
    assert_true(list_empty(&c->slabs_full));
    pthread_mutex_unlock(&c->spinlock);
    pthread_mutex_lock(&c->depot.lock);
    nfull = c->depot.nfull;
    pthread_mutex_unlock(&c->depot.lock);
    assert_int_equal(nfull, 0);
    assert_int_equal(slab_depot_objects(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- the working set ---- */

static void *free_some_and_exit(void *arg)
{
    kmem_cache_t *c = arg;
    void *o[400];
    for (int i = 0; i < 400; i++) {
        o[i] = kmem_cache_alloc(c, GFP_KERNEL);
        ktest_check(o[i] != NULL);
    }
    for (int i = 0; i < 400; i++)
        kmem_cache_free(c, o[i]);
    return NULL;
}

/* Full magazines that no thread takes for a whole working-set interval go
 * back to the slabs at the pass after it (libumem's working-set reap);
 * the interval is the decay time, and the passes are called here with
 * times a whole interval apart. */
static void test_unused_magazines_go_back(void **state)
{
    (void)state;
    kmem_cache_t *c = kmem_cache_create("mag-ws", 128, 0, 0, NULL, NULL);
    assert_non_null(c);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_some_and_exit, c), 0);
    pthread_join(t, NULL);
    ktest_workers_ok();
    assert_true(slab_depot_objects(c) > 0);
    unsigned long interval = vm_purge_decay_ms;
    if (interval == ULONG_MAX) {
        ktest_skip("KSLAB_DECAY_MS=never: no working-set passes");
        return;
    }
    unsigned long now = vm_now_ms() + 1;
    /* the first pass starts an interval; the second finds every magazine
     * of that interval unused */
    slab_depot_reap(c, now + interval);
    slab_depot_reap(c, now + 3 * interval);
    assert_int_equal(slab_depot_objects(c), 0);
    slab_drain_self(); /* per-CPU arrays keep what the thread freed last */
    assert_int_equal(slab_check_cache(c), 0);
    assert_int_equal(kmem_cache_destroy(c), 0);
}

/* ---- the double-free check sees the depot ---- */

#define DF_OBJECTS 600

static void double_free_from_depot(void *arg)
{
    (void)arg;
    static void *o[DF_OBJECTS];
    for (int i = 0; i < DF_OBJECTS; i++)
        o[i] = kmalloc(64, GFP_KERNEL);
    for (int i = 0; i < DF_OBJECTS; i++)
        kfree(o[i]);
    /* objects went to the depot when the array overflowed (a thread's
     * array gives its oldest, a CPU's its hottest) */
    kmem_cache_t *c = kmem_find_general_cachep(64);
    void *victim = NULL;
    for (int i = 0; i < DF_OBJECTS && !victim; i++)
        if (slab_depot_holds(c, o[i]))
            victim = o[i];
    if (!victim)
        _exit(3);
    kfree(victim);
    _exit(0);
}

/* A second kfree() of an object that sits in a depot magazine (keyed: the
 * free key is in it) is reported, not pushed on the array again. */
static void test_double_free_in_magazine(void **state)
{
    (void)state;
    char err[4096];
    int st = ktest_run_child(double_free_from_depot, NULL, err, sizeof err);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        fail_msg("the object was not in the depot");
    ktest_assert_one_line("kfree twice", st, err, SIGABRT, "double free");
}

/* ---- forks under four threads ---- */

#define FORK_THREADS 4
#define FORK_ROUNDS 12
#define FORK_MIN_OPS 20000UL

struct churn {
    _Atomic int *stop;
    _Atomic int *behind; /* threads short of FORK_MIN_OPS */
    int counted;         /* this one no longer is */
    kmem_cache_t *cache;
    struct ring *in, *out; /* objects come in from one thread, go out */
    unsigned long ops;
};

static struct ring fork_rings[FORK_THREADS];

/* Each thread allocates objects (malloc classes and a cache of its own
 * kind), hands them to the next thread, frees what the previous thread
 * handed it — until told to stop and every thread has done its minimum
 * (a thread that stopped alone would leave the one before it with a full
 * ring and no way to reach its own). */
static void *churn(void *arg)
{
    struct churn *w = arg;
    unsigned long x = (unsigned long)(uintptr_t)w;
    while (!atomic_load(w->stop) || atomic_load(w->behind) > 0) {
        if (!w->counted && w->ops >= FORK_MIN_OPS) {
            w->counted = 1;
            atomic_fetch_sub(w->behind, 1);
        }
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        unsigned long h = atomic_load(&w->out->head);
        if (h - atomic_load(&w->out->tail) < RING) {
            void *o = (x >> 60) & 1 ? kmem_cache_alloc(w->cache, GFP_KERNEL)
                                    : kmalloc(16 + (x >> 33) % 400, GFP_KERNEL);
            ktest_check(o != NULL);
            w->out->slot[h % RING] = o;
            atomic_store(&w->out->head, h + 1);
            w->ops++;
        }
        unsigned long t = atomic_load(&w->in->tail);
        if (t != atomic_load(&w->in->head)) {
            void *o = w->in->slot[t % RING];
            atomic_store(&w->in->tail, t + 1);
            struct page *pg = NULL;
            if (slab_cache_of(o, &pg) == w->cache)
                kmem_cache_free(w->cache, o);
            else
                kfree(o);
            w->ops++;
        }
    }
    return NULL;
}

static void child_check(void *arg)
{
    (void)arg;
    if (kslab_verify() != 0)
        _exit(4);
    void *o[300];
    for (int i = 0; i < 300; i++)
        if (!(o[i] = kmalloc(64, GFP_KERNEL)))
            _exit(5);
    for (int i = 0; i < 300; i++)
        kfree(o[i]);
    if (kslab_verify() != 0)
        _exit(6);
    kmem_cache_shrink(kmem_find_general_cachep(64));
    _exit(0);
}

/* kslab_verify() (the depots' validator included) passes in a child
 * forked while four threads move objects between them, and in the parent
 * after. */
static void test_fork_under_churn(void **state)
{
    (void)state;
    static _Atomic int stop, behind;
    static struct churn w[FORK_THREADS];
    pthread_t t[FORK_THREADS];
    kmem_cache_t *c = kmem_cache_create("mag-fork", 200, 0, 0, NULL, NULL);
    assert_non_null(c);
    atomic_store(&stop, 0);
    atomic_store(&behind, FORK_THREADS);
    for (int i = 0; i < FORK_THREADS; i++) {
        w[i] = (struct churn){.stop = &stop,
                              .behind = &behind,
                              .cache = c,
                              .in = &fork_rings[i],
                              .out = &fork_rings[(i + 1) % FORK_THREADS]};
    }
    for (int i = 0; i < FORK_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
    for (int i = 0; i < FORK_ROUNDS; i++) {
        char err[1024];
        int st = ktest_run_child(child_check, NULL, err, sizeof err);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("fork %d: child status %#x: %s", i, st, err);
        usleep(2000);
    }
    atomic_store(&stop, 1);
    unsigned long ops = 0;
    for (int i = 0; i < FORK_THREADS; i++) {
        pthread_join(t[i], NULL);
        ops += w[i].ops;
    }
    ktest_workers_ok();
    assert_true(ops >= FORK_THREADS * FORK_MIN_OPS);
    assert_int_equal(kslab_verify(), 0);
    /* what is still in the rings */
    for (int i = 0; i < FORK_THREADS; i++) {
        struct ring *r = &fork_rings[i];
        for (unsigned long k = r->tail; k != r->head; k++) {
            void *o = r->slot[k % RING];
            struct page *pg = NULL;
            if (slab_cache_of(o, &pg) == c)
                kmem_cache_free(c, o);
            else
                kfree(o);
        }
    }
    assert_int_equal(kmem_cache_destroy(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_consumer_through_depot),
        cmocka_unit_test(test_shrink_empties_depot),
        cmocka_unit_test(test_unused_magazines_go_back),
        cmocka_unit_test(test_double_free_in_magazine),
        cmocka_unit_test(test_fork_under_churn),
    };
    return ktest_run_group(tests, NULL, NULL);
}
