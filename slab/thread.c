/*
 * slab/thread.c — the registry of threads that own array caches (2.4's
 * per-CPU cpucache_t, here per thread).
 *
 * Each thread's slab_self points at its struct slab_thread: one array
 * pointer per cache id, all starting at slab_empty_ac.  A thread starts on
 * slab_boot_thread (shared, never written) and is attached — given a
 * slab_thread of its own, one page — at its first slow path; memory short,
 * it stays on the boot thread and takes the locked path.  Attached threads
 * are on one list under slab_thread_lock, so kmem_cache_destroy() can
 * drain a cache's arrays in every thread, slabinfo can sum their hit
 * counters and a fork child can take back the arrays of the threads it did
 * not inherit.  At thread exit (a pthread key destructor) the thread's
 * arrays go back to their caches and its slab_self points at
 * slab_dead_thread: a destructor of another key that runs later and frees
 * takes the locked path.
 *
 * Locking: slab_thread_lock guards the list; releasing a thread also takes
 * cache_chain_sem (slab_thread_drain), which comes first in the order.
 */
#include "slab/debug.h"
#include "slab/slab_internal.h"

#define EMPTY_ACS                                                              \
    {                                                                          \
        [0 ... SLAB_MAX_IDS - 1] = &slab_empty_ac                              \
    }

struct array_cache slab_empty_ac = {.avail = 0, .limit = 0};
struct slab_thread slab_boot_thread = {.ac = EMPTY_ACS};
static struct slab_thread slab_dead_thread = {.ac = EMPTY_ACS, .dead = 1};

__thread struct slab_thread *slab_self
    __attribute__((tls_model("initial-exec"))) = &slab_boot_thread;

pthread_mutex_t slab_thread_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slab_thread thread_list = {.next = &thread_list,
                                         .prev = &thread_list};
unsigned long slab_drain_gen;
static pthread_key_t thread_key;

/* Drains and frees every array of t, unlinks t and frees it.  Chain lock
 * held; t is not in use (exited, or gone with a fork). */
static void slab_thread_release(struct slab_thread *t);

/* Thread exit: the thread's cached objects go back to their caches. */
static void slab_thread_exit(void *arg)
{
    if (slab_debug_tracking())
        slab_debug_thread_exit();
    slab_self = &slab_dead_thread;
    slab_thread_release(arg);
}

/* slab_thread_lock held. */
static void make_thread_key(void)
{
    static int made;
    if (!made) {
        pthread_key_create(&thread_key, slab_thread_exit);
        made = 1;
    }
}

__noinline struct slab_thread *slab_thread_attach(void)
{
    struct slab_thread *t =
        (struct slab_thread *)__get_free_pages(GFP_KERNEL, 0);
    _Static_assert(sizeof(struct slab_thread) <= PAGE_SIZE,
                   "slab_thread must fit a page");
    if (!t)
        return &slab_boot_thread;
    for (unsigned int i = 0; i < SLAB_MAX_IDS; i++)
        t->ac[i] = &slab_empty_ac;
    t->dead = 0;
    t->drain_gen = __atomic_load_n(&slab_drain_gen, __ATOMIC_RELAXED);
    pthread_mutex_lock(&slab_thread_lock);
    make_thread_key();
    t->next = thread_list.next;
    t->prev = &thread_list;
    thread_list.next->prev = t;
    thread_list.next = t;
    pthread_mutex_unlock(&slab_thread_lock);
    slab_self = t;
    pthread_setspecific(thread_key, t);
    return t;
}

static void slab_thread_release(struct slab_thread *t)
{
    slab_thread_drain(t, 1);
    pthread_mutex_lock(&slab_thread_lock);
    t->prev->next = t->next;
    t->next->prev = t->prev;
    pthread_mutex_unlock(&slab_thread_lock);
    free_pages((unsigned long)t, 0);
}

void slab_thread_release_others(void)
{
    struct slab_thread *t = thread_list.next;
    while (t != &thread_list) {
        struct slab_thread *next = t->next;
        if (t != slab_self)
            slab_thread_release(t);
        t = next;
    }
}

void slab_for_each_thread(void (*fn)(struct slab_thread *, void *), void *arg)
{
    pthread_mutex_lock(&slab_thread_lock);
    for (struct slab_thread *t = thread_list.next; t != &thread_list;
         t = t->next)
        fn(t, arg);
    pthread_mutex_unlock(&slab_thread_lock);
}

void slab_request_drain(void)
{
    __atomic_add_fetch(&slab_drain_gen, 1, __ATOMIC_RELAXED);
}

void slab_drain_self(void)
{
    struct slab_thread *t = slab_self;
    slab_drain_cpus(); /* per-CPU arrays: the ones this thread uses */
    if (!slab_thread_live(t))
        return;
    slab_thread_drain(t, 0);
    t->drain_gen = __atomic_load_n(&slab_drain_gen, __ATOMIC_RELAXED);
}

#if SLAB_STATS
struct thread_stats {
    unsigned int id;
    unsigned long ah, am, fh, fm;
};

static void add_thread_stats(struct slab_thread *t, void *arg)
{
    struct thread_stats *s = arg;
    const struct array_cache *ac = t->ac[s->id];
    s->ah += __atomic_load_n(&ac->allochit, __ATOMIC_RELAXED);
    s->am += __atomic_load_n(&ac->allocmiss, __ATOMIC_RELAXED);
    s->fh += __atomic_load_n(&ac->freehit, __ATOMIC_RELAXED);
    s->fm += __atomic_load_n(&ac->freemiss, __ATOMIC_RELAXED);
}

void slab_sum_thread_stats(kmem_cache_t *cachep, unsigned long *ah,
                           unsigned long *am, unsigned long *fh,
                           unsigned long *fm)
{
    if (!cachep->id)
        return;
    struct thread_stats s = {.id = cachep->id};
    slab_for_each_thread(add_thread_stats, &s);
    *ah += s.ah;
    *am += s.am;
    *fh += s.fh;
    *fm += s.fm;
}
#endif
