/*
 * interpose/large.c — large malloc blocks (> LARGE_MIN_SIZE) for the
 * interposer.
 *
 * Two kinds of block, told apart by address:
 *  - a buddy block: a run of low-memory frames from vm_alloc_pages_exact().
 *    Its head page has PG_private and its length in frames in page->private;
 *    the other frames carry nothing.  It grows in place with
 *    vm_grow_pages_exact() when the frames after it are free and shrinks
 *    with vm_shrink_pages_exact().  A freed one goes first to the freeing
 *    thread's cache (below), for that thread's next block of its size;
 *    giving the frames back to the host is the buddy allocator's job.
 *  - a huge block: host memory of its own (a fresh mapping, or a part of
 *    ranges freed before), for blocks beyond the largest buddy order, for
 *    alignments a buddy block cannot give, and as a fallback when low
 *    memory is exhausted.  It is recorded in an open-addressing hash table
 * (huge_tab, itself a host mapping: no malloc here).  A freed huge block goes
 * to a pool of address ranges (huge_cache, below) that the next huge blocks are
 * cut from, so a program that allocates and frees big buffers in a loop makes
 * no system call per allocation; the pool is bounded (see there), a range kept
 * for the decay time (KSLAB_DECAY_MS) is unmapped by the page layer's purge
 * pass (vm_purge_register), and malloc_trim() unmaps it all.  Under an
 * address-space limit (RLIMIT_AS) the pool keeps nothing: a range kept
 * there would be address space the limit counts and the program's own
 * mmap, which kslab never sees, could need; what it held when a limit
 * appeared goes at the next free, purge pass or growth of low memory
 * (vm_aspace_register), and a block the limit refuses is tried again once
 * every free slab and section has been given back
 * (vm_large_aspace_reclaim).
 *
 * Locking: buddy blocks need none of ours (the zone locks serialise the
 * frames; the head page belongs to the block's owner).  huge_lock protects
 * huge_tab and huge_cache; no other lock is taken under it, and the only
 * system calls under it are the table's growth and huge_realloc's mremap.  The
 * thread caches have locks of their own (see there).  Counters are relaxed
 * atomics.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "interpose/large.h"
#include "slab/debug.h"
#include "slab/kmalloc.h"
#include "vm/frames/os.h"

#define LARGE_FLAGS_GFP GFP_KERNEL

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;

struct huge_ent {
    uintptr_t addr; /* 0 = empty */
    size_t len;     /* bytes mapped, a multiple of PAGE_SIZE */
};

/* The table of live huge blocks: huge_cap slots (a power of two), at most
 * half of them used or deleted. */
static struct huge_ent *huge_tab;
static size_t huge_cap, huge_used;

/* Freed mappings kept for reuse; addr 0 = empty slot.  huge_cache_ms:
 * when each was freed (ms, CLOCK_MONOTONIC_COARSE), for the decay. */
static struct huge_ent huge_cache[HUGE_CACHE_SLOTS];
static unsigned long huge_cache_ms[HUGE_CACHE_SLOTS];
static size_t huge_cache_bytes;
static int huge_decay_registered;
/* An address-space limit was in force at the last look (vm_os_as_limited):
 * the pool keeps nothing. */
static int huge_keep_none;
/* When the last huge block was allocated (ms), for the decay. */
static unsigned long huge_alloc_ms;

static struct {
    _Atomic unsigned long nr_alloc, nr_free, live_blocks, live_pages;
    _Atomic unsigned long huge_blocks, huge_bytes, huge_unmapped_bytes;
    _Atomic unsigned long grow_in_place, moved;
    _Atomic unsigned long huge_max_blocks, huge_max_bytes;
    _Atomic unsigned long tcache_hits, huge_cache_hits, huge_gathered;
} st;

/* Blocks of this many bytes and more are own mappings (M_MMAP_THRESHOLD);
 * by default those that no buddy block can hold. */
size_t vm_large_mmap_threshold = LARGE_MMAP_THRESHOLD_DEFAULT;
int vm_large_mmap_max = LARGE_MMAP_MAX_DEFAULT;

#define ADD(ctr, v)                                                            \
    atomic_fetch_add_explicit(&st.ctr, (v), memory_order_relaxed)
#define SUB(ctr, v)                                                            \
    atomic_fetch_sub_explicit(&st.ctr, (v), memory_order_relaxed)
#define GET(ctr) atomic_load_explicit(&st.ctr, memory_order_relaxed)

/* Raises the high-water mark ctr to at least v. */
#define HIGH(ctr, v)                                                           \
    do {                                                                       \
        unsigned long _v = (v), _o = GET(ctr);                                 \
        while (_o < _v && !atomic_compare_exchange_weak_explicit(              \
                              &st.ctr, &_o, _v, memory_order_relaxed,          \
                              memory_order_relaxed))                           \
            ;                                                                  \
    } while (0)

static int want_buddy(size_t len, unsigned long npages)
{
    if (npages > LARGE_BUDDY_MAX_PAGES)
        return 0;
    return len < __atomic_load_n(&vm_large_mmap_threshold, __ATOMIC_RELAXED) ||
           GET(huge_blocks) >= (unsigned long)__atomic_load_n(
                                   &vm_large_mmap_max, __ATOMIC_RELAXED);
}

/* ---- the huge-block table (huge_lock held) ---- */

static size_t huge_hash(uintptr_t addr, size_t cap)
{
    return (size_t)(((addr >> PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL) >> 17) &
           (cap - 1);
}

static struct huge_ent *__huge_find(uintptr_t addr)
{
    if (!huge_tab)
        return NULL;
    for (size_t i = huge_hash(addr, huge_cap);; i = (i + 1) & (huge_cap - 1)) {
        if (huge_tab[i].addr == addr)
            return &huge_tab[i];
        if (huge_tab[i].addr == 0)
            return NULL;
    }
}

/* Puts addr in the first empty slot of its chain. */
static void __huge_put(struct huge_ent *tab, size_t cap, uintptr_t addr,
                       size_t len)
{
    size_t i = huge_hash(addr, cap);
    while (tab[i].addr)
        i = (i + 1) & (cap - 1);
    tab[i].addr = addr;
    tab[i].len = len;
}

/* Records a live block in huge_tab (room reserved). */
static void __huge_insert(uintptr_t addr, size_t len)
{
    __huge_put(huge_tab, huge_cap, addr, len);
    huge_used++;
}

/* Makes room for one more entry: 0 or -ENOMEM. */
static int __huge_reserve(void)
{
    if (huge_tab && (huge_used + 1) * 2 <= huge_cap)
        return 0;
    size_t cap = huge_cap ? huge_cap : 256;
    while ((huge_used + 1) * 4 > cap)
        cap *= 2;
    struct huge_ent *tab = vm_os_alloc(cap * sizeof *tab, 0, 0);
    if (!tab)
        return -ENOMEM;
    slab_debug_exclude(tab, cap * sizeof *tab); /* not a leak-search root */
    for (size_t i = 0; i < huge_cap; i++)
        if (huge_tab[i].addr)
            __huge_put(tab, cap, huge_tab[i].addr, huge_tab[i].len);
    if (huge_tab) {
        slab_debug_exclude(huge_tab, 0);
        vm_os_free(huge_tab, huge_cap * sizeof *huge_tab);
    }
    huge_tab = tab;
    huge_cap = cap;
    return 0;
}

/* Deletes e by moving back the entries of its chain after it that may sit
 * in its place (backward-shift deletion): no deleted marks pile up, so a
 * program that allocates and frees huge blocks in a loop never has the
 * table rebuilt (a mapping and an unmapping). */
static void __huge_delete(struct huge_ent *e)
{
    size_t mask = huge_cap - 1, i = (size_t)(e - huge_tab), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (huge_tab[j].addr == 0)
            break;
        size_t k = huge_hash(huge_tab[j].addr, huge_cap);
        /* entry j may move to i unless its home k is in (i, j] */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            huge_tab[i] = huge_tab[j];
            i = j;
        }
    }
    huge_tab[i].addr = 0;
    huge_tab[i].len = 0;
    huge_used--;
}

/* ---- huge blocks ---- */

static void huge_unmap(void *addr, size_t len)
{
    vm_os_free(addr, len);
    ADD(huge_unmapped_bytes, len);
}

/* ---- the pool of freed huge memory (huge_lock held unless said) ----
 *
 * huge_cache holds address ranges freed by the program, still mapped and
 * resident, kept coalesced: no two of them touch.  An allocation takes the
 * smallest range that fits (best fit) and splits it: the block gets exactly
 * its pages and the rest stays in the pool, so a block is never backed by
 * more memory than it asked for (the peak RSS of a program is its live
 * bytes plus at most HUGE_CACHE_MAX_BYTES).  When no range fits, the
 * ranges are gathered with mremap into one block (huge_gather): their page
 * tables move, their pages stay resident, so the block faults in none of
 * them and the pool gives its memory back to use.  A program that
 * allocates and frees big buffers in a loop thus makes no system call while
 * a range fits, and faults in no page while the pool holds enough; glibc
 * reuses its heap, tcmalloc its spans, to the same end, without the bound.
 * Past HUGE_CACHE_MAX_BYTES the ranges freed longest ago are unmapped
 * (from their ends), as is every range after the decay time. */

/* Ranges to unmap once huge_lock is dropped. */
struct huge_drop {
    int n;
    struct huge_ent r[HUGE_CACHE_SLOTS + 2];
};

static void drop_add(struct huge_drop *d, uintptr_t addr, size_t len)
{
    d->r[d->n].addr = addr;
    d->r[d->n].len = len;
    d->n++;
}

/* Unmaps what was dropped (no lock held). */
static void drop_unmap(struct huge_drop *d)
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
 * window of the decay time or the one before (huge_lock held). */
static size_t huge_peak_cur, huge_peak_prev;
static unsigned long huge_peak_ms;

static void __huge_peak_note(void)
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
 * headroom (huge_lock held). */
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
 * past that the pool's ranges are gathered (huge_lock held). */
static int __huge_may_grow(size_t len)
{
    return GET(huge_bytes) + huge_cache_bytes + len <=
           __huge_peak() + HUGE_CACHE_MAX_BYTES;
}

/* Takes len bytes from the smallest range that holds them: the range's
 * head, or all of it when what would be left is under 1/16 of len (*got:
 * the bytes taken).  NULL when no range fits. */
static void *__huge_cache_take(size_t len, size_t *got)
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
static void __huge_cache_put(uintptr_t addr, size_t len, struct huge_drop *d)
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
static int __huge_cache_claim(size_t len, struct huge_ent *r)
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
static void *huge_gather(size_t len, struct huge_ent *r, int n, size_t *dirty)
{
    int saved = errno;
    char *p = vm_os_alloc(len, 0, 0);
    if (!p) {
        struct huge_drop d = {0};
        pthread_mutex_lock(&huge_lock);
        for (int i = 0; i < n; i++)
            __huge_cache_put(r[i].addr, r[i].len, &d);
        pthread_mutex_unlock(&huge_lock);
        drop_unmap(&d);
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

/* The decay of the pool (vm_purge_register): every range freed for decay
 * ms at time now is unmapped, outside huge_lock; for a quarter of that
 * when no huge block was allocated for that quarter (a program that
 * sleeps, or only frees, has no use for it; the page layer's zones have
 * the like rule).  Returns the pages still kept.  Called by the page
 * layer's purge pass, no lock held; now 0 only counts. */
static unsigned long huge_decay(unsigned long now, unsigned long decay)
{
    struct huge_drop d = {0};
    int limited = now && vm_os_as_limited(1);
    pthread_mutex_lock(&huge_lock);
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
    pthread_mutex_unlock(&huge_lock);
    drop_unmap(&d);
    return left >> PAGE_SHIFT;
}

/* The page layer's hook (vm_aspace_register): low memory is about to
 * grow under an address-space limit, so the pool goes.  Returns the bytes
 * unmapped.  No lock held. */
static size_t huge_aspace_release(void)
{
    struct huge_drop d = {0};
    size_t bytes = 0;
    pthread_mutex_lock(&huge_lock);
    huge_keep_none = 1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        if (!huge_cache[i].addr)
            continue;
        bytes += huge_cache[i].len;
        drop_add(&d, huge_cache[i].addr, huge_cache[i].len);
        __cache_clear(i);
    }
    pthread_mutex_unlock(&huge_lock);
    drop_unmap(&d);
    return bytes;
}

/* A mapping the address-space limit refused: gives back all the address
 * space kslab holds for memory nobody uses (the free slabs, the threads'
 * cached blocks, the pool, the sections whose frames are then all free).
 * Returns nonzero when anything went (worth trying again). */
static size_t tc_flush_all(void);
size_t vm_large_aspace_reclaim(void)
{
    if (!vm_os_as_limited(1))
        return 0;
    slab_shrink_all();
    size_t bytes = tc_flush_all() + huge_aspace_release();
    return bytes + vm_release_sections();
}

/* Maps len bytes aligned to align (a power of two >= PAGE_SIZE). */
static void *huge_map(size_t len, size_t align)
{
    void *p = vm_os_alloc(len, align, 0);
    if (!p && vm_large_aspace_reclaim())
        p = vm_os_alloc(len, align, 0);
    return p;
}

static void *huge_alloc(size_t len, size_t align, int zero)
{
    void *p = NULL;
    size_t got = len, dirty = 0;
    struct huge_ent r[HUGE_CACHE_SLOTS];
    int n = 0;
    pthread_mutex_lock(&huge_lock);
    if (__huge_reserve() != 0)
        goto out;
    huge_alloc_ms = vm_now_ms();
    if (align <= PAGE_SIZE) {
        p = __huge_cache_take(len, &got);
        if (!p && !__huge_may_grow(len))
            n = __huge_cache_claim(len, r);
    }
    if (p) {
        ADD(huge_cache_hits, 1);
        dirty = len;
    } else {
        /* the system calls outside the lock */
        pthread_mutex_unlock(&huge_lock);
        if (n)
            p = huge_gather(len, r, n, &dirty);
        if (!p) {
            p = huge_map(len, align);
            dirty = 0;
        }
        got = len;
        pthread_mutex_lock(&huge_lock);
        if (p && __huge_reserve() != 0) {
            pthread_mutex_unlock(&huge_lock);
            vm_os_free(p, len);
            p = NULL;
            goto fail;
        }
    }
    if (p) {
        __huge_insert((uintptr_t)p, got);
        HIGH(huge_max_blocks, ADD(huge_blocks, 1) + 1);
        HIGH(huge_max_bytes, ADD(huge_bytes, got) + got);
        __huge_peak_note();
    }
out:
    pthread_mutex_unlock(&huge_lock);
fail:
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    if (zero && dirty)
        memset(p, 0, dirty < len ? dirty : len);
    ADD(nr_alloc, 1);
    return p;
}

/* Frees a huge block: 1, or 0 when p is not one. */
static int huge_free(void *p)
{
    struct huge_drop d = {0};
    int limited = vm_os_as_limited(0);
    pthread_mutex_lock(&huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    if (!e) {
        pthread_mutex_unlock(&huge_lock);
        return 0;
    }
    huge_keep_none = limited;
    size_t len = e->len;
    __huge_delete(e);
    SUB(huge_blocks, 1);
    SUB(huge_bytes, len);
    __huge_cache_put((uintptr_t)p, len, &d);
    int reg = huge_decay_registered;
    huge_decay_registered = 1;
    pthread_mutex_unlock(&huge_lock);
    drop_unmap(&d);
    if (!reg) {
        vm_purge_register(huge_decay);
        vm_aspace_register(huge_aspace_release);
    }
    vm_purge_kick(); /* something gives the memory back by time */
    ADD(nr_free, 1);
    return 1;
}

static size_t huge_usable(const void *p)
{
    pthread_mutex_lock(&huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t len = e ? e->len : 0;
    pthread_mutex_unlock(&huge_lock);
    return len;
}

/* Grows the huge block e by the head of the pool's range that follows it,
 * when that range holds the more bytes: 1, else 0 (huge_lock held). */
static int __huge_grow_into_pool(struct huge_ent *e, size_t len)
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

/* Resizes a huge block: into the pool's range after it, or with mremap;
 * a block shrunk below half gives its tail to the pool.  NULL (errno
 * kept) leaves it be: the caller moves it. */
static void *huge_realloc(void *p, size_t len)
{
    int saved = errno;
    void *q = NULL;
    struct huge_drop d = {0};
    int limited = vm_os_as_limited(0);
    pthread_mutex_lock(&huge_lock);
    huge_keep_none = limited;
    if (__huge_reserve() != 0) /* a move inserts before it deletes */
        goto out;
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t old = e->len;
    if (len <= old && len >= old / 2) { /* fits, and not much too big */
        q = p;
        goto out;
    }
    if (len < old) {
        e->len = len;
        __huge_cache_put((uintptr_t)p + len, old - len, &d);
        SUB(huge_bytes, old - len);
        q = p;
        goto out;
    }
    if (__huge_grow_into_pool(e, len)) {
        len = e->len;
        q = p;
    } else {
        q = vm_os_remap(p, old, len);
        if (!q)
            goto out;
        if (q == p) {
            e->len = len;
        } else {
            __huge_delete(e);
            __huge_insert((uintptr_t)q, len);
        }
    }
    HIGH(huge_max_bytes, ADD(huge_bytes, len - old) + len - old);
    __huge_peak_note();
    if (q == p)
        ADD(grow_in_place, 1);
out:
    pthread_mutex_unlock(&huge_lock);
    drop_unmap(&d);
    errno = saved;
    return q;
}

/* ---- buddy blocks ---- */

static struct page *large_head(const void *p)
{
    if ((uintptr_t)p & (PAGE_SIZE - 1))
        return NULL;
    struct page *page = vm_virt_to_page(p);
    if (!page || !PageFlag(page, PG_private))
        return NULL;
    return page;
}

/* npages frames aligned to align (> PAGE_SIZE means extra frames are
 * allocated and the misaligned head and tail given back). */
static void *buddy_alloc(unsigned long npages, size_t align, int zero)
{
    unsigned long extra = align > PAGE_SIZE ? (align >> PAGE_SHIFT) - 1 : 0;
    struct page *page = vm_alloc_pages_exact(LARGE_FLAGS_GFP, npages + extra);
    if (!page)
        return NULL;
    if (extra) {
        uintptr_t a = (uintptr_t)vm_page_address(page);
        uintptr_t aligned = (a + align - 1) & ~(uintptr_t)(align - 1);
        unsigned long lead = (aligned - a) >> PAGE_SHIFT;
        if (lead)
            vm_free_pages_exact(page, lead);
        if (extra - lead)
            vm_free_pages_exact(page + lead + npages, extra - lead);
        page += lead;
    }
    SetPageFlag(page, PG_private);
    page->private = npages;
    void *p = vm_page_address(page);
    if (zero)
        memset(p, 0, npages << PAGE_SHIFT);
    ADD(nr_alloc, 1);
    ADD(live_blocks, 1);
    ADD(live_pages, npages);
    return p;
}

static void buddy_free(struct page *page)
{
    unsigned long npages = page->private;
    ClearPageFlag(page, PG_private);
    page->private = 0;
    vm_free_pages_exact(page, npages);
    ADD(nr_free, 1);
    SUB(live_blocks, 1);
    SUB(live_pages, npages);
}

/* ---- the per-thread cache of buddy blocks ----
 *
 * Like the per-CPU page lists Linux gained after 2.4 and tcmalloc's
 * thread caches: a thread that frees a buddy block keeps it, by size
 * class, for its next allocation of that size, without the zone lock.
 * Class c holds blocks of at least tc_class_pages(c) frames (and fewer
 * than the next class's), so every block of bin tc_class_ceil(n) fits a
 * request of n frames.  The cache's own lock is taken by its thread (never
 * contended but by vm_large_trim() and fork); tc_lock guards the list of
 * caches and comes first in the order; the zone locks come last.
 */
struct large_tcache {
    pthread_mutex_t lock;
    struct list_head link; /* on tc_list, under tc_lock */
    size_t bytes;          /* held, under lock */
    size_t live; /* buddy bytes the thread allocated less those it freed
                    (its own thread only; an estimate: a block freed by
                    another thread counts there) */
    unsigned long nr;
    unsigned char count[LARGE_TCACHE_CLASSES];
    struct page *bin[LARGE_TCACHE_CLASSES][LARGE_TCACHE_BIN];
};

#define TC_MIN_PAGES 9UL /* the smallest class */
#define TC_MAX_PAGES 512UL

static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(tc_list);
#define tc_of(p) list_entry(p, struct large_tcache, link)
/* A thread past its exit hook, or one without memory for a cache. */
static struct large_tcache tc_none;
static __thread struct large_tcache *tc_self
    __attribute__((tls_model("initial-exec")));
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

_Static_assert(LARGE_BUDDY_MAX_PAGES <= TC_MAX_PAGES,
               "the classes must cover every buddy block");

/* Classes: 8 a doubling of the length in frames, 9, 10, ..., 16, 18,
 * ..., 32, 36, ..., 512; class c is (c / 8 + 3, c % 8) in (k, m) with
 * 2^k + (m + 1) 2^(k - 3) frames. */

/* The smallest class of at least n frames (n <= TC_MAX_PAGES). */
static int tc_class_ceil(unsigned long n)
{
    if (n <= TC_MIN_PAGES)
        return 0;
    int k = 63 - __builtin_clzl(n - 1); /* 2^k < n <= 2^(k+1) */
    unsigned long step = 1UL << (k - 3);
    return (k - 3) * 8 + (int)((n - (1UL << k) + step - 1) / step) - 1;
}

/* The largest class of at most n frames, -1 for none. */
static int tc_class_floor(unsigned long n)
{
    if (n < TC_MIN_PAGES || n > TC_MAX_PAGES)
        return -1;
    int k = 63 - __builtin_clzl(n - 1); /* 2^k < n <= 2^(k+1) */
    unsigned long m = (n - (1UL << k)) >> (k - 3);
    return m ? (k - 3) * 8 + (int)m - 1 : (k - 4) * 8 + 7;
}

/* Gives a cached block's frames back to the zones. */
static void tc_release(struct page *page)
{
    unsigned long npages = page->private;
    page->private = 0;
    vm_free_pages_exact(page, npages);
}

/* Empties tc (its lock held, or its thread gone); returns the bytes. */
static size_t __tc_flush(struct large_tcache *tc)
{
    size_t bytes = tc->bytes;
    for (int c = 0; c < LARGE_TCACHE_CLASSES; c++) {
        for (int i = 0; i < tc->count[c]; i++)
            tc_release(tc->bin[c][i]);
        tc->count[c] = 0;
    }
    tc->bytes = 0;
    tc->nr = 0;
    return bytes;
}

/* Thread exit: the cache goes back to the zones. */
static void tc_exit(void *arg)
{
    struct large_tcache *tc = arg;
    tc_self = &tc_none;
    pthread_mutex_lock(&tc_lock);
    list_del(&tc->link);
    pthread_mutex_unlock(&tc_lock);
    pthread_mutex_lock(&tc->lock);
    __tc_flush(tc);
    pthread_mutex_unlock(&tc->lock);
    free_pages((unsigned long)tc, 0);
}

static void tc_make_key(void)
{
    pthread_key_create(&tc_key, tc_exit);
}

static __cold struct large_tcache *tc_attach(void)
{
    pthread_once(&tc_once, tc_make_key);
    _Static_assert(sizeof(struct large_tcache) <= PAGE_SIZE,
                   "a thread's cache must fit a page");
    struct large_tcache *tc =
        (struct large_tcache *)__get_free_pages(GFP_KERNEL, 0);
    if (!tc) {
        tc_self = &tc_none;
        return NULL;
    }
    memset(tc, 0, sizeof *tc);
    pthread_mutex_init(&tc->lock, NULL);
    pthread_mutex_lock(&tc_lock);
    list_add(&tc->link, &tc_list);
    pthread_mutex_unlock(&tc_lock);
    tc_self = tc;
    pthread_setspecific(tc_key, tc);
    return tc;
}

/* A cached block of at least n frames, made live, or NULL. */
static void *tc_alloc(unsigned long n, int zero)
{
    struct large_tcache *tc = tc_self;
    if (!tc || tc == &tc_none || n > TC_MAX_PAGES)
        return NULL;
    struct page *page = NULL;
    int lo = tc_class_floor(n), hi = tc_class_ceil(n);
    pthread_mutex_lock(&tc->lock);
    /* the bin below holds blocks of n frames and more too; then the bin
     * of n's class and the one above (at most a quarter more) */
    if (lo >= 0 && lo != hi) {
        for (int i = tc->count[lo] - 1; i >= 0; i--) {
            if (tc->bin[lo][i]->private >= n) {
                page = tc->bin[lo][i];
                tc->bin[lo][i] = tc->bin[lo][--tc->count[lo]];
                break;
            }
        }
    }
    for (int c = hi; !page && c <= hi + 1 && c < LARGE_TCACHE_CLASSES; c++)
        if (tc->count[c])
            page = tc->bin[c][--tc->count[c]];
    /* else the smallest bigger block, cut to n frames below (far) */
    int far = 0;
    for (int c = hi + 2; !page && c < LARGE_TCACHE_CLASSES; c++)
        if (tc->count[c]) {
            page = tc->bin[c][--tc->count[c]];
            far = 1;
        }
    if (page) {
        tc->bytes -= page->private << PAGE_SHIFT;
        tc->nr--;
    }
    pthread_mutex_unlock(&tc->lock);
    if (!page)
        return NULL;
    if (far) {
        /* Its tail goes back to the zones, free and still resident, right
         * after the block: a block grown by realloc from small to big and
         * freed is cut down for the next one that starts small, which then
         * grows in place over the same frames (rather than new ones each
         * time while the big block waits in its bin). */
        vm_shrink_pages_exact(page, page->private, n);
        page->private = n;
    }
    unsigned long npages = page->private;
    SetPageFlag(page, PG_private);
    void *p = vm_page_address(page);
    if (zero)
        memset(p, 0, n << PAGE_SHIFT);
    ADD(nr_alloc, 1);
    ADD(live_blocks, 1);
    ADD(live_pages, npages);
    ADD(tcache_hits, 1);
    return p;
}

/* A buddy block of npages frames went live in the calling thread. */
static void tc_note_alloc(unsigned long npages)
{
    struct large_tcache *tc = tc_self;
    if (unlikely(!tc))
        tc = tc_attach();
    if (tc && tc != &tc_none)
        tc->live += npages << PAGE_SHIFT;
}

/* What a thread with live bytes of buddy blocks may keep: a share of them
 * (LARGE_TCACHE_LIVE_SHIFT), at least LARGE_TCACHE_MIN_BYTES, at most
 * LARGE_TCACHE_MAX_BYTES.  A thread that frees what it built (a tree torn
 * down) keeps little at the end, rather than its whole bound while other
 * threads build. */
static size_t tc_bound(size_t live)
{
    size_t max = live >> LARGE_TCACHE_LIVE_SHIFT;
    if (max < LARGE_TCACHE_MIN_BYTES)
        max = LARGE_TCACHE_MIN_BYTES;
    if (max > LARGE_TCACHE_MAX_BYTES)
        max = LARGE_TCACHE_MAX_BYTES;
    return max;
}

/* Keeps the live block at page in the calling thread's cache: 1, or 0
 * when it does not fit (no class, bin full, the thread's bound reached). */
static int tc_free(struct page *page)
{
    unsigned long npages = page->private;
    int c = tc_class_floor(npages);
    if (c < 0)
        return 0;
    struct large_tcache *tc = tc_self;
    if (unlikely(!tc))
        tc = tc_attach();
    if (!tc || tc == &tc_none)
        return 0;
    size_t len = npages << PAGE_SHIFT;
    tc->live = tc->live > len ? tc->live - len : 0;
    /* M_TRIM_THRESHOLD bounds what a thread keeps too (0: nothing) */
    size_t max = tc_bound(tc->live);
    unsigned long trim = __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
    if (trim < (max >> PAGE_SHIFT))
        max = trim << PAGE_SHIFT;
    int kept = 0;
    pthread_mutex_lock(&tc->lock);
    if (tc->count[c] < LARGE_TCACHE_BIN && tc->bytes + len <= max) {
        /* free to the program from here on: a second free is caught */
        ClearPageFlag(page, PG_private);
        tc->bin[c][tc->count[c]++] = page;
        tc->bytes += len;
        tc->nr++;
        kept = 1;
    }
    pthread_mutex_unlock(&tc->lock);
    if (kept) {
        ADD(nr_free, 1);
        SUB(live_blocks, 1);
        SUB(live_pages, npages);
    }
    return kept;
}

/* Empties every thread's cache: the bytes given back to the zones. */
static size_t tc_flush_all(void)
{
    size_t bytes = 0;
    pthread_mutex_lock(&tc_lock);
    for (struct large_tcache *tc = tc_of(tc_list.next); &tc->link != &tc_list;
         tc = tc_of(tc->link.next)) {
        pthread_mutex_lock(&tc->lock);
        bytes += __tc_flush(tc);
        pthread_mutex_unlock(&tc->lock);
    }
    pthread_mutex_unlock(&tc_lock);
    return bytes;
}

static void tc_sum(unsigned long *blocks, unsigned long *bytes)
{
    *blocks = *bytes = 0;
    pthread_mutex_lock(&tc_lock);
    for (struct large_tcache *tc = tc_of(tc_list.next); &tc->link != &tc_list;
         tc = tc_of(tc->link.next)) {
        pthread_mutex_lock(&tc->lock);
        *blocks += tc->nr;
        *bytes += tc->bytes;
        pthread_mutex_unlock(&tc->lock);
    }
    pthread_mutex_unlock(&tc_lock);
}

/* ---- the interface ---- */

static void *large_alloc(size_t size, size_t align, int zero)
{
    if (!size)
        size = 1;
    if (align > (size_t)PTRDIFF_MAX / 2 ||
        size >
            (size_t)PTRDIFF_MAX - (align > PAGE_SIZE ? align : 0) - PAGE_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = PAGE_ALIGN(size);
    unsigned long npages = len >> PAGE_SHIFT;
    unsigned long extra = align > PAGE_SIZE ? (align >> PAGE_SHIFT) - 1 : 0;
    if (want_buddy(len, npages + extra)) {
        void *p = extra ? NULL : tc_alloc(npages, zero);
        if (p) {
            tc_note_alloc(npages);
            return p;
        }
        int saved = errno;
        p = buddy_alloc(npages, align, zero);
        if (!p && tc_flush_all()) /* memory short: empty the caches */
            p = buddy_alloc(npages, align, zero);
        if (p) {
            tc_note_alloc(npages);
            return p;
        }
        errno = saved; /* low memory full: fall back to a mapping */
    }
    return huge_alloc(len, align, zero);
}

static int large_free(void *p)
{
    int saved = errno;
    int ret = VM_LARGE_FREED;
    struct page *page = vm_virt_to_page(p);
    if (page) {
        page = large_head(p);
        if (page) {
            if (!tc_free(page))
                buddy_free(page);
        } else
            ret = VM_LARGE_BAD;
    } else if (!huge_free(p)) {
        ret = VM_LARGE_NOT_OURS;
    }
    errno = saved;
    return ret;
}

size_t vm_large_usable(const void *p)
{
    if (vm_virt_to_page(p)) {
        struct page *page = large_head(p);
        return page ? page->private << PAGE_SHIFT : 0;
    }
    return huge_usable(p);
}

static void *large_realloc(void *p, size_t size)
{
    if (size > (size_t)PTRDIFF_MAX - PAGE_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = PAGE_ALIGN(size);
    unsigned long npages = len >> PAGE_SHIFT;
    struct page *page = large_head(p);
    size_t old;
    if (page) {
        unsigned long oldn = page->private;
        if (npages == oldn)
            return p;
        if (npages < oldn) {
            vm_shrink_pages_exact(page, oldn, npages);
            page->private = npages;
            SUB(live_pages, oldn - npages);
            return p;
        }
        if (want_buddy(len, npages) &&
            vm_grow_pages_exact(page, oldn, npages) == 0) {
            page->private = npages;
            ADD(live_pages, npages - oldn);
            ADD(grow_in_place, 1);
            return p;
        }
        old = oldn << PAGE_SHIFT;
    } else {
        old = huge_usable(p);
        /* a huge block stays one when it shrinks or stays huge; mremap
         * refuses a block made of ranges of several host mappings (the
         * pool merges neighbours): then it moves by a copy */
        if (npages > LARGE_BUDDY_MAX_PAGES || len <= old) {
            void *q = huge_realloc(p, len);
            if (q)
                return q;
        }
    }
    void *q = large_alloc(size, PAGE_SIZE, 0);
    if (!q)
        return NULL;
    memcpy(q, p, old < len ? old : len);
    large_free(p);
    ADD(moved, 1);
    return q;
}

/* The interface with the KSLAB_DEBUG hooks (slab/debug.h) around it. */
void *vm_large_alloc(size_t size, size_t align, int zero)
{
    void *p = large_alloc(size, align, zero);
    if (slab_debug_tracking() && p)
        slab_debug_alloc(p, size);
    return p;
}

int vm_large_free(void *p)
{
    if (slab_debug_tracking())
        slab_debug_free(p, "free");
    return large_free(p);
}

void *vm_large_realloc(void *p, size_t size)
{
    void *q = large_realloc(p, size);
    if (slab_debug_tracking() && q)
        slab_debug_move(p, q, size);
    return q;
}

void vm_large_get_stats(struct vm_large_stats *s)
{
    s->nr_alloc = GET(nr_alloc);
    s->nr_free = GET(nr_free);
    s->live_blocks = GET(live_blocks);
    s->live_pages = GET(live_pages);
    s->huge_blocks = GET(huge_blocks);
    s->huge_bytes = GET(huge_bytes);
    s->huge_unmapped_bytes = GET(huge_unmapped_bytes);
    s->grow_in_place = GET(grow_in_place);
    s->moved = GET(moved);
    s->huge_max_blocks = GET(huge_max_blocks);
    s->huge_max_bytes = GET(huge_max_bytes);
    s->tcache_hits = GET(tcache_hits);
    s->huge_cache_hits = GET(huge_cache_hits);
    s->huge_gathered = GET(huge_gathered);
    tc_sum(&s->tcache_blocks, &s->tcache_bytes);
    pthread_mutex_lock(&huge_lock);
    s->huge_cached = 0;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
        s->huge_cached += huge_cache[i].addr != 0;
    s->huge_cached_bytes = huge_cache_bytes;
    pthread_mutex_unlock(&huge_lock);
}

size_t vm_large_trim(void)
{
    size_t bytes = tc_flush_all();
    pthread_mutex_lock(&huge_lock);
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
    pthread_mutex_unlock(&huge_lock);
    return bytes;
}

void vm_large_fork_prepare(void)
{
    pthread_mutex_lock(&tc_lock);
    for (struct large_tcache *tc = tc_of(tc_list.next); &tc->link != &tc_list;
         tc = tc_of(tc->link.next))
        pthread_mutex_lock(&tc->lock);
    pthread_mutex_lock(&huge_lock);
}

void vm_large_fork_parent(void)
{
    pthread_mutex_unlock(&huge_lock);
    for (struct large_tcache *tc = tc_of(tc_list.next); &tc->link != &tc_list;
         tc = tc_of(tc->link.next))
        pthread_mutex_unlock(&tc->lock);
    pthread_mutex_unlock(&tc_lock);
}

/* The child is single-threaded: fresh mutexes are the simplest unlock.
 * The caches of the threads that did not come along go back to the zones
 * (whose child handlers have run). */
void vm_large_fork_child(void)
{
    pthread_mutex_init(&huge_lock, NULL);
    pthread_mutex_init(&tc_lock, NULL);
    struct list_head *p, *n;
    list_for_each_safe(p, n, &tc_list)
    {
        struct large_tcache *tc = tc_of(p);
        pthread_mutex_init(&tc->lock, NULL);
        if (tc != tc_self) {
            __tc_flush(tc);
            list_del(&tc->link);
            free_pages((unsigned long)tc, 0);
        }
    }
}
