/*
 * interpose/huge_pool.c — the pool of freed huge memory: address ranges
 * freed by the program that the next huge blocks (interpose/huge.c) are
 * cut from, its bound, its decay by time, and the address-space give-back
 * under an address-space limit (RLIMIT_AS).
 *
 * The ranges (huge_cache, HUGE_CACHE_SLOTS of them, kept coalesced) stay
 * mapped and resident.  The pool holds at most what the live huge bytes
 * are below their recent peak plus HUGE_CACHE_MAX_BYTES; a range kept for
 * the decay time (KSLAB_DECAY_MS) is unmapped by the page layer's purge
 * pass (vm_purge_register), and malloc_trim() unmaps it all.  Under an
 * address-space limit the pool keeps nothing: a range kept there would be
 * address space the limit counts and the program's own mmap, which kslab
 * never sees, could need; what it held when a limit appeared goes at the
 * next free, purge pass or growth of low memory (vm_aspace_register), and
 * a block the limit refuses is tried again once every free slab, cached
 * block and section has been given back (ip_large_aspace_reclaim).
 *
 * Locking: every function whose name starts with __ runs under
 * ip_huge_lock (huge.c), which guards the pool with the table of live
 * blocks; the others take it themselves.  Ranges leave the pool under the
 * lock and are unmapped after it is dropped (struct huge_drop).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "interpose/large_internal.h"
#include "slab/kmalloc.h"
#include "vm/frames/os.h"

/* Freed mappings kept for reuse; addr 0 = empty slot.  huge_cache_ms:
 * when each was freed (ms, CLOCK_MONOTONIC_COARSE), for the decay. */
static struct huge_ent huge_cache[HUGE_CACHE_SLOTS];
static unsigned long huge_cache_ms[HUGE_CACHE_SLOTS];
static size_t huge_cache_bytes;
/* An address-space limit was in force at the last look (vm_os_as_limited):
 * the pool keeps nothing. */
static int huge_keep_none;
/* When the last huge block was allocated (ms), for the decay. */
static unsigned long huge_alloc_ms;

static void huge_unmap(void *addr, size_t len)
{
    vm_os_free(addr, len);
    ADD(huge_unmapped_bytes, len);
}

void __ip_huge_pool_note_alloc(void)
{
    huge_alloc_ms = vm_now_ms();
}

void __ip_huge_pool_set_limited(int limited)
{
    huge_keep_none = limited;
}

/*
 * huge_cache holds address ranges freed by the program, still mapped and
 * resident, kept coalesced: no two of them touch.  An allocation takes the
 * smallest range that fits (best fit) and splits it: the block gets exactly
 * its pages and the rest stays in the pool, so a block is never backed by
 * more memory than it asked for (the peak RSS of a program is its live
 * bytes plus at most HUGE_CACHE_MAX_BYTES).  When no range fits, the
 * ranges are gathered with mremap into one block (ip_huge_gather): their page
 * tables move, their pages stay resident, so the block faults in none of
 * them and the pool gives its memory back to use.  A program that
 * allocates and frees big buffers in a loop thus makes no system call while
 * a range fits, and faults in no page while the pool holds enough; glibc
 * reuses its heap, tcmalloc its spans, to the same end, without the bound.
 * Past HUGE_CACHE_MAX_BYTES the ranges freed longest ago are unmapped
 * (from their ends), as is every range after the decay time. */

static void drop_add(struct huge_drop *d, uintptr_t addr, size_t len)
{
    d->r[d->n].addr = addr;
    d->r[d->n].len = len;
    d->n++;
}

/* Unmaps what was dropped (no lock held). */
void ip_huge_drop_unmap(struct huge_drop *d)
{
    for (int i = 0; i < d->n; i++)
        huge_unmap((void *)d->r[i].addr, d->r[i].len);
    d->n = 0;
}

static void __cache_clear(int i)
{
    huge_cache_bytes -= huge_cache[i].len;
    huge_cache[i].addr = 0;
    huge_cache[i].len = 0;
}

/* The slot freed longest ago, -1 if none. */
static int __cache_oldest(void)
{
    int old = -1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
        if (huge_cache[i].addr &&
            (old < 0 || huge_cache_ms[i] < huge_cache_ms[old]))
            old = i;
    return old;
}

/* The recent peak of the live huge bytes: the highest in the current
 * window of the decay time or the one before (ip_huge_lock held). */
static size_t huge_peak_cur, huge_peak_prev;
static unsigned long huge_peak_ms;

void __ip_huge_peak_note(void)
{
    size_t live = GET(huge_bytes);
    unsigned long now = vm_now_ms();
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    if (now - huge_peak_ms >= decay) {
        huge_peak_prev = huge_peak_cur;
        huge_peak_cur = live;
        huge_peak_ms = now;
    }
    if (live > huge_peak_cur)
        huge_peak_cur = live;
}

static size_t __huge_peak(void)
{
    return huge_peak_cur > huge_peak_prev ? huge_peak_cur : huge_peak_prev;
}

/* What the pool may hold: what the live huge bytes are below their recent
 * peak (memory the program has just shown it uses), plus a headroom of
 * HUGE_CACHE_MAX_BYTES.  Peak RSS stays within the live peak plus the
 * headroom (ip_huge_lock held). */
static size_t __huge_cache_cap(void)
{
    if (huge_keep_none)
        return 0;
    size_t peak = __huge_peak(), live = GET(huge_bytes);
    return (peak > live ? peak - live : 0) + HUGE_CACHE_MAX_BYTES;
}

/* Whether a block of len bytes no range holds should be fresh memory: while
 * the live bytes, the pool and the block stay within the recent peak plus
 * the headroom.  The pool then grows to hold ranges that fit the blocks;
 * past that the pool's ranges are gathered (ip_huge_lock held). */
int __ip_huge_pool_may_grow(size_t len)
{
    return GET(huge_bytes) + huge_cache_bytes + len <=
           __huge_peak() + HUGE_CACHE_MAX_BYTES;
}

/* Takes len bytes from the smallest range that holds them: the range's
 * head, or all of it when what would be left is under 1/16 of len (*got:
 * the bytes taken).  NULL when no range fits. */
void *__ip_huge_pool_take(size_t len, size_t *got)
{
    int best = -1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        size_t l = huge_cache[i].len;
        if (huge_cache[i].addr && l >= len &&
            (best < 0 || l < huge_cache[best].len))
            best = i;
    }
    if (best < 0)
        return NULL;
    void *addr = (void *)huge_cache[best].addr;
    size_t left = huge_cache[best].len - len;
    if (left < len / 16 || left < PAGE_SIZE) {
        *got = huge_cache[best].len;
        __cache_clear(best);
    } else {
        *got = len;
        huge_cache[best].addr += len;
        huge_cache[best].len = left;
        huge_cache_bytes -= len;
    }
    return addr;
}

/* Gives the range [addr, addr + len) to the pool, merged with the ranges
 * it touches; then evicts, from the ranges freed longest ago, what passes
 * HUGE_CACHE_SLOTS or HUGE_CACHE_MAX_BYTES (into *d, to be unmapped). */
void __ip_huge_pool_put(uintptr_t addr, size_t len, struct huge_drop *d)
{
    size_t cap = __huge_cache_cap();
    if (!cap) { /* under a limit: the range and all the pool go */
        drop_add(d, addr, len);
        for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
            if (huge_cache[i].addr) {
                drop_add(d, huge_cache[i].addr, huge_cache[i].len);
                __cache_clear(i);
            }
        return;
    }
    if (len > cap) {
        drop_add(d, addr, len);
        return;
    }
    uintptr_t start = addr, end = addr + len;
    int empty = -1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        uintptr_t a = huge_cache[i].addr;
        if (a && a + huge_cache[i].len == start) {
            addr = a;
            len += huge_cache[i].len;
            __cache_clear(i);
        } else if (a && a == end) {
            len += huge_cache[i].len;
            __cache_clear(i);
        }
        if (!huge_cache[i].addr)
            empty = i;
    }
    if (empty < 0) { /* every slot taken: the oldest range goes */
        empty = __cache_oldest();
        drop_add(d, huge_cache[empty].addr, huge_cache[empty].len);
        __cache_clear(empty);
    }
    huge_cache[empty].addr = addr;
    huge_cache[empty].len = len;
    huge_cache_ms[empty] = vm_now_ms();
    huge_cache_bytes += len;
    while (huge_cache_bytes > cap) {
        int o = __cache_oldest();
        size_t over = huge_cache_bytes - cap;
        if (over >= huge_cache[o].len) {
            drop_add(d, huge_cache[o].addr, huge_cache[o].len);
            __cache_clear(o);
        } else { /* the range's tail: the rest stays whole */
            huge_cache[o].len -= over;
            huge_cache_bytes -= over;
            drop_add(d, huge_cache[o].addr + huge_cache[o].len, over);
        }
    }
}

/* Takes ranges off the pool for a block of len bytes that none holds: the
 * largest first, until len is covered, the last one cut to what is still
 * missing (its tail taken, its head left).  Returns how many (into r[]);
 * r[0] is the largest. */
int __ip_huge_pool_claim(size_t len, struct huge_ent *r)
{
    int n = 0;
    size_t have = 0;
    while (have < len) {
        int big = -1;
        for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
            if (huge_cache[i].addr &&
                (big < 0 || huge_cache[i].len > huge_cache[big].len))
                big = i;
        if (big < 0)
            break;
        size_t need = len - have;
        if (huge_cache[big].len > need) {
            huge_cache[big].len -= need;
            huge_cache_bytes -= need;
            r[n].addr = huge_cache[big].addr + huge_cache[big].len;
            r[n].len = need;
        } else {
            r[n] = huge_cache[big];
            __cache_clear(big);
        }
        have += r[n++].len;
    }
    return n;
}

/* Moves the range [src, src + len) to dst (mremap); a range that spans
 * host mappings the kernel cannot move at once (EFAULT, before Linux 6.17)
 * is moved in halves.  A part that cannot move at all is unmapped: its
 * place at dst stays fresh memory. */
static void huge_move(uintptr_t src, size_t len, uintptr_t dst)
{
    if (vm_os_move((void *)src, len, (void *)dst) == 0)
        return;
    if (errno != EFAULT || len == PAGE_SIZE) {
        huge_unmap((void *)src, len);
        return;
    }
    size_t half = (len >> (PAGE_SHIFT + 1)) << PAGE_SHIFT;
    huge_move(src, half, dst);
    huge_move(src + half, len - half, dst + half);
}

/* Makes one block of len bytes out of the n ranges r[] (no lock held): a
 * fresh mapping, the ranges' pages moved into it one after the other; what
 * they do not cover stays fresh memory.  Returns the block and in *dirty
 * the bytes that came from the ranges, or NULL (errno kept) with the
 * ranges given back to the pool. */
void *ip_huge_gather(size_t len, struct huge_ent *r, int n, size_t *dirty)
{
    int saved = errno;
    char *p = vm_os_alloc(len, 0, 0);
    if (!p) {
        struct huge_drop d = {0};
        pthread_mutex_lock(&ip_huge_lock);
        for (int i = 0; i < n; i++)
            __ip_huge_pool_put(r[i].addr, r[i].len, &d);
        pthread_mutex_unlock(&ip_huge_lock);
        ip_huge_drop_unmap(&d);
        errno = saved;
        return NULL;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        huge_move(r[i].addr, r[i].len, (uintptr_t)p + off);
        off += r[i].len;
    }
    errno = saved;
    *dirty = off;
    ADD(huge_gathered, 1);
    return p;
}

/* Grows the huge block e by the head of the pool's range that follows it,
 * when that range holds the more bytes: 1, else 0 (ip_huge_lock held). */
int __ip_huge_pool_grow_into(struct huge_ent *e, size_t len)
{
    uintptr_t end = e->addr + e->len;
    size_t more = len - e->len;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        if (huge_cache[i].addr != end || huge_cache[i].len < more)
            continue;
        if (huge_cache[i].len - more < more / 16 + PAGE_SIZE)
            more = huge_cache[i].len; /* all of it: no sliver left */
        huge_cache[i].addr += more;
        huge_cache[i].len -= more;
        huge_cache_bytes -= more;
        if (!huge_cache[i].len)
            huge_cache[i].addr = 0;
        e->len += more;
        return 1;
    }
    return 0;
}

/* The decay of the pool (vm_purge_register): every range freed for decay
 * ms at time now is unmapped, outside ip_huge_lock; for a quarter of that
 * when no huge block was allocated for that quarter (a program that
 * sleeps, or only frees, has no use for it; the page layer's zones have
 * the like rule).  Returns the pages still kept.  Called by the page
 * layer's purge pass, no lock held; now 0 only counts. */
unsigned long ip_huge_decay(unsigned long now, unsigned long decay)
{
    struct huge_drop d = {0};
    int limited = now && vm_os_as_limited(1);
    pthread_mutex_lock(&ip_huge_lock);
    if (now) {
        huge_keep_none = limited;
        if (limited)
            decay = 0; /* a limit appeared: keep nothing */
    }
    if (now && now - huge_alloc_ms >= decay / 4)
        decay /= 4;
    for (int i = 0; now && i < HUGE_CACHE_SLOTS; i++) {
        if (!huge_cache[i].addr || huge_cache_ms[i] + decay > now)
            continue;
        drop_add(&d, huge_cache[i].addr, huge_cache[i].len);
        __cache_clear(i);
    }
    size_t left = huge_cache_bytes;
    pthread_mutex_unlock(&ip_huge_lock);
    ip_huge_drop_unmap(&d);
    return left >> PAGE_SHIFT;
}

/* The page layer's hook (vm_aspace_register): low memory is about to
 * grow under an address-space limit, so the pool goes.  Returns the bytes
 * unmapped.  No lock held. */
size_t ip_huge_aspace_release(void)
{
    struct huge_drop d = {0};
    size_t bytes = 0;
    pthread_mutex_lock(&ip_huge_lock);
    huge_keep_none = 1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        if (!huge_cache[i].addr)
            continue;
        bytes += huge_cache[i].len;
        drop_add(&d, huge_cache[i].addr, huge_cache[i].len);
        __cache_clear(i);
    }
    pthread_mutex_unlock(&ip_huge_lock);
    ip_huge_drop_unmap(&d);
    return bytes;
}

/* A mapping the address-space limit refused: gives back all the address
 * space kslab holds for memory nobody uses (the free slabs, the threads'
 * cached blocks, the pool, the sections whose frames are then all free).
 * Returns nonzero when anything went (worth trying again). */
size_t ip_large_aspace_reclaim(void)
{
    if (!vm_os_as_limited(1))
        return 0;
    slab_shrink_all();
    size_t bytes = ip_tcache_flush_all() + ip_huge_aspace_release();
    return bytes + vm_release_sections();
}

size_t ip_huge_pool_trim(void)
{
    size_t bytes = 0;
    pthread_mutex_lock(&ip_huge_lock);
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        if (!huge_cache[i].addr)
            continue;
        huge_unmap((void *)huge_cache[i].addr, huge_cache[i].len);
        bytes += huge_cache[i].len;
        huge_cache[i].addr = 0;
        huge_cache[i].len = 0;
    }
    huge_cache_bytes = 0;
    /* the peak so far no longer sizes the pool */
    huge_peak_cur = huge_peak_prev = GET(huge_bytes);
    huge_peak_ms = vm_now_ms();
    pthread_mutex_unlock(&ip_huge_lock);
    return bytes;
}

void ip_huge_pool_stats(unsigned long *ranges, unsigned long *bytes)
{
    pthread_mutex_lock(&ip_huge_lock);
    *ranges = 0;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
        *ranges += huge_cache[i].addr != 0;
    *bytes = huge_cache_bytes;
    pthread_mutex_unlock(&ip_huge_lock);
}
