/*
 * interpose/tool.c — the hooks of the malloc path (see interpose/tool.h):
 * valgrind's memcheck, and mallopt(M_PERTURB).
 *
 * Under memcheck every block handed out is announced with
 * VALGRIND_MALLOCLIKE_BLOCK (the requested bytes; the rest of the slab
 * object or large block is made inaccessible, so an overrun of the request
 * is seen as it would be under glibc) and every block taken back with
 * VALGRIND_FREELIKE_BLOCK (inaccessible until handed out again, so a use
 * after free is seen).  Memcheck then reports the program's leaks and
 * invalid accesses, with the program's stacks, as under glibc.  For that:
 *  - a freed block waits in a quarantine before kslab may reuse it (as
 *    memcheck's own free does, --freelist-vol);
 *  - realloc always moves (malloc.c asks ip_tool_on()), as memcheck's own
 *    realloc does;
 *  - the requested size of a block is found again from memcheck's
 *    addressability bits (VALGRIND_GET_VBITS answers 3 for an inaccessible
 *    byte, without a report);
 *  - the stale copy of a block's address that a pop leaves in the thread's
 *    array is cleared, so that leaks are "definitely lost" as under glibc.
 * See lib/valgrind_hooks.h for the rest of the model.
 *
 * M_PERTURB: as glibc, a block handed out by malloc (not calloc) is filled
 * with ~byte over the requested size, a freed block with byte over its
 * usable size.
 *
 * KSLAB_DEBUG audit, log, leaks: the audit record of a block says the size
 * the program asked for (a leak report's "Direct leak of 12345 byte(s)",
 * as LeakSanitizer's); the slab and the large blocks, which see only the
 * size class or the pages, are told to leave the record to this hook
 * (slab_debug_defer, slab/debug.h).
 */
#include <pthread.h>
#include <string.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "interpose/tool.h"
#include "slab/debug.h"
#include "slab/slab_internal.h"

#ifdef KSLAB_VALGRIND
int ip_hooks = IP_HOOK_TOOL; /* until the first call asks valgrind */
#else
int ip_hooks;
#endif

static int perturb_byte;

void ip_set_perturb(int value)
{
    __atomic_store_n(&perturb_byte, value & 0xff, __ATOMIC_RELAXED);
    if (value & 0xff)
        __atomic_or_fetch(&ip_hooks, IP_HOOK_PERTURB, __ATOMIC_RELAXED);
    else
        __atomic_and_fetch(&ip_hooks, ~IP_HOOK_PERTURB, __ATOMIC_RELAXED);
}

static int perturbing(void)
{
    return __atomic_load_n(&perturb_byte, __ATOMIC_RELAXED);
}

#ifdef KSLAB_VALGRIND

int ip_tool_on(void)
{
    if (!(__atomic_load_n(&ip_hooks, __ATOMIC_RELAXED) & IP_HOOK_TOOL))
        return 0;
    if (vm_tool_active())
        return 1;
    __atomic_and_fetch(&ip_hooks, ~IP_HOOK_TOOL, __ATOMIC_RELAXED);
    return 0;
}

/* A pop from the thread's array leaves the object's address in the slot
 * above `avail`; memcheck's leak search would take it for a pointer to the
 * block and call a leaked block reachable.  Clear it. */
static void scrub_array_slot(void *p)
{
    struct page *page;
    kmem_cache_t *c = slab_cache_of(p, &page);
    if (!c || !c->id)
        return;
    struct array_cache *ac = slab_self->ac[c->id];
    if (ac->avail < ac->limit && ac->entry[ac->avail] == p)
        ac->entry[ac->avail] = NULL;
}

static void announce(void *p, size_t size, int zero)
{
    scrub_array_slot(p);
    size_t usable = ip_block_size(p, "malloc");
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zero);
    if (usable > size)
        VALGRIND_MAKE_MEM_NOACCESS((char *)p + size, usable - size);
}

/*
 * Quarantine: a freed block stays out of use for a while (up to
 * QUARANTINE_SLOTS blocks or QUARANTINE_BYTES bytes, oldest out first), so
 * that a use after free hits memory still marked free, not a block that
 * already went to someone else.
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

static void quarantine(void *p, size_t size, const char *fn)
{
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
    /* the slab reads and writes the free key in the second word of a
     * freed object, and clears it when the object is handed out again
     * (slab_internal.h): that word of a block leaving quarantine is the
     * allocator's, not the program's */
    for (int i = 0; i < nout; i++) {
        VALGRIND_MAKE_MEM_DEFINED((char *)out[i] + sizeof(void *),
                                  sizeof(void *));
        ip_release(out[i], fn);
    }
}

/* q_lock in the fork protocol (level KSLAB_FORK_IP, lib/fork.c): a leaf,
 * held around the ring only.  The child, single-threaded, makes it anew;
 * the blocks in the ring are the child's copies and leave it as usual. */
void ip_tool_fork_prepare(void)
{
    pthread_mutex_lock(&q_lock);
}

void ip_tool_fork_parent(void)
{
    pthread_mutex_unlock(&q_lock);
}

void ip_tool_fork_child(void)
{
    pthread_mutex_init(&q_lock, NULL);
}

static int tool_free(void *p, const char *fn)
{
    /* An invalid or double free is reported by memcheck, and ignored as
     * memcheck's own free ignores it. */
    unsigned int errors = VALGRIND_COUNT_ERRORS;
    VALGRIND_FREELIKE_BLOCK(p, 0);
    if (VALGRIND_COUNT_ERRORS != errors)
        return 0;
    size_t size = ip_block_size(p, fn);
    if (size)
        quarantine(p, size, fn);
    return 0;
}

/* The size the block was asked with: its accessible prefix. */
size_t ip_tool_usable(void *p, size_t usable)
{
    size_t lo = 0, hi = usable;
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

#else /* no valgrind headers: only M_PERTURB */

int ip_tool_on(void)
{
    return 0;
}

static void announce(void *p, size_t size, int zero)
{
    (void)p;
    (void)size;
    (void)zero;
}

static int tool_free(void *p, const char *fn)
{
    (void)p;
    (void)fn;
    return 1;
}

size_t ip_tool_usable(void *p, size_t usable)
{
    (void)p;
    return usable;
}

/* No quarantine, no lock. */
void ip_tool_fork_prepare(void) {}

void ip_tool_fork_parent(void) {}

void ip_tool_fork_child(void) {}

#endif

void ip_tool_debug_init(void)
{
    if (slab_debug_tracking())
        __atomic_or_fetch(&ip_hooks, IP_HOOK_DEBUG, __ATOMIC_RELAXED);
}

void ip_tool_percpu_init(void)
{
    if (slab_percpu_on())
        __atomic_or_fetch(&ip_hooks, IP_HOOK_PERCPU, __ATOMIC_RELAXED);
}

static int debugging(void)
{
    return __atomic_load_n(&ip_hooks, __ATOMIC_RELAXED) & IP_HOOK_DEBUG;
}

/* -1: no record to make; else the deferral to restore (slab/debug.h). */
int ip_tool_before_alloc(void)
{
    return debugging() ? slab_debug_defer() : -1;
}

void ip_tool_alloc_failed(int before)
{
    if (before >= 0)
        slab_debug_undefer(before);
}

void ip_tool_resize(void *p, size_t size)
{
    if (debugging())
        slab_debug_resize(p, size);
}

__noinline void *ip_tool_alloc(void *p, size_t size, int zero, int before)
{
    if (before >= 0) {
        slab_debug_undefer(before);
        slab_debug_alloc_asked(p, size, ip_block_size(p, "malloc"));
    }
    if (ip_tool_on())
        announce(p, size, zero);
    int pb = perturbing();
    if (zero)
        memset(p, 0, size);
    else if (pb)
        memset(p, pb ^ 0xff, size);
    return p;
}

int ip_tool_free(void *p, const char *fn)
{
    int pb = perturbing();
    if (pb) {
        size_t n = ip_block_size(p, fn);
        memset(p, pb, ip_tool_on() ? ip_tool_usable(p, n) : n);
    }
    if (ip_tool_on())
        return tool_free(p, fn);
    return 1;
}
