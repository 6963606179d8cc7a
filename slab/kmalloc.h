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

/* The kmalloc caches, [0] normal and [1] DMA, size-32 … size-131072. */
extern kmem_cache_t *slab_kmalloc_caches[2][KMALLOC_NR_SIZES];

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
        if (likely(ac->avail)) {
#if SLAB_STATS
            ac->allochit++;
#endif
            return ac->entry[--ac->avail];
        }
    }
    return slab_kmalloc_slow(size, flags);
}

/* 1: p was a slab object and is freed; 0: p is not in slab memory. */
static inline int slab_kfree_inline(const void *p, const char *fn)
{
    return slab_free_inline(p, fn);
}

/* Usable size of a slab object; 0 when p is not one. */
size_t slab_ksize(const void *p);

/* SLAB_POISON / SLAB_RED_ZONE for the kmalloc caches.  Must be called
 * before the first allocation: -EBUSY after, -EINVAL for other flags. */
int slab_set_kmalloc_flags(unsigned long flags);

#endif /* KSLAB_SLAB_KMALLOC_H */
