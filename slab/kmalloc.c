/*
 * slab/kmalloc.c — the general caches: kmem_cache_sizes_init creates
 * size-32 … size-131072 (PAGE_SIZE << 5) and their DMA twins, as 2.4 did;
 * kmalloc picks one by size, kfree finds it through the object's page.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "lib/init.h"
#include "lib/options.h"
#include "slab/debug.h"
#include "slab/kmalloc.h"

/* The kmalloc caches, [0] normal and [1] DMA, size-32 … size-131072. */
static kmem_cache_t *slab_kmalloc_caches[2][KMALLOC_NR_SIZES];
static unsigned long kmalloc_flags;
static int malloc_fine_classes = 1;

/* Until kmem_cache_init() fills them, every class maps to id 0, whose
 * array is always empty: the first malloc takes the slow path. */
unsigned char slab_malloc_small_id[1024 / 16 + 1];
unsigned char slab_malloc_large_id[(17 - 11 + 1) * 4];
kmem_cache_t *slab_malloc_caches[SLAB_FIRST_USER_ID];

int slab_set_malloc_classes(int fine)
{
    if (kslab_init_reached(KSLAB_INIT_SLAB))
        return -EBUSY;
    malloc_fine_classes = !!fine;
    return 0;
}

/* Size of the malloc class that serves size (<= KMALLOC_MAX_SIZE). */
static size_t malloc_class_size(size_t size)
{
    if (size <= 16 && malloc_fine_classes)
        return 16;
    if (size <= 32)
        return 32;
    unsigned int b = (unsigned int)(64 - __builtin_clzl(size - 1));
    size_t pow2 = 1UL << b;
    if (!malloc_fine_classes || b > MALLOC_FINE_MAX_BITS)
        return pow2;
    if (b == 6) /* 33 … 64: 48 or 64 (multiples of 16) */
        return size <= 48 ? 48 : 64;
    size_t step = pow2 >> 3; /* quarters of the lower power of two */
    return (size + step - 1) / step * step;
}

/* The tables as kmem_cache_sizes_init() filled them: the first set. */
static unsigned char host_small_id[sizeof slab_malloc_small_id];
static unsigned char host_large_id[sizeof slab_malloc_large_id];

static unsigned int slab_malloc_find_id(size_t class)
{
    for (unsigned int id = 1; id < MALLOC_FIRST_SRC_ID; id++)
        if (slab_malloc_caches[id] && slab_malloc_caches[id]->objsize == class)
            return id;
    kslab_die("kmem_cache_sizes_init(): no cache for class %zu", class);
}

/* Creates the intermediate caches and fills the size → id tables. */
static void malloc_classes_init(void)
{
    unsigned int next = MALLOC_FIRST_FINE_ID;
    for (unsigned int i = 0; i < KMALLOC_NR_SIZES; i++)
        slab_malloc_caches[1 + i] = slab_kmalloc_caches[0][i];
    if (malloc_fine_classes) {
        for (unsigned int b = 6; b <= MALLOC_FINE_MAX_BITS; b++) {
            size_t pow2 = 1UL << b, step = pow2 >> 3;
            for (size_t c = pow2 / 2 + step; c < pow2; c += step) {
                if (c % 16)
                    continue;
                char name[KMEM_CACHE_NAME_MAX + 1];
                kslab_snprintf(name, sizeof name, "size-%zu", c);
                /* 16-byte alignment: a cache line would round 96 to 128. */
                kmem_cache_t *k = slab_cache_create(name, c, 0, kmalloc_flags,
                                                    NULL, NULL, next);
                if (!k)
                    kslab_die("kmem_cache_sizes_init(): cannot create %s",
                              name);
                slab_malloc_caches[next++] = k;
            }
        }
        /* Below 2.4's smallest: the blocks of 16 bytes and less are the
         * most frequent in many programs (half of them or more in
         * alloc-test's mix), and a size-32 object doubles them.  16 bytes
         * still hold the free key in the second word. */
        kmem_cache_t *k = slab_cache_create("size-16", 16, 0, kmalloc_flags,
                                            NULL, NULL, next);
        if (!k)
            kslab_die("kmem_cache_sizes_init(): cannot create size-16");
        slab_malloc_caches[next++] = k;
        if (next != MALLOC_FIRST_SRC_ID)
            kslab_die("kmem_cache_sizes_init(): %u malloc classes, expected %u",
                      next - MALLOC_FIRST_FINE_ID, MALLOC_NR_FINE);
    }
    /* The tables: the id of the cache whose size is the class size. */
    for (size_t i = 0; i <= 1024 / 16; i++) {
        size_t class = malloc_class_size(i ? i * 16 : 1);
        slab_malloc_small_id[i] = (unsigned char)slab_malloc_find_id(class);
    }
    for (unsigned int b = 11; b <= 17; b++)
        for (unsigned int q = 0; q < 4; q++) {
            size_t size = (1UL << (b - 1)) + (q + 1) * (1UL << (b - 3));
            size_t class = malloc_class_size(size);
            slab_malloc_large_id[(b - 11) * 4 + q] =
                (unsigned char)slab_malloc_find_id(class);
        }
    memcpy(host_small_id, slab_malloc_small_id, sizeof host_small_id);
    memcpy(host_large_id, slab_malloc_large_id, sizeof host_large_id);
}

kmem_cache_t *slab_malloc_host_cache(size_t bytes)
{
    if (bytes > KMALLOC_MAX_SIZE)
        return NULL;
    unsigned int id;
    if (bytes <= 1024) {
        id = host_small_id[(bytes + 15) >> 4];
    } else {
        unsigned int b = (unsigned int)(64 - __builtin_clzl(bytes - 1));
        unsigned int q = (unsigned int)((bytes - 1) >> (b - 3)) & 3;
        id = host_large_id[(b - 11) * 4 + q];
    }
    return slab_malloc_caches[id];
}

/* The tables once slab_malloc_set_page_source() made the second set. */
static unsigned char src_small_id[sizeof slab_malloc_small_id];
static unsigned char src_large_id[sizeof slab_malloc_large_id];
static int src_made;

/* Copies a size → id table (byte stores: a malloc racing with it reads
 * the old id or the new, both live caches). */
static void put_table(unsigned char *tbl, const unsigned char *from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        __atomic_store_n(&tbl[i], from[i], __ATOMIC_RELEASE);
}

/* Brackets in force (slab_malloc_host_only); the tables point at the
 * first set while it is not 0. */
static _Atomic int host_only;

/* Writes the tables the count asks for, again until the count did not
 * change meanwhile: of two brackets racing, the last to check writes the
 * right ones (no lock: a host fork may copy any moment of this). */
static void apply_tables(void)
{
    for (;;) {
        int n = atomic_load(&host_only);
        put_table(slab_malloc_small_id, n ? host_small_id : src_small_id,
                  sizeof src_small_id);
        put_table(slab_malloc_large_id, n ? host_large_id : src_large_id,
                  sizeof src_large_id);
        if (atomic_load(&host_only) == n)
            return;
    }
}

void slab_malloc_host_only(int begin)
{
    if (begin)
        atomic_fetch_add(&host_only, 1);
    else
        atomic_fetch_sub(&host_only, 1);
    if (src_made)
        apply_tables();
}

int slab_malloc_set_page_source(const struct slab_page_source *src)
{
    if (src_made)
        return -EBUSY;
    kslab_init();
    if (!host_small_id[0] && !host_small_id[1])
        return -EBUSY; /* no tables yet (start-up not done) */
    unsigned char twin[SLAB_FIRST_USER_ID] = {0};
    kmem_cache_t *made[MALLOC_NR_CLASSES];
    unsigned int next = MALLOC_FIRST_SRC_ID;
    for (unsigned int id = 1; id < MALLOC_FIRST_SRC_ID; id++) {
        kmem_cache_t *c = slab_malloc_caches[id];
        if (!c)
            continue;
        char name[KMEM_CACHE_NAME_MAX + 1];
        kslab_snprintf(name, sizeof name, "mm-%s", c->name);
        kmem_cache_t *k = slab_cache_create_src(
            name, c->objsize, 0,
            c->flags & (SLAB_HWCACHE_ALIGN | SLAB_POISON | SLAB_RED_ZONE), NULL,
            NULL, next, src);
        if (!k) {
            while (next-- > MALLOC_FIRST_SRC_ID)
                kmem_cache_destroy(made[next - MALLOC_FIRST_SRC_ID]);
            return -ENOMEM;
        }
        made[next - MALLOC_FIRST_SRC_ID] = k;
        twin[id] = (unsigned char)next++;
    }
    for (unsigned int i = 0; i < next - MALLOC_FIRST_SRC_ID; i++)
        __atomic_store_n(&slab_malloc_caches[MALLOC_FIRST_SRC_ID + i], made[i],
                         __ATOMIC_RELEASE);
    for (size_t i = 0; i < sizeof src_small_id; i++)
        src_small_id[i] = twin[host_small_id[i]];
    for (size_t i = 0; i < sizeof src_large_id; i++)
        src_large_id[i] = twin[host_large_id[i]];
    src_made = 1;
    apply_tables();
    return 0;
}

int slab_set_kmalloc_flags(unsigned long flags)
{
    if (flags & ~(SLAB_POISON | SLAB_RED_ZONE))
        return -EINVAL;
    if (kslab_init_reached(KSLAB_INIT_SLAB))
        return -EBUSY;
    kmalloc_flags = flags;
    return 0;
}

/* Called once by the slab's start-up (slab.c, slab_init), the options
 * read: KSLAB_DEBUG's flags join those of slab_set_kmalloc_flags(). */
void kmem_cache_sizes_init(void)
{
    if (kslab_opt.debug & KSLAB_DEBUG_POISON)
        kmalloc_flags |= SLAB_POISON;
    if (kslab_opt.debug & KSLAB_DEBUG_RED_ZONE)
        kmalloc_flags |= SLAB_RED_ZONE;
    for (unsigned int i = 0; i < KMALLOC_NR_SIZES; i++) {
        size_t size = 32UL << i;
        for (int dma = 0; dma < 2; dma++) {
            char name[KMEM_CACHE_NAME_MAX + 1];
            kslab_snprintf(name, sizeof name,
                           dma ? "size-%zu(DMA)" : "size-%zu", size);
            unsigned long flags = SLAB_HWCACHE_ALIGN | kmalloc_flags;
            if (dma)
                flags |= SLAB_CACHE_DMA;
            kmem_cache_t *c =
                slab_cache_create(name, size, 0, flags, NULL, NULL,
                                  1 + i + (dma ? KMALLOC_NR_SIZES : 0));
            if (!c)
                kslab_die("kmem_cache_sizes_init(): cannot create %s", name);
            slab_kmalloc_caches[dma][i] = c;
        }
    }
    malloc_classes_init();
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

/* KSLAB_DEBUG audit, log, leaks: the record says the size asked for
 * (the cache's own hook would say the object size).  Inside the malloc
 * family's deferral (its aligned path) the family records the block. */
static __cold __noinline void *kmalloc_debug(kmem_cache_t *cachep, int flags,
                                             size_t size)
{
    int outer = slab_debug_defer();
    void *p = __kmem_cache_alloc(cachep, flags);
    slab_debug_undefer(outer);
    if (p && !outer)
        slab_debug_alloc_asked(p, size, cachep->objsize);
    return p;
}

void *slab_kmalloc_slow(size_t size, int flags)
{
    if (size > KMALLOC_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    kslab_init();
    unsigned int idx = size ? kmalloc_index(size) : 0;
    kmem_cache_t *cachep =
        slab_kmalloc_caches[(flags & __GFP_DMA) ? 1 : 0][idx];
    void *objp = slab_debug_tracking() ? kmalloc_debug(cachep, flags, size)
                                       : __kmem_cache_alloc(cachep, flags);
    return objp ? slab_key_clear(objp) : NULL;
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
    if (unlikely(!slab_free_inline(objp, "kfree")))
        slab_bad_pointer(objp, "kfree");
}

void *slab_malloc_slow(size_t size)
{
    if (size > KMALLOC_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    kslab_init();
    void *objp = __kmem_cache_alloc(slab_malloc_caches[slab_malloc_id(size)],
                                    GFP_KERNEL);
    return objp ? slab_key_clear(objp) : NULL;
}

size_t slab_ksize(const void *objp)
{
    struct page *page = slab_page_of(objp);
    if (!page || !slab_obj_start(page, objp))
        return 0;
    return GET_PAGE_CACHE(page)->objsize;
}

size_t ksize(const void *objp)
{
    return objp ? slab_ksize(objp) : 0;
}
