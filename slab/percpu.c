/*
 * slab/percpu.c — per-CPU array caches through restartable sequences:
 * 2.4's cpucache_t made literal in user space (one array of free objects
 * per CPU per cache, `limit` objects, refilled and flushed `batchcount` or
 * a magazine at a time), where kslab otherwise keeps one per thread.
 *
 * A program with hundreds of threads keeps an array of every size class
 * it uses warm in each of them with per-thread arrays; with per-CPU
 * arrays the memory they hold is flat in the thread count, as in 2.4 and
 * in tcmalloc's per-CPU mode.  The fast paths (slab/percpu.h) pop and
 * push inside an rseq critical section of Linux (4.18 on), with the rseq
 * area glibc registers for every thread (2.35 on: __rseq_offset,
 * __rseq_size); the commit is one store of the array's count.
 *
 * A CPU's array of a cache is a magazine of the cache's depot
 * (slab/magazine.c: batchcount objects, so the two below hold 2.4's
 * limit), loaded on the CPU, and its `prev' is the CPU's previous
 * magazine, full or empty (Bonwick and Adams, "Magazines and Vmem",
 * 2001).  Slow paths (no lock held on entry): a free that finds the
 * loaded magazine full and the previous one with room, or an allocation
 * that finds the loaded one empty and the previous one holding objects,
 * exchanges the two in one restartable sequence (percpu.h).  When both
 * are full (a free), an empty magazine from the depot holding the freed
 * object is loaded and the old previous one goes to the depot whole;
 * when both are empty (an allocation), a full one from the depot (or one
 * filled from the slabs) is loaded and the old previous one goes to the
 * depot as an empty.  No object is copied on the way: the depot lock is
 * held for a list operation, and the exchange on the CPU is one pointer
 * swap.  The sequences commit by a compare-and-swap of the CPU's slot
 * (lock cmpxchg, the last instruction of the sequence), so a drain that
 * takes the slot from another CPU (an exchange) and a commit are ordered:
 * the magazines belong either to the CPU or to the drainer, never both.
 * An array is made the first time a CPU uses a cache (an empty magazine,
 * installed by a compare-and-swap of the empty slot).

 * Another thread never writes a CPU's array in place.  Draining one
 * (kmem_cache_shrink, _reap, _destroy, malloc_trim) exchanges the slot
 * for slab_empty_ac, then fences with membarrier(MEMBARRIER_CMD_PRIVATE_
 * EXPEDITED_RSEQ): every sequence running on any CPU is restarted, and
 * sees the empty array; the detached magazine and its previous one are
 * then the drainer's alone.  They are emptied into the slabs and loaded
 * again if the slot is still empty (shrink, reap), or given whole to the
 * depot (destroy).
 * Without a working membarrier the per-CPU arrays are not used.
 *
 * Threads exiting leave nothing behind (the arrays are not theirs).  A
 * fork child inherits every array whole (see percpu.h): an object a
 * parent's thread had popped but not yet returned is allocated in the
 * child for good, as with a magazine in flight (between the depot and
 * a CPU, its objects are the child's for good too).
 *
 * Locking: percpu_lock guards the installation and removal of arrays
 * (not their contents, which the sequences guard); drain_lock serializes
 * the drains.  Order: cache_chain_sem → the thread registry's slab level
 * (lib/thread.c) → drain_lock → percpu_lock → every cache lock; nothing is
 * allocated or freed with percpu_lock held.
 */
#include <linux/membarrier.h>
#include <string.h>
#include <unistd.h>

#include "lib/options.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"
#include "vm/frames/os.h"

struct slab_percpu_state slab_pcpu;
struct array_cache
    *slab_cpu_rows[SLAB_PERCPU_GUARD + SLAB_PERCPU_MAX_CPUS][SLAB_PERCPU_ROW];
static pthread_mutex_t percpu_lock = PTHREAD_MUTEX_INITIALIZER;
/* Serializes the drains (drain_taken is the drainer's); before percpu_lock. */
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static struct array_cache *drain_taken[SLAB_PERCPU_MAX_CPUS];

/* glibc 2.35 on; weak, so an older glibc links and leaves them NULL. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

/* Every rseq critical section running on a CPU of this process restarts
 * before this returns.  0, or -1 when the host said no. */
static int fence_cpus(void)
{
    return vm_os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
}

#if SLAB_PERCPU
/* The possible CPUs (/sys/devices/system/cpu/possible: "0-N"), read
 * without malloc (start-up may be inside the first malloc); 0 when
 * unknown. */
static unsigned int possible_cpus(void)
{
    char buf[128];
    if (vm_os_read_file("/sys/devices/system/cpu/possible", buf, sizeof buf) <=
        0)
        return 0;
    unsigned long last = 0, cur = 0;
    int digits = 0;
    for (const char *p = buf; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            cur = cur * 10 + (unsigned long)(*p - '0');
            digits = 1;
        } else {
            if (digits && cur > last)
                last = cur;
            cur = 0;
            digits = 0;
        }
    }
    if (digits && cur > last)
        last = cur;
    return last + 1 > SLAB_PERCPU_MAX_CPUS ? 0 : (unsigned int)last + 1;
}
#endif

void slab_percpu_setup(void)
{
#if SLAB_PERCPU
    /* auto: per-thread arrays (measured faster on one thread; bench/README) */
    if (kslab_opt.percpu != KSLAB_PERCPU_ON)
        return;
    if (!&__rseq_size || !&__rseq_offset || __rseq_size < 8)
        return;
    slab_pcpu.rseq_off = (long)__rseq_offset;
    unsigned int nr = possible_cpus();
    if (!nr || slab_cpu_now() >= nr)
        return;
    if (vm_os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ))
        return;
    for (unsigned int c = 0; c < SLAB_PERCPU_GUARD + nr; c++)
        for (unsigned int i = 0; i < SLAB_PERCPU_ROW; i++)
            slab_cpu_rows[c][i] = &slab_empty_ac;
    slab_pcpu.nr = nr;
    __atomic_store_n(&slab_pcpu.on, 1, __ATOMIC_RELEASE);
#endif
}

/* Installs ac as cpu's array of cachep if the slot is empty: 1, else 0
 * (the caller keeps ac).  A compare-and-swap: the magazine exchanges of
 * the sequences commit with one too. */
static int pcpu_install(kmem_cache_t *cachep, unsigned int cpu,
                        struct array_cache *ac)
{
    struct array_cache **slot = &slab_cpu_acs[cpu][cachep->id];
    struct array_cache *empty = &slab_empty_ac;
    pthread_mutex_lock(&percpu_lock);
    int done = __atomic_compare_exchange_n(slot, &empty, ac, 0,
                                           __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&percpu_lock);
    return done;
}

/* Gives a magazine that left its CPU (ac, perhaps NULL) to the depot. */
static void pcpu_give(kmem_cache_t *cachep, struct array_cache *ac)
{
    if (ac)
        slab_depot_give(cachep, slab_mag_of(ac));
}

/* The calling thread's CPU has no array of cachep: loads an empty
 * magazine there.  0, or -1 when there is no memory for it. */
static int pcpu_make(kmem_cache_t *cachep, unsigned int cpu)
{
    struct slab_magazine *m = slab_depot_take_empty(cachep);
    if (!m)
        return -1;
    m->ac.prev = NULL;
    if (!pcpu_install(cachep, cpu, &m->ac))
        slab_depot_give(cachep, m);
    return 0;
}

#if SLAB_STATS
#define count_miss(counter) __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED)
#else
#define count_miss(counter) ((void)0)
#endif

/* The calling thread's CPU, with an array of cachep: 0; 1 when objects
 * of cachep take the locked path (a CPU without a row, no memory for an
 * array). */
static int pcpu_ready(kmem_cache_t *cachep)
{
    unsigned int cpu = slab_cpu_now();
    if (cpu >= slab_pcpu.nr || cpu >= SLAB_PERCPU_MAX_CPUS)
        return 1;
    if (__atomic_load_n(&slab_cpu_acs[cpu][cachep->id], __ATOMIC_ACQUIRE) !=
        &slab_empty_ac)
        return 0;
    return pcpu_make(cachep, cpu) ? 1 : 0;
}

/* Tries of the hit and the exchange with the previous magazine before a
 * slow path goes to the depot: each failed try saw the array change (the
 * thread moved, or another one used the CPU meanwhile). */
#define PCPU_TRIES 4

/* Locked-path allocation, for a thread with no array to use. */
static void *pcpu_alloc_direct(kmem_cache_t *cachep, int flags)
{
    void *objp = slab_alloc_direct(cachep, flags);
    if (!objp)
        errno = ENOMEM;
    return objp;
}

void *slab_percpu_alloc(kmem_cache_t *cachep, int flags)
{
    unsigned int id = cachep->id;
    void *objp;
    for (int tries = 0; tries < PCPU_TRIES; tries++) {
        if ((objp = slab_cpu_pop(id)))
            return objp;
        if (pcpu_ready(cachep))
            return pcpu_alloc_direct(cachep, flags);
        if (slab_cpu_swap_prev_alloc(id) == SLAB_CPU_DEPOT)
            break;
    }
    /* Both magazines empty: a full one from the depot, else one filled
     * from the slabs, is loaded whole; the old previous (empty) goes to
     * the depot. */
    count_miss(&cachep->allocmiss);
    struct slab_magazine *m = slab_depot_take_full(cachep);
    if (!m) {
        m = slab_depot_take_empty(cachep);
        if (!m)
            return pcpu_alloc_direct(cachep, flags);
        m->ac.batchcount = m->ac.limit;
        if (!slab_fill_from_slabs(cachep, &m->ac, flags)) {
            slab_depot_give(cachep, m);
            errno = ENOMEM;
            return NULL;
        }
    }
    objp = m->ac.entry[--m->ac.avail];
    struct array_cache *old = NULL;
    if (!m->ac.avail ||
        slab_cpu_load_alloc(id, &m->ac, &old) != SLAB_CPU_SWAPPED)
        pcpu_give(cachep, &m->ac); /* not loaded: the depot's */
    else
        pcpu_give(cachep, old);
    return objp;
}

__noinline void *slab_cpu_malloc(unsigned int id, size_t size,
                                 void *(*slow)(size_t))
{
    void *objp = slab_cpu_pop(id);
    if (likely(objp != NULL))
        return slab_key_clear(objp);
    return slow(size);
}

__noinline void slab_cpu_free(struct page *page, const void *objp,
                              const char *fn)
{
    if (likely(slab_cpu_push_free(page->slab_id, objp)))
        return;
    slab_free_slow(GET_PAGE_CACHE(page), (void *)objp, fn);
}

/* Is objp the object pushed last on this CPU's array of cache id?  A
 * double free the fast push of an unkeyed cache declined. */
static int pcpu_top_is(unsigned int id, const void *objp)
{
    unsigned int cpu = slab_cpu_now();
    if (cpu >= slab_pcpu.nr || cpu >= SLAB_PERCPU_MAX_CPUS)
        return 0;
    const struct array_cache *ac =
        __atomic_load_n(&slab_cpu_acs[cpu][id], __ATOMIC_ACQUIRE);
    unsigned int n = __atomic_load_n(&ac->avail, __ATOMIC_RELAXED);
    return n && n <= ac->limit &&
           __atomic_load_n(&ac->entry[n - 1], __ATOMIC_RELAXED) == objp;
}

void slab_percpu_free(kmem_cache_t *cachep, void *objp, const char *fn)
{
    unsigned int id = cachep->id;
    if (!slab_id_keyed(id) && pcpu_top_is(id, objp))
        kslab_die_at(objp, "%s(): double free of %p (cache `%s')", fn, objp,
                     cachep->name);
    for (int tries = 0; tries < PCPU_TRIES; tries++) {
        if (slab_cpu_push_nocheck(id, objp))
            return;
        if (pcpu_ready(cachep)) {
            slab_put_objects(cachep, &objp, 1);
            return;
        }
        if (slab_cpu_swap_prev_free(id) == SLAB_CPU_DEPOT)
            break;
    }
    /* Both magazines full: an empty one holding objp is loaded, and the
     * old previous one goes to the depot whole. */
    count_miss(&cachep->freemiss);
    struct slab_magazine *m = slab_depot_take_empty(cachep);
    if (!m) {
        slab_put_objects(cachep, &objp, 1);
        return;
    }
    m->ac.entry[0] = objp;
    m->ac.avail = 1;
    struct array_cache *old = NULL;
    if (slab_cpu_load_free(id, &m->ac, &old) != SLAB_CPU_SWAPPED)
        old = &m->ac; /* not loaded: the depot's, objp in it */
    pcpu_give(cachep, old);
}

/* Folds a detached array's hit counters into its cache. */
static void pcpu_fold_stats(kmem_cache_t *cachep, struct array_cache *ac)
{
#if SLAB_STATS
    pthread_mutex_lock(&cachep->spinlock);
    cachep->allochit += ac->allochit;
    cachep->freehit += ac->freehit;
    pthread_mutex_unlock(&cachep->spinlock);
    ac->allochit = ac->freehit = 0;
#else
    (void)cachep;
    (void)ac;
#endif
}

void slab_percpu_drain(kmem_cache_t *cachep, int release)
{
    struct array_cache **taken = drain_taken;
    unsigned int id = cachep->id, nr = slab_pcpu.nr, any = 0;
    if (!slab_percpu_on() || !id)
        return;
    pthread_mutex_lock(&drain_lock);
    pthread_mutex_lock(&percpu_lock);
    for (unsigned int c = 0; c < nr; c++) {
        struct array_cache **slot = &slab_cpu_acs[c][id];
        taken[c] = NULL;
        if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == &slab_empty_ac)
            continue;
        /* an exchange on that CPU commits by a compare-and-swap of the
         * slot: either it comes first and this takes its result, or it
         * fails */
        taken[c] = __atomic_exchange_n(slot, &slab_empty_ac, __ATOMIC_ACQ_REL);
        any = 1;
    }
    if (any && fence_cpus()) {
        /* no fence: the arrays may be in use, put them back untouched */
        for (unsigned int c = 0; c < nr; c++)
            if (taken[c])
                __atomic_store_n(&slab_cpu_acs[c][id], taken[c],
                                 __ATOMIC_RELEASE);
        any = 0;
    }
    pthread_mutex_unlock(&percpu_lock);
    for (unsigned int c = 0; any && c < nr; c++) {
        struct array_cache *ac = taken[c];
        if (!ac)
            continue;
        struct array_cache *prev = ac->prev;
        if (release) { /* whole magazines: the depot's */
            pcpu_give(cachep, prev);
            pcpu_give(cachep, ac);
            continue;
        }
        /* shrink, reap: the objects to the slabs, the empty magazines
         * loaded again */
        for (struct array_cache *a = ac; a; a = a == ac ? prev : NULL) {
            if (a->avail)
                slab_put_objects(cachep, a->entry, a->avail);
            a->avail = 0;
            pcpu_fold_stats(cachep, a);
        }
        if (!pcpu_install(cachep, c, ac)) {
            pcpu_give(cachep, prev);
            pcpu_give(cachep, ac);
        }
    }
    pthread_mutex_unlock(&drain_lock);
}

/* The previous magazine of a CPU's loaded one, read by another thread
 * (a racy look: the loaded one may be exchanged meanwhile); NULL when
 * there is none or the pointer is not in a slab frame any more. */
static const struct array_cache *pcpu_peek_prev(const struct array_cache *ac)
{
    const struct array_cache *p = __atomic_load_n(&ac->prev, __ATOMIC_RELAXED);
    return p && slab_page_of(p) ? p : NULL;
}

/* The objects a racy look finds in an array, at most most. */
static unsigned int pcpu_peek_avail(const struct array_cache *ac,
                                    unsigned int most)
{
    unsigned int n = __atomic_load_n(&ac->avail, __ATOMIC_RELAXED);
    return n < most ? n : most;
}

/* Is objp among the first objects (at most most) of an array? */
static int pcpu_peek_holds(const struct array_cache *ac, const void *objp,
                           unsigned int most)
{
    unsigned int n = pcpu_peek_avail(ac, most);
    for (unsigned int i = 0; i < n; i++)
        if (__atomic_load_n(&ac->entry[i], __ATOMIC_RELAXED) == objp)
            return 1;
    return 0;
}

/* The arrays of CPU c for cache id (the loaded one, its previous one). */
static void pcpu_arrays_of(unsigned int c, unsigned int id,
                           const struct array_cache *a[2])
{
    a[0] = __atomic_load_n(&slab_cpu_acs[c][id], __ATOMIC_ACQUIRE);
    a[1] = a[0] == &slab_empty_ac ? NULL : pcpu_peek_prev(a[0]);
}

unsigned long slab_percpu_count(unsigned int id)
{
    unsigned long n = 0;
    if (!slab_percpu_on())
        return 0;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++) {
        const struct array_cache *a[2];
        pcpu_arrays_of(c, id, a);
        for (int i = 0; i < 2; i++)
            if (a[i])
                n += pcpu_peek_avail(a[i], SLAB_PERCPU_MAX_LIMIT);
    }
    return n;
}

unsigned int slab_percpu_arrays(unsigned int id)
{
    unsigned int n = 0;
    if (!slab_percpu_on())
        return 0;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++)
        n += __atomic_load_n(&slab_cpu_acs[c][id], __ATOMIC_RELAXED) !=
             &slab_empty_ac;
    return n;
}

int slab_percpu_holds(unsigned int id, const void *objp)
{
    if (!slab_percpu_on())
        return 0;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++) {
        const struct array_cache *a[2];
        pcpu_arrays_of(c, id, a);
        for (int i = 0; i < 2; i++)
            if (a[i] && pcpu_peek_holds(a[i], objp, SLAB_PERCPU_MAX_LIMIT))
                return 1;
    }
    return 0;
}

#if SLAB_STATS
void slab_percpu_stats(kmem_cache_t *cachep, unsigned long *ah,
                       unsigned long *fh)
{
    if (!slab_percpu_on() || !cachep->id)
        return;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++) {
        const struct array_cache *a[2];
        pcpu_arrays_of(c, cachep->id, a);
        for (int i = 0; i < 2; i++)
            if (a[i]) {
                *ah += __atomic_load_n(&a[i]->allochit, __ATOMIC_RELAXED);
                *fh += __atomic_load_n(&a[i]->freehit, __ATOMIC_RELAXED);
            }
    }
    pthread_mutex_lock(&cachep->depot.lock);
    *ah += cachep->depot.cpu_allochit;
    *fh += cachep->depot.cpu_freehit;
    pthread_mutex_unlock(&cachep->depot.lock);
}
#endif

void slab_percpu_fork_prepare(void)
{
    pthread_mutex_lock(&drain_lock);
    pthread_mutex_lock(&percpu_lock);
}

void slab_percpu_fork_parent(void)
{
    pthread_mutex_unlock(&percpu_lock);
    pthread_mutex_unlock(&drain_lock);
}

/* The child's mm is new: its membarrier registration too (harmless when
 * the kernel carried it over). */
void slab_percpu_fork_child(void)
{
    pthread_mutex_init(&percpu_lock, NULL);
    pthread_mutex_init(&drain_lock, NULL);
    if (slab_percpu_on())
        vm_os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ);
}
