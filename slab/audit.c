/*
 * slab/audit.c — KSLAB_DEBUG's audit records (libumem's bufctl_audit),
 * the hooks of slab/debug.h that make them, the report hook that prints
 * them after a one-line error, kslab_verify(), and the start-up of the
 * whole debugging machinery (slab/debug_internal.h lists its files).
 *
 * One struct audit_rec per block address ever handed out while audit is
 * on, in a hash of AUDIT_BUCKETS chains keyed by the address, each chain
 * under one of AUDIT_LOCKS striped locks.  The records are objects of the
 * cache "kslab-audit", allocated on the locked path (never a per-thread
 * array, never through the hooks); the bucket array and the log ring are
 * mappings of their own.  None of them is in the program's blocks, and
 * none is a root of the leak search.  A record is kept after its block is
 * freed (state AUDIT_FREED) so that a second free, or a report about the
 * address, names both stacks; the next allocation at the address takes
 * the record over.  The records of the last AUDIT_KEEP_FREED frees are
 * kept so; the record of an older free whose address has not been handed
 * out again goes back to the record cache (audit_age): the records are at
 * most the live blocks plus AUDIT_KEEP_FREED, however long the program
 * runs.
 *
 * Sizes: a record holds the size the program asked for (malloc(12345):
 * 12345, what a leak report counts, as LeakSanitizer and memcheck do) and
 * the usable size of the block (its size class, 14336: the extent the
 * leak search scans and matches pointers against).  The malloc family
 * tells the asked size through its hook (interpose/tool.c: the slab's own
 * record is deferred while the family allocates, slab_debug_defer), and
 * kmalloc from its slow path; kmem_cache_alloc asks for the object size.
 *
 * Locking: an audit stripe lock is a leaf, taken after any cache lock;
 * under it only the record cache's own lock (record allocation) is taken.
 * freed_lock is taken alone.  A host fork() makes both anew in the child
 * (slab_debug_fork_child, from the slab's fork hook: lib/fork.c).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "lib/init.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/debug_internal.h"
#include "slab/slab_internal.h"
#include "vm/frames/os.h"

/* The records of this many of the last frees are kept (both stacks for a
 * double free, a report about the address); an older freed record is
 * given back unless the address was handed out again meanwhile. */
#define AUDIT_KEEP_FREED (1UL << 16)

static kmem_cache_t *audit_cachep;
struct audit_rec **slab_audit_hash;
pthread_mutex_t slab_audit_locks[AUDIT_LOCKS];
static int debug_ready; /* records and ring made: hooks act */
static uint64_t start_ns;
/* The last AUDIT_KEEP_FREED frees, oldest at freed_head (mod the size). */
static struct freed_ent {
    uintptr_t addr;
    uint64_t ns;
} * freed_ring;
static uint64_t freed_head;
static pthread_mutex_t freed_lock = PTHREAD_MUTEX_INITIALIZER;

/* The malloc family is allocating in this thread: the slab's hook leaves
 * the record to the family's, which knows the size asked for. */
static __thread int defer_record __attribute__((tls_model("initial-exec")));

/* The calling thread's id, cached: gettid() is a system call, which costs
 * more than the rest of an event under a hypervisor.  A forked child
 * forgets it (slab_debug_fork_child). */
static __thread int my_tid __attribute__((tls_model("initial-exec")));

static inline int cur_tid(void)
{
    if (unlikely(!my_tid))
        my_tid = vm_os_gettid();
    return my_tid;
}

/* The record of a block of usable bytes at p, asked bytes asked for. */
static void debug_record(void *p, size_t asked, size_t usable)
{
    if (!__atomic_load_n(&debug_ready, __ATOMIC_ACQUIRE) || !p ||
        vm_internal_thread)
        return; /* kslab's own (vm_internal_thread): not recorded */
    slab_leaks_thread_mark();
    void *stack[AUDIT_DEPTH];
    unsigned int depth = slab_stack_capture(stack);
    uint64_t ns = vm_os_now_ns() - start_ns;
    int tid = cur_tid();
    uintptr_t addr = (uintptr_t)p;
    slab_log_event(LOG_ALLOC, addr, asked, ns, tid, stack, depth);
    if (!slab_audit_hash)
        return;
    size_t b = slab_audit_bucket(addr);
    pthread_mutex_lock(slab_audit_lock(b));
    struct audit_rec *r = __slab_audit_find(b, addr);
    if (!r) {
        r = slab_alloc_direct(audit_cachep, GFP_KERNEL);
        if (!r) { /* no memory for the record: the block goes unaudited */
            pthread_mutex_unlock(slab_audit_lock(b));
            return;
        }
        r->addr = addr;
        r->next = slab_audit_hash[b];
        slab_audit_hash[b] = r;
    }
    r->size = usable;
    r->asked = asked;
    r->state = AUDIT_ALLOCATED;
    r->alloc_tid = tid;
    r->alloc_ns = ns;
    r->alloc_depth = (unsigned char)depth;
    memcpy(r->alloc_stack, stack, depth * sizeof(void *));
    r->free_depth = 0;
    r->free_tid = 0;
    r->free_ns = 0;
    pthread_mutex_unlock(slab_audit_lock(b));
}

void slab_debug_alloc(void *p, size_t size)
{
    if (!defer_record)
        debug_record(p, size, size);
}

void slab_debug_alloc_asked(void *p, size_t asked, size_t usable)
{
    debug_record(p, asked, usable);
}

int slab_debug_defer(void)
{
    int was = defer_record;
    defer_record = 1;
    return was;
}

void slab_debug_undefer(int was)
{
    defer_record = was;
}

void slab_debug_resize(const void *p, size_t asked)
{
    if (!__atomic_load_n(&debug_ready, __ATOMIC_ACQUIRE) || !p ||
        !slab_audit_hash)
        return;
    uintptr_t addr = (uintptr_t)p;
    size_t b = slab_audit_bucket(addr);
    pthread_mutex_lock(slab_audit_lock(b));
    struct audit_rec *r = __slab_audit_find(b, addr);
    if (r && r->state == AUDIT_ALLOCATED && asked <= r->size)
        r->asked = asked;
    pthread_mutex_unlock(slab_audit_lock(b));
}

/* addr was freed at ns: its record joins the ring of the last frees, and
 * the record of the free that leaves the ring goes back to the record
 * cache, unless its address was allocated (or freed) again since.  Takes
 * freed_lock, then (alone) one stripe lock. */
static void audit_age(uintptr_t addr, uint64_t ns)
{
    pthread_mutex_lock(&freed_lock);
    struct freed_ent *e = &freed_ring[freed_head++ % AUDIT_KEEP_FREED];
    struct freed_ent old = *e;
    e->addr = addr;
    e->ns = ns;
    pthread_mutex_unlock(&freed_lock);
    if (!old.addr)
        return;
    size_t b = slab_audit_bucket(old.addr);
    pthread_mutex_lock(slab_audit_lock(b));
    struct audit_rec **pp = &slab_audit_hash[b], *r;
    while ((r = *pp) && r->addr != old.addr)
        pp = &r->next;
    if (r && r->state == AUDIT_FREED && r->free_ns == old.ns)
        *pp = r->next;
    else
        r = NULL;
    pthread_mutex_unlock(slab_audit_lock(b));
    if (r)
        slab_free_direct(audit_cachep, r);
}

void slab_debug_free(const void *p, const char *fn)
{
    if (!__atomic_load_n(&debug_ready, __ATOMIC_ACQUIRE) || !p || defer_record)
        return; /* deferred: a try of the family's aligned path */
    void *stack[AUDIT_DEPTH];
    unsigned int depth = slab_stack_capture(stack);
    uint64_t ns = vm_os_now_ns() - start_ns;
    int tid = cur_tid();
    uintptr_t addr = (uintptr_t)p;
    size_t size = 0;
    if (slab_audit_hash) {
        size_t b = slab_audit_bucket(addr);
        pthread_mutex_lock(slab_audit_lock(b));
        struct audit_rec *r = __slab_audit_find(b, addr);
        if (r && r->state == AUDIT_FREED) {
            pthread_mutex_unlock(slab_audit_lock(b));
            kslab_die_at(p, "%s(): double free of %p", fn, p);
        }
        if (r) {
            size = r->asked;
            r->state = AUDIT_FREED;
            r->free_tid = tid;
            r->free_ns = ns;
            r->free_depth = (unsigned char)depth;
            memcpy(r->free_stack, stack, depth * sizeof(void *));
        }
        pthread_mutex_unlock(slab_audit_lock(b));
        if (r && freed_ring)
            audit_age(addr, ns);
    }
    if (!vm_internal_thread)
        slab_log_event(LOG_FREE, addr, size, ns, tid, stack, depth);
}

/* The record of the block holding addr, copied (its lock dropped): the
 * exact address first, then the slab object around it, then any block
 * around it (a walk of every record: this is the way to abort()). */
static int audit_lookup(uintptr_t addr, struct audit_rec *out)
{
    uintptr_t keys[2] = {addr, 0};
    struct page *page = vm_virt_to_page((void *)addr);
    if (page && PageSlabOwned(page)) {
        kmem_cache_t *c = GET_PAGE_CACHE(page);
        uintptr_t base = (uintptr_t)page->s_mem; /* past the red zone */
        if (addr >= base && c->size)
            keys[1] = base + (addr - base) / c->size * c->size;
    }
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        size_t b = slab_audit_bucket(keys[k]);
        if (pthread_mutex_trylock(slab_audit_lock(b)))
            continue; /* held by the thread that died: no record then */
        struct audit_rec *r = __slab_audit_find(b, keys[k]);
        if (r)
            *out = *r;
        pthread_mutex_unlock(slab_audit_lock(b));
        if (r)
            return 1;
    }
    for (size_t b = 0; b < AUDIT_BUCKETS; b++) {
        if (!slab_audit_hash[b])
            continue;
        for (struct audit_rec *r = slab_audit_hash[b]; r; r = r->next) {
            if (addr >= r->addr && addr < r->addr + r->size) {
                *out = *r;
                return 1;
            }
        }
    }
    return 0;
}

/* "    allocated by thread 12 at 1.000200 s:" and the stack. */
static void report_event(const char *what, int tid, uint64_t ns,
                         void *const *stack, unsigned int depth)
{
    slab_debug_out(SLAB_DEBUG_FATAL_FD, NULL,
                   "    %s by thread %d at %llu.%06llu s:\n", what, tid,
                   (unsigned long long)(ns / 1000000000),
                   (unsigned long long)(ns / 1000 % 1000000));
    slab_debug_print_stack(SLAB_DEBUG_FATAL_FD, NULL, stack, depth);
}

/* The report hook: what kslab knows of addr, after the one line. */
static void debug_report(const void *addr)
{
    struct audit_rec r;
    void *stack[AUDIT_DEPTH];
    unsigned int depth = slab_stack_capture(stack);
    uintptr_t a = (uintptr_t)addr, lo = a, hi = a + 1;
    slab_debug_out(SLAB_DEBUG_FATAL_FD, NULL, "    detected in thread %d:\n",
                   vm_os_gettid());
    slab_debug_print_stack(SLAB_DEBUG_FATAL_FD, NULL, stack, depth);
    if (slab_audit_hash && audit_lookup(a, &r)) {
        char usable[48] = "";
        if (r.size != r.asked)
            kslab_snprintf(usable, sizeof usable, " [%zu usable]", r.size);
        slab_debug_out(SLAB_DEBUG_FATAL_FD, NULL,
                       "    block %p of %zu bytes%s (%s)%s\n", (void *)r.addr,
                       r.asked, usable,
                       r.state == AUDIT_FREED ? "free" : "allocated",
                       r.addr != a ? ", the address is inside it" : "");
        report_event("allocated", r.alloc_tid, r.alloc_ns, r.alloc_stack,
                     r.alloc_depth);
        if (r.state == AUDIT_FREED)
            report_event("freed", r.free_tid, r.free_ns, r.free_stack,
                         r.free_depth);
        lo = r.addr;
        hi = r.addr + (r.size ? r.size : 1);
    } else if (slab_audit_hash) {
        slab_debug_out(SLAB_DEBUG_FATAL_FD, NULL, "    no audit record of %p\n",
                       addr);
    }
    slab_log_print_for(SLAB_DEBUG_FATAL_FD, NULL, lo, hi);
}

/* ---- kslab_verify ---- */

static int verify_broken;

static void verify_one(FILE *unused, kmem_cache_t *cachep)
{
    (void)unused;
    if (slab_verify_cache(cachep))
        __atomic_add_fetch(&verify_broken, 1, __ATOMIC_RELAXED);
}

/**
 * kslab_verify - run every cache's and every zone's validator now.
 *
 * Returns 0 when every cache and zone is consistent; otherwise minus the
 * number of caches found broken, plus one when the zones are, each
 * reported by one line on stderr: the first broken invariant of the cache,
 * naming it and the slab ("kslab: slab_check_cache(): cache `name': ..."),
 * or of the zones, naming the zone and the frame ("kslab: zone Normal:
 * block at frame 42 ...").  Nothing aborts and nothing is repaired.  May
 * be called from any thread; takes each cache's lock, then each zone's,
 * in turn.
 */
int kslab_verify(void)
{
    static pthread_mutex_t verify_lock = PTHREAD_MUTEX_INITIALIZER;
    kslab_init();
    pthread_mutex_lock(&verify_lock);
    verify_broken = 0;
    slab_for_each_cache(verify_one, NULL);
    int broken = verify_broken;
    if (vm_verify_zones((void (*)(const char *, ...))kslab_warn) < 0)
        broken++;
    pthread_mutex_unlock(&verify_lock);
    return broken ? -broken : 0;
}

/* ---- start-up ---- */

void slab_debug_fork_child(void)
{
    my_tid = 0;
    slab_log_fork_child();
    pthread_mutex_init(&freed_lock, NULL);
    for (int i = 0; i < AUDIT_LOCKS; i++)
        pthread_mutex_init(&slab_audit_locks[i], NULL);
}

static void slab_debug_init(void)
{
    if (!(kslab_opt.dbg & KSLAB_DBG_TRACK))
        return;
    start_ns = vm_os_now_ns();
    for (int i = 0; i < AUDIT_LOCKS; i++)
        pthread_mutex_init(&slab_audit_locks[i], NULL);
    if (kslab_opt.dbg & KSLAB_DBG_AUDIT) {
        audit_cachep = slab_cache_create(
            "kslab-audit", sizeof(struct audit_rec), 0, 0, NULL, NULL, 0);
        slab_audit_hash =
            audit_cachep
                ? slab_debug_map(AUDIT_BUCKETS * sizeof(*slab_audit_hash))
                : NULL;
        freed_ring = slab_debug_map(AUDIT_KEEP_FREED * sizeof *freed_ring);
        if (!slab_audit_hash)
            kslab_warn("KSLAB_DEBUG=audit: no memory for the records");
    }
    if (kslab_opt.dbg & KSLAB_DBG_LOG)
        slab_log_init();
    slab_stack_init();
    if (kslab_opt.dbg & KSLAB_DBG_LEAKS)
        slab_leaks_init();
    kslab_set_report_hook(debug_report);
    __atomic_store_n(&debug_ready, 1, __ATOMIC_RELEASE);
}
KSLAB_INITCALL(KSLAB_INIT_FORK, slab_debug_init);
