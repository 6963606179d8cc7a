/*
 * interpose/malloc.c — the malloc family, exported from libkslab.so and
 * libkslab.a, with glibc's contracts.
 *
 * Routing: a request of at most KMALLOC_MAX_SIZE (128 KiB) is a slab
 * object of the malloc size classes (slab_malloc_inline: the kmalloc caches
 * plus intermediate ones, four classes per doubling; the per-thread array
 * cache, no lock on a hit); anything larger is a large block of whole pages
 * (interpose/large.c).  free tries the slab first (slab_kfree_inline: one page
 * lookup says whether the pointer is in a slab page, and validates it there);
 * what is not a slab object must be the head of a live large block, or it is
 * misuse: one line on stderr naming the call and the address, then abort().
 *
 * Alignment: every kmalloc object is 16-byte aligned, every large block
 * page-aligned.  A larger alignment up to a page is first tried with a
 * kmalloc object of the next power of two >= max(size, align) (the slab
 * places such objects on their natural boundary in the common case); when
 * the object is not aligned, the request becomes a large block, which is
 * aligned to any power of two (vm_large_alloc).  So every pointer handed out
 * is the start of an object or of a large block: free never has to map an
 * interior pointer back.  (Up to three kmalloc classes are tried, since
 * the caches of 512 bytes and more align most objects to their size.)
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

static __cold __attribute__((noreturn)) void ip_bad_pointer(const char *fn,
                                                            const void *p)
{
    kslab_die("%s(): invalid pointer %p", fn, p);
}

/* Frees what slab_kfree_inline() did not take: a large block, or misuse. */
static __cold void ip_free_other(void *p, const char *fn)
{
    int r = vm_large_free(p);
    if (likely(r == VM_LARGE_FREED))
        return;
    if (r == VM_LARGE_NOT_OURS && ip_pointer_from_loader(p))
        return;
    ip_bad_pointer(fn, p);
}

static __noinline void *ip_large_malloc(size_t size, size_t align, int zero)
{
    ip_ensure_init();
    return vm_large_alloc(size, align, zero);
}

/* Everything malloc does not do on an array-cache hit: start-up (before
 * it every thread's arrays are empty, so the first allocation comes here),
 * refill, large blocks and running out of memory. */
static __noinline void *ip_malloc_slow(size_t size)
{
    ip_ensure_init();
    if (size > KMALLOC_MAX_SIZE)
        return vm_large_alloc(size, PAGE_SIZE, 0);
    void *p = slab_malloc_slow(size);
    return p ? p : ip_oom();
}

/* The hit: a table load, the thread's array of the class, a pop.  No
 * stack frame, no other test. */
static inline void *ip_malloc(size_t size)
{
    return slab_malloc_inline_with(size, ip_malloc_slow);
}

static inline void ip_free(void *p, const char *fn)
{
    if (!p)
        return;
    if (likely(slab_kfree_inline(p, fn)))
        return;
    ip_free_other(p, fn);
}

/* Usable size of a live block; dies for a pointer kslab never returned. */
static size_t ip_usable(void *p, const char *fn)
{
    size_t n = slab_ksize(p);
    if (n)
        return n;
    n = vm_large_usable(p);
    if (n)
        return n;
    ip_bad_pointer(fn, p);
}

/* Rounds x (> 0, <= KMALLOC_MAX_SIZE) up to a power of two. */
static inline size_t pow2_roundup(size_t x)
{
    return x <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(x - 1));
}

/* align: a power of two. */
static void *ip_aligned(size_t align, size_t size)
{
    if (unlikely(ip_tool_wanted()) && vm_tool_active())
        return ip_tool_alloc(size, align, 0);
    ip_ensure_init();
    if (align <= MALLOC_ALIGN)
        return ip_malloc(size);
    if (align <= PAGE_SIZE && size <= KMALLOC_MAX_SIZE) {
        /* Small caches align objects to a cache line or less; bigger ones
         * (off-slab management) mostly to their size: try three classes. */
        size_t want = pow2_roundup(size > align ? size : align);
        for (int tries = 0; tries < 3 && want <= KMALLOC_MAX_SIZE; tries++) {
            void *p = slab_kmalloc_inline(want, GFP_KERNEL);
            if (!p)
                break;
            if (!((uintptr_t)p & (align - 1)))
                return p;
            slab_kfree_inline(p, "memalign");
            want <<= 1;
        }
    }
    return ip_large_malloc(size, align, 0);
}

/* The tool entries (out of line, tail-called): under valgrind the tool
 * path, otherwise — the first call, before the question is settled — the
 * plain one. */
static __noinline void *ip_malloc_tool(size_t size, size_t align, int zero)
{
    if (vm_tool_active())
        return ip_tool_alloc(size, align, zero);
    if (align > MALLOC_ALIGN)
        return ip_aligned(align, size);
    void *p = ip_malloc(size);
    return p && zero ? memset(p, 0, size) : p;
}

static __noinline void ip_free_tool(void *p, const char *fn)
{
    if (vm_tool_active())
        ip_tool_free(p, fn);
    else
        ip_free(p, fn);
}

KSLAB_API void *malloc(size_t size)
{
    if (unlikely(ip_tool_wanted()))
        return ip_malloc_tool(size, MALLOC_ALIGN, 0);
    return ip_malloc(size);
}

KSLAB_API void free(void *p)
{
    if (unlikely(ip_tool_wanted())) {
        ip_free_tool(p, "free");
        return;
    }
    ip_free(p, "free");
}

KSLAB_API void cfree(void *p)
{
    if (unlikely(ip_tool_wanted())) {
        ip_free_tool(p, "cfree");
        return;
    }
    ip_free(p, "cfree");
}

KSLAB_API void *calloc(size_t n, size_t size)
{
    size_t total;
    if (unlikely(__builtin_mul_overflow(n, size, &total)))
        return ip_oom();
    if (unlikely(ip_tool_wanted()))
        return ip_malloc_tool(total, MALLOC_ALIGN, 1);
    if (likely(total <= KMALLOC_MAX_SIZE)) {
        void *p = ip_malloc(total);
        if (unlikely(!p))
            return NULL;
        return memset(p, 0, total);
    }
    return ip_large_malloc(total, PAGE_SIZE, 1);
}

/* realloc of a slab object: stays put when the new size needs the same
 * kmalloc cache (a shrink that frees at least half moves, so trimmed
 * buffers give memory back), otherwise allocate-copy-free. */
static void *ip_realloc_small(void *p, size_t old, size_t size)
{
    if (size <= old && size > old / 2)
        return p;
    void *q = ip_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, size < old ? size : old);
    slab_kfree_inline(p, "realloc");
    return q;
}

static __noinline void *ip_realloc_large(void *p, size_t size)
{
    size_t old = vm_large_usable(p);
    if (!old)
        ip_bad_pointer("realloc", p);
    if (size > KMALLOC_MAX_SIZE)
        return vm_large_realloc(p, size);
    void *q = ip_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, size);
    vm_large_free(p);
    return q;
}

KSLAB_API void *realloc(void *p, size_t size)
{
    if (unlikely(ip_tool_wanted()) && vm_tool_active())
        return ip_tool_realloc(p, size);
    if (!p)
        return ip_malloc(size);
    if (size == 0) {
        ip_free(p, "realloc");
        return NULL;
    }
    ip_ensure_init();
    size_t old = slab_ksize(p);
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
    void *p = ip_aligned(align, size);
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
    return ip_aligned(align, size);
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
    return ip_aligned(align, size);
}

KSLAB_API void *valloc(size_t size)
{
    return ip_aligned(PAGE_SIZE, size);
}

KSLAB_API void *pvalloc(size_t size)
{
    if (size > SIZE_MAX - PAGE_SIZE)
        return ip_oom();
    size = size ? PAGE_ALIGN(size) : PAGE_SIZE;
    return ip_aligned(PAGE_SIZE, size);
}

KSLAB_API size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (unlikely(ip_tool_wanted()) && vm_tool_active())
        return ip_tool_usable(p);
    return ip_usable(p, "malloc_usable_size");
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
