/*
 * interpose/tool.c — the malloc family under valgrind's memcheck: every
 * block handed out is announced with VALGRIND_MALLOCLIKE_BLOCK (the
 * requested bytes; the rest of the slab object or large block is made
 * inaccessible, so an overrun of the request is seen as it would be under
 * glibc) and every block taken back with VALGRIND_FREELIKE_BLOCK (the block
 * is inaccessible until handed out again, so a use after free is seen).
 * Memcheck then reports the program's leaks and invalid accesses, with the
 * program's stacks, as under glibc.
 *
 * The path is simple rather than fast (it runs only under valgrind):
 * requests of 16-byte alignment up to KMALLOC_MAX_SIZE are kmalloc objects,
 * everything else a large block (interpose/large.c); a freed block waits in a
 * quarantine before kslab may reuse it; realloc always moves, as
 * memcheck's own realloc does; the requested size of a block is found
 * again from memcheck's addressability bits (VALGRIND_GET_VBITS answers 3
 * for an inaccessible byte, without a report); the stale copy of a
 * block's address that a pop leaves in the thread's array is cleared, so
 * that leaks are "definitely lost" as under glibc.  See lib/valgrind_hooks.h
 * for the rest of the model.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "interpose/tool.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"
#include "interpose/large.h"

#ifdef KSLAB_VALGRIND

static size_t usable_size(void *p)
{
    size_t n = slab_ksize(p);
    return n ? n : vm_large_usable(p);
}

/* A pop from the thread's array leaves the object's address in the slot
 * above `avail`; memcheck's leak search would take it for a pointer to the
 * block and call a leaked block reachable.  Clear it. */
static void scrub_array_slot(void *p)
{
    struct page *page;
    kmem_cache_t *c = slab_cache_of(p, &page);
    if (!c)
        return;
    struct array_cache *ac = slab_self->ac[c->id];
    if (ac->avail < ac->limit && ac->entry[ac->avail] == p)
        ac->entry[ac->avail] = NULL;
}

void *ip_tool_alloc(size_t size, size_t align, int zero)
{
    ip_ensure_init();
    void *p;
    if (align <= 16 && size <= KMALLOC_MAX_SIZE)
        p = kmalloc(size, GFP_KERNEL);
    else
        p = vm_large_alloc(size ? size : 1, align, 0);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    scrub_array_slot(p);
    size_t usable = usable_size(p);
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zero);
    if (usable > size)
        VALGRIND_MAKE_MEM_NOACCESS((char *)p + size, usable - size);
    if (zero)
        memset(p, 0, size);
    return p;
}

/* Gives a block back to kslab for real; dies for a pointer kslab never
 * returned (memcheck has reported it already). */
static void release(void *p, const char *fn)
{
    if (slab_kfree_inline(p, fn))
        return;
    int r = vm_large_free(p);
    if (r == VM_LARGE_FREED)
        return;
    if (r == VM_LARGE_NOT_OURS && ip_pointer_from_loader(p))
        return;
    kslab_die("%s(): invalid pointer %p", fn, p);
}

/*
 * Quarantine: a freed block stays out of use for a while (up to
 * QUARANTINE_SLOTS blocks or QUARANTINE_BYTES bytes, oldest out first), as
 * memcheck's own free does (--freelist-vol), so that a use after free hits
 * memory still marked free, not a block that already went to someone else.
 */
#define QUARANTINE_SLOTS 4096
#define QUARANTINE_BYTES (16UL << 20)
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t size;
} q_ring[QUARANTINE_SLOTS];
static unsigned int q_head, q_count;
static size_t q_bytes;

static void quarantine(void *p, const char *fn)
{
    size_t size = usable_size(p);
    if (!size && !ip_pointer_from_loader(p))
        kslab_die("%s(): invalid pointer %p", fn, p);
    void *out[8];
    int nout = 0;
    pthread_mutex_lock(&q_lock);
    unsigned int tail = (q_head + q_count) % QUARANTINE_SLOTS;
    q_ring[tail].p = p;
    q_ring[tail].size = size;
    q_count++;
    q_bytes += size;
    while (nout < 8 &&
           (q_count == QUARANTINE_SLOTS || q_bytes > QUARANTINE_BYTES)) {
        out[nout++] = q_ring[q_head].p;
        q_bytes -= q_ring[q_head].size;
        q_head = (q_head + 1) % QUARANTINE_SLOTS;
        q_count--;
    }
    pthread_mutex_unlock(&q_lock);
    for (int i = 0; i < nout; i++)
        release(out[i], fn);
}

void ip_tool_free(void *p, const char *fn)
{
    if (!p)
        return;
    /* An invalid or double free is reported by memcheck, and ignored as
     * memcheck's own free ignores it. */
    unsigned int errors = VALGRIND_COUNT_ERRORS;
    VALGRIND_FREELIKE_BLOCK(p, 0);
    if (VALGRIND_COUNT_ERRORS != errors)
        return;
    quarantine(p, fn);
}

/* The size the block was asked with: its accessible prefix. */
size_t ip_tool_usable(void *p)
{
    size_t lo = 0, hi = usable_size(p);
    if (!hi)
        kslab_die("malloc_usable_size(): invalid pointer %p", p);
    unsigned char vbits;
    while (lo < hi) { /* [0, lo) accessible; hi inaccessible or the end */
        size_t mid = lo + (hi - lo) / 2;
        if (VALGRIND_GET_VBITS((char *)p + mid, &vbits, 1) == 3)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void *ip_tool_realloc(void *p, size_t size)
{
    if (!p)
        return ip_tool_alloc(size, 16, 0);
    if (size == 0) {
        ip_tool_free(p, "realloc");
        return NULL;
    }
    size_t old = ip_tool_usable(p);
    void *q = ip_tool_alloc(size, 16, 0);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    ip_tool_free(p, "realloc");
    return q;
}

#else /* no valgrind headers: never called (ip_tool_wanted() is 0) */

void *ip_tool_alloc(size_t size, size_t align, int zero)
{
    (void)size;
    (void)align;
    (void)zero;
    return NULL;
}

void ip_tool_free(void *p, const char *fn)
{
    (void)p;
    (void)fn;
}

void *ip_tool_realloc(void *p, size_t size)
{
    (void)p;
    (void)size;
    return NULL;
}

size_t ip_tool_usable(void *p)
{
    (void)p;
    return 0;
}

#endif
