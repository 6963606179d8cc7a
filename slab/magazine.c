/*
 * slab/magazine.c — the magazine layer: each cache's depot of full and
 * empty magazines between the threads' arrays and the slab lists (Bonwick
 * and Adams, "Magazines and Vmem", USENIX 2001: the second generation of
 * the slab allocator, as Solaris kmem and libumem built it).
 *
 * 2.4's arrays refill from and flush to the slab lists one object at a
 * time under the cache lock, so a thread that allocates and another that
 * frees (a producer and a consumer) meet on that lock for every object.
 * Here a thread whose array is full copies its oldest objects (the
 * magazine's capacity, 2.4's batchcount to begin with) into an empty
 * magazine and pushes it on the depot's full list; a thread whose array
 * is empty pops a full magazine and copies it into its array.  The depot
 * lock is held for the list operation only, and the slab lists are not
 * touched.  They are reached when the depot has no full magazine (the
 * array refills from the slabs, slab.c) or holds more full magazines than
 * its bound (the oldest go back to the slabs).
 *
 * The bound follows demand, after libumem's working set: the depot keeps
 * the lowest and the highest count of full magazines since its last pass;
 * every pass (the decay time, KSLAB_DECAY_MS, apart: run by the puts and
 * by the decay pass of the frames, slab_decay) gives back to the slabs the
 * full magazines that stayed unused the whole interval (the lowest count)
 * and sets the bound near what was used.  Between passes a put over the
 * bound sends the oldest magazine to the slabs; a get that then finds the
 * depot empty raises the bound (at most DEPOT_MAX_BYTES of objects).  A
 * depot lock found taken is counted; when a pass counts more than
 * DEPOT_CONTENTION, magazines grow by half, up to the array's limit
 * (libumem's magazine resizing), so contended caches move more objects
 * per lock hold.
 *
 * The depot is below whatever caches objects per thread or per CPU: its
 * interface is a whole magazine in, a whole magazine out, and the caller
 * holds no lock.  A thread's array copies objects into and out of
 * magazines (slab_depot_put, slab_depot_get); a CPU's arrays are
 * magazines (slab/percpu.c), which come and go whole, with no copy
 * (slab_depot_take_full, _take_empty, _give).  Caches without arrays (debugging
 * flags, KSLAB_DEBUG audit, log and leaks, cache_cache) never use it: their
 * objects take the locked path with its checks every time.
 *
 * A host fork: prepare holds every depot lock (after its cache's lock,
 * lib/fork.c), so the child's lists are whole.  A magazine in flight (off
 * the lists, its objects out of the array) is not in the child: its
 * objects stay allocated there, never handed out twice.
 *
 * Locking: d->lock is a leaf after the cache's spinlock (the validator
 * takes both); the put and get paths take it alone, and objects going
 * back to the slabs take the cache lock after it is dropped.  Magazines
 * are objects of the malloc caches, taken and freed on the locked path
 * (slab_alloc_direct), with no depot lock held.
 */
#include <stddef.h>
#include <string.h>

#include "lib/options.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"

/* The least bound on full magazines, whatever the demand. */
#define DEPOT_MIN_FULL 4U
/* The most objects a depot keeps in full magazines, in bytes (but at
 * least DEPOT_MIN_FULL magazines). */
#define DEPOT_MAX_BYTES (1UL << 20)
/* Contended takes of a depot lock in one working-set interval beyond
 * which magazines grow. */
#define DEPOT_CONTENTION 16UL

int slab_magazines_on(void)
{
    return !kslab_opt.no_magazines;
}

void slab_depot_init(kmem_cache_t *cachep)
{
    struct slab_depot *d = &cachep->depot;
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->lock, NULL);
    INIT_LIST_HEAD(&d->full);
    INIT_LIST_HEAD(&d->empty);
    d->mag_size = cachep->batchcount ? cachep->batchcount : 1;
    d->max_full = DEPOT_MIN_FULL;
}

/* full_objs changes under the lock and is read without it
 * (slab_depot_objects). */
static inline void depot_add_objs(struct slab_depot *d, long n)
{
    __atomic_store_n(&d->full_objs, d->full_objs + (unsigned long)n,
                     __ATOMIC_RELAXED);
}

static inline void depot_lock(struct slab_depot *d)
{
    if (pthread_mutex_trylock(&d->lock)) {
        pthread_mutex_lock(&d->lock);
        d->contention++;
    }
}

/* The most full magazines of mag objects the depot may keep. */
static unsigned int depot_ceiling(const kmem_cache_t *cachep, unsigned int mag)
{
    unsigned long n = DEPOT_MAX_BYTES / ((unsigned long)cachep->objsize * mag);
    return n < DEPOT_MIN_FULL ? DEPOT_MIN_FULL : (unsigned int)n;
}

static struct slab_magazine *mag_alloc(unsigned int size)
{
    size_t bytes = sizeof(struct slab_magazine) + size * sizeof(void *);
    if (bytes > KMALLOC_MAX_SIZE)
        return NULL;
    kmem_cache_t *gen = slab_malloc_host_cache(bytes);
    struct slab_magazine *m = gen ? slab_alloc_direct(gen, GFP_KERNEL) : NULL;
    if (m) {
        memset(m, 0, sizeof *m);
        m->ac.limit = m->ac.batchcount = size;
        m->ac.mem_offset = (unsigned int)offsetof(struct slab_magazine, ac);
    }
    return m;
}

static void mag_free(struct slab_magazine *m)
{
    slab_free_direct(GET_PAGE_CACHE(vm_virt_to_page(m)), m);
}

/* Frees every magazine of a private list (no lock held). */
static void free_mag_list(struct list_head *list)
{
    while (!list_empty(list)) {
        struct slab_magazine *m =
            list_entry(list->next, struct slab_magazine, list);
        list_del(&m->list);
        mag_free(m);
    }
}

/* Moves the oldest full magazine to out (depot lock held). */
static void __depot_take_oldest(struct slab_depot *d, struct list_head *out)
{
    struct slab_magazine *m =
        list_entry(d->full.prev, struct slab_magazine, list);
    list_move(&m->list, out);
    d->nfull--;
    depot_add_objs(d, -(long)m->ac.avail);
}

/* The working-set pass (depot lock held): the full magazines unused since
 * the last pass go to out_full, the empty ones unused to out_empty; the
 * bound and the magazine size follow what was used. */
static void __depot_ws(kmem_cache_t *cachep, unsigned long now,
                       struct list_head *out_full, struct list_head *out_empty)
{
    struct slab_depot *d = &cachep->depot;
    unsigned long unused = d->min_full < d->nfull ? d->min_full : d->nfull;
    unsigned long used = d->peak_full - d->min_full;
    for (unsigned long i = 0; i < unused; i++)
        __depot_take_oldest(d, out_full);
    unsigned long e = d->min_empty < d->nempty ? d->min_empty : d->nempty;
    for (unsigned long i = 0; i < e; i++) {
        list_move(d->empty.prev, out_empty);
        d->nempty--;
    }
    /* a CPU holds two magazines (slab/percpu.c): 2.4's limit */
    unsigned int most = slab_percpu_on() ? cachep->limit / 2 : cachep->limit;
    if (d->contention > DEPOT_CONTENTION && d->mag_size < most) {
        unsigned int m = d->mag_size + d->mag_size / 2 + 1;
        d->mag_size = m < most ? m : most;
    }
    unsigned long bound = d->max_full / 2;
    if (bound < used + 1)
        bound = used + 1;
    if (bound < DEPOT_MIN_FULL)
        bound = DEPOT_MIN_FULL;
    unsigned int ceil = depot_ceiling(cachep, d->mag_size);
    d->max_full = bound < ceil ? (unsigned int)bound : ceil;
    d->min_full = d->peak_full = d->nfull;
    d->min_empty = d->nempty;
    d->contention = 0;
    d->capped = 0;
    d->ws_ms = now;
}

/* Is a working-set pass due at now (depot lock held)? */
static int __depot_ws_due(struct slab_depot *d, unsigned long now)
{
    unsigned long interval =
        __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    if (interval == ULONG_MAX || !now)
        return 0;
    if (!d->ws_ms) { /* the first interval starts now */
        d->ws_ms = now;
        return 0;
    }
    return now - d->ws_ms >= interval;
}

/* The full magazines of a private list go back to the slabs; up to keep
 * of them are kept as the depot's empties, the rest freed.  Then the
 * magazines of empties are freed.  No lock held. */
static void depot_release(kmem_cache_t *cachep, struct list_head *full,
                          struct list_head *empties, unsigned long keep)
{
    struct slab_depot *d = &cachep->depot;
    struct list_head *p;
    list_for_each(p, full)
    {
        struct slab_magazine *m = list_entry(p, struct slab_magazine, list);
        slab_put_objects(cachep, (void *const *)m->ac.entry, m->ac.avail);
        m->ac.avail = 0;
    }
    if (keep && !list_empty(full)) {
        depot_lock(d);
        while (!list_empty(full) && d->nempty < keep) {
            list_move(full->next, &d->empty);
            d->nempty++;
        }
        pthread_mutex_unlock(&d->lock);
    }
    free_mag_list(full);
    free_mag_list(empties);
}

/* Folds a magazine's per-CPU hit counters into the depot's (depot lock
 * held): they leave their CPU with it. */
static inline void __depot_fold(struct slab_depot *d, struct slab_magazine *m)
{
#if SLAB_STATS
    d->cpu_allochit += m->ac.allochit;
    d->cpu_freehit += m->ac.freehit;
    m->ac.allochit = m->ac.freehit = 0;
#else
    (void)d;
    (void)m;
#endif
}

struct slab_magazine *slab_depot_take_empty(kmem_cache_t *cachep)
{
    struct slab_depot *d = &cachep->depot;
    struct slab_magazine *m = NULL;
    depot_lock(d);
    if (d->nempty) {
        m = list_entry(d->empty.next, struct slab_magazine, list);
        list_del(&m->list);
        if (--d->nempty < d->min_empty)
            d->min_empty = d->nempty;
    }
    unsigned int want = d->mag_size;
    pthread_mutex_unlock(&d->lock);
    if (m && m->ac.limit < want) { /* made before the magazines grew */
        mag_free(m);
        m = NULL;
    }
    if (!m)
        m = mag_alloc(want);
    return m;
}

/* A magazine holding objects goes on the full list; the bound sends the
 * oldest to the slabs.  No lock held. */
static void depot_push_full(kmem_cache_t *cachep, struct slab_magazine *m)
{
    struct slab_depot *d = &cachep->depot;
    LIST_HEAD(excess);
    LIST_HEAD(empties);
    unsigned long now = vm_now_ms();
    depot_lock(d);
    __depot_fold(d, m);
    list_add(&m->list, &d->full);
    d->nfull++;
    depot_add_objs(d, m->ac.avail);
#if SLAB_STATS
    d->mags_in++;
#endif
    if (d->nfull > d->peak_full)
        d->peak_full = d->nfull;
    if (__depot_ws_due(d, now))
        __depot_ws(cachep, now, &excess, &empties);
    while (d->nfull > d->max_full) {
        __depot_take_oldest(d, &excess);
        d->capped = 1;
    }
    if (d->nfull < d->min_full)
        d->min_full = d->nfull;
    unsigned long keep = d->max_full;
    pthread_mutex_unlock(&d->lock);
    if (!list_empty(&excess) || !list_empty(&empties))
        depot_release(cachep, &excess, &empties, keep);
}

/* An empty magazine is kept as the depot's, or freed.  No lock held. */
static void depot_push_empty(kmem_cache_t *cachep, struct slab_magazine *m)
{
    struct slab_depot *d = &cachep->depot;
    depot_lock(d);
    __depot_fold(d, m);
    if (d->nempty < d->max_full) {
        list_add(&m->list, &d->empty);
        d->nempty++;
        m = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    if (m)
        mag_free(m);
}

int slab_depot_put(kmem_cache_t *cachep, struct array_cache *ac)
{
    struct slab_magazine *m = slab_depot_take_empty(cachep);
    if (!m)
        return 0;
    /* The array gives its oldest objects: to a fork child, which drains
     * the arrays of the threads it did not inherit up to their counts,
     * they are gone from the array (count 0 while the rest moves down)
     * before the depot has them. */
    unsigned int avail = ac->avail;
    unsigned int n = m->ac.limit < avail ? m->ac.limit : avail;
    memcpy(m->ac.entry, ac->entry, n * sizeof(void *));
    m->ac.avail = n;
    __atomic_store_n(&ac->avail, 0, __ATOMIC_RELEASE);
    memmove(ac->entry, ac->entry + n, (avail - n) * sizeof(void *));
    __atomic_store_n(&ac->avail, avail - n, __ATOMIC_RELEASE);
    depot_push_full(cachep, m);
    return 1;
}

struct slab_magazine *slab_depot_take_full(kmem_cache_t *cachep)
{
    struct slab_depot *d = &cachep->depot;
    depot_lock(d);
    if (list_empty(&d->full)) {
        if (d->capped) { /* the bound sent magazines away too soon */
            unsigned int ceil = depot_ceiling(cachep, d->mag_size);
            unsigned int b = d->max_full + d->max_full / 2 + 1;
            d->max_full = b < ceil ? b : ceil;
            d->capped = 0;
        }
        pthread_mutex_unlock(&d->lock);
        return NULL;
    }
    struct slab_magazine *m =
        list_entry(d->full.next, struct slab_magazine, list);
    list_del(&m->list);
    d->nfull--;
    depot_add_objs(d, -(long)m->ac.avail);
    if (d->nfull < d->min_full)
        d->min_full = d->nfull;
#if SLAB_STATS
    d->mags_out++;
#endif
    pthread_mutex_unlock(&d->lock);
    return m;
}

unsigned int slab_depot_get(kmem_cache_t *cachep, struct array_cache *ac)
{
    struct slab_magazine *m = slab_depot_take_full(cachep);
    if (!m)
        return 0;
    unsigned int n = m->ac.avail;
    KSLAB_CHECK(n <= ac->limit && !ac->avail,
                "slab_depot_get(): cache `%s': magazine of %u objects for an "
                "array of %u holding %u",
                cachep->name, n, ac->limit, ac->avail);
    memcpy(ac->entry, m->ac.entry, n * sizeof(void *));
    __atomic_store_n(&ac->avail, n, __ATOMIC_RELEASE);
    m->ac.avail = 0;
    depot_push_empty(cachep, m);
    return n;
}

void slab_depot_give(kmem_cache_t *cachep, struct slab_magazine *m)
{
    m->ac.prev = NULL;
    if (m->ac.avail && !slab_magazines_on()) {
        slab_put_objects(cachep, (void *const *)m->ac.entry, m->ac.avail);
        m->ac.avail = 0;
    }
    if (m->ac.avail)
        depot_push_full(cachep, m);
    else
        depot_push_empty(cachep, m);
}

void slab_depot_drain(kmem_cache_t *cachep)
{
    struct slab_depot *d = &cachep->depot;
    LIST_HEAD(full);
    LIST_HEAD(empties);
    depot_lock(d);
    while (!list_empty(&d->full))
        list_move(d->full.next, &full);
    while (!list_empty(&d->empty))
        list_move(d->empty.next, &empties);
    d->nfull = d->nempty = 0;
    __atomic_store_n(&d->full_objs, 0, __ATOMIC_RELAXED);
    d->min_full = d->peak_full = d->min_empty = 0;
    pthread_mutex_unlock(&d->lock);
    depot_release(cachep, &full, &empties, 0);
}

void slab_depot_reap(kmem_cache_t *cachep, unsigned long now)
{
    struct slab_depot *d = &cachep->depot;
    LIST_HEAD(full);
    LIST_HEAD(empties);
    depot_lock(d);
    if (__depot_ws_due(d, now))
        __depot_ws(cachep, now, &full, &empties);
    pthread_mutex_unlock(&d->lock);
    depot_release(cachep, &full, &empties, 0);
}

int slab_depot_holds(kmem_cache_t *cachep, const void *objp)
{
    struct slab_depot *d = &cachep->depot;
    int found = 0;
    struct list_head *p;
    depot_lock(d);
    list_for_each(p, &d->full)
    {
        const struct slab_magazine *m =
            list_entry(p, struct slab_magazine, list);
        for (unsigned int i = 0; i < m->ac.avail && !found; i++)
            found = m->ac.entry[i] == objp;
        if (found)
            break;
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

unsigned long slab_depot_objects(kmem_cache_t *cachep)
{
    return __atomic_load_n(&cachep->depot.full_objs, __ATOMIC_RELAXED);
}

/* One full magazine's objects: each an object start of the cache, taken
 * from its slab.  Cache lock held. */
static int check_mag(kmem_cache_t *cachep, const struct slab_magazine *m,
                     void (*say)(const char *, ...))
{
    if (m->ac.avail > m->ac.limit) {
        say("slab_check_cache(): cache `%s': magazine %p holds %u of %u",
            cachep->name, (const void *)m, m->ac.avail, m->ac.limit);
        return -EFAULT;
    }
    for (unsigned int i = 0; i < m->ac.avail; i++) {
        const void *objp = m->ac.entry[i];
        struct page *page = slab_object_page(cachep, objp);
        if (!page) {
            say("slab_check_cache(): cache `%s': magazine %p holds %p, not an "
                "object of the cache",
                cachep->name, (const void *)m, objp);
            return -EFAULT;
        }
        unsigned int j = (unsigned int)slab_page_obj_index(page, objp);
        if (slab_bufctl(GET_PAGE_SLAB(page))[j] != BUFCTL_ACTIVE) {
            say("slab_check_cache(): cache `%s': object %p is both in a "
                "magazine and free on its slab",
                cachep->name, objp);
            return -EFAULT;
        }
    }
    return 0;
}

int slab_depot_check(kmem_cache_t *cachep, void (*say)(const char *, ...),
                     unsigned long *held)
{
    struct slab_depot *d = &cachep->depot;
    unsigned long nfull = 0, nempty = 0, objs = 0;
    int err = 0;
    struct list_head *p;
    pthread_mutex_lock(&d->lock);
    list_for_each(p, &d->full)
    {
        const struct slab_magazine *m =
            list_entry(p, struct slab_magazine, list);
        nfull++;
        objs += m->ac.avail;
        if (!err)
            err = check_mag(cachep, m, say);
    }
    list_for_each(p, &d->empty)
    {
        const struct slab_magazine *m =
            list_entry(p, struct slab_magazine, list);
        nempty++;
        if (!err && m->ac.avail) {
            say("slab_check_cache(): cache `%s': empty magazine %p holds %u",
                cachep->name, (const void *)m, m->ac.avail);
            err = -EFAULT;
        }
    }
    if (!err &&
        (nfull != d->nfull || nempty != d->nempty || objs != d->full_objs)) {
        say("slab_check_cache(): cache `%s': depot counts %lu full, %lu "
            "empty, %lu objects; found %lu, %lu, %lu",
            cachep->name, d->nfull, d->nempty, d->full_objs, nfull, nempty,
            objs);
        err = -EFAULT;
    }
    *held = objs;
    pthread_mutex_unlock(&d->lock);
    return err;
}
