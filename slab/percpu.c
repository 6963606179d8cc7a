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
 * Slow paths (no lock held on entry): an empty array is refilled through
 * a private staging array from the depot or the slabs (slab.c's
 * cache_refill, the same as a thread's), one object is returned and the
 * rest pushed by a restartable batch push; what does not fit (the thread
 * moved, or another thread filled the array meanwhile) goes back to the
 * slabs.  A full array gives its hottest batchcount objects by a
 * restartable batch pop to the staging array, which goes to the depot as
 * a magazine (slab_depot_put), or to the slabs.  An array is made the
 * first time a CPU uses a cache, without a lock, and installed under
 * percpu_lock if the slot is still empty.
 *
 * Another thread never writes a CPU's array in place.  Draining one
 * (kmem_cache_shrink, _reap, _destroy, malloc_trim) swaps the slot for
 * slab_empty_ac, then fences with membarrier(MEMBARRIER_CMD_PRIVATE_
 * EXPEDITED_RSEQ): every sequence running on any CPU is restarted, and
 * sees the empty array; the detached array is then the drainer's alone.
 * It is emptied, and put back if the slot is still empty (else freed).
 * Without a working membarrier the per-CPU arrays are not used.
 *
 * Threads exiting leave nothing behind (the arrays are not theirs).  A
 * fork child inherits every array whole (see percpu.h): an object a
 * parent's thread had popped but not yet returned is allocated in the
 * child for good, as with a magazine in flight.
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

/* A private array for a slow path's objects in transit: its entries
 * continue in the struct (a GNU C extension: a struct ending in a
 * flexible array, not at the end of another). */
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wgnu-variable-sized-type-not-at-end"
#endif
struct stage {
    struct array_cache ac;
    void *entry[SLAB_PERCPU_MAX_LIMIT];
};
#ifdef __clang__
#pragma clang diagnostic pop
#endif

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
 * (the caller keeps ac). */
static int pcpu_install(kmem_cache_t *cachep, unsigned int cpu,
                        struct array_cache *ac)
{
    struct array_cache **slot = &slab_cpu_acs[cpu][cachep->id];
    int done = 0;
    pthread_mutex_lock(&percpu_lock);
    if (*slot == &slab_empty_ac) {
        __atomic_store_n(slot, ac, __ATOMIC_RELEASE);
        done = 1;
    }
    pthread_mutex_unlock(&percpu_lock);
    return done;
}

/* The calling thread's CPU has no array of cachep: makes one.  0, or -1
 * when there is no memory for it. */
static int pcpu_make(kmem_cache_t *cachep, unsigned int cpu)
{
    struct array_cache *ac = slab_ac_new(cachep);
    if (!ac)
        return -1;
    if (!pcpu_install(cachep, cpu, ac))
        slab_ac_free(ac);
    return 0;
}

/* The objects of a stage go back: onto this CPU's array as far as it has
 * room, the rest as magazines to the depot, the last to the slabs. */
static void stage_return(kmem_cache_t *cachep, struct stage *st)
{
    unsigned int n = st->ac.avail;
    unsigned int k = slab_cpu_push_batch(cachep->id, st->ac.entry, n);
    if (k == n)
        return;
    memmove(st->ac.entry, st->ac.entry + k, (n - k) * sizeof(void *));
    st->ac.avail = n - k;
    while (st->ac.avail && slab_magazines_on() &&
           slab_depot_put(cachep, &st->ac))
        ;
    if (st->ac.avail)
        slab_put_objects(cachep, st->ac.entry, st->ac.avail);
    st->ac.avail = 0;
}

static void stage_init(kmem_cache_t *cachep, struct stage *st)
{
    memset(&st->ac, 0, sizeof st->ac);
    st->ac.limit = cachep->limit;
    st->ac.batchcount = cachep->batchcount;
    KSLAB_CHECK(cachep->limit <= SLAB_PERCPU_MAX_LIMIT,
                "slab: cache `%s': array limit %u above %u", cachep->name,
                cachep->limit, SLAB_PERCPU_MAX_LIMIT);
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

void *slab_percpu_alloc(kmem_cache_t *cachep, int flags)
{
    void *objp;
    struct stage st;
    /* an array made, or another thread's refill: pop again */
    for (int tries = 0; tries < 2; tries++) {
        if ((objp = slab_cpu_pop(cachep->id)))
            return objp;
        if (pcpu_ready(cachep)) {
            objp = slab_alloc_direct(cachep, flags);
            if (!objp)
                errno = ENOMEM;
            return objp;
        }
    }
    stage_init(cachep, &st);
    count_miss(&cachep->allocmiss);
    if (!slab_cache_refill(cachep, &st.ac, flags)) {
        errno = ENOMEM;
        return NULL;
    }
    objp = st.ac.entry[--st.ac.avail];
    if (st.ac.avail)
        stage_return(cachep, &st);
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
    for (int tries = 0; tries < 2; tries++) {
        if (slab_cpu_push_nocheck(id, objp))
            return;
        if (pcpu_ready(cachep)) {
            slab_put_objects(cachep, &objp, 1);
            return;
        }
    }
    /* Full: its hottest objects leave (a magazine's worth, else
     * batchcount), the freed one goes on. */
    struct stage st;
    stage_init(cachep, &st);
    count_miss(&cachep->freemiss);
    unsigned int want =
        __atomic_load_n(&cachep->depot.mag_size, __ATOMIC_RELAXED);
    if (!slab_magazines_on() || want < cachep->batchcount)
        want = cachep->batchcount;
    if (want > cachep->limit)
        want = cachep->limit;
    st.ac.avail = slab_cpu_pop_batch(id, st.ac.entry, want);
    if (!slab_cpu_push_nocheck(id, objp))
        st.ac.entry[st.ac.avail++] = objp;
    while (st.ac.avail && slab_magazines_on() && slab_depot_put(cachep, &st.ac))
        ;
    if (st.ac.avail)
        slab_put_objects(cachep, st.ac.entry, st.ac.avail);
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
        if (*slot == &slab_empty_ac)
            continue;
        if (!release && !__atomic_load_n(&(*slot)->avail, __ATOMIC_RELAXED))
            continue; /* nothing to give: left in place */
        taken[c] = *slot;
        __atomic_store_n(slot, &slab_empty_ac, __ATOMIC_RELEASE);
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
        while (release && ac->avail && slab_magazines_on() &&
               slab_depot_put(cachep, ac))
            ;
        if (ac->avail)
            slab_put_objects(cachep, ac->entry, ac->avail);
        ac->avail = 0;
        pcpu_fold_stats(cachep, ac);
        if (release || !pcpu_install(cachep, c, ac))
            slab_ac_free(ac);
    }
    pthread_mutex_unlock(&drain_lock);
}

unsigned long slab_percpu_count(unsigned int id)
{
    unsigned long n = 0;
    if (!slab_percpu_on())
        return 0;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++) {
        const struct array_cache *ac =
            __atomic_load_n(&slab_cpu_acs[c][id], __ATOMIC_ACQUIRE);
        n += __atomic_load_n(&ac->avail, __ATOMIC_RELAXED);
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
        const struct array_cache *ac =
            __atomic_load_n(&slab_cpu_acs[c][id], __ATOMIC_ACQUIRE);
        if (slab_array_holds(ac, objp))
            return 1;
    }
    return 0;
}

#if SLAB_STATS
void slab_percpu_stats(unsigned int id, unsigned long *ah, unsigned long *fh)
{
    if (!slab_percpu_on())
        return;
    for (unsigned int c = 0; c < slab_pcpu.nr; c++) {
        const struct array_cache *ac =
            __atomic_load_n(&slab_cpu_acs[c][id], __ATOMIC_ACQUIRE);
        *ah += __atomic_load_n(&ac->allochit, __ATOMIC_RELAXED);
        *fh += __atomic_load_n(&ac->freehit, __ATOMIC_RELAXED);
    }
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
