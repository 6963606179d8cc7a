/*
 * slab/slab_internal.h — the structures of the slab allocator, their
 * invariants, and the inline fast paths of kmem_cache_alloc/free.
 *
 * A cache (struct kmem_cache_s) owns slabs; a slab is 2^gfporder frames
 * holding `num` objects of `size` bytes starting at s_mem, plus its
 * management (slab_t and the bufctl array) either at the start of the
 * slab (on-slab) or in a kmalloc object (off-slab).  Free objects of a
 * slab are chained through bufctl indices from slabp->free.  Slabs sit on
 * one of three lists: full, partial, free.  Every frame of a slab has
 * PG_slab and points at its cache, its slab and s_mem (vm/frames/page.h).
 *
 * Per-thread array caches (2.4's per-CPU cpucache_t): each thread owns a
 * struct slab_thread with one struct array_cache pointer per cache id.  A
 * hit pops/pushes the thread's own array with no lock and no atomic.
 * Refill and flush move a whole magazine from or to the cache's depot
 * (below), else `batchcount` objects under the cache's lock.
 * With KSLAB_PERCPU=1 the arrays are per CPU (slab/percpu.h, percpu.c):
 * the struct array_cache of a depot magazine, loaded on a CPU with a
 * previous one beside it (its prev), reached through restartable
 * sequences; the fast paths below test slab_percpu_on().
 * Caches with debug flags, cache_cache and caches beyond SLAB_MAX_IDS have
 * id 0, whose array is always the empty one: every operation takes the
 * locked path (where the debug checks are).
 *
 * Locking: cachep->spinlock (a mutex) guards the slab lists and counters
 * of a cache; cache_chain_sem guards the chain of caches and the id map;
 * the thread registry's SLAB level lock (lib/thread.c) guards the threads'
 * slots; cachep->depot.lock the depot's magazines.  Order: cache_chain_sem
 * → the SLAB level lock → cachep->spinlock → cachep->depot.lock → zone
 * locks (the whole order of
 * kslab's locks, and the fork protocol that takes them all, is in
 * lib/fork.c).
 */
#ifndef KSLAB_SLAB_INTERNAL_H
#define KSLAB_SLAB_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include <kslab/slab.h>

#include "lib/assert.h"
#include "vm/frames/page.h"

/* Build-time switch: statistics columns of slabinfo.  On by default; the
 * hit counters cost one increment per operation. */
#ifndef SLAB_STATS
#define SLAB_STATS 1
#endif

#define L1_CACHE_BYTES 64
#define BYTES_PER_WORD sizeof(void *)
#define MAX_GFP_ORDER 5 /* largest slab: 32 pages */
#define SLAB_LIMIT 0xfffffffcU
#define REAP_SCANLEN 10
#define REAP_PERFECT 10

/* Cache ids 1 … SLAB_MAX_IDS-1 have per-thread arrays; 0 never does. */
#define SLAB_MAX_IDS 496

/* Internal cache flags (cflags), as in 2.4. */
#define CFLGS_OFF_SLAB 0x010000UL
/* dflags */
#define DFLGS_GROWN 0x000001UL

typedef unsigned int kmem_bufctl_t;
#define BUFCTL_END 0xffffffffU
#define BUFCTL_ACTIVE 0xfffffffeU /* the object is allocated */

/* Red-zone words (2.4) and poison bytes. */
#define RED_MAGIC1 0x5A2CF071UL /* object free */
#define RED_MAGIC2 0x170FC2A5UL /* object allocated */
#define POISON_BYTE 0x5a
#define POISON_END 0xa5

/* slab_t: management of one slab; bufctl[num] follows it. */
typedef struct slab_s {
    struct list_head list;
    unsigned long colouroff;
    void *s_mem;        /* first object, coloured */
    unsigned int inuse; /* objects handed out of this slab */
    kmem_bufctl_t free; /* first free object, or BUFCTL_END */
} slab_t;

#define slab_bufctl(slabp) ((kmem_bufctl_t *)(((slab_t *)(slabp)) + 1))

/* A thread's array of free objects of one cache: entry[0 … avail-1],
 * entry[avail-1] the most recently freed (hottest). */
struct array_cache {
    unsigned int avail;
    unsigned int limit;
    unsigned int batchcount;
    unsigned int mem_offset; /* the array starts this far into its object */
#if SLAB_STATS
    /* hits since the last fold into the cache (at each refill/flush) */
    unsigned int allochit, allocmiss, freehit, freemiss;
#endif
    /* A CPU's loaded magazine (slab/percpu.c): the CPU's previous one,
     * or NULL; meaningless in any other array. */
    struct array_cache *prev;
    void *entry[];
};

/*
 * Magazines and the depot (slab/magazine.c; Bonwick and Adams 2001, the
 * design of Solaris kmem and libumem): a magazine is a fixed-capacity
 * array of free objects of one cache; each cache's depot keeps a list of
 * full magazines and one of empty ones.  A thread whose array is full
 * copies its oldest objects into an empty magazine and hands it over
 * whole; a thread whose array is empty takes a whole full one.  The depot
 * lock is held only for the list push or pop.  The slab lists are reached
 * only when the depot has no full magazine (refill from the slabs) or
 * holds more than its bound (the excess goes back to the slabs).
 * Invariants (depot lock): nfull and nempty count the lists; full_objs
 * is the sum of the rounds of the full magazines; every object in a full
 * magazine is free, belongs to the cache and is BUFCTL_ACTIVE on its slab
 * (taken from it, as the arrays' objects are).
 */
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wgnu-variable-sized-type-not-at-end"
#endif
struct slab_magazine {
    struct list_head list; /* on the depot's full or empty list */
    /* the objects: ac.entry[0 ... ac.avail-1] of ac.limit (= batchcount);
     * a per-CPU array is a magazine's ac, loaded on its CPU */
    struct array_cache ac;
};
#ifdef __clang__
#pragma clang diagnostic pop
#endif

/* The magazine whose objects ac holds (ac a magazine's). */
static inline struct slab_magazine *slab_mag_of(struct array_cache *ac)
{
    return (struct slab_magazine *)((char *)ac - __builtin_offsetof(
                                                     struct slab_magazine, ac));
}

struct slab_depot {
    pthread_mutex_t lock;   /* after the cache's spinlock; a leaf */
    struct list_head full;  /* most recently given first */
    struct list_head empty; /* most recently given first */
    unsigned long nfull, nempty, full_objs;
    unsigned int mag_size; /* capacity of new magazines: batchcount ... limit */
    unsigned int max_full; /* bound on nfull, follows demand */
    /* the working set (libumem's): lowest and highest nfull, lowest
     * nempty and the contended lock takes since ws_ms */
    unsigned long min_full, peak_full, min_empty, contention;
    unsigned long ws_ms;
    int capped; /* full magazines went to the slabs over max_full */
#if SLAB_STATS
    unsigned long mags_in, mags_out; /* full magazines given, taken */
    /* hits counted in per-CPU magazines that left their CPU */
    unsigned long cpu_allochit, cpu_freehit;
#endif
};

struct slab_thread {
    struct array_cache *ac[SLAB_MAX_IDS];
    unsigned long drain_gen; /* last slab_drain_gen seen */
    int dead;                /* exited: no more array caches */
};

/*
 * A source of slab pages other than the zones, for one cache
 * (slab_malloc_set_page_source): libkslab-vm.so's malloc caches take their
 * slabs from the process's emulated mm (vmmode/slab.c).  get returns 2^order
 * pages whose struct pages vm_virt_to_page finds, or NULL; put takes back
 * what get gave.  Both are called with no cache lock held (put perhaps
 * under cache_chain_sem: the pass that destroys slabs) and may not
 * allocate from the slab.  Such a cache keeps its slab management
 * off-slab (host memory).  A hook of the cache rather than a gfp bit:
 * only kmem_cache_grow and kmem_slab_destroy ask, and the page layer
 * below needs to know nothing of where the pages come from.
 */
struct slab_page_source {
    void *(*get)(unsigned int order);
    void (*put)(void *addr, unsigned int order);
};

struct kmem_cache_s {
    /* 1) read by every fast path */
    unsigned int id;         /* index of this cache's array in slab_thread */
    unsigned int objsize;    /* the user's object size (ksize) */
    unsigned int size;       /* bytes per object in the slab, red zone incl. */
    unsigned int num;        /* objects per slab */
    uint64_t objinv;         /* inverse of the odd part of size, mod 2^64 */
    unsigned int objshift;   /* trailing zero bits of size */
    unsigned int obj_offset; /* user pointer - object start (red zone) */
    unsigned long flags;     /* SLAB_* and CFLGS_* */

    /* 2) the slab lists, under spinlock */
    pthread_mutex_t spinlock;
    struct list_head slabs_full;
    struct list_head slabs_partial;
    struct list_head slabs_free;
    unsigned long free_objects; /* free objects on the slab lists */
    unsigned long free_limit;   /* free objects kept before slabs go back */
    unsigned long list_ops;     /* objects taken or put back, ever */
    unsigned long decay_seen;   /* list_ops at the last decay pass */
    unsigned long list_locks;   /* holds of spinlock by array transfers */

    /* 3) cache shape */
    unsigned int gfporder;
    unsigned int gfpflags;
    size_t colour;           /* number of colours */
    unsigned int colour_off; /* colour offset step */
    unsigned int colour_next;
    unsigned int slab_size;    /* bytes of slab_t + bufctls */
    kmem_cache_t *slabp_cache; /* off-slab management comes from here */
    unsigned int growing;
    unsigned int dflags;
    unsigned int limit, batchcount; /* array-cache tunables */
    unsigned long drain_gen;        /* bumped by shrink/reap */
    void (*ctor)(void *, kmem_cache_t *, unsigned long);
    void (*dtor)(void *, kmem_cache_t *, unsigned long);
    /* NULL: slabs from the zones (__get_free_pages) */
    const struct slab_page_source *pagesrc;

    /* 4) magazines: free objects between the arrays and the slabs */
    struct slab_depot depot;

    /* 5) the cache chain */
    char name[KMEM_CACHE_NAME_MAX + 1];
    struct list_head next;

#if SLAB_STATS
    unsigned long num_active;
    unsigned long num_allocations;
    unsigned long high_mark;
    unsigned long grown;
    unsigned long reaped;
    unsigned long errors;
    /* hit counters folded in from arrays that went away */
    unsigned long allochit, allocmiss, freehit, freemiss;
#endif
};

extern kmem_cache_t cache_cache;

/* ---- the threads' arrays (slab/thread.c, on lib/thread.c) ---- */

/* The array every cache starts with in every thread: empty, full at 0. */
extern struct array_cache slab_empty_ac __hidden;
/* A new empty array for a cache (a thread's or a CPU's), NULL without
 * memory; slab_ac_free gives one back (slab.c). */
struct array_cache *slab_ac_new(kmem_cache_t *cachep);
void slab_ac_free(struct array_cache *ac);
/* Is objp among an array's objects?  Reads another thread's or CPU's
 * array safely: the count is clamped to the array's limit (slab.c). */
int slab_array_holds(const struct array_cache *ac, const void *objp);
/* A thread's slab_thread until its first slow path attaches it (or when
 * there was no memory for one): every array empty, no arrays made. */
extern struct slab_thread slab_boot_thread;
extern __thread struct slab_thread *slab_self
    __attribute__((tls_model("initial-exec")));
/* Bumped by shrink/reap: every thread drains its arrays at its next slow
 * path when its drain_gen is behind. */
extern unsigned long slab_drain_gen;

/* May t have arrays?  Not the boot thread and not an exited thread. */
static inline int slab_thread_live(const struct slab_thread *t)
{
    return t != &slab_boot_thread && !t->dead;
}

/* Gives the calling thread its slab_thread (the boot thread when memory
 * is short). */
struct slab_thread *slab_thread_attach(void);
/* In a fork child: releases every thread but the caller.  Chain lock held. */
void slab_thread_release_others(void);
/* Calls fn(t, arg) on every attached thread, the registry's SLAB level
 * lock held. */
void slab_for_each_thread(void (*fn)(struct slab_thread *, void *), void *arg);
/* Asks every thread to drain its arrays at its next slow path. */
void slab_request_drain(void);

/* slab.c: drains every array of thread t into its cache and, if release,
 * frees them; takes cache_chain_sem.  A drain asked of a live thread
 * (release 0: perhaps in a signal handler that interrupted the thread in
 * an array of a cache with a page source, whose objects may fault) leaves
 * the arrays of such caches alone. */
void slab_thread_drain(struct slab_thread *t, int release);

/* Ids 1 … 2*KMALLOC_NR_SIZES are the kmalloc caches (normal, then DMA);
 * the next MALLOC_NR_FINE ids are the malloc path's intermediate caches
 * (size-48, size-80, size-96, size-112, size-160 … size-28672) and
 * size-16, its one class below 2.4's smallest; the next
 * MALLOC_NR_CLASSES are kept for a second set of malloc caches with a page
 * source of their own (slab_malloc_set_page_source: libkslab-vm.so's, in
 * the process's mm), keyed like the first. */
#define KMALLOC_NR_SIZES 13
#define MALLOC_FINE_MAX_BITS                                                   \
    15 /* up to 32 KiB; above, slabs of at most                                \
        * 32 pages pack intermediate sizes badly */
#define MALLOC_NR_FINE (2 + 3 * (MALLOC_FINE_MAX_BITS - 6))
#define MALLOC_FIRST_FINE_ID (1 + 2 * KMALLOC_NR_SIZES)
#define MALLOC_NR_CLASSES (KMALLOC_NR_SIZES + MALLOC_NR_FINE)
#define MALLOC_FIRST_SRC_ID (MALLOC_FIRST_FINE_ID + MALLOC_NR_FINE)
#define SLAB_FIRST_USER_ID (MALLOC_FIRST_SRC_ID + MALLOC_NR_CLASSES)

kmem_cache_t *slab_cache_create(
    const char *name, size_t size, size_t offset, unsigned long flags,
    void (*ctor)(void *, kmem_cache_t *, unsigned long),
    void (*dtor)(void *, kmem_cache_t *, unsigned long), unsigned int fixed_id);
/* slab_cache_create with a page source (struct slab_page_source): set
 * before the layout, which then keeps the management off-slab. */
kmem_cache_t *slab_cache_create_src(
    const char *name, size_t size, size_t offset, unsigned long flags,
    void (*ctor)(void *, kmem_cache_t *, unsigned long),
    void (*dtor)(void *, kmem_cache_t *, unsigned long), unsigned int fixed_id,
    const struct slab_page_source *src);
/* The locked path, no per-thread array: bootstrap and debug caches. */
void *slab_alloc_direct(kmem_cache_t *cachep, int flags);
void slab_free_direct(kmem_cache_t *cachep, void *objp);
/* Smallest normal kmalloc cache of at least size bytes, or NULL. */
kmem_cache_t *kmem_find_general_cachep(size_t size);
void kmem_cache_sizes_init(void);
int slab_is_kmalloc_cache(const kmem_cache_t *cachep);

/* Slow paths: out of line. */
void *slab_alloc_slow(kmem_cache_t *cachep, int flags);
void slab_free_slow(kmem_cache_t *cachep, void *objp, const char *fn);
__cold __attribute__((noreturn)) void slab_bad_pointer(const void *objp,
                                                       const char *fn);

/* Index of objp in the slab of page when it is an object start; >=
 * page->slab_num otherwise.  Exact for any object size: divisibility by
 * size = odd << objshift through the modular inverse of odd (one multiply,
 * one rotate).  Reads only the struct page, where kmem_cache_grow() copied
 * the cache's geometry; its s_mem is the first object's address as handed
 * out (the slab's s_mem plus the cache's obj_offset, past a red zone). */
static inline uint64_t slab_page_obj_index(const struct page *page,
                                           const void *objp)
{
    uint64_t n = (uint64_t)((uintptr_t)objp - (uintptr_t)page->s_mem);
    uint64_t q = n * page->slab_objinv;
    unsigned int s = page->slab_objshift;
    return s ? (q >> s) | (q << (64 - s)) : q;
}

/*
 * Pointer validation, in one place: slab_page_of() finds the slab frame
 * of an address, slab_obj_start() says whether the address is an object
 * start in that frame, slab_object_page() does both for a given cache.
 */

/* The frame of a slab object, or NULL if objp is not in a slab frame. */
static inline struct page *slab_page_of(const void *objp)
{
    struct page *page = vm_virt_to_page(objp);
    if (unlikely(!page) || unlikely(!PageSlabOwned(page)))
        return NULL;
    return page;
}

/* Is objp the start of an object of the slab frame page? */
static inline int slab_obj_start(const struct page *page, const void *objp)
{
    return likely(slab_page_obj_index(page, objp) < page->slab_num);
}

/* The frame of objp when it is the start of an object of cachep; NULL
 * otherwise. */
static inline struct page *slab_object_page(const kmem_cache_t *cachep,
                                            const void *objp)
{
    struct page *page = slab_page_of(objp);
    if (unlikely(!page) || unlikely(GET_PAGE_CACHE(page) != cachep) ||
        unlikely(!slab_obj_start(page, objp)))
        return NULL;
    return page;
}

/* The cache of a slab frame, or NULL if objp is not in a slab frame (any
 * address in the frame: no check of the object start). */
static inline kmem_cache_t *slab_cache_of(const void *objp, struct page **ppage)
{
    struct page *page = slab_page_of(objp);
    if (unlikely(!page))
        return NULL;
    *ppage = page;
    return GET_PAGE_CACHE(page);
}

/*
 * The free key (glibc's tcache key): every object of the kmalloc and
 * malloc caches that free()/kfree() put on a thread's array carries
 * slab_free_key in its second word, and every allocation from those
 * caches clears it (slab_key_clear).  A free that finds the key in the
 * object is perhaps a double free: slab_free_slow() confirms it out of
 * line (slab_check_double_free: the thread's array, the object's bufctl
 * on its slab, the other threads' arrays) and reports only a confirmed
 * one, so a live object that happens to hold the key costs a slower free,
 * never a false report.  Caches made by kmem_cache_create() are left
 * alone: their objects keep their constructed state while free.
 */
extern uintptr_t slab_free_key __hidden;

/* Are the objects of cache id keyed?  Ids 1 ... SLAB_FIRST_USER_ID - 1. */
static inline int slab_id_keyed(unsigned int id)
{
    return id - 1 < SLAB_FIRST_USER_ID - 1;
}

/* The key word of an object (every keyed object is >= 16 bytes). */
static inline uintptr_t *slab_key_word(const void *objp)
{
    return (uintptr_t *)objp + 1;
}

/* An object of a keyed cache handed out: not freed any more. */
static inline void *slab_key_clear(void *objp)
{
    *slab_key_word(objp) = 0;
    return objp;
}

/* Pushes objp on a thread's array: 1, or 0 when the array is full or
 * objp is the object freed last (a double free, which the slow path
 * reports). */
static inline int slab_ac_push(struct array_cache *ac, const void *objp)
{
    unsigned int avail = ac->avail;
    if (likely(avail < ac->limit) &&
        likely(!avail || ac->entry[avail - 1] != objp)) {
#if SLAB_STATS
        ac->freehit++;
#endif
        ac->entry[avail] = (void *)objp;
        /* the entry before the count (a release store: a plain mov on
         * x86): a fork child drains the arrays of the threads it did not
         * inherit up to avail, and must not find a stale entry there */
        __atomic_store_n(&ac->avail, avail + 1, __ATOMIC_RELEASE);
        return 1;
    }
    return 0;
}

/* Pops the object pushed last from a thread's array, which holds one: the
 * caller's test of ac->avail is the fast path's one branch.  A hit. */
static inline __attribute__((always_inline)) void *
slab_ac_pop(struct array_cache *ac)
{
#if SLAB_STATS
    ac->allochit++;
#endif
    return ac->entry[--ac->avail];
}

/* The same for an object of a keyed cache: 0 also when objp carries the
 * key (perhaps freed already: the slow path checks); on a push objp gets
 * the key. */
static inline __attribute__((always_inline)) int
slab_ac_push_keyed(struct array_cache *ac, const void *objp)
{
    unsigned int avail = ac->avail;
    uintptr_t *key = slab_key_word(objp);
    uintptr_t k = slab_free_key;
    if (likely(avail < ac->limit) && likely(*key != k)) {
#if SLAB_STATS
        ac->freehit++;
#endif
        *key = k;
        ac->entry[avail] = (void *)objp;
        __atomic_store_n(&ac->avail, avail + 1, __ATOMIC_RELEASE);
        return 1;
    }
    return 0;
}

#include "slab/percpu.h"

/*
 * With per-CPU arrays no thread has arrays of its own (slab_self stays a
 * thread whose arrays are all the empty one), so the per-thread hit is
 * tried first and costs the per-thread mode nothing: the per-CPU pop or
 * push runs where the thread's array missed.
 */

/* After the thread's array missed: the hottest object of this CPU's array
 * of cache id, or NULL. */
static inline __attribute__((always_inline)) void *
slab_cpu_pop_if_on(unsigned int id)
{
    return slab_percpu_on() ? slab_cpu_pop(id) : NULL;
}

/* The per-CPU push of a free of an object of cache id, keyed or not (as
 * slab_ac_push and slab_ac_push_keyed): the key goes in before the push,
 * since once pushed the object may be another CPU's allocation at once,
 * and comes out again when the push fails. */
static inline __attribute__((always_inline)) int
slab_cpu_push_free(unsigned int id, const void *objp)
{
    if (!slab_id_keyed(id))
        return slab_cpu_push(id, objp);
    uintptr_t *key = slab_key_word(objp);
    uintptr_t old = *key, k = slab_free_key;
    if (unlikely(old == k))
        return 0;
    *key = k;
    if (likely(slab_cpu_push_nocheck(id, objp)))
        return 1;
    *key = old;
    return 0;
}

/* Frees objp, an object start of the slab frame page, onto this CPU's
 * array (slab/percpu.c). */
void slab_cpu_free(struct page *page, const void *objp, const char *fn);

static inline void *__kmem_cache_alloc(kmem_cache_t *cachep, int flags)
{
    struct array_cache *ac = slab_self->ac[cachep->id];
    if (likely(ac->avail))
        return slab_ac_pop(ac);
    void *objp = slab_cpu_pop_if_on(cachep->id);
    if (objp)
        return objp;
    return slab_alloc_slow(cachep, flags);
}

/* Pushes a validated object on the thread's (or the CPU's) array of
 * cachep. */
static inline void __kmem_cache_free_checked(kmem_cache_t *cachep, void *objp,
                                             const char *fn)
{
    if (likely(slab_ac_push(slab_self->ac[cachep->id], objp)))
        return;
    if (slab_percpu_on() && slab_cpu_push(cachep->id, objp))
        return;
    slab_free_slow(cachep, objp, fn);
}

/* The frame of objp when it is a slab frame of the first low-memory
 * section (vm/frames/page.h), NULL otherwise: an address of another
 * section, or not in a slab frame.  No call, so the free fast paths
 * built on it need no stack frame: the other sections are their callers'
 * slow path (slab_free_inline). */
static inline __attribute__((always_inline)) struct page *
slab_page_first(const void *objp)
{
    uintptr_t off = (uintptr_t)objp - (uintptr_t)vm_lowmem.base;
    unsigned long pfn = off >> PAGE_SHIFT;
    if (unlikely(pfn >= atomic_load_explicit(&vm_lowmem.fast_pages,
                                             memory_order_relaxed)))
        return NULL;
    struct page *page = &vm_lowmem.mem_map[pfn];
    if (unlikely(!PageSlabOwned(page)))
        return NULL;
    return page;
}

/* Frees objp, an object start of the slab frame page, on the thread's
 * array; the miss out of line.  Cache ids below SLAB_FIRST_USER_ID take
 * the keyed push: the keyed caches and id 0, whose array (slab_empty_ac)
 * is full, so its push fails before the key word is read (an object of
 * id 0 may be smaller than two words). */
static inline __attribute__((always_inline)) int
slab_free_page(struct page *page, const void *objp, const char *fn)
{
    unsigned int id = page->slab_id;
    struct array_cache *ac = slab_self->ac[id];
    if (likely(id < SLAB_FIRST_USER_ID)) {
        if (likely(slab_ac_push_keyed(ac, objp)))
            return 1;
    } else if (likely(slab_ac_push(ac, objp))) {
        return 1;
    }
    if (slab_percpu_on()) /* out of line: free's hit stays small */
        slab_cpu_free(page, objp, fn);
    else
        slab_free_slow(GET_PAGE_CACHE(page), (void *)objp, fn);
    return 1;
}

/* The frees' one check of a pointer: page is the slab frame a lookup
 * found for objp (NULL: not a slab frame, returned as is, the caller's
 * to decide); a pointer in it that is not an object start dies with a
 * message. */
static inline __attribute__((always_inline)) struct page *
slab_checked_page(struct page *page, const void *objp, const char *fn)
{
    if (unlikely(!page))
        return NULL;
    if (unlikely(!slab_obj_start(page, objp)))
        slab_bad_pointer(objp, fn);
    return page;
}

/* Frees objp if it is an object of a slab cache: returns 1.  Returns 0
 * when objp lies outside the slab frames (caller decides).  A pointer in
 * slab memory that is not an object start dies with a message. */
static inline __attribute__((always_inline)) int
slab_free_inline(const void *objp, const char *fn)
{
    struct page *page = slab_checked_page(slab_page_of(objp), objp, fn);
    if (unlikely(!page))
        return 0;
    return slab_free_page(page, objp, fn);
}

/* slab_free_inline for the first section's frames only: 0 also for a
 * slab object of another section, which the caller's slow path frees
 * with slab_free_inline.  free() is this and a tail call, with no stack
 * frame. */
static inline __attribute__((always_inline)) int
slab_free_first(const void *objp, const char *fn)
{
    struct page *page = slab_checked_page(slab_page_first(objp), objp, fn);
    if (unlikely(!page))
        return 0;
    return slab_free_page(page, objp, fn);
}

/* slab_free_first with per-CPU arrays (the malloc family's second fast
 * path, chosen at start-up): the object of a keyed cache gets the key
 * and goes on this CPU's array in one restartable sequence, with no look
 * at the thread's (empty) arrays; a miss, an unkeyed cache or a key
 * already there go out of line. */
static inline __attribute__((always_inline)) int
slab_cpu_free_first(const void *objp, const char *fn)
{
    struct page *page = slab_checked_page(slab_page_first(objp), objp, fn);
    if (unlikely(!page))
        return 0;
    unsigned int id = page->slab_id;
    if (likely(slab_id_keyed(id))) {
        uintptr_t *key = slab_key_word(objp);
        uintptr_t old = *key, k = slab_free_key;
        if (likely(old != k)) {
            *key = k;
            if (likely(slab_cpu_push_nocheck(id, objp)))
                return 1;
            *key = old;
        }
        slab_free_slow(GET_PAGE_CACHE(page), (void *)objp, fn);
        return 1;
    }
    slab_cpu_free(page, objp, fn);
    return 1;
}

/* Validation of a cache's lists, counters and depot; aborts on a broken
 * invariant.  Returns the number of objects in use: taken from the slab
 * lists and not free in the depot (those in threads' arrays count). */
unsigned long slab_check_cache(kmem_cache_t *cachep);
/* The same validation, reported with one line (no abort): 0 or -EFAULT. */
int slab_verify_cache(kmem_cache_t *cachep);

/* Calls fn on every cache, cache_cache first, with the chain locked. */
void slab_for_each_cache(void (*fn)(FILE *, kmem_cache_t *), FILE *out);
#if SLAB_STATS
/* Adds the hit counters of live threads' arrays of cachep. */
void slab_sum_thread_stats(kmem_cache_t *cachep, unsigned long *ah,
                           unsigned long *am, unsigned long *fh,
                           unsigned long *fm);
#endif

/* ---- the depot (slab/magazine.c) ---- */

/* Are magazines on (KSLAB_MAGAZINES, read at start)? */
int slab_magazines_on(void);
/* A new cache's depot, empty (no lock held). */
void slab_depot_init(kmem_cache_t *cachep);
/* The array is full: its oldest objects go to the depot as one full
 * magazine.  1, or 0 when no magazine could be had (the caller sends the
 * objects to the slabs).  No lock held. */
int slab_depot_put(kmem_cache_t *cachep, struct array_cache *ac);
/* The array is empty: fills it from a full magazine; the objects moved, 0
 * when the depot has none.  No lock held. */
unsigned int slab_depot_get(kmem_cache_t *cachep, struct array_cache *ac);
/* Every full magazine's objects go back to the slabs, every empty
 * magazine is freed (shrink, reap, destroy, malloc_trim).  No cache lock
 * held. */
void slab_depot_drain(kmem_cache_t *cachep);
/* The working-set pass at time now (ms): the full magazines that no
 * thread needed since the last pass go back to the slabs.  No lock held. */
void slab_depot_reap(kmem_cache_t *cachep, unsigned long now);
/* Is objp in one of the depot's full magazines? */
int slab_depot_holds(kmem_cache_t *cachep, const void *objp);
/* Objects in the depot (a racy snapshot). */
unsigned long slab_depot_objects(kmem_cache_t *cachep);
/* Whole magazines, for the per-CPU arrays (no copy; no lock held):
 * a full one off the depot (NULL when it has none), an empty one (off
 * the depot, else new; NULL without memory), and back: a magazine with
 * objects goes on the full list (or, over the bound or without
 * magazines, its objects to the slabs), an empty one on the empty list
 * (or freed).  Either give folds the magazine's hit counters into the
 * depot's. */
struct slab_magazine *slab_depot_take_full(kmem_cache_t *cachep);
struct slab_magazine *slab_depot_take_empty(kmem_cache_t *cachep);
void slab_depot_give(kmem_cache_t *cachep, struct slab_magazine *m);
/* Validates the depot (cache lock held): 0, or -EFAULT after say();
 * *held: the objects in its full magazines. */
int slab_depot_check(kmem_cache_t *cachep, void (*say)(const char *fmt, ...),
                     unsigned long *held);
/* slab.c: puts n objects back on their slabs under one hold of the cache
 * lock (no lock held); trims free slabs past free_limit. */
void slab_put_objects(kmem_cache_t *cachep, void *const *objs, unsigned int n);

/* slab.c: fills an array up to its batchcount from the slab lists (the
 * cache grown as needed, the depots reclaimed when memory is short); the
 * objects moved, 0 without memory.  No lock held. */
unsigned int slab_fill_from_slabs(kmem_cache_t *cachep, struct array_cache *ac,
                                  int flags);

/* Drains every CPU's array of every cache when the arrays are per CPU
 * (slab.c; takes cache_chain_sem). */
void slab_drain_cpus(void);

/* Drains the calling thread's arrays of every cache (slab/thread.c); with
 * per-CPU arrays, every CPU's. */
void slab_drain_self(void);

#endif /* KSLAB_SLAB_INTERNAL_H */
