/*
 * interpose/malloc.c — the malloc family, exported from libkslab.so and
 * libkslab.a, with glibc's contracts.
 *
 * Routing: a request of at most LARGE_MIN_SIZE (64 KiB) is a slab
 * object of the malloc size classes (slab_malloc_inline: the kmalloc caches
 * plus intermediate ones, four classes per doubling; the per-thread array
 * cache, no lock on a hit); anything larger is a large block of whole pages
 * (interpose/large.c).  free tries the slab first (slab_free_inline: one page
 * lookup says whether the pointer is in a slab page, and validates it there);
 * what is not a slab object must be the head of a live large block, or it is
 * misuse: one line on stderr naming the call and the address, then abort().
 *
 * Alignment: every kmalloc object is 16-byte aligned, every large block
 * page-aligned.  A larger alignment up to a page is first tried with a
 * kmalloc object of the next power of two >= max(size, align) (the slab
 * places such objects on their natural boundary in the common case); when
 * the object is not aligned, the request becomes a large block, which is
 * aligned to any power of two (ip_large_alloc).  So every pointer handed out
 * is the start of an object or of a large block: free never has to map an
 * interior pointer back.  (Up to three kmalloc classes are tried, since
 * the caches of 512 bytes and more align most objects to their size.)
 *
 * Hooks (interpose/tool.c): every call reads ip_hooks once; when it is
 * set (valgrind, M_PERTURB, KSLAB_DEBUG's records) the same allocation and free
 * code runs with a hook after the allocation and before the free.
 *
 * Pointers: ip_block_size() and ip_release() are the one check of a
 * pointer handed in (slab object, large block, the loader's, or misuse
 * reported by ip_bad_pointer()).
 *
 * No locks of this file; errors set errno and return NULL, as glibc does.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "interpose/tool.h"
#include "slab/kmalloc.h"
#include "interpose/large.h"

#define MALLOC_ALIGN 16UL

static __cold void *ip_oom(void)
{
    errno = ENOMEM;
    return NULL;
}

/* The one report of a bad pointer: the call and the address, one line. */
static __cold __attribute__((noreturn)) void ip_bad_pointer(const char *fn,
                                                            const void *p)
{
    kslab_die("%s(): invalid pointer %p", fn, p);
}

/* A pointer that is neither a slab object nor a large block: a block of
 * the loader's own malloc is let be, anything else is misuse. */
static __cold void ip_foreign(const void *p, const char *fn)
{
    if (!ip_pointer_from_loader(p))
        ip_bad_pointer(fn, p);
}

/* Frees what slab_free_inline() did not take. */
static __cold __noinline void ip_release_large(void *p, const char *fn)
{
    if (unlikely(ip_large_free(p) != IP_LARGE_FREED))
        ip_foreign(p, fn);
}

/* Frees what free()'s fast path (slab_free_first) did not take: a slab
 * object of another low-memory section, else a large block. */
static __noinline void ip_release_other(void *p, const char *fn)
{
    if (slab_free_inline(p, fn))
        return;
    ip_release_large(p, fn);
}

void ip_release(void *p, const char *fn)
{
    if (likely(slab_free_inline(p, fn)))
        return;
    ip_release_large(p, fn);
}

size_t ip_block_size(const void *p, const char *fn)
{
    size_t n = slab_ksize(p);
    if (!n)
        n = ip_large_usable(p);
    if (unlikely(!n))
        ip_foreign(p, fn);
    return n;
}

/* Everything malloc does not do on an array-cache hit: start-up (before
 * it every thread's arrays are empty, so the first allocation comes here),
 * refill, large blocks and running out of memory. */
static __noinline void *ip_malloc_slow(size_t size)
{
    ip_ensure_init();
    if (size > LARGE_MIN_SIZE)
        return ip_large_alloc(size, PAGE_SIZE, 0);
    void *p = slab_malloc_slow(size);
    /* under an address-space limit, what kslab holds unused goes first */
    if (!p && ip_large_aspace_reclaim())
        p = slab_malloc_slow(size);
    return p ? p : ip_oom();
}

/* The hit: a table load, the thread's array of the class, a pop.  No
 * stack frame, no other test. */
static inline void *ip_malloc(size_t size)
{
    return slab_malloc_inline_with(size, ip_malloc_slow);
}

static inline __attribute__((always_inline)) void ip_free(void *p,
                                                          const char *fn)
{
    if (!p)
        return;
    if (likely(slab_free_first(p, fn)))
        return;
    ip_release_other(p, fn);
}

/* The per-CPU arrays' fast paths (ip_hooks is IP_HOOK_PERCPU alone): the
 * same shape, this CPU's array in place of the thread's. */
static inline __attribute__((always_inline)) void *ip_malloc_cpu(size_t size)
{
    return slab_cpu_malloc_inline_with(size, ip_malloc_slow);
}

static inline __attribute__((always_inline)) void ip_free_cpu(void *p,
                                                              const char *fn)
{
    if (!p)
        return;
    if (likely(slab_cpu_free_first(p, fn)))
        return;
    ip_release_other(p, fn);
}

/* Rounds x (> 0, <= KMALLOC_MAX_SIZE) up to a power of two. */
static inline size_t pow2_roundup(size_t x)
{
    return x <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(x - 1));
}

/* align: a power of two. */
static void *ip_aligned(size_t align, size_t size)
{
    ip_ensure_init();
    if (align <= MALLOC_ALIGN)
        return ip_malloc(size);
    if (align <= PAGE_SIZE && size <= LARGE_MIN_SIZE) {
        /* Small caches align objects to a cache line or less; bigger ones
         * (off-slab management) mostly to their size: try three classes. */
        size_t want = pow2_roundup(size > align ? size : align);
        for (int tries = 0; tries < 3 && want <= KMALLOC_MAX_SIZE; tries++) {
            /* the malloc classes' cache of a power of two: the kmalloc
             * one, or its twin in libkslab-vm.so's mm */
            void *p = slab_malloc_inline(want);
            if (!p)
                break;
            if (!((uintptr_t)p & (align - 1)))
                return p;
            slab_free_inline(p, "memalign");
            want <<= 1;
        }
    }
    return ip_large_alloc(size, align, 0);
}

/* ---- the hooks (interpose/tool.h): the same path, with a call after
 * the allocation and before the free ---- */

static __noinline void *ip_alloc_hooked(size_t size, size_t align, int zero)
{
    int before = ip_tool_before_alloc();
    void *p = align > MALLOC_ALIGN ? ip_aligned(align, size) : ip_malloc(size);
    if (!p) {
        ip_tool_alloc_failed(before);
        return NULL;
    }
    return ip_tool_alloc(p, size, zero, before);
}

static __noinline void ip_free_hooked(void *p, const char *fn)
{
    if (p && ip_tool_free(p, fn))
        ip_free(p, fn);
}

/* Every allocation and free of the family goes through these two. */
static inline void *ip_alloc(size_t size, size_t align)
{
    if (ip_hooked())
        return ip_alloc_hooked(size, align, 0);
    if (align > MALLOC_ALIGN)
        return ip_aligned(align, size);
    return ip_malloc(size);
}

static inline void ip_free_any(void *p, const char *fn)
{
    if (ip_hooked())
        ip_free_hooked(p, fn);
    else
        ip_free(p, fn);
}

/* Usable size of a live block (under memcheck: the size asked for). */
static size_t ip_usable(void *p, const char *fn)
{
    size_t n = ip_block_size(p, fn);
    if (ip_hooked() && n && ip_tool_on())
        n = ip_tool_usable(p, n);
    return n;
}

/* malloc and free read ip_hooks once and choose among three paths: the
 * per-thread arrays' (0), the per-CPU arrays' (IP_HOOK_PERCPU alone, set
 * at start-up) and the hooks' (anything else). */
KSLAB_API void *malloc(size_t size)
{
    int h = __atomic_load_n(&ip_hooks, __ATOMIC_RELAXED);
    if (likely(h == 0))
        return ip_malloc(size);
    if (likely(h == IP_HOOK_PERCPU))
        return ip_malloc_cpu(size);
    return ip_alloc_hooked(size, MALLOC_ALIGN, 0);
}

KSLAB_API void free(void *p)
{
    int h = __atomic_load_n(&ip_hooks, __ATOMIC_RELAXED);
    if (likely(h == 0))
        ip_free(p, "free");
    else if (likely(h == IP_HOOK_PERCPU))
        ip_free_cpu(p, "free");
    else
        ip_free_hooked(p, "free");
}

KSLAB_API void cfree(void *p)
{
    ip_free_any(p, "cfree");
}

KSLAB_API void *calloc(size_t n, size_t size)
{
    size_t total;
    if (unlikely(__builtin_mul_overflow(n, size, &total)))
        return ip_oom();
    if (ip_hooked())
        return ip_alloc_hooked(total, MALLOC_ALIGN, 1);
    if (likely(total <= LARGE_MIN_SIZE)) {
        void *p = ip_malloc(total);
        if (unlikely(!p))
            return NULL;
        return memset(p, 0, total);
    }
    ip_ensure_init();
    return ip_large_alloc(total, PAGE_SIZE, 1);
}

/* The move every realloc path falls back to: a new block, the bytes both
 * blocks have (min(old usable, new size): a block may be smaller than the
 * new size even when that size is a slab one — an aligned large block of
 * 100 KB realloc'd to 120 KB), the old block freed. */
static void *ip_realloc_move(void *p, size_t old, size_t size)
{
    void *q = ip_alloc(size, MALLOC_ALIGN);
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    ip_free_any(p, "realloc");
    return q;
}

/* Growth headroom: a slab object that a realloc grows past its size
 * moves to a block with room for half as much again, as a vector's
 * capacity grows geometrically, so a buffer grown by a half or by small
 * appends is copied O(log n) times, not at every class boundary (four per
 * doubling).  The copy is of the old block only (ip_realloc_grow); the
 * block's extra bytes are usable (malloc_usable_size says so).  Not under
 * the hooks (records keep the size asked for). */
static inline size_t ip_realloc_room(size_t size)
{
    size_t room = size + size / 2;
    return room > size && !ip_hooked() ? room : size;
}

/* The move of a growing realloc: the new block has headroom, the copy is
 * of the old block's bytes.  Past LARGE_GROW_MIN_SIZE the new block is one
 * of whole pages, which later growth extends in place. */
static void *ip_realloc_grow(void *p, size_t old, size_t size)
{
    size_t room = ip_realloc_room(size);
    void *q;
    if (room > LARGE_GROW_MIN_SIZE && room <= LARGE_MIN_SIZE && !ip_hooked())
        q = ip_large_alloc(room, PAGE_SIZE, 0);
    else
        q = ip_alloc(room, MALLOC_ALIGN);
    if (!q)
        return ip_realloc_move(p, old, size); /* memory short: exact */
    memcpy(q, p, old);
    ip_free_any(p, "realloc");
    return q;
}

/* slab_ksize() inline, for realloc's common case (the block still fits):
 * the usable size of a slab object, 0 when p is not one. */
static inline size_t ip_slab_usable(const void *p)
{
    struct page *page = slab_page_of(p);
    if (!page || !slab_obj_start(page, p))
        return 0;
    return GET_PAGE_CACHE(page)->objsize;
}

/* realloc of a slab object: a growth past the block moves with headroom
 * (ip_realloc_grow); a shrink that frees at least half of the block moves
 * (trimmed buffers give memory back; a smaller shrink cannot be told from
 * a growth within the headroom); anything else stays put. */
static void *ip_realloc_small(void *p, size_t old, size_t size)
{
    if (size > old)
        return ip_realloc_grow(p, old, size);
    if (size <= old / 2)
        return ip_realloc_move(p, old, size);
    if (ip_hooked())
        ip_tool_resize(p, size);
    return p;
}

/* realloc of a large block: large.c resizes it (in place, mremap, or its
 * own move) while the new size is above LARGE_GROW_MIN_SIZE (a block of
 * pages made by a growing realloc stays one); a smaller size moves to a
 * slab object. */
static __noinline void *ip_realloc_large(void *p, size_t size)
{
    size_t old = ip_block_size(p, "realloc");
    if (!old) /* the loader's: its size is unknown */
        ip_bad_pointer("realloc", p);
    if (size > LARGE_GROW_MIN_SIZE)
        return ip_large_realloc(p, size);
    return ip_realloc_move(p, old, size);
}

/* Under memcheck every realloc moves (through the hooks), as memcheck's
 * own realloc does, so the old block is reported if used again. */
static __noinline void *ip_realloc_tool(void *p, size_t size)
{
    return ip_realloc_move(p, ip_usable(p, "realloc"), size);
}

KSLAB_API void *realloc(void *p, size_t size)
{
    if (!p)
        return ip_alloc(size, MALLOC_ALIGN);
    if (size == 0) {
        ip_free_any(p, "realloc");
        return NULL;
    }
    if (ip_hooked() && ip_tool_on())
        return ip_realloc_tool(p, size);
    ip_ensure_init();
    size_t old = ip_slab_usable(p);
    if (old)
        return ip_realloc_small(p, old, size);
    return ip_realloc_large(p, size);
}

KSLAB_API void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return ip_oom();
    return realloc(p, total);
}

KSLAB_API int posix_memalign(void **memptr, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    int saved = errno;
    void *p = ip_alloc(size, align);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

/* C11/C17: the alignment must be a valid one (a power of two); glibc 2.38
 * refuses others with EINVAL and so does kslab. */
KSLAB_API void *aligned_alloc(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return ip_alloc(size, align);
}

/* glibc's memalign: an alignment that is not a power of two is rounded up
 * to one; an absurd one is EINVAL. */
KSLAB_API void *memalign(size_t align, size_t size)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return ip_alloc(size, align);
}

KSLAB_API void *valloc(size_t size)
{
    return ip_alloc(size, PAGE_SIZE);
}

KSLAB_API void *pvalloc(size_t size)
{
    if (size > SIZE_MAX - PAGE_SIZE)
        return ip_oom();
    size = size ? PAGE_ALIGN(size) : PAGE_SIZE;
    return ip_alloc(size, PAGE_SIZE);
}

KSLAB_API size_t malloc_usable_size(void *p)
{
    return p ? ip_usable(p, "malloc_usable_size") : 0;
}

/* The names glibc's own code and old programs call. */
#define IP_ALIAS(name) __attribute__((alias(#name), copy(name)))
KSLAB_API void *__libc_malloc(size_t) IP_ALIAS(malloc);
KSLAB_API void __libc_free(void *) IP_ALIAS(free);
KSLAB_API void *__libc_calloc(size_t, size_t) IP_ALIAS(calloc);
KSLAB_API void *__libc_realloc(void *, size_t) IP_ALIAS(realloc);
KSLAB_API void *__libc_memalign(size_t, size_t) IP_ALIAS(memalign);
KSLAB_API void *__libc_valloc(size_t) IP_ALIAS(valloc);
KSLAB_API void *__libc_pvalloc(size_t) IP_ALIAS(pvalloc);
KSLAB_API int __posix_memalign(void **, size_t, size_t)
    IP_ALIAS(posix_memalign);
