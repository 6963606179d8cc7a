/*
 * interpose/huge.c — huge blocks: large blocks that are host memory of
 * their own (a fresh mapping, or ranges of the pool of freed ones,
 * interpose/huge_pool.c), for blocks beyond the largest buddy order, for
 * alignments a buddy block cannot give, past M_MMAP_THRESHOLD, and as a
 * fallback when low memory is exhausted.
 *
 * The live ones are recorded in an open-addressing hash table keyed by
 * address (huge_tab, itself a host mapping: no malloc here, and excluded
 * from the leak search), with backward-shift deletion.  It is the one
 * table of huge blocks: those of the hook's home (large.h: libkslab-vm.so
 * puts them in the emulated mm) are in it too, marked hooked, and never
 * go to the pool.  A freed block
 * goes to the pool, whose ranges the next blocks are cut from; a block
 * that grows takes the pool's range after it, or is moved with mremap.
 *
 * Locking: ip_huge_lock guards the table and the pool; no other lock is
 * taken under it, and the only system calls under it are the table's
 * growth and ip_huge_realloc's mremap: a fresh mapping is made with the lock
 * dropped, and the hook is called without it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "interpose/large_internal.h"
#include "slab/debug.h"
#include "vm/frames/os.h"

pthread_mutex_t ip_huge_lock = PTHREAD_MUTEX_INITIALIZER;

/* The table of live huge blocks: huge_cap slots (a power of two), at most
 * half of them used or deleted. */
static struct huge_ent *huge_tab;
static size_t huge_cap, huge_used;
/* The pool's decay and give-back are registered with the page layer at
 * the first free of a huge block. */
static int huge_decay_registered;

/* The other home of huge blocks (large.h), or NULL. */
static const struct ip_huge_hook *_Atomic huge_hook;

void ip_huge_set_hook(const struct ip_huge_hook *hook)
{
    atomic_store_explicit(&huge_hook, hook, memory_order_release);
}

static const struct ip_huge_hook *hook_get(void)
{
    return atomic_load_explicit(&huge_hook, memory_order_acquire);
}

/* ---- the huge-block table (ip_huge_lock held) ---- */

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
                       size_t len, int hooked)
{
    size_t i = huge_hash(addr, cap);
    while (tab[i].addr)
        i = (i + 1) & (cap - 1);
    tab[i].addr = addr;
    tab[i].len = len;
    tab[i].hooked = hooked;
}

/* Records a live block in huge_tab (room reserved). */
static void __huge_insert(uintptr_t addr, size_t len, int hooked)
{
    __huge_put(huge_tab, huge_cap, addr, len, hooked);
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
            __huge_put(tab, cap, huge_tab[i].addr, huge_tab[i].len,
                       huge_tab[i].hooked);
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
    huge_tab[i].hooked = 0;
    huge_used--;
}
/* ---- huge blocks ---- */

/* Maps len bytes aligned to align (a power of two >= PAGE_SIZE). */
static void *huge_map(size_t len, size_t align)
{
    void *p = vm_os_alloc(len, align, 0);
    if (!p && ip_large_aspace_reclaim())
        p = vm_os_alloc(len, align, 0);
    return p;
}

/* A block of the hook's home, recorded in the table; NULL (errno kept)
 * when the home is full: then host memory. */
static void *hooked_alloc(const struct ip_huge_hook *hook, size_t len,
                          size_t align, int zero)
{
    int saved = errno;
    void *q = hook->alloc(len, align, zero);
    if (!q) {
        errno = saved;
        return NULL;
    }
    pthread_mutex_lock(&ip_huge_lock);
    int r = __huge_reserve();
    if (r == 0)
        __huge_insert((uintptr_t)q, len, 1);
    pthread_mutex_unlock(&ip_huge_lock);
    if (r != 0) {
        hook->free(q, len);
        errno = saved;
        return NULL;
    }
    ADD(nr_alloc, 1);
    return q;
}

void *ip_huge_alloc(size_t len, size_t align, int zero)
{
    const struct ip_huge_hook *hook = hook_get();
    if (hook) {
        void *q = hooked_alloc(hook, len, align, zero);
        if (q)
            return q;
    }
    void *p = NULL;
    size_t got = len, dirty = 0;
    struct huge_ent r[HUGE_CACHE_SLOTS];
    int n = 0;
    pthread_mutex_lock(&ip_huge_lock);
    if (__huge_reserve() != 0)
        goto out;
    __ip_huge_pool_note_alloc();
    if (align <= PAGE_SIZE) {
        p = __ip_huge_pool_take(len, &got);
        if (!p && !__ip_huge_pool_may_grow(len))
            n = __ip_huge_pool_claim(len, r);
    }
    if (p) {
        ADD(huge_cache_hits, 1);
        dirty = len;
    } else {
        /* the system calls outside the lock */
        pthread_mutex_unlock(&ip_huge_lock);
        if (n)
            p = ip_huge_gather(len, r, n, &dirty);
        if (!p) {
            p = huge_map(len, align);
            dirty = 0;
        }
        got = len;
        pthread_mutex_lock(&ip_huge_lock);
        if (p && __huge_reserve() != 0) {
            pthread_mutex_unlock(&ip_huge_lock);
            vm_os_free(p, len);
            p = NULL;
            goto fail;
        }
    }
    if (p) {
        __huge_insert((uintptr_t)p, got, 0);
        HIGH(huge_max_blocks, ADD(huge_blocks, 1) + 1);
        HIGH(huge_max_bytes, ADD(huge_bytes, got) + got);
        __ip_huge_peak_note();
    }
out:
    pthread_mutex_unlock(&ip_huge_lock);
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
int ip_huge_free(void *p)
{
    struct huge_drop d = {0};
    int limited = vm_os_as_limited(0);
    pthread_mutex_lock(&ip_huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    if (!e) {
        pthread_mutex_unlock(&ip_huge_lock);
        return 0;
    }
    size_t len = e->len;
    if (e->hooked) {
        __huge_delete(e);
        pthread_mutex_unlock(&ip_huge_lock);
        hook_get()->free(p, len);
        ADD(nr_free, 1);
        return 1;
    }
    __ip_huge_pool_set_limited(limited);
    __huge_delete(e);
    SUB(huge_blocks, 1);
    SUB(huge_bytes, len);
    __ip_huge_pool_put((uintptr_t)p, len, &d);
    int reg = huge_decay_registered;
    huge_decay_registered = 1;
    pthread_mutex_unlock(&ip_huge_lock);
    ip_huge_drop_unmap(&d);
    if (!reg) {
        vm_purge_register(ip_huge_decay);
        vm_aspace_register(ip_huge_aspace_release);
    }
    vm_purge_kick(); /* something gives the memory back by time */
    ADD(nr_free, 1);
    return 1;
}

size_t ip_huge_usable(const void *p)
{
    pthread_mutex_lock(&ip_huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t len = e ? e->len : 0;
    pthread_mutex_unlock(&ip_huge_lock);
    return len;
}

/* Resizes a huge block: into the pool's range after it, or with mremap;
 * a block shrunk below half gives its tail to the pool.  NULL (errno
 * kept) leaves it be: the caller moves it. */
/* Resizes a block of the hook's home in place (ip_huge_lock dropped for
 * the hook's call: the block is the caller's, nobody else changes its
 * entry); NULL: the caller moves it. */
static void *hooked_resize(void *p, size_t old, size_t len)
{
    if (hook_get()->resize(p, old, len) != 0)
        return NULL;
    pthread_mutex_lock(&ip_huge_lock);
    __huge_find((uintptr_t)p)->len = len;
    pthread_mutex_unlock(&ip_huge_lock);
    if (len > old)
        ADD(grow_in_place, 1);
    return p;
}

void *ip_huge_realloc(void *p, size_t len)
{
    int saved = errno;
    void *q = NULL;
    struct huge_drop d = {0};
    int limited = vm_os_as_limited(0);
    pthread_mutex_lock(&ip_huge_lock);
    __ip_huge_pool_set_limited(limited);
    if (__huge_reserve() != 0) /* a move inserts before it deletes */
        goto out;
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t old = e->len;
    if (e->hooked) {
        pthread_mutex_unlock(&ip_huge_lock);
        q = hooked_resize(p, old, len);
        errno = saved;
        return q;
    }
    if (len <= old && len >= old / 2) { /* fits, and not much too big */
        q = p;
        goto out;
    }
    if (len < old) {
        e->len = len;
        __ip_huge_pool_put((uintptr_t)p + len, old - len, &d);
        SUB(huge_bytes, old - len);
        q = p;
        goto out;
    }
    if (__ip_huge_pool_grow_into(e, len)) {
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
            __huge_insert((uintptr_t)q, len, 0);
        }
    }
    HIGH(huge_max_bytes, ADD(huge_bytes, len - old) + len - old);
    __ip_huge_peak_note();
    if (q == p)
        ADD(grow_in_place, 1);
out:
    pthread_mutex_unlock(&ip_huge_lock);
    ip_huge_drop_unmap(&d);
    errno = saved;
    return q;
}
