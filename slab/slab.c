/*
 * slab/slab.c — the slab allocator (Bonwick's design, as Linux 2.4 built
 * it), in user space.
 *
 * Every cache is an object of cache_cache, the root of the cache chain.
 * A cache hands out objects of one size from slabs: blocks of 2^gfporder
 * page frames from the buddy allocator.  Objects are constructed (ctor)
 * when their slab is grown and stay constructed while free; the dtor runs
 * when a slab is destroyed.  Slab management (slab_t + bufctl array) is
 * on the slab for small objects and off-slab (in a kmalloc object) from
 * PAGE_SIZE/8 up; successive slabs start their objects at different
 * colour offsets so equal objects of different slabs use different cache
 * lines.  Every frame of a slab points at its cache and slab through its
 * struct page (GET_PAGE_CACHE / GET_PAGE_SLAB), so kfree() needs no cache.
 *
 * 2.4 puts a per-CPU array of free objects in front of each cache; here
 * it is per thread (slab_thread, one TLS pointer; slab/thread.c makes
 * them, on lib/thread.c's registry of threads and their exit).  A hit is
 * a pop or push
 * on the thread's own array: no lock, no atomic.  A miss takes a full
 * magazine from the cache's depot or gives it one (slab/magazine.c), and
 * only when the depot has none to give, or too many, moves `batchcount`
 * objects to or from the slabs under the cache lock.  Arrays belong to
 * their thread: another thread never touches them, except for a thread
 * that has exited or (kmem_cache_destroy) a cache that, by contract, no
 * thread is using.  kmem_cache_shrink()/kmem_cache_reap() drain the
 * calling thread's arrays at once, as 2.4 drained the calling CPU's, and
 * ask every other thread to drain its arrays at its next slow path.  With
 * KSLAB_PERCPU=1 the arrays are per CPU instead, as in 2.4 (slab/percpu.c:
 * restartable sequences); shrink and reap then drain every CPU's at once.
 *
 * Locking: see slab_internal.h; the order of every kslab lock, and the
 * fork protocol that takes them all (this file's hook is level
 * KSLAB_FORK_SLAB), are at the top of lib/fork.c.  ctors and dtors run
 * without any slab lock held, so they may allocate.  Start-up: cache_cache
 * and the kmalloc caches are the level "slab" of lib/init.c's order.
 *
 * Longer than the ~900 lines a file here usually gets: it is one concept,
 * kept whole as 2.4's mm/slab.c (about 2,000 lines) keeps it, so the two
 * read side by side; the threads' arrays, kmalloc, /proc/slabinfo and the
 * debugging are in files of their own.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "lib/fork.h"
#include "lib/init.h"
#include "lib/options.h"
#include "lib/thread.h"
#include "lib/valgrind_hooks.h"
#include "slab/debug.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"

kmem_cache_t cache_cache;

/* Recursive: slabinfo prints (and stdio may allocate) with it held. */
static pthread_mutex_t cache_chain_sem = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static unsigned char cache_ids[SLAB_MAX_IDS]; /* 1 = id taken */
static kmem_cache_t *clock_searchp = &cache_cache;

/* ---- object geometry ---- */

/* Inverse of an odd number modulo 2^64 (Newton's iteration). */
static uint64_t inverse_odd(uint64_t d)
{
    uint64_t x = d;
    for (int i = 0; i < 6; i++)
        x *= 2 - d * x;
    return x;
}

static void set_divisor(kmem_cache_t *cachep)
{
    unsigned int shift = (unsigned int)__builtin_ctz(cachep->size);
    cachep->objshift = shift;
    cachep->objinv = inverse_odd((uint64_t)cachep->size >> shift);
}

/* 2.4's kmem_cache_estimate: objects per slab of 2^gfporder pages and the
 * bytes left over. */
static void kmem_cache_estimate(unsigned long gfporder, size_t size,
                                unsigned long flags, size_t *left_over,
                                unsigned int *num)
{
    size_t wastage = PAGE_SIZE << gfporder;
    size_t base = 0, extra = 0, i = 0;
    if (!(flags & CFLGS_OFF_SLAB)) {
        base = sizeof(slab_t);
        extra = sizeof(kmem_bufctl_t);
    }
#define L1_ALIGN(x) (((x) + L1_CACHE_BYTES - 1) & ~(size_t)(L1_CACHE_BYTES - 1))
    while (i * size + L1_ALIGN(base + i * extra) <= wastage)
        i++;
    if (i > 0)
        i--;
    if (i > SLAB_LIMIT)
        i = SLAB_LIMIT;
    *num = (unsigned int)i;
    wastage -= i * size;
    wastage -= L1_ALIGN(base + i * extra);
    *left_over = wastage;
}

/* 2.4's per-CPU limits by object size; above a page 2.4 had none, the
 * malloc path needs a small one. */
static void set_array_tunables(kmem_cache_t *cachep)
{
    unsigned int limit;
    if (cachep->objsize > 32768)
        limit = 4;
    else if (cachep->objsize > PAGE_SIZE)
        limit = 16;
    else if (cachep->objsize > 1024)
        limit = 60;
    else if (cachep->objsize > 256)
        limit = 124;
    else
        limit = 252;
    cachep->limit = limit;
    cachep->batchcount = limit / 2;
    /* Free objects a cache keeps on its slabs before giving slabs back
     * (the 2.6 rule: a few batches plus one slab). */
    cachep->free_limit = 2UL * cachep->batchcount + cachep->num;
}

static int valid_name(const char *name)
{
    if (!name || !*name)
        return 0;
    return strnlen(name, KMEM_CACHE_NAME_MAX + 1) <= KMEM_CACHE_NAME_MAX;
}

static kmem_cache_t *find_cache_by_name(const char *name)
{
    struct list_head *p;
    if (!strcmp(cache_cache.name, name))
        return &cache_cache;
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        if (!strcmp(c->name, name))
            return c;
    }
    return NULL;
}

static unsigned int alloc_cache_id(void)
{
    for (unsigned int i = SLAB_FIRST_USER_ID; i < SLAB_MAX_IDS; i++)
        if (!cache_ids[i]) {
            cache_ids[i] = 1;
            return i;
        }
    return 0;
}

#define SLAB_VALID_FLAGS                                                       \
    (SLAB_DEBUG_FREE | SLAB_DEBUG_INITIAL | SLAB_RED_ZONE | SLAB_POISON |      \
     SLAB_NO_REAP | SLAB_HWCACHE_ALIGN | SLAB_CACHE_DMA |                      \
     SLAB_MUST_HWCACHE_ALIGN)

/*
 * Lays out a cache: sizes, alignment, red zone, gfporder, on/off-slab
 * management and colouring, as kmem_cache_create() of 2.4 does.  Returns 0
 * or -EINVAL when the object cannot fit a slab.
 */
static int cache_layout(kmem_cache_t *cachep, size_t size, size_t offset,
                        unsigned long flags)
{
    size_t align = BYTES_PER_WORD;
    size_t left_over;

    if (flags & SLAB_POISON && cachep->ctor)
        flags &= ~SLAB_POISON; /* poisoning would destroy constructed state */
    if (size & (BYTES_PER_WORD - 1))
        size = (size + BYTES_PER_WORD - 1) & ~(BYTES_PER_WORD - 1);
    cachep->objsize = (unsigned int)size;

    if (flags & (SLAB_HWCACHE_ALIGN | SLAB_MUST_HWCACHE_ALIGN)) {
        /* Small objects: at least two per line, aligned to their size. */
        align = L1_CACHE_BYTES;
        while (size <= align / 2 && align > 16)
            align /= 2;
    } else if (size >= 16) {
        align = 16; /* what malloc-style users expect */
    }
    if (flags & SLAB_RED_ZONE) {
        cachep->obj_offset = (unsigned int)align;
        size += align + BYTES_PER_WORD;
    }
    size = (size + align - 1) & ~(align - 1);

    /* cache_cache keeps its management on its slabs whatever its size:
     * off-slab management comes from the kmalloc caches, themselves
     * objects of cache_cache (as in 2.4, whose cache_cache is on-slab). */
    if (size >= (PAGE_SIZE >> 3) && cachep != &cache_cache)
        flags |= CFLGS_OFF_SLAB;
    /* A cache with a page source (libkslab-vm.so's malloc caches, whose
     * slabs are in the emulated mm) keeps its management off-slab, in
     * host memory, whatever its size: then the slab's own code touches
     * no page of the mm (only malloc and free touch an object's key
     * word), so no pass of it faults there, under a lock or in a thread
     * that blocks SIGSEGV. */
    int off_only = cachep->pagesrc != NULL;
    if (off_only)
        flags |= CFLGS_OFF_SLAB;

    unsigned int gfporder = 0, num = 0;
    for (;; gfporder++) {
        kmem_cache_estimate(gfporder, size, flags, &left_over, &num);
        if (gfporder >= MAX_ORDER - 1)
            break;
        if (!num)
            continue;
        if (gfporder >= MAX_GFP_ORDER)
            break;
        if ((left_over * 8) <= (PAGE_SIZE << gfporder))
            break;
    }
    if (!num)
        return -EINVAL;
    cachep->size = (unsigned int)size;
    cachep->num = num;
    cachep->gfporder = gfporder;

    size_t slab_size = L1_ALIGN(sizeof(slab_t) + num * sizeof(kmem_bufctl_t));
    if ((flags & CFLGS_OFF_SLAB) && !off_only && left_over >= slab_size) {
        flags &= ~CFLGS_OFF_SLAB;
        left_over -= slab_size;
    }
    if (flags & CFLGS_OFF_SLAB)
        slab_size = sizeof(slab_t) + num * sizeof(kmem_bufctl_t);
    cachep->slab_size = (unsigned int)slab_size;

    if (!offset)
        offset = L1_CACHE_BYTES;
    offset = (offset + align - 1) & ~(align - 1);
    cachep->colour_off = (unsigned int)offset;
    cachep->colour = left_over / offset;
    cachep->flags = flags;
    cachep->gfpflags = (flags & SLAB_CACHE_DMA) ? GFP_DMA : 0;
    set_divisor(cachep);
    set_array_tunables(cachep);
    return 0;
}

static void cache_init_lists(kmem_cache_t *cachep)
{
    pthread_mutex_init(&cachep->spinlock, NULL);
    INIT_LIST_HEAD(&cachep->slabs_full);
    INIT_LIST_HEAD(&cachep->slabs_partial);
    INIT_LIST_HEAD(&cachep->slabs_free);
    slab_depot_init(cachep);
}

/* Debug caches and caches without an id go the locked way every time;
 * so does every cache while blocks are tracked (KSLAB_DEBUG audit, log,
 * leaks: slab/debug.h), so that each allocation and free reaches the
 * hooks of the slow path. */
static int cache_wants_arrays(const kmem_cache_t *cachep)
{
    return !(cachep->flags &
             (SLAB_RED_ZONE | SLAB_POISON | SLAB_DEBUG_INITIAL)) &&
           !slab_debug_tracking();
}

kmem_cache_t *slab_cache_create(
    const char *name, size_t size, size_t offset, unsigned long flags,
    void (*ctor)(void *, kmem_cache_t *, unsigned long),
    void (*dtor)(void *, kmem_cache_t *, unsigned long), unsigned int fixed_id)
{
    return slab_cache_create_src(name, size, offset, flags, ctor, dtor,
                                 fixed_id, NULL);
}

kmem_cache_t *
slab_cache_create_src(const char *name, size_t size, size_t offset,
                      unsigned long flags,
                      void (*ctor)(void *, kmem_cache_t *, unsigned long),
                      void (*dtor)(void *, kmem_cache_t *, unsigned long),
                      unsigned int fixed_id, const struct slab_page_source *src)
{
    kmem_cache_t *cachep = NULL;
    int err = EINVAL;

    if (!valid_name(name) || !size || size > KMALLOC_MAX_SIZE ||
        (dtor && !ctor) || (flags & ~SLAB_VALID_FLAGS) || offset > size)
        goto fail;
    kslab_init(); /* returns at once when start-up itself creates caches */

    cachep = slab_alloc_direct(&cache_cache, GFP_KERNEL);
    if (!cachep) {
        err = ENOMEM;
        goto fail;
    }
    memset(cachep, 0, sizeof *cachep);
    cachep->ctor = ctor;
    cachep->dtor = dtor;
    cachep->pagesrc = src;
    if (cache_layout(cachep, size, offset, flags))
        goto fail_free;
    cache_init_lists(cachep);
    strcpy(cachep->name, name);
    if (cachep->flags & CFLGS_OFF_SLAB) {
        cachep->slabp_cache = kmem_find_general_cachep(cachep->slab_size);
        if (!cachep->slabp_cache)
            goto fail_free;
    }

    pthread_mutex_lock(&cache_chain_sem);
    if (find_cache_by_name(name)) {
        pthread_mutex_unlock(&cache_chain_sem);
        err = EEXIST;
        goto fail_free;
    }
    if (cache_wants_arrays(cachep))
        cachep->id = fixed_id ? fixed_id : alloc_cache_id();
    if (fixed_id)
        cache_ids[fixed_id] = 1;
    list_add(&cachep->next, &cache_cache.next);
    pthread_mutex_unlock(&cache_chain_sem);
    return cachep;

fail_free:
    slab_free_direct(&cache_cache, cachep);
fail:
    errno = err;
    return NULL;
}

/**
 * kmem_cache_create - create a cache; see <kslab/slab.h>.
 * Process context; takes cache_chain_sem.  Returns NULL with errno EINVAL,
 * EEXIST or ENOMEM on failure, having changed nothing.
 */
kmem_cache_t *
kmem_cache_create(const char *name, size_t size, size_t offset,
                  unsigned long flags,
                  void (*ctor)(void *, kmem_cache_t *, unsigned long),
                  void (*dtor)(void *, kmem_cache_t *, unsigned long))
{
    return slab_cache_create(name, size, offset, flags, ctor, dtor, 0);
}

/* ---- slabs ---- */

static inline void *slab_obj(const kmem_cache_t *cachep, const slab_t *slabp,
                             unsigned int i)
{
    return (char *)slabp->s_mem + (size_t)i * cachep->size;
}

static inline uint64_t *rz_front(const kmem_cache_t *cachep, void *obj)
{
    return (uint64_t *)((char *)obj + cachep->obj_offset - BYTES_PER_WORD);
}

static inline uint64_t *rz_back(const kmem_cache_t *cachep, void *obj)
{
    return (uint64_t *)((char *)obj + cachep->obj_offset + cachep->objsize);
}

static void poison_obj(const kmem_cache_t *cachep, void *obj)
{
    unsigned char *p = (unsigned char *)obj + cachep->obj_offset;
    memset(p, POISON_BYTE, cachep->objsize);
    p[cachep->objsize - 1] = POISON_END;
}

static int poison_intact(const kmem_cache_t *cachep, void *obj)
{
    const unsigned char *p = (unsigned char *)obj + cachep->obj_offset;
    unsigned int n = cachep->objsize;
    for (unsigned int i = 0; i + 1 < n; i++)
        if (p[i] != POISON_BYTE)
            return 0;
    return p[n - 1] == POISON_END;
}

/* Constructs the objects of a new slab and chains their bufctls. */
static void cache_init_objs(kmem_cache_t *cachep, slab_t *slabp,
                            unsigned long ctor_flags)
{
    kmem_bufctl_t *bufctl = slab_bufctl(slabp);
    for (unsigned int i = 0; i < cachep->num; i++) {
        void *obj = slab_obj(cachep, slabp, i);
        if (cachep->flags & SLAB_RED_ZONE) {
            *rz_front(cachep, obj) = RED_MAGIC1;
            *rz_back(cachep, obj) = RED_MAGIC1;
        }
        if (cachep->ctor)
            cachep->ctor((char *)obj + cachep->obj_offset, cachep, ctor_flags);
        if (cachep->flags & SLAB_POISON)
            poison_obj(cachep, obj);
        bufctl[i] = i + 1;
    }
    bufctl[cachep->num - 1] = BUFCTL_END;
    slabp->free = 0;
}

static void check_slab(kmem_cache_t *cachep, slab_t *slabp, int kind);

/* The first frame of a slab: its `private' holds the time the slab became
 * free (ms of CLOCK_MONOTONIC_COARSE) while it is on slabs_free. */
static inline struct page *slab_head_page(const slab_t *slabp)
{
    return vm_virt_to_page((const char *)slabp->s_mem - slabp->colouroff);
}

/* Cache lock held: slabp goes on slabs_free now (vm_now_ms, the clock of
 * the frames' purge pass). */
static inline void slab_stamp_free(slab_t *slabp)
{
    slab_head_page(slabp)->private = vm_now_ms();
}

/* A slab's pages: from the cache's page source, or from the zones. */
static void *kmem_getpages(kmem_cache_t *cachep)
{
    if (unlikely(cachep->pagesrc != NULL))
        return cachep->pagesrc->get(cachep->gfporder);
    return (void *)__get_free_pages(cachep->gfpflags, cachep->gfporder);
}

static void kmem_freepages(kmem_cache_t *cachep, void *addr)
{
    if (unlikely(cachep->pagesrc != NULL))
        cachep->pagesrc->put(addr, cachep->gfporder);
    else
        free_pages((unsigned long)addr, cachep->gfporder);
}

/* Grows a cache by one slab.  Called without the cache lock.  Returns 1
 * on success, 0 on failure (errno ENOMEM). */
static int kmem_cache_grow(kmem_cache_t *cachep, int flags)
{
    size_t offset;
    pthread_mutex_lock(&cachep->spinlock);
    offset = cachep->colour_next;
    cachep->colour_next++;
    if (cachep->colour_next >= cachep->colour)
        cachep->colour_next = 0;
    offset *= cachep->colour_off;
    cachep->dflags |= DFLGS_GROWN;
    cachep->growing++;
    pthread_mutex_unlock(&cachep->spinlock);

    char *objp = kmem_getpages(cachep);
    slab_t *slabp;
    if (!objp)
        goto failed;
    if (cachep->flags & CFLGS_OFF_SLAB) {
        /* The locked path: an array for slabp_cache could need this very
         * cache to grow first. */
        slabp = slab_alloc_direct(cachep->slabp_cache, flags & ~GFP_DMA);
        if (!slabp)
            goto opps1;
    } else {
        slabp = (slab_t *)(objp + offset);
        offset += cachep->slab_size;
    }
    slabp->inuse = 0;
    slabp->colouroff = offset;
    slabp->s_mem = objp + offset;

    struct page *page = vm_virt_to_page(objp);
    for (unsigned long i = 0; i < (1UL << cachep->gfporder); i++) {
        /* the first address handed out (past a red zone): the free
         * fast path's division starts there */
        page[i].s_mem = (char *)slabp->s_mem + cachep->obj_offset;
        page[i].slab_objinv = cachep->objinv;
        page[i].slab_objshift = cachep->objshift;
        page[i].slab_num = cachep->num;
        page[i].slab_id = cachep->id;
        SET_PAGE_CACHE(&page[i], cachep);
        SET_PAGE_SLAB(&page[i], slabp);
        SetPageFlag(&page[i], PG_slab);
    }
    unsigned long ctor_flags = SLAB_CTOR_CONSTRUCTOR;
    if (!(flags & __GFP_WAIT))
        ctor_flags |= SLAB_CTOR_ATOMIC;
    cache_init_objs(cachep, slabp, ctor_flags);

    pthread_mutex_lock(&cachep->spinlock);
    cachep->growing--;
    /* first: the free list stays ordered by the time each slab became
     * free, newest first (slab_decay) */
    slab_stamp_free(slabp);
    list_add(&slabp->list, &cachep->slabs_free);
    cachep->free_objects += cachep->num;
#if SLAB_STATS
    cachep->grown++;
#endif
    KSLAB_DEBUG_CHECK(check_slab(cachep, slabp, 0));
    pthread_mutex_unlock(&cachep->spinlock);
    return 1;
opps1:
    kmem_freepages(cachep, objp);
failed:
    pthread_mutex_lock(&cachep->spinlock);
    cachep->growing--;
#if SLAB_STATS
    cachep->errors++;
#endif
    pthread_mutex_unlock(&cachep->spinlock);
    errno = ENOMEM;
    return 0;
}

/* Destroys a slab that holds no object in use: runs the dtor on every
 * object, gives the frames back.  Called without the cache lock. */
static void kmem_slab_destroy(kmem_cache_t *cachep, slab_t *slabp)
{
    if (cachep->dtor || (cachep->flags & (SLAB_POISON | SLAB_RED_ZONE))) {
        for (unsigned int i = 0; i < cachep->num; i++) {
            void *obj = slab_obj(cachep, slabp, i);
            if (cachep->flags & SLAB_RED_ZONE) {
                if (*rz_front(cachep, obj) != RED_MAGIC1 ||
                    *rz_back(cachep, obj) != RED_MAGIC1)
                    kslab_die_at((char *)obj + cachep->obj_offset,
                                 "kmem_slab_destroy(): cache `%s': red zone of "
                                 "free object %p overwritten",
                                 cachep->name,
                                 (char *)obj + cachep->obj_offset);
            }
            if (cachep->flags & SLAB_POISON && !poison_intact(cachep, obj))
                kslab_die_at((char *)obj + cachep->obj_offset,
                             "kmem_slab_destroy(): cache `%s': free object %p "
                             "was written after it was freed",
                             cachep->name, (char *)obj + cachep->obj_offset);
            if (cachep->dtor)
                cachep->dtor((char *)obj + cachep->obj_offset, cachep, 0);
        }
    }
    char *addr = (char *)slabp->s_mem - slabp->colouroff;
    struct page *page = vm_virt_to_page(addr);
    for (unsigned long i = 0; i < (1UL << cachep->gfporder); i++) {
        ClearPageFlag(&page[i], PG_slab);
        page[i].list.next = page[i].list.prev = NULL;
        page[i].s_mem = NULL;
        page[i].slab_objinv = 0;
        page[i].slab_num = 0;
        page[i].slab_id = 0;
        page[i].private = 0;
    }
    kmem_freepages(cachep, addr);
    if (cachep->flags & CFLGS_OFF_SLAB)
        slab_free_direct(cachep->slabp_cache, slabp);
}

/* Destroys every slab on a private list (cache lock not held). */
static int destroy_slab_list(kmem_cache_t *cachep, struct list_head *list)
{
    int n = 0;
    while (!list_empty(list)) {
        slab_t *slabp = list_entry(list->next, slab_t, list);
        list_del(&slabp->list);
        kmem_slab_destroy(cachep, slabp);
        n++;
    }
    return n;
}

/* ---- objects on slabs (cache lock held) ---- */

/* Takes the first free object of slabp, which has one.  Level 1: the index
 * from the free chain and the one after it are in range (or the end). */
static inline void *slab_take(kmem_cache_t *cachep, slab_t *slabp)
{
    kmem_bufctl_t *bufctl = slab_bufctl(slabp);
    unsigned int i = slabp->free;
    KSLAB_CHECK(i < cachep->num,
                "slab_take(): cache `%s': slab %p: free index %u, %u objects",
                cachep->name, (void *)slabp, i, cachep->num);
    kmem_bufctl_t next = bufctl[i];
    KSLAB_CHECK(next < cachep->num || next == BUFCTL_END,
                "slab_take(): cache `%s': slab %p: bufctl[%u] = 0x%x, %u "
                "objects",
                cachep->name, (void *)slabp, i, next, cachep->num);
    void *obj = slab_obj(cachep, slabp, i);
    slabp->free = next;
    bufctl[i] = BUFCTL_ACTIVE;
    slabp->inuse++;
    cachep->free_objects--;
    cachep->list_ops++;
    if (slabp->free == BUFCTL_END) {
        list_del(&slabp->list);
        list_add(&slabp->list, &cachep->slabs_full);
    } else if (slabp->inuse == 1) {
        list_del(&slabp->list);
        list_add(&slabp->list, &cachep->slabs_partial);
    }
#if SLAB_STATS
    cachep->num_allocations++;
    cachep->num_active++;
    if (cachep->num_active > cachep->high_mark)
        cachep->high_mark = cachep->num_active;
#endif
    return (char *)obj + cachep->obj_offset;
}

static inline slab_t *first_slab_with_free(kmem_cache_t *cachep)
{
    if (!list_empty(&cachep->slabs_partial))
        return list_entry(cachep->slabs_partial.next, slab_t, list);
    if (!list_empty(&cachep->slabs_free))
        return list_entry(cachep->slabs_free.next, slab_t, list);
    return NULL;
}

/* Returns one object to its slab; checks the pointer and double free.
 * Level 1: the slab's count and the head of its free chain are sane. */
static void slab_put(kmem_cache_t *cachep, void *objp, const char *fn)
{
    struct page *page = slab_object_page(cachep, objp);
    if (!page)
        slab_bad_pointer(objp, fn);
    slab_t *slabp = GET_PAGE_SLAB(page);
    unsigned int i = (unsigned int)slab_page_obj_index(page, objp);
    kmem_bufctl_t *bufctl = slab_bufctl(slabp);
    if (bufctl[i] != BUFCTL_ACTIVE)
        kslab_die_at(objp, "%s(): double free of %p (cache `%s')", fn, objp,
                     cachep->name);
    KSLAB_CHECK(slabp->inuse && slabp->inuse <= cachep->num &&
                    (slabp->free < cachep->num || slabp->free == BUFCTL_END),
                "slab_put(): cache `%s': slab %p: %u in use, free index 0x%x, "
                "%u objects",
                cachep->name, (void *)slabp, slabp->inuse, slabp->free,
                cachep->num);
    bufctl[i] = slabp->free;
    slabp->free = i;
    cachep->free_objects++;
    cachep->list_ops++;
#if SLAB_STATS
    cachep->num_active--;
#endif
    if (--slabp->inuse == 0) {
        list_del(&slabp->list);
        slab_stamp_free(slabp);
        list_add(&slabp->list, &cachep->slabs_free);
    } else if (bufctl[i] == BUFCTL_END && slabp->inuse == cachep->num - 1) {
        /* it was full */
        list_del(&slabp->list);
        list_add(&slabp->list, &cachep->slabs_partial);
    }
}

/* Moves up to n free slabs, least recently used first, to `out` for
 * destroy_slab_list(); returns the slabs moved.  Cache lock held. */
static unsigned long move_free_slabs(kmem_cache_t *cachep,
                                     struct list_head *out, unsigned long n)
{
    unsigned long moved = 0;
    while (moved < n && !list_empty(&cachep->slabs_free)) {
        slab_t *slabp = list_entry(cachep->slabs_free.prev, slab_t, list);
        list_move(&slabp->list, out);
        cachep->free_objects -= cachep->num;
        moved++;
    }
    return moved;
}

/* Moves free slabs beyond free_limit to `out` (cache lock held). */
static void trim_free_slabs(kmem_cache_t *cachep, struct list_head *out)
{
    if (cachep->flags & SLAB_NO_REAP ||
        cachep->free_objects <= cachep->free_limit)
        return;
    unsigned long excess = cachep->free_objects - cachep->free_limit;
    move_free_slabs(cachep, out, (excess + cachep->num - 1) / cachep->num);
}

static void ac_fold_stats(kmem_cache_t *cachep, struct array_cache *ac);

/* 2.4's free_block: the oldest n objects of a thread's array back to their
 * slabs under one lock hold.  The array is updated before the lock is
 * dropped: a fork (which holds every cache lock) must never see objects
 * that are already back on their slabs, and possibly on a slab being
 * destroyed, still in the array of a thread the child will drain.
 * Returns 1 when the cache keeps empty slabs afterwards. */
static int free_block(kmem_cache_t *cachep, struct array_cache *ac,
                      unsigned int n)
{
    LIST_HEAD(doomed);
    int empty;
    pthread_mutex_lock(&cachep->spinlock);
    cachep->list_locks++;
    ac_fold_stats(cachep, ac);
    for (unsigned int i = 0; i < n; i++)
        slab_put(cachep, ac->entry[i], "kmem_cache_free");
    ac->avail -= n;
    memmove(ac->entry, ac->entry + n, ac->avail * sizeof(void *));
    trim_free_slabs(cachep, &doomed);
    empty = !list_empty(&cachep->slabs_free);
    pthread_mutex_unlock(&cachep->spinlock);
    destroy_slab_list(cachep, &doomed);
    return empty;
}

void slab_put_objects(kmem_cache_t *cachep, void *const *objs, unsigned int n)
{
    LIST_HEAD(doomed);
    pthread_mutex_lock(&cachep->spinlock);
    cachep->list_locks++;
    for (unsigned int i = 0; i < n; i++)
        slab_put(cachep, objs[i], "kmem_cache_free");
    trim_free_slabs(cachep, &doomed);
    pthread_mutex_unlock(&cachep->spinlock);
    destroy_slab_list(cachep, &doomed);
}

/* ---- the locked (direct) path, with the debug checks ---- */

static void check_alloc_debug(kmem_cache_t *cachep, void *objp)
{
    void *obj = (char *)objp - cachep->obj_offset;
    if (cachep->flags & SLAB_POISON && !poison_intact(cachep, obj))
        kslab_die_at(objp,
                     "kmem_cache_alloc(): cache `%s': object %p was written "
                     "after it was freed",
                     cachep->name, objp);
    if (cachep->flags & SLAB_RED_ZONE) {
        if (*rz_front(cachep, obj) != RED_MAGIC1 ||
            *rz_back(cachep, obj) != RED_MAGIC1)
            kslab_die_at(objp,
                         "kmem_cache_alloc(): cache `%s': red zone of free "
                         "object %p overwritten",
                         cachep->name, objp);
        *rz_front(cachep, obj) = RED_MAGIC2;
        *rz_back(cachep, obj) = RED_MAGIC2;
    }
}

static void check_free_debug(kmem_cache_t *cachep, void *objp, const char *fn)
{
    void *obj = (char *)objp - cachep->obj_offset;
    if (cachep->flags & SLAB_RED_ZONE) {
        uint64_t f = *rz_front(cachep, obj), b = *rz_back(cachep, obj);
        if (f == RED_MAGIC1 && b == RED_MAGIC1)
            kslab_die_at(objp, "%s(): double free of %p (cache `%s')", fn, objp,
                         cachep->name);
        if (f != RED_MAGIC2 || b != RED_MAGIC2)
            kslab_die_at(objp,
                         "%s(): cache `%s': red zone overwritten at object "
                         "%p (%s)",
                         fn, cachep->name, objp,
                         f != RED_MAGIC2 ? "before it" : "past its end");
        *rz_front(cachep, obj) = RED_MAGIC1;
        *rz_back(cachep, obj) = RED_MAGIC1;
    }
    if (cachep->flags & SLAB_DEBUG_INITIAL && cachep->ctor)
        cachep->ctor(objp, cachep, SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_VERIFY);
    if (cachep->flags & SLAB_POISON)
        poison_obj(cachep, obj);
}

void *slab_alloc_direct(kmem_cache_t *cachep, int flags)
{
    for (;;) {
        pthread_mutex_lock(&cachep->spinlock);
        slab_t *slabp = first_slab_with_free(cachep);
        if (slabp) {
            void *objp = slab_take(cachep, slabp);
            pthread_mutex_unlock(&cachep->spinlock);
            /* under valgrind: kslab's own users of kmalloc objects
             * (arrays, off-slab management) may get a freed malloc block */
            vg_make_usable(objp, cachep->objsize);
            if (cachep->flags & (SLAB_POISON | SLAB_RED_ZONE))
                check_alloc_debug(cachep, objp);
            return objp;
        }
        pthread_mutex_unlock(&cachep->spinlock);
        if (!kmem_cache_grow(cachep, flags))
            return NULL;
    }
}

static void free_direct(kmem_cache_t *cachep, void *objp, const char *fn)
{
    LIST_HEAD(doomed);
    if (cachep->flags & (SLAB_POISON | SLAB_RED_ZONE | SLAB_DEBUG_INITIAL)) {
        /* Validate the pointer before touching the object around it. */
        if (!slab_object_page(cachep, objp))
            slab_bad_pointer(objp, fn);
        check_free_debug(cachep, objp, fn);
    }
    pthread_mutex_lock(&cachep->spinlock);
    slab_put(cachep, objp, fn);
    trim_free_slabs(cachep, &doomed);
    pthread_mutex_unlock(&cachep->spinlock);
    destroy_slab_list(cachep, &doomed);
}

void slab_free_direct(kmem_cache_t *cachep, void *objp)
{
    free_direct(cachep, objp, "kmem_cache_free");
}

/* ---- per-thread arrays ---- */

/* An array starts AC_MEM_OFFSET bytes into its kmalloc object.  Objects
 * of 2 KiB and up sit on 2 KiB boundaries; were the array's `avail' on one
 * too, the store a program makes to a block it just got and the load of
 * `avail' in free() would alias modulo 4 KiB and stall the load. */
#define AC_MEM_OFFSET 64

/* A new empty array for cachep (a thread's or a CPU's), in a kmalloc
 * object of the malloc classes; NULL when there is no memory. */
struct array_cache *slab_ac_new(kmem_cache_t *cachep)
{
    size_t bytes = AC_MEM_OFFSET + sizeof(struct array_cache) +
                   cachep->limit * sizeof(void *);
    kmem_cache_t *gen = slab_malloc_host_cache(bytes);
    char *mem = gen ? slab_alloc_direct(gen, GFP_KERNEL) : NULL;
    if (!mem)
        return NULL;
    struct array_cache *ac = (struct array_cache *)(mem + AC_MEM_OFFSET);
    memset(ac, 0, sizeof *ac);
    ac->limit = cachep->limit;
    ac->batchcount = cachep->batchcount;
    ac->mem_offset = AC_MEM_OFFSET;
    return ac;
}

void slab_ac_free(struct array_cache *ac)
{
    char *mem = (char *)ac - ac->mem_offset;
    slab_free_direct(GET_PAGE_CACHE(vm_virt_to_page(mem)), mem);
}

static struct array_cache *ac_create(kmem_cache_t *cachep)
{
    struct array_cache *ac = slab_ac_new(cachep);
    return ac ? ac : &slab_empty_ac;
}

/* Folds an array's counters into its cache (cache lock held). */
static void ac_fold_stats(kmem_cache_t *cachep, struct array_cache *ac)
{
#if SLAB_STATS
    cachep->allochit += ac->allochit;
    cachep->allocmiss += ac->allocmiss;
    cachep->freehit += ac->freehit;
    cachep->freemiss += ac->freemiss;
    ac->allochit = ac->allocmiss = ac->freehit = ac->freemiss = 0;
#else
    (void)cachep;
    (void)ac;
#endif
}

/* Empties one array into its cache and, if `release`, frees the array.
 * The array must not be in use by its thread (own thread, exited thread,
 * or a cache being destroyed). */
static void ac_drain(kmem_cache_t *cachep, struct slab_thread *t, int release)
{
    struct array_cache *ac = t->ac[cachep->id];
    if (ac == &slab_empty_ac)
        return;
    /* A thread's last objects (exit, a fork child's orphans) go to the
     * depot for the next thread; a drain asked for by shrink or reap
     * gives them to the slabs. */
    while (release && ac->avail && slab_magazines_on() &&
           slab_depot_put(cachep, ac))
        ;
    if (ac->avail)
        free_block(cachep, ac, ac->avail);
    pthread_mutex_lock(&cachep->spinlock);
    ac_fold_stats(cachep, ac);
    pthread_mutex_unlock(&cachep->spinlock);
    if (release) {
        t->ac[cachep->id] = &slab_empty_ac;
        slab_ac_free(ac);
    }
}

/* kmem_cache_destroy(): t's array of the cache goes back and is freed. */
static void drain_thread_ac(struct slab_thread *t, void *cachep)
{
    ac_drain(cachep, t, 1);
}

void slab_thread_drain(struct slab_thread *t, int release)
{
    struct list_head *p;
    pthread_mutex_lock(&cache_chain_sem);
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        if (c->id && (release || !c->pagesrc))
            ac_drain(c, t, release);
    }
    pthread_mutex_unlock(&cache_chain_sem);
}

void slab_drain_cpus(void)
{
    struct list_head *p;
    if (!slab_percpu_on())
        return;
    pthread_mutex_lock(&cache_chain_sem);
    list_for_each(p, &cache_cache.next)
        slab_percpu_drain(list_entry(p, kmem_cache_t, next), 0);
    pthread_mutex_unlock(&cache_chain_sem);
}

/* Drains the calling thread's array of cachep: shrink and reap give back
 * what this thread holds at once, as 2.4 drained the calling CPU's. */
static void drain_own_array(kmem_cache_t *cachep)
{
    if (slab_percpu_on()) /* the CPUs' arrays, every one */
        slab_percpu_drain(cachep, 0);
    if (cachep->id && slab_thread_live(slab_self))
        ac_drain(cachep, slab_self, 0);
}

/* The thread for a slow path: attached, and drained if asked to. */
static inline struct slab_thread *slow_thread(void)
{
    struct slab_thread *t = slab_self;
    if (unlikely(t == &slab_boot_thread)) {
        kslab_init();
        t = slab_thread_attach();
    }
    if (unlikely(t->drain_gen !=
                 __atomic_load_n(&slab_drain_gen, __ATOMIC_RELAXED)) &&
        slab_thread_live(t))
        slab_drain_self();
    return t;
}

/* The thread's array of cachep, made at its first use; NULL when objects
 * of cachep take the locked path (no id, a thread without arrays, no
 * memory for the array). */
static struct array_cache *thread_ac(kmem_cache_t *cachep,
                                     struct slab_thread *t)
{
    if (!cachep->id || !slab_thread_live(t))
        return NULL;
    struct array_cache *ac = t->ac[cachep->id];
    if (ac == &slab_empty_ac) {
        ac = ac_create(cachep);
        t->ac[cachep->id] = ac;
    }
    return ac == &slab_empty_ac ? NULL : ac;
}

static int __kmem_cache_shrink_locked(kmem_cache_t *cachep);

/* Memory is short (a cache could not grow): the objects of every depot go
 * back to their slabs, and the free slabs of every cache but the
 * SLAB_NO_REAP ones to the page layer, as 2.4's page allocator reaped
 * the caches under pressure.  Returns 1 if anything was given back.  No
 * lock held. */
static int reclaim_depots(void)
{
    int any = 0;
    struct list_head *p;
    pthread_mutex_lock(&cache_chain_sem);
    /* every depot first: their magazines go back to the malloc caches,
     * whose slabs the second pass may then free */
    /* Caches with a page source are left alone: their pages are not
     * the zones' (freeing them gives the zones nothing). */
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        if (c->pagesrc)
            continue;
        if (slab_depot_objects(c))
            any = 1;
        slab_depot_drain(c);
    }
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        if (!(c->flags & SLAB_NO_REAP) && !c->pagesrc &&
            __kmem_cache_shrink_locked(c))
            any = 1;
    }
    pthread_mutex_unlock(&cache_chain_sem);
    return any;
}

unsigned int slab_fill_from_slabs(kmem_cache_t *cachep, struct array_cache *ac,
                                  int flags)
{
    int reclaimed = !slab_magazines_on();
    for (;;) {
        pthread_mutex_lock(&cachep->spinlock);
        cachep->list_locks++;
        ac_fold_stats(cachep, ac);
        while (ac->avail < ac->batchcount) {
            slab_t *slabp = first_slab_with_free(cachep);
            if (!slabp)
                break;
            while (slabp->free != BUFCTL_END && ac->avail < ac->batchcount)
                ac->entry[ac->avail++] = slab_take(cachep, slabp);
        }
        pthread_mutex_unlock(&cachep->spinlock);
        if (ac->avail)
            return ac->avail;
        if (kmem_cache_grow(cachep, flags))
            continue;
        if (reclaimed || !reclaim_depots())
            return 0;
        reclaimed = 1;
    }
}

/* Refills ac with up to batchcount objects: a magazine from the depot,
 * else the slabs; returns the number moved. */
static unsigned int cache_refill(kmem_cache_t *cachep, struct array_cache *ac,
                                 int flags)
{
    if (slab_magazines_on()) {
        unsigned int n = slab_depot_get(cachep, ac);
        if (n)
            return n;
    }
    return slab_fill_from_slabs(cachep, ac, flags);
}

/* Flushes the oldest objects of a full array: a magazine's worth to the
 * depot, or, without one, batchcount objects to the slabs.  When the cache
 * keeps empty slabs, a tick of the decay (vm_purge_tick: this may run
 * with the chain lock held, by stdio inside kmem_slabinfo). */
static void cache_flusharray(kmem_cache_t *cachep, struct array_cache *ac)
{
    if (slab_magazines_on() && slab_depot_put(cachep, ac))
        return;
    unsigned int n = ac->batchcount;
    if (n > ac->avail)
        n = ac->avail;
    if (free_block(cachep, ac, n))
        vm_purge_tick();
}

/* ... and before a free (objp is an object of cachep). */
static __cold __noinline void debug_free(kmem_cache_t *cachep, void *objp,
                                         const char *fn)
{
    if (kslab_opt.dbg & KSLAB_DBG_VERIFY)
        slab_check_cache(cachep);
    if (slab_debug_tracking())
        slab_debug_free(objp, fn);
}

static inline void *__slab_alloc_slow(kmem_cache_t *cachep, int flags)
{
    if (slab_percpu_on() && cachep->id)
        return slab_percpu_alloc(cachep, flags);
    struct array_cache *ac = thread_ac(cachep, slow_thread());
    if (ac) {
        if (ac->avail || cache_refill(cachep, ac, flags)) {
#if SLAB_STATS
            ac->allocmiss++;
#endif
            return ac->entry[--ac->avail];
        }
        errno = ENOMEM;
        return NULL;
    }
    void *objp = slab_alloc_direct(cachep, flags);
    if (!objp)
        errno = ENOMEM;
    return objp;
}

/* KSLAB_DEBUG verify, audit, log, leaks: the cache checked before, the
 * block recorded after. */
static __cold __noinline void *debug_alloc(kmem_cache_t *cachep, int flags)
{
    if (kslab_opt.dbg & KSLAB_DBG_VERIFY)
        slab_check_cache(cachep);
    void *objp = __slab_alloc_slow(cachep, flags);
    if (objp && slab_debug_tracking())
        slab_debug_alloc(objp, cachep->objsize);
    return objp;
}

/* Out of line: were it inlined, kmem_cache_alloc()'s hit would carry the
 * slow path's stack frame. */
__noinline void *slab_alloc_slow(kmem_cache_t *cachep, int flags)
{
    if (unlikely(kslab_opt.dbg))
        return debug_alloc(cachep, flags);
    return __slab_alloc_slow(cachep, flags);
}

/* ---- the free key (slab_internal.h) ---- */

/* Until start-up picks a random one: any value but 0 works. */
uintptr_t slab_free_key = 0x6b736c6162667265UL;

static void pick_free_key(void)
{
    uintptr_t k = 0;
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    if (r) /* 16 random bytes from the kernel; libc uses the first 8 */
        memcpy(&k, r + 8, sizeof k);
    k ^= (uintptr_t)&slab_free_key * 0x9E3779B97F4A7C15ULL;
    if (k)
        slab_free_key = k;
}

int slab_array_holds(const struct array_cache *ac, const void *objp)
{
    unsigned int n = __atomic_load_n(&ac->avail, __ATOMIC_ACQUIRE);
    if (n > ac->limit)
        n = ac->limit;
    for (unsigned int i = 0; i < n; i++)
        if (__atomic_load_n(&ac->entry[i], __ATOMIC_RELAXED) == objp)
            return 1;
    return 0;
}

struct holder_search {
    unsigned int id;
    const void *objp;
    int found;
};

static void search_thread(struct slab_thread *t, void *arg)
{
    struct holder_search *h = arg;
    if (t != slab_self && !h->found)
        h->found = slab_array_holds(t->ac[h->id], h->objp);
}

/*
 * objp carries the free key: is it free?  Exact, so a live object whose
 * second word happens to equal the key is never reported.  Free objects
 * are in a thread's array (this thread's, read alone; another's, read
 * under the registry's SLAB level lock: an object handed to this thread after
 * it left that array is not below that array's count any more) or on their slab
 * (bufctl not BUFCTL_ACTIVE, under the cache lock).  Dies if it is (a
 * double free); returns if it is live.
 */
static __cold __noinline void
slab_check_double_free(kmem_cache_t *cachep, const void *objp, const char *fn)
{
    int found = slab_array_holds(slab_self->ac[cachep->id], objp);
    if (!found) {
        struct page *page = slab_object_page(cachep, objp);
        if (!page)
            slab_bad_pointer(objp, fn);
        pthread_mutex_lock(&cachep->spinlock);
        slab_t *slabp = GET_PAGE_SLAB(page);
        unsigned int i = (unsigned int)slab_page_obj_index(page, objp);
        found = slab_bufctl(slabp)[i] != BUFCTL_ACTIVE;
        pthread_mutex_unlock(&cachep->spinlock);
    }
    if (!found)
        found = slab_depot_holds(cachep, objp);
    if (!found && slab_percpu_on())
        found = slab_percpu_holds(cachep->id, objp);
    if (!found) {
        struct holder_search h = {.id = cachep->id, .objp = objp};
        slab_for_each_thread(search_thread, &h);
        found = h.found;
    }
    if (found)
        kslab_die_at(objp, "%s(): double free of %p (cache `%s')", fn, objp,
                     cachep->name);
}

void slab_free_slow(kmem_cache_t *cachep, void *objp, const char *fn)
{
    if (unlikely(kslab_opt.dbg))
        debug_free(cachep, objp, fn);
    struct array_cache *ac = slab_self->ac[cachep->id];
    if (ac->avail && ac->entry[ac->avail - 1] == objp)
        kslab_die_at(objp, "%s(): double free of %p (cache `%s')", fn, objp,
                     cachep->name);
    if (slab_id_keyed(cachep->id)) {
        if (*slab_key_word(objp) == slab_free_key)
            slab_check_double_free(cachep, objp, fn);
        *slab_key_word(objp) = slab_free_key;
    }
    if (slab_percpu_on() && cachep->id) {
        slab_percpu_free(cachep, objp, fn);
        return;
    }
    ac = thread_ac(cachep, slow_thread());
    if (ac) {
        if (ac->avail >= ac->limit)
            cache_flusharray(cachep, ac);
#if SLAB_STATS
        ac->freemiss++;
#endif
        unsigned int avail = ac->avail;
        ac->entry[avail] = objp;
        /* entry, then count: see slab_ac_push */
        __atomic_store_n(&ac->avail, avail + 1, __ATOMIC_RELEASE);
        return;
    }
    free_direct(cachep, objp, fn);
}

void slab_bad_pointer(const void *objp, const char *fn)
{
    struct page *page = slab_page_of(objp);
    if (page) {
        kmem_cache_t *cachep = GET_PAGE_CACHE(page);
        kslab_die_at(objp,
                     "%s(): invalid pointer %p (not the start of an object "
                     "of cache `%s')",
                     fn, objp, cachep->name);
    }
    kslab_die_at(objp, "%s(): invalid pointer %p (not a slab object)", fn,
                 objp);
}

/* ---- the public object interface ---- */

static __cold void *kmem_cache_alloc_einval(void)
{
    errno = EINVAL;
    return NULL;
}

void *kmem_cache_alloc(kmem_cache_t *cachep, int flags)
{
    if (unlikely(!cachep)) /* no cache: an error, not a crash */
        return kmem_cache_alloc_einval();
    return __kmem_cache_alloc(cachep, flags);
}

static __cold __attribute__((noreturn)) void
slab_bad_cache_pointer(kmem_cache_t *cachep, const void *objp);

void kmem_cache_free(kmem_cache_t *cachep, void *objp)
{
    if (unlikely(!objp))
        return;
    if (unlikely(!slab_object_page(cachep, objp)))
        slab_bad_cache_pointer(cachep, objp);
    __kmem_cache_free_checked(cachep, objp, "kmem_cache_free");
}

static void slab_bad_cache_pointer(kmem_cache_t *cachep, const void *objp)
{
    struct page *page = NULL;
    kmem_cache_t *owner = slab_cache_of(objp, &page);
    if (owner && owner != cachep)
        kslab_die_at(objp,
                     "kmem_cache_free(): object %p belongs to cache `%s', not "
                     "`%s'",
                     objp, owner->name, cachep ? cachep->name : "(null)");
    slab_bad_pointer(objp, "kmem_cache_free");
}

unsigned int kmem_cache_size(kmem_cache_t *cachep)
{
    return cachep ? cachep->objsize : 0;
}

/* ---- shrink, destroy, reap ---- */

/* Empties the depot into the slabs, then frees every free slab; returns
 * the slabs freed.  Chain lock held. */
static int __kmem_cache_shrink_locked(kmem_cache_t *cachep)
{
    LIST_HEAD(doomed);
    slab_depot_drain(cachep);
    pthread_mutex_lock(&cachep->spinlock);
    move_free_slabs(cachep, &doomed, ~0UL);
    pthread_mutex_unlock(&cachep->spinlock);
    int n = destroy_slab_list(cachep, &doomed);
    KSLAB_DEBUG_CHECK(slab_check_cache(cachep));
    return n;
}

static int cache_in_use(kmem_cache_t *cachep)
{
    pthread_mutex_lock(&cachep->spinlock);
    int busy =
        !list_empty(&cachep->slabs_full) || !list_empty(&cachep->slabs_partial);
    pthread_mutex_unlock(&cachep->spinlock);
    return busy;
}

/**
 * kmem_cache_shrink - give a cache's free slabs back.
 * Drains the calling thread's array of the cache first (other threads
 * drain theirs at their next slow path), destroys every free slab and
 * gives the free frames of the zones back to the host at once, whatever
 * KSLAB_DECAY_MS says (vm_release_free): a program that calls it wants the
 * memory back now, as a 2.4 driver's shrink gave its pages to the buddy
 * lists at once.  Returns 0 when no slab of the cache is in use any more,
 * 1 otherwise; -EINVAL for NULL.
 */
int kmem_cache_shrink(kmem_cache_t *cachep)
{
    if (!cachep)
        return -EINVAL;
    slab_request_drain();
    pthread_mutex_lock(&cache_chain_sem);
    drain_own_array(cachep);
    __kmem_cache_shrink_locked(cachep);
    pthread_mutex_unlock(&cache_chain_sem);
    vm_release_free(0, 0);
    return cache_in_use(cachep);
}

/**
 * kmem_cache_destroy - remove a cache created by kmem_cache_create().
 * The caller guarantees that no thread uses the cache any more.  Returns 0
 * when the cache is gone; nonzero (and the cache is kept, still usable)
 * when objects are still allocated or the cache is a permanent one.
 */
int kmem_cache_destroy(kmem_cache_t *cachep)
{
    if (!cachep)
        return -EINVAL;
    if (cachep == &cache_cache || slab_is_kmalloc_cache(cachep))
        return -EPERM;
    pthread_mutex_lock(&cache_chain_sem);
    if (cachep->id)
        slab_for_each_thread(drain_thread_ac, cachep);
    slab_percpu_drain(cachep, 1);
    __kmem_cache_shrink_locked(cachep);
    if (cache_in_use(cachep)) {
        pthread_mutex_unlock(&cache_chain_sem);
        return 1;
    }
    if (clock_searchp == cachep)
        clock_searchp = &cache_cache;
    list_del(&cachep->next);
    if (cachep->id)
        cache_ids[cachep->id] = 0;
    pthread_mutex_unlock(&cache_chain_sem);
    pthread_mutex_destroy(&cachep->spinlock);
    pthread_mutex_destroy(&cachep->depot.lock);
    memset(cachep->name, 0, sizeof cachep->name);
    slab_free_direct(&cache_cache, cachep);
    return 0;
}

static kmem_cache_t *next_cache(kmem_cache_t *c)
{
    struct list_head *n = c->next.next;
    return list_entry(n, kmem_cache_t, next);
}

/**
 * kmem_cache_reap - reclaim memory from the caches, as 2.4's kswapd did.
 * Scans up to REAP_SCANLEN caches from a clock hand; skips SLAB_NO_REAP
 * caches, caches that are growing and caches grown since the last scan;
 * picks the one with the most free pages (discounting caches with a ctor
 * and multi-page slabs) and frees half of its free slabs.  Then, what
 * 2.4's caller (kswapd, try_to_free_pages) had from the buddy lists at
 * once: every free frame of the zones, the victim's included, goes back
 * to the host now, whatever KSLAB_DECAY_MS says (vm_release_free; most of
 * a freed heap is there already, the slabs past free_limit having gone
 * back as it was freed).  Returns the pages given back to the host
 * (saturated at INT_MAX).
 */
int kmem_cache_reap(int gfp_mask)
{
    (void)gfp_mask;
    if (!kslab_init_reached(KSLAB_INIT_SLAB))
        return 0;
    kmem_cache_t *searchp, *best = NULL;
    unsigned int best_pages = 0, best_len = 0;

    slab_request_drain();
    pthread_mutex_lock(&cache_chain_sem);
    searchp = clock_searchp;
    for (int scan = 0; scan < REAP_SCANLEN;
         scan++, searchp = next_cache(searchp)) {
        if (searchp->flags & SLAB_NO_REAP)
            continue;
        /* The chain head (cache_cache.next) links back to cache_cache. */
        drain_own_array(searchp);
        slab_depot_drain(searchp);
        pthread_mutex_lock(&searchp->spinlock);
        if (searchp->growing || (searchp->dflags & DFLGS_GROWN)) {
            searchp->dflags &= ~DFLGS_GROWN;
            pthread_mutex_unlock(&searchp->spinlock);
            continue;
        }
        unsigned int full_free = 0;
        struct list_head *p;
        list_for_each(p, &searchp->slabs_free) full_free++;
        pthread_mutex_unlock(&searchp->spinlock);
        unsigned int pages = full_free << searchp->gfporder;
        if (searchp->ctor)
            pages = (pages * 4 + 1) / 5;
        if (searchp->gfporder)
            pages = (pages * 4 + 1) / 5;
        if (pages > best_pages) {
            best = searchp;
            best_len = full_free;
            best_pages = pages;
            if (pages >= REAP_PERFECT) {
                searchp = next_cache(searchp);
                break;
            }
        }
    }
    clock_searchp = searchp;
    if (best) {
        LIST_HEAD(doomed);
        pthread_mutex_lock(&best->spinlock);
        unsigned long n = move_free_slabs(best, &doomed, (best_len + 1) / 2);
#if SLAB_STATS
        best->reaped += n;
#else
        (void)n;
#endif
        pthread_mutex_unlock(&best->spinlock);
        destroy_slab_list(best, &doomed);
        KSLAB_DEBUG_CHECK(slab_check_cache(best));
    }
    pthread_mutex_unlock(&cache_chain_sem);
    unsigned long released = vm_release_free(0, 0); /* chain lock dropped */
    return released > INT_MAX ? INT_MAX : (int)released;
}

/* ---- decay ---- */

/* Empty slabs given back per hold of a cache's lock by slab_decay. */
#define DECAY_BATCH 16

/* slab_decay for one cache (chain lock held): gives back, oldest first,
 * the slabs free since `before' or earlier, DECAY_BATCH per lock hold;
 * returns the frames of the free slabs left. */
static unsigned long cache_decay(kmem_cache_t *cachep, unsigned long now,
                                 unsigned long decay)
{
    unsigned long left;
    if (now)
        slab_depot_reap(cachep, now);
    pthread_mutex_lock(&cachep->spinlock);
    unsigned long before = now >= decay ? now - decay : 0;
    /* A cache nobody took from or freed to since the pass before: its
     * free slabs are not about to be reused (the rule of the zones). */
    if (cachep->list_ops == cachep->decay_seen && now >= decay / 4)
        before = now - decay / 4;
    if (now)
        cachep->decay_seen = cachep->list_ops;
    for (;;) {
        LIST_HEAD(doomed);
        unsigned long n = 0;
        while (now && n < DECAY_BATCH && !list_empty(&cachep->slabs_free)) {
            slab_t *slabp = list_entry(cachep->slabs_free.prev, slab_t, list);
            if (slab_head_page(slabp)->private > before)
                break; /* the rest of the list is younger */
            list_move(&slabp->list, &doomed);
            cachep->free_objects -= cachep->num;
            n++;
        }
        if (!n)
            break;
#if SLAB_STATS
        cachep->reaped += n;
#endif
        pthread_mutex_unlock(&cachep->spinlock);
        destroy_slab_list(cachep, &doomed);
        pthread_mutex_lock(&cachep->spinlock);
    }
    left = list_empty(&cachep->slabs_free) ? 0 : 1UL << cachep->gfporder;
    pthread_mutex_unlock(&cachep->spinlock);
    return left;
}

/*
 * The decay of empty slabs, after the zones' (vm/frames/purge.c): a
 * slab that has been empty for the decay time (KSLAB_DECAY_MS) goes back
 * to the page allocator, whose pass then gives its frames back to the
 * host, so RSS falls after a program frees its heap even if it then
 * sleeps.  In a cache with no allocation or free since the pass before, a
 * quarter of the decay time is enough.  Linux 2.4 kept empty slabs until
 * memory pressure made kswapd call kmem_cache_reap(); a process has no
 * such signal, so the frames' background pass calls this (registered with
 * vm_purge_register).  The pass holds each cache's lock for at most
 * DECAY_BATCH slabs (the slabs are destroyed without it); caches with
 * SLAB_NO_REAP and caches with a dtor (which would then run in the
 * background thread) are left alone.  The threads' arrays are not touched:
 * they belong to their threads (slab.c's top comment).  Every slab empty
 * for decay ms at time now goes back (now 0: nothing, only counted).
 * Returns the frames of empty slabs left in those caches.
 */
static unsigned long slab_decay(unsigned long now, unsigned long decay)
{
    unsigned long left = 0;
    if (!kslab_init_reached(KSLAB_INIT_SLAB))
        return 0;
    pthread_mutex_lock(&cache_chain_sem);
    struct list_head *p;
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        if (!(c->flags & SLAB_NO_REAP) && !c->dtor)
            left += cache_decay(c, now, decay);
    }
    pthread_mutex_unlock(&cache_chain_sem);
    return left;
}

/* ---- validation ---- */

/* How a validator reports a broken invariant: kslab_die (the debug
 * checks, the fuzzer) or kslab_warn (kslab_verify(), which counts). */
typedef void (*check_say_t)(const char *fmt, ...);

/* Validates one slab that belongs on list `kind` (0 free, 1 partial,
 * 2 full): its free chain, its counts, its frames.  Cache lock held.
 * Returns 0, or -EFAULT after say() told what is broken. */
static int __check_slab(kmem_cache_t *cachep, slab_t *slabp, int kind,
                        check_say_t say)
{
    unsigned int nfree = 0;
    kmem_bufctl_t *bufctl = slab_bufctl(slabp);
    for (kmem_bufctl_t i = slabp->free; i != BUFCTL_END; i = bufctl[i]) {
        if (i >= cachep->num || ++nfree > cachep->num) {
            say("slab_check_cache(): cache `%s': broken free chain in slab "
                "%p",
                cachep->name, (void *)slabp);
            return -EFAULT;
        }
    }
    if (nfree + slabp->inuse != cachep->num) {
        say("slab_check_cache(): cache `%s': slab %p has %u free + %u in use "
            "of %u",
            cachep->name, (void *)slabp, nfree, slabp->inuse, cachep->num);
        return -EFAULT;
    }
    int want = slabp->inuse == 0 ? 0 : nfree == 0 ? 2 : 1;
    if (want != kind) {
        say("slab_check_cache(): cache `%s': slab %p on the wrong list",
            cachep->name, (void *)slabp);
        return -EFAULT;
    }
    struct page *page = vm_virt_to_page(slabp->s_mem);
    if (!page || !PageSlab(page) || GET_PAGE_CACHE(page) != cachep ||
        GET_PAGE_SLAB(page) != slabp) {
        say("slab_check_cache(): cache `%s': frame of slab %p does not point "
            "back",
            cachep->name, (void *)slabp);
        return -EFAULT;
    }
    return 0;
}

static void check_slab(kmem_cache_t *cachep, slab_t *slabp, int kind)
{
    __check_slab(cachep, slabp, kind, (check_say_t)kslab_die);
}

static int check_list(kmem_cache_t *cachep, struct list_head *list, int kind,
                      check_say_t say, unsigned long *inuse)
{
    struct list_head *p;
    list_for_each(p, list)
    {
        slab_t *slabp = list_entry(p, slab_t, list);
        if (__check_slab(cachep, slabp, kind, say))
            return -EFAULT;
        *inuse += slabp->inuse;
    }
    return 0;
}

/* The whole cache: every list, then the free count.  0 or -EFAULT. */
static int __verify_cache(kmem_cache_t *cachep, check_say_t say,
                          unsigned long *inuse)
{
    pthread_mutex_lock(&cachep->spinlock);
    int err = check_list(cachep, &cachep->slabs_free, 0, say, inuse);
    if (!err)
        err = check_list(cachep, &cachep->slabs_partial, 1, say, inuse);
    if (!err)
        err = check_list(cachep, &cachep->slabs_full, 2, say, inuse);
    unsigned long nfree = 0;
    struct list_head *p;
    list_for_each(p, &cachep->slabs_free) nfree += cachep->num;
    list_for_each(p, &cachep->slabs_partial)
    {
        slab_t *s = list_entry(p, slab_t, list);
        nfree += cachep->num - s->inuse;
    }
    if (!err && nfree != cachep->free_objects) {
        say("slab_check_cache(): cache `%s': %lu free objects, counted %lu",
            cachep->name, nfree, cachep->free_objects);
        err = -EFAULT;
    }
    unsigned long held = 0;
    if (!err)
        err = slab_depot_check(cachep, say, &held);
    if (!err)
        *inuse -= held; /* free, in magazines */
    pthread_mutex_unlock(&cachep->spinlock);
    return err;
}

unsigned long slab_check_cache(kmem_cache_t *cachep)
{
    unsigned long inuse = 0;
    __verify_cache(cachep, (check_say_t)kslab_die, &inuse);
    return inuse;
}

int slab_verify_cache(kmem_cache_t *cachep)
{
    unsigned long inuse = 0;
    return __verify_cache(cachep, (check_say_t)kslab_warn, &inuse);
}

/* ---- views ---- */

void slab_for_each_cache(void (*fn)(FILE *, kmem_cache_t *), FILE *out)
{
    pthread_mutex_lock(&cache_chain_sem);
    fn(out, &cache_cache);
    struct list_head *p;
    list_for_each(p, &cache_cache.next)
        fn(out, list_entry(p, kmem_cache_t, next));
    pthread_mutex_unlock(&cache_chain_sem);
}

/* Objects of cache id in the threads' arrays (the registry's SLAB level
 * lock held). */
struct array_count {
    unsigned int id;
    unsigned long n;
};

static void count_array(struct slab_thread *t, void *arg)
{
    struct array_count *c = arg;
    c->n += __atomic_load_n(&t->ac[c->id]->avail, __ATOMIC_RELAXED);
}

/* Adds cachep's figures to *u (chain lock held, or the cache private). */
void slab_cache_usage(kmem_cache_t *cachep, struct slab_usage *u)
{
    unsigned long slabs = 0, taken = 0, array = 0;
    pthread_mutex_lock(&cachep->spinlock);
    const struct list_head *lists[] = {
        &cachep->slabs_full, &cachep->slabs_partial, &cachep->slabs_free};
    for (int i = 0; i < 3; i++) {
        const struct list_head *p;
        list_for_each(p, lists[i])
        {
            slabs++;
            taken += list_entry(p, slab_t, list)->inuse;
        }
    }
    pthread_mutex_unlock(&cachep->spinlock);
    if (cachep->id) {
        struct array_count c = {cachep->id, 0};
        slab_for_each_thread(count_array, &c);
        array =
            c.n + slab_depot_objects(cachep) + slab_percpu_count(cachep->id);
    }
    if (array > taken) /* a racy snapshot of the arrays */
        array = taken;
    u->pages += slabs << cachep->gfporder;
    u->inuse_objs += taken - array;
    u->inuse_bytes += (taken - array) * cachep->objsize;
    u->array_objs += array;
    u->array_bytes += array * cachep->objsize;
    u->free_objs += slabs * cachep->num - taken;
    u->free_bytes += (slabs * cachep->num - taken) * cachep->objsize;
}

void slab_usage(struct slab_usage *u)
{
    memset(u, 0, sizeof *u);
    if (!kslab_init_reached(KSLAB_INIT_SLAB))
        return;
    pthread_mutex_lock(&cache_chain_sem);
    slab_cache_usage(&cache_cache, u);
    struct list_head *p;
    list_for_each(p, &cache_cache.next)
        slab_cache_usage(list_entry(p, kmem_cache_t, next), u);
    pthread_mutex_unlock(&cache_chain_sem);
}

int slab_shrink_all(void)
{
    if (!kslab_init_reached(KSLAB_INIT_SLAB))
        return 0;
    int freed = 0, round;
    slab_request_drain();
    /* Destroying a slab frees its off-slab management object into the
     * calling thread's array: drain and shrink again until nothing moves. */
    do {
        round = 0;
        slab_drain_self();
        pthread_mutex_lock(&cache_chain_sem);
        struct list_head *p;
        list_for_each(p, &cache_cache.next)
        {
            kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
            round += __kmem_cache_shrink_locked(c) << c->gfporder;
        }
        pthread_mutex_unlock(&cache_chain_sem);
        freed += round;
    } while (round);
    return freed;
}

/* ---- bootstrap and fork ---- */

/* The fork hook (level KSLAB_FORK_SLAB; the order of every kslab lock is
 * at the top of lib/fork.c): the chain, the thread list, then every
 * cache in chain order, cache_cache first. */
static void slab_fork_prepare(void)
{
    struct list_head *p;
    pthread_mutex_lock(&cache_chain_sem);
    kslab_thread_lock(KSLAB_THREAD_SLAB);
    slab_percpu_fork_prepare();
    pthread_mutex_lock(&cache_cache.spinlock);
    pthread_mutex_lock(&cache_cache.depot.lock);
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        pthread_mutex_lock(&c->spinlock);
        pthread_mutex_lock(&c->depot.lock);
    }
}

static void slab_fork_parent(void)
{
    struct list_head *p;
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        pthread_mutex_unlock(&c->depot.lock);
        pthread_mutex_unlock(&c->spinlock);
    }
    pthread_mutex_unlock(&cache_cache.depot.lock);
    pthread_mutex_unlock(&cache_cache.spinlock);
    slab_percpu_fork_parent();
    kslab_thread_unlock(KSLAB_THREAD_SLAB);
    pthread_mutex_unlock(&cache_chain_sem);
}

/* In the child only the forking thread exists.  The locks are made anew
 * (a recursive mutex remembers its owner's thread id, which the child does
 * not share), KSLAB_DEBUG's too, and the arrays of the other threads are
 * orphans whose objects are free here: they go back to the slabs (the
 * zones' child handler has run: lib/fork.c runs children bottom to top). */
static void slab_fork_child(void)
{
    pthread_mutexattr_t attr;
    struct list_head *p;
    if (slab_debug_tracking())
        slab_debug_fork_child();
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&cache_chain_sem, &attr);
    pthread_mutexattr_destroy(&attr);
    slab_percpu_fork_child();
    pthread_mutex_init(&cache_cache.spinlock, NULL);
    pthread_mutex_init(&cache_cache.depot.lock, NULL);
    list_for_each(p, &cache_cache.next)
    {
        kmem_cache_t *c = list_entry(p, kmem_cache_t, next);
        pthread_mutex_init(&c->spinlock, NULL);
        pthread_mutex_init(&c->depot.lock, NULL);
    }
    pthread_mutex_lock(&cache_chain_sem);
    slab_thread_release_others();
    pthread_mutex_unlock(&cache_chain_sem);
}

static const struct kslab_fork_hook slab_fork_hook = {
    slab_fork_prepare, slab_fork_parent, slab_fork_child};

/* Start-up, level KSLAB_INIT_SLAB (lib/init.c): cache_cache, then the
 * kmalloc caches and the malloc classes, as 2.4's kmem_cache_init() and
 * kmem_cache_sizes_init().  The zones are up (level frames). */
static void slab_init(void)
{
    if (!vm_lowmem.ready)
        kslab_die("kmem_cache_init(): cannot reserve low memory");
    INIT_LIST_HEAD(&cache_cache.next);
    strcpy(cache_cache.name, "kmem_cache");
    cache_layout(&cache_cache, sizeof(kmem_cache_t), 0, SLAB_HWCACHE_ALIGN);
    cache_init_lists(&cache_cache);
    cache_cache.id = 0;
    cache_cache.flags |= SLAB_NO_REAP;
    cache_ids[0] = 1;
    pick_free_key();
    kmem_cache_sizes_init();
    kslab_fork_register(KSLAB_FORK_SLAB, &slab_fork_hook);
    vm_purge_register(slab_decay);
    slab_percpu_setup();
}
KSLAB_INITCALL(KSLAB_INIT_SLAB, slab_init);

/**
 * kmem_cache_init - bring the allocator up: the whole start-up order of
 * lib/init.c (low memory, the caches, the fork protocol).  Idempotent;
 * the first allocation calls it.
 */
void kmem_cache_init(void)
{
    kslab_init();
}
