/*
 * slab/kmalloc.c — the general caches: kmem_cache_sizes_init creates
 * size-32 … size-131072 (PAGE_SIZE << 5) and their DMA twins, as 2.4 did;
 * kmalloc picks one by size, kfree finds it through the object's page.
 */
#include <errno.h>
#include <string.h>

#include "slab/kmalloc.h"

kmem_cache_t *slab_kmalloc_caches[2][KMALLOC_NR_SIZES];
static unsigned long kmalloc_flags;

int slab_set_kmalloc_flags(unsigned long flags)
{
    if (flags & ~(SLAB_POISON | SLAB_RED_ZONE))
        return -EINVAL;
    if (slab_ready)
        return -EBUSY;
    kmalloc_flags = flags;
    return 0;
}

/* Called once from kmem_cache_init() with the init lock held. */
void kmem_cache_sizes_init(void)
{
    for (unsigned int i = 0; i < KMALLOC_NR_SIZES; i++) {
        size_t size = 32UL << i;
        for (int dma = 0; dma < 2; dma++) {
            char name[KMEM_CACHE_NAME_MAX + 1];
            vm_snprintf(name, sizeof name, dma ? "size-%zu(DMA)" : "size-%zu",
                        size);
            unsigned long flags = SLAB_HWCACHE_ALIGN | kmalloc_flags;
            if (dma)
                flags |= SLAB_CACHE_DMA;
            kmem_cache_t *c =
                slab_cache_create(name, size, 0, flags, NULL, NULL,
                                  1 + i + (dma ? KMALLOC_NR_SIZES : 0));
            if (!c)
                vm_die("kmem_cache_sizes_init(): cannot create %s", name);
            slab_kmalloc_caches[dma][i] = c;
        }
    }
}

kmem_cache_t *kmem_find_general_cachep(size_t size)
{
    unsigned int idx = kmalloc_index(size ? size : 1);
    if (idx >= KMALLOC_NR_SIZES)
        return NULL;
    return slab_kmalloc_caches[0][idx];
}

int slab_is_kmalloc_cache(const kmem_cache_t *cachep)
{
    for (int d = 0; d < 2; d++)
        for (unsigned int i = 0; i < KMALLOC_NR_SIZES; i++)
            if (slab_kmalloc_caches[d][i] == cachep)
                return 1;
    return 0;
}

void *slab_kmalloc_slow(size_t size, int flags)
{
    if (size > KMALLOC_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (unlikely(!slab_ready))
        kmem_cache_init();
    unsigned int idx = size ? kmalloc_index(size) : 0;
    kmem_cache_t *cachep =
        slab_kmalloc_caches[(flags & __GFP_DMA) ? 1 : 0][idx];
    return __kmem_cache_alloc(cachep, flags);
}

/**
 * kmalloc - allocate size bytes from the general caches.
 * GFP_DMA gives an object in ZONE_DMA.  kmalloc(0) returns a size-32
 * object, as 2.4 did.  NULL with errno ENOMEM above KMALLOC_MAX_SIZE or
 * when memory is exhausted.
 */
void *kmalloc(size_t size, int flags)
{
    return slab_kmalloc_inline(size, flags);
}

/**
 * kfree - free an object from kmalloc() (or any slab cache).
 * NULL is a no-op; a pointer that is not an object start dies loudly.
 */
void kfree(const void *objp)
{
    if (unlikely(!objp))
        return;
    if (unlikely(!slab_kfree_inline(objp, "kfree")))
        slab_bad_pointer(objp, "kfree");
}

size_t slab_ksize(const void *objp)
{
    struct page *page;
    kmem_cache_t *cachep = slab_cache_of(objp, &page);
    if (!cachep || slab_obj_index(cachep, page, objp) >= cachep->num)
        return 0;
    return cachep->objsize;
}

size_t ksize(const void *objp)
{
    return objp ? slab_ksize(objp) : 0;
}
