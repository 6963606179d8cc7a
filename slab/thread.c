/*
 * slab/thread.c — the registry of threads that own array caches (2.4's
 * per-CPU cpucache_t, here per thread).
 *
 * Each thread's slab_self points at its struct slab_thread: one array
 * pointer per cache id, all starting at slab_empty_ac.  A thread starts on
 * slab_boot_thread (shared, never written) and is attached — given a
 * slab_thread of its own, one page — at its first slow path; memory short,
 * it stays on the boot thread and takes the locked path.  Attached threads
 * are in the thread registry (lib/thread.c) at its SLAB level, so
 * kmem_cache_destroy() can drain a cache's arrays in every thread,
 * slabinfo can sum their hit counters and a fork child can take back the
 * arrays of the threads it did not inherit.  At thread exit (the
 * registry's SLAB level: after the malloc layer's cache gave its blocks
 * back, before the frames' page lists drain) the thread's arrays go back
 * to their caches and its slab_self points at slab_dead_thread: a
 * destructor of another key that runs later and frees takes the locked
 * path.
 *
 * Locking: the registry's SLAB level lock guards the threads' slots;
 * releasing a thread also takes cache_chain_sem (slab_thread_drain), which
 * comes first in the order.
 */
#include "lib/thread.h"
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

unsigned long slab_drain_gen;

/* Drains and frees every array of t, then t.  t is not in use (exited, or
 * gone with a fork). */
static void slab_thread_release(struct slab_thread *t)
{
    slab_thread_drain(t, 1);
    free_pages((unsigned long)t, 0);
}

/* Thread exit: the thread's cached objects go back to their caches.  The
 * thread stays in the walks until its arrays are drained. */
static void slab_thread_exit(void *slot)
{
    struct slab_thread *t = slot;
    if (!t)
        return;
    if (slab_debug_tracking())
        slab_debug_thread_exit();
    slab_self = &slab_dead_thread;
    slab_thread_drain(t, 1);
    kslab_thread_detach(KSLAB_THREAD_SLAB);
    free_pages((unsigned long)t, 0);
}

static const struct kslab_thread_hook slab_thread_hook = {slab_thread_exit};

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
    int r = kslab_thread_attach(KSLAB_THREAD_SLAB, &slab_thread_hook, t);
    if (r) {
        free_pages((unsigned long)t, 0);
        if (r < 0)
            return &slab_boot_thread;
        /* the arrays of a dead thread whose TLS block this one has */
        t = kslab_thread_slot(KSLAB_THREAD_SLAB);
    }
    slab_self = t;
    return t;
}

/* In a fork child, after the registry made its locks anew: the registry
 * forgets the other threads once every level's child handler ran. */
void slab_thread_release_others(void)
{
    struct slab_thread *t;
    for (struct kslab_thread *pos = NULL;
         (t = kslab_thread_next(KSLAB_THREAD_SLAB, &pos));)
        if (t != slab_self) {
            kslab_thread_forget(pos, KSLAB_THREAD_SLAB);
            slab_thread_release(t);
        }
}

void slab_for_each_thread(void (*fn)(struct slab_thread *, void *), void *arg)
{
    struct slab_thread *t;
    kslab_thread_lock(KSLAB_THREAD_SLAB);
    for (struct kslab_thread *pos = NULL;
         (t = kslab_thread_next(KSLAB_THREAD_SLAB, &pos));)
        fn(t, arg);
    kslab_thread_unlock(KSLAB_THREAD_SLAB);
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
