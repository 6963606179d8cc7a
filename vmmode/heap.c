/*
 * vmmode/heap.c — the malloc family's big blocks in the process's mm.
 *
 * A block of M_MMAP_THRESHOLD bytes or more (128 KiB here unless the
 * program or MALLOC_MMAP_THRESHOLD_ says otherwise, glibc's
 * DEFAULT_MMAP_THRESHOLD_MIN) is what a 2.4 process's libc made it: an
 * anonymous private do_mmap mapping of the mm, given back by do_munmap,
 * so its pages are demand-paged (ZERO_PAGE on a read, do_anonymous_page
 * on a write), aged, swapped out and read back by the emulator.  Here is
 * the hook of interpose/large.h: the table of live blocks (address →
 * length), open addressing with backward-shift deletion, in host memory
 * of its own (no malloc here).  A block grows in place when the mm has
 * room after it (checked and mapped under vmm_lock, in one step) and
 * shrinks in place; else the caller moves it.
 *
 * Locking: vmm_lock guards the table and every mapping change.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "interpose/large.h"
#include "lib/options.h"
#include "vm/frames/os.h"
#include "vmmode/vmmode.h"

struct heap_ent {
    unsigned long addr; /* the mm's address; 0 = empty */
    unsigned long len;
};

static struct heap_ent *tab;
static unsigned long cap, used, live_bytes;

static unsigned long slot(unsigned long addr, unsigned long c)
{
    return (unsigned long)(((addr >> PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL) >>
                           17) &
           (c - 1);
}

static struct heap_ent *__find(unsigned long addr)
{
    if (!tab || !addr)
        return NULL;
    for (unsigned long i = slot(addr, cap);; i = (i + 1) & (cap - 1)) {
        if (tab[i].addr == addr)
            return &tab[i];
        if (!tab[i].addr)
            return NULL;
    }
}

static void __put(struct heap_ent *t, unsigned long c, unsigned long addr,
                  unsigned long len)
{
    unsigned long i = slot(addr, c);
    while (t[i].addr)
        i = (i + 1) & (c - 1);
    t[i].addr = addr;
    t[i].len = len;
}

/* Room for one more entry (at most half full): 0 or -ENOMEM. */
static int __reserve(void)
{
    if ((used + 1) * 2 <= cap)
        return 0;
    unsigned long nc = cap ? cap * 2 : 1024;
    struct heap_ent *nt = vm_os_alloc(nc * sizeof *nt, 0, 0);
    if (!nt)
        return -ENOMEM;
    for (unsigned long i = 0; i < cap; i++)
        if (tab[i].addr)
            __put(nt, nc, tab[i].addr, tab[i].len);
    if (tab)
        vm_os_free(tab, cap * sizeof *tab);
    tab = nt;
    cap = nc;
    return 0;
}

static void __delete(struct heap_ent *e)
{
    unsigned long i = (unsigned long)(e - tab), j = i;
    for (;;) {
        j = (j + 1) & (cap - 1);
        if (!tab[j].addr)
            break;
        unsigned long k = slot(tab[j].addr, cap);
        /* j's entry may move to i when its home k is not in (i, j] */
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i].addr = 0;
    tab[i].len = 0;
    used--;
}

static void *heap_alloc(size_t len, size_t align)
{
    if (vmm_ready() != 0 || len > TASK_SIZE)
        return NULL;
    unsigned long extra = align > PAGE_SIZE ? align - PAGE_SIZE : 0;
    len = PAGE_ALIGN(len);
    void *p = NULL;
    pthread_mutex_lock(&vmm_lock);
    if (__reserve() != 0)
        goto out;
    unsigned long a =
        do_mmap(vmm_mm, -1, 0, len + extra, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (IS_ERR_VALUE(a))
        goto out;
    if (extra) {
        uintptr_t h = (uintptr_t)vmm_host(a);
        unsigned long lead =
            (unsigned long)(((h + align - 1) & ~(uintptr_t)(align - 1)) - h);
        if (lead)
            do_munmap(vmm_mm, a, lead);
        if (extra - lead)
            do_munmap(vmm_mm, a + lead + len, extra - lead);
        a += lead;
    }
    __put(tab, cap, a, len);
    used++;
    live_bytes += len;
    p = vmm_host(a);
out:
    pthread_mutex_unlock(&vmm_lock);
    return p;
}

static int heap_free(void *p)
{
    if (!vmm_inside(p, 1))
        return 0;
    unsigned long a = vmm_user(p);
    pthread_mutex_lock(&vmm_lock);
    struct heap_ent *e = __find(a);
    if (!e) {
        pthread_mutex_unlock(&vmm_lock);
        return 0;
    }
    unsigned long len = e->len;
    __delete(e);
    live_bytes -= len;
    do_munmap(vmm_mm, a, len);
    pthread_mutex_unlock(&vmm_lock);
    return 1;
}

static size_t heap_usable(const void *p)
{
    if (!vmm_inside(p, 1))
        return 0;
    pthread_mutex_lock(&vmm_lock);
    struct heap_ent *e = __find(vmm_user(p));
    size_t len = e ? e->len : 0;
    pthread_mutex_unlock(&vmm_lock);
    return len;
}

static void *heap_resize(void *p, size_t len)
{
    void *q = NULL;
    len = PAGE_ALIGN(len);
    unsigned long a = vmm_user(p);
    pthread_mutex_lock(&vmm_lock);
    struct heap_ent *e = __find(a);
    if (!e || !len)
        goto out;
    if (len <= e->len) {
        if (len < e->len && do_munmap(vmm_mm, a + len, e->len - len) != 0)
            goto out;
        live_bytes -= e->len - len;
        e->len = len;
        q = p;
    } else if (vmm_room(a + e->len, len - e->len)) {
        unsigned long r = do_mmap(vmm_mm, -1, a + e->len, len - e->len,
                                  PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0);
        if (IS_ERR_VALUE(r))
            goto out;
        live_bytes += len - e->len;
        e->len = len;
        q = p;
    }
out:
    pthread_mutex_unlock(&vmm_lock);
    return q;
}

static const struct ip_huge_hook heap_hook = {
    .alloc = heap_alloc,
    .free = heap_free,
    .usable = heap_usable,
    .resize = heap_resize,
};

void vmm_heap_init(void)
{
    if (!(kslab_opt.glibc_set & (1u << KSLAB_GLIBC_MMAP_THRESHOLD)))
        __atomic_store_n(&ip_large_mmap_threshold, 128UL << 10,
                         __ATOMIC_RELAXED);
    ip_huge_set_hook(&heap_hook);
}

void vmm_heap_stats(unsigned long *blocks, unsigned long *bytes)
{
    pthread_mutex_lock(&vmm_lock);
    *blocks = used;
    *bytes = live_bytes;
    pthread_mutex_unlock(&vmm_lock);
}

/* The child of a host fork has the parent's table (a private copy of
 * host memory) and a copy of the mm: nothing to change. */
void vmm_heap_fork_child(void) {}
