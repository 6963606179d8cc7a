/*
 * slab/kmalloc.h — the inline fast paths of kmalloc/kfree, for kmalloc.c
 * and for the malloc family in interpose/.
 *
 * Size → cache is arithmetic: the index of the power of two at or above
 * the size, minus 5 (size-32 is index 0).  kmalloc cache ids are fixed
 * (1 + index, DMA caches after the normal ones), so a hit reads the TLS
 * pointer, the thread's array of that id, and pops: no cache descriptor
 * is touched.
 */
#ifndef KSLAB_SLAB_KMALLOC_H
#define KSLAB_SLAB_KMALLOC_H

#include "slab/slab_internal.h"

/* 0 for 1…32 bytes, 12 for 65537…131072; >= KMALLOC_NR_SIZES for 0 and
 * for sizes above KMALLOC_MAX_SIZE. */
static inline unsigned int kmalloc_index(size_t size)
{
    return (unsigned int)(64 - __builtin_clzl((size - 1) | 31)) - 5;
}

void *slab_kmalloc_slow(size_t size, int flags);

static inline void *slab_kmalloc_inline(size_t size, int flags)
{
    unsigned int idx = kmalloc_index(size);
    if (likely(idx < KMALLOC_NR_SIZES)) {
        unsigned int id =
            1 + idx + ((flags & __GFP_DMA) ? KMALLOC_NR_SIZES : 0);
        struct array_cache *ac = slab_self->ac[id];
        if (likely(ac->avail))
            return slab_key_clear(slab_ac_pop(ac));
        void *objp = slab_cpu_pop_if_on(id);
        if (objp)
            return slab_key_clear(objp);
    }
    return slab_kmalloc_slow(size, flags);
}

/*
 * The malloc path's size classes.  kmalloc keeps the 2.4 powers of two;
 * malloc also uses intermediate caches, four classes per doubling from 64
 * bytes to 32 KiB (48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320 …), all
 * multiples of 16, so no object wastes more than a fifth of itself (with
 * powers of two alone it can be half).  Size → cache id is one table load
 * up to 1 KiB, and above it the bit width and the next two bits of the
 * size index a second small table.  With the intermediate caches turned
 * off (slab_set_malloc_classes(0)) both tables point at the powers of two.
 */
extern unsigned char slab_malloc_small_id[1024 / 16 + 1] __hidden;
extern unsigned char slab_malloc_large_id[(17 - 11 + 1) * 4] __hidden;
extern kmem_cache_t *slab_malloc_caches[SLAB_FIRST_USER_ID];

void *slab_malloc_slow(size_t size);

/* The malloc cache of bytes of the first set, whose slabs come from the
 * zones whatever slab_malloc_set_page_source did: the slab's own arrays
 * and magazines (slab.c, magazine.c). */
kmem_cache_t *slab_malloc_host_cache(size_t bytes);

/* From now on the malloc path's objects come from a second set of
 * malloc caches (ids MALLOC_FIRST_SRC_ID on, named mm-size-32 …) whose
 * slabs src gives: the size → id tables are rewritten, so the fast path
 * stays as it is; objects of the first set are still freed to it, and
 * kmalloc() keeps the first set.  Once only: 0, -EBUSY the second time,
 * -ENOMEM when a cache cannot be made (then nothing changed). */
int slab_malloc_set_page_source(const struct slab_page_source *src);
/* Opens (begin 1) or closes (0) a bracket in which the malloc path's
 * objects come from the first set again, host memory: brackets nest and
 * may overlap between threads; the tables point at the second set once
 * none is open.  For a host fork's window and the creation of kslab's
 * own threads (vmmode/).  Objects of either set are freed as ever. */
void slab_malloc_host_only(int begin);

/* malloc(size) of cache id from this CPU's array, else slow(size)
 * (slab/percpu.c). */
void *slab_cpu_malloc(unsigned int id, size_t size, void *(*slow)(size_t));

/* Cache id for a malloc of 1025 ... KMALLOC_MAX_SIZE bytes. */
static inline unsigned int slab_malloc_id_large(size_t size)
{
    unsigned int b = (unsigned int)(64 - __builtin_clzl(size - 1));
    unsigned int q = (unsigned int)((size - 1) >> (b - 3)) & 3;
    return slab_malloc_large_id[(b - 11) * 4 + q];
}

/* Cache id for a malloc of size <= KMALLOC_MAX_SIZE. */
static inline unsigned int slab_malloc_id(size_t size)
{
    if (likely(size <= 1024))
        return slab_malloc_small_id[(size + 15) >> 4];
    return slab_malloc_id_large(size);
}

/* malloc(size) from the slab: the array-cache hit inline, anything else
 * (a miss, a size above KMALLOC_MAX_SIZE) handed to slow(size) as a tail
 * call.  The interposer passes its own slow path (start-up, large blocks,
 * errno); slab_malloc_inline() passes slab_malloc_slow.  The small sizes
 * are tested first: one compare for them. */
static inline void *slab_malloc_inline_with(size_t size, void *(*slow)(size_t))
{
    size_t id;
    if (likely(size <= 1024))
        id = slab_malloc_small_id[(size + 15) >> 4];
    else if (likely(size <= KMALLOC_MAX_SIZE))
        id = slab_malloc_id_large(size);
    else
        return slow(size);
    struct array_cache *ac = slab_self->ac[id];
    if (likely(ac->avail))
        return slab_key_clear(slab_ac_pop(ac));
    if (slab_percpu_on()) /* out of line: malloc's hit stays small */
        return slab_cpu_malloc((unsigned int)id, size, slow);
    return slow(size);
}

/* The same with per-CPU arrays (the malloc family's second fast path,
 * chosen at start-up): a pop from this CPU's array in one restartable
 * sequence, with no look at the thread's (empty) arrays. */
static inline __attribute__((always_inline)) void *
slab_cpu_malloc_inline_with(size_t size, void *(*slow)(size_t))
{
    size_t id;
    if (likely(size <= 1024))
        id = slab_malloc_small_id[(size + 15) >> 4];
    else if (likely(size <= KMALLOC_MAX_SIZE))
        id = slab_malloc_id_large(size);
    else
        return slow(size);
    void *objp = slab_cpu_pop((unsigned int)id);
    if (likely(objp != NULL))
        return slab_key_clear(objp);
    return slow(size);
}

/* malloc(size) from the slab: NULL (ENOMEM) above KMALLOC_MAX_SIZE. */
static inline void *slab_malloc_inline(size_t size)
{
    return slab_malloc_inline_with(size, slab_malloc_slow);
}

/* Turns the intermediate malloc caches on (1, the default) or off (0).
 * Before the first allocation only: -EBUSY after. */
int slab_set_malloc_classes(int fine);

/* Usable size of a slab object; 0 when p is not one. */
size_t slab_ksize(const void *p);

/* SLAB_POISON / SLAB_RED_ZONE for the kmalloc caches.  Must be called
 * before the first allocation: -EBUSY after, -EINVAL for other flags. */
int slab_set_kmalloc_flags(unsigned long flags);

/* What the slab caches hold, for mallinfo() and malloc_info(): a racy
 * but consistent-enough snapshot.  Objects in use are those taken from
 * their slabs and not sitting in a thread's array. */
struct slab_usage {
    unsigned long pages;                   /* frames of the slabs */
    unsigned long inuse_objs, inuse_bytes; /* handed out */
    unsigned long array_objs, array_bytes; /* free, in threads' arrays */
    unsigned long free_objs, free_bytes;   /* free, on the slabs */
};
struct kmem_cache_s;
void slab_usage(struct slab_usage *u);
/* Adds one cache's figures (malloc_info's per-size lines). */
void slab_cache_usage(struct kmem_cache_s *cachep, struct slab_usage *u);

/* Drains the calling thread's arrays, asks the other threads to drain
 * theirs, and gives every free slab back to the page layer; returns the
 * frames freed (malloc_trim). */
int slab_shrink_all(void);

#endif /* KSLAB_SLAB_KMALLOC_H */
