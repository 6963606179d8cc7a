/*
 * <kslab/slab.h> — the slab allocator: object caches rooted in cache_cache
 * and the kmalloc size caches (size-32 … size-131072, normal and DMA).
 *
 * This is the public contract of the slab layer.  Every function may be
 * called from any thread.  kmem_cache_alloc/kmem_cache_free/kmalloc/kfree
 * are served from a per-thread array cache without locks on a hit.
 */
#ifndef KSLAB_SLAB_H
#define KSLAB_SLAB_H

#include <stddef.h>
#include <stdio.h>

#include <kslab/gfp.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KSLAB_API
#define KSLAB_API __attribute__((visibility("default")))
#endif

typedef struct kmem_cache_s kmem_cache_t;

/* Cache flags for kmem_cache_create(); the values are those of Linux 2.4. */
#define SLAB_DEBUG_FREE 0x00000100UL    /* accepted; checks are always on */
#define SLAB_DEBUG_INITIAL 0x00000200UL /* verify constructed state on free */
#define SLAB_RED_ZONE 0x00000400UL      /* guard words around each object */
#define SLAB_POISON 0x00000800UL        /* fill free objects with a pattern */
#define SLAB_NO_REAP 0x00001000UL       /* never reap from this cache */
#define SLAB_HWCACHE_ALIGN 0x00002000UL /* align objects on cache lines */
#define SLAB_CACHE_DMA 0x00004000UL     /* objects come from ZONE_DMA */
#define SLAB_MUST_HWCACHE_ALIGN 0x00008000UL /* force cache-line alignment */

/* Flags passed to constructors and destructors. */
#define SLAB_CTOR_CONSTRUCTOR 0x001UL /* never clear: tells ctor from dtor */
#define SLAB_CTOR_ATOMIC 0x002UL      /* the ctor may not sleep */
#define SLAB_CTOR_VERIFY 0x004UL      /* verification call (debug) */

/* Longest cache name accepted by kmem_cache_create(), without the NUL. */
#define KMEM_CACHE_NAME_MAX 31
/* Largest object a cache (and kmalloc) can hold: PAGE_SIZE << 5. */
#define KMALLOC_MAX_SIZE 131072UL

/**
 * kmem_cache_create - create a cache of objects of one size.
 * @name:   name shown in slabinfo; at most KMEM_CACHE_NAME_MAX characters,
 *          unique among live caches.  The string is copied.
 * @size:   object size in bytes, 1 … KMALLOC_MAX_SIZE.
 * @offset: colour offset (alignment of colouring); 0 for the default.
 * @flags:  SLAB_* cache flags; an unknown flag is refused.
 * @ctor:   run on each object when its slab is grown; objects stay
 *          constructed while free.
 * @dtor:   run on each object when its slab is destroyed (needs @ctor).
 *
 * Returns the cache, or NULL with errno EINVAL (bad argument), EEXIST
 * (duplicate name) or ENOMEM.
 */
KSLAB_API kmem_cache_t *
kmem_cache_create(const char *name, size_t size, size_t offset,
                  unsigned long flags,
                  void (*ctor)(void *, kmem_cache_t *, unsigned long),
                  void (*dtor)(void *, kmem_cache_t *, unsigned long));
/* 0 = destroyed; nonzero = objects still in use, the cache is kept. */
KSLAB_API int kmem_cache_destroy(kmem_cache_t *cachep);
/* Frees the empty slabs; returns 0 when no slab is left in use. */
KSLAB_API int kmem_cache_shrink(kmem_cache_t *cachep);
KSLAB_API void *kmem_cache_alloc(kmem_cache_t *cachep, int flags);
KSLAB_API void kmem_cache_free(kmem_cache_t *cachep, void *objp);
KSLAB_API unsigned int kmem_cache_size(kmem_cache_t *cachep);

/* kmalloc: NULL (errno ENOMEM) above KMALLOC_MAX_SIZE. */
KSLAB_API void *kmalloc(size_t size, int flags);
/* kfree(NULL) does nothing. */
KSLAB_API void kfree(const void *objp);
/* Usable size of a kmalloc'ed (or kmem_cache_alloc'ed) object. */
KSLAB_API size_t ksize(const void *objp);

/* Reaps free slabs from one victim cache; returns the pages freed. */
KSLAB_API int kmem_cache_reap(int gfp_mask);
/* Writes the /proc/slabinfo text (version 1.1); returns 0 or -errno. */
KSLAB_API int kmem_slabinfo(FILE *out);

/* Brings kslab up — the options, low memory, cache_cache and the kmalloc
 * caches, the fork handlers (lib/init.c's order).  Called automatically
 * on first use; calling it again does nothing. */
KSLAB_API void kmem_cache_init(void);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_SLAB_H */
