/*
 * vm/mm/vmscan.c — page reclaim (2.4 mm/vmscan.c): the size limit of user
 * memory (vm_set_ram_pages), its watermarks, and the scan that frees
 * frames by swapping pages out.  Reclaim is direct: the allocating path
 * (vm_alloc_user_frame, from a fault) reclaims when free frames fall
 * below pages_low, up to pages_high, before it takes a frame — no kswapd
 * thread, so a fault never waits on another thread and a test is
 * deterministic.  try_to_free_pages(n) runs the same reclaim on demand.
 *
 * Reclaim first drops swap-cache pages no pte maps (__shrink_cache), then
 * runs swap_out over the mms in turn (each scanned from where its last
 * scan stopped, swap_address), a one-bit clock on every present private
 * anonymous page: a page not yet _PAGE_OLD is armed (see mm.h: host
 * mapping PROT_NONE, so its next access faults and marks it referenced);
 * a page still _PAGE_OLD when the hand comes back was not referenced and
 * goes to try_to_swap_out, which gives it a swap slot and a place in the
 * swap cache and replaces the pte with the swap entry; the last pte to
 * let go writes the page (only when dirty) and frees the frame.  A page of
 * the page cache (file mappings, shared anonymous memory) just loses the
 * pte, and vm_shrink_page_cache (filemap.c) frees the cached pages no pte
 * maps: clean file pages without I/O, dirty ones after write-back, shared
 * anonymous ones after a write to swap.  Pages of VM_LOCKED vmas and
 * PROT_NONE pages are never scanned; pinned pages (get_user_pages) are
 * passed over.
 *
 * Locking: the mms are taken in turn from the mm list (fork.c), with a
 * reference, never under its lock.  Reclaim from a fault already holds the
 * faulting mm's mmap_sem and only trylocks the others (an mm whose lock
 * is busy is skipped), so two faulting threads never wait on each other;
 * try_to_free_pages, holding nothing, takes each mmap_sem in turn.
 */
#include <errno.h>
#include <sched.h>
#include <time.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

#define SWAP_CLUSTER_MAX 32

/* ---- the limit and the watermarks ---- */

static unsigned long used_frames(void)
{
    struct vm_highmem *h = &vm_highmem;
    return h->nr_frames - 1 - __atomic_load_n(&h->nr_free, __ATOMIC_RELAXED);
}

unsigned long vm_free_user_frames(void)
{
    unsigned long limit = __atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED);
    unsigned long used = used_frames();
    return used >= limit ? 0 : limit - used;
}

/* 2.4's freepages.min/low/high, from the size of user memory. */
unsigned long vm_pages_min(void)
{
    unsigned long m =
        __atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED) / 128;
    return m < 4 ? 4 : m > 1024 ? 1024 : m;
}
#define pages_low() (2 * vm_pages_min())
#define pages_high() (3 * vm_pages_min())

/**
 * vm_set_ram_pages - the size of user memory, in frames (0: all of the
 * memfd).  Frames in use beyond a smaller size are reclaimed at once as
 * far as swap allows.  Process context, no lock held.
 */
KSLAB_API void vm_set_ram_pages(unsigned long pages)
{
    if (vm_highmem_init() != 0)
        return;
    if (!pages || pages > vm_highmem.nr_frames - 1)
        pages = vm_highmem.nr_frames - 1;
    __atomic_store_n(&vm_highmem.limit, pages, __ATOMIC_RELAXED);
    unsigned long used = used_frames();
    if (used + pages_high() > pages)
        do_try_to_free_pages(NULL, used + pages_high() - pages);
}

/* ---- swap_out ---- */

/* One present private anonymous page of mm (mmap_sem held): armed, or
 * unmapped to its swap entry.  Returns 1 when its frame was freed. */
_Atomic unsigned long vm_pgscan, vm_pgsteal;

/* The host side of arming the page at addr: inaccessible (PROT_NONE),
 * or with the userfaultfd handler thread a hole (the frame keeps the
 * data; the host kernel's access to an inaccessible page would fail
 * where a hole's faults into the thread: uffd.c).  0 or -errno. */
static int arm_host(struct mm_struct *mm, unsigned long addr)
{
    if (vm_uffd_served())
        return vm_host_unmap(mm, addr, addr + PAGE_SIZE);
    if (vm_uffd_demote(mm, addr, addr + PAGE_SIZE, 0) != 0)
        return -ENOMEM;
    return vm_os_protect(mm->window + addr, PAGE_SIZE, VM_OS_NONE);
}

static int try_to_swap_out(struct mm_struct *mm, unsigned long addr, pte_t *pte)
{
    pte_t e = *pte;
    atomic_fetch_add_explicit(&vm_pgscan, 1, memory_order_relaxed);
    struct page *page = pte_page(e);
    if (page_pins(page))
        return 0; /* a system call may be using its window (uaccess.c) */
    if (!(pte_val(e) & _PAGE_OLD)) {
        /* when the host refuses (vm.max_map_count), the page is simply
         * not armed this time */
        if (arm_host(mm, addr) == 0)
            *pte = __pte((pte_val(e) | _PAGE_OLD) & ~_PAGE_ACCESSED);
        return 0;
    }
    if (PageFlag(page, PG_pagecache)) {
        /* a page of the page cache (a file, shared anonymous memory):
         * only the pte goes, its dirt moving to the page; the cache keeps
         * the page and shrink_page_cache frees it once no pte maps it
         * (2.4's try_to_swap_out for a page with a mapping) */
        if (vm_host_unmap(mm, addr, addr + PAGE_SIZE) != 0)
            return 0;
        if (pte_val(e) & (_PAGE_RW | _PAGE_DIRTY))
            SetPageFlag(page, PG_dirty);
        *pte = __pte(0);
        mm->rss--;
        put_page(page); /* the cache still holds it */
        return 0;
    }
    int freed = 0, fresh = 0;
    swp_entry_t entry;
    /* PG_swapcache and page->index are read under vm_swap_lock only: the
     * page may be shared with other mms (fork), whose reclaim may add it
     * to the swap cache, or drop it from there, at any moment. */
    pthread_mutex_lock(&vm_swap_lock);
    if (PageFlag(page, PG_swapcache)) {
        entry = (swp_entry_t){page->index};
        if (!__swap_entry_writeok(entry))
            goto out; /* its area is going (swapoff): stay in memory */
    } else {
        entry = __get_swap_page();
        if (!entry.val)
            goto out; /* no swap space: the page stays, armed */
        fresh = 1;
    }
    /* the host mapping goes first: a frame is never freed while a window
     * may still reach it */
    if (vm_host_unmap(mm, addr, addr + PAGE_SIZE) != 0) {
        if (fresh)
            __swap_free(entry);
        goto out;
    }
    if (fresh) {
        __add_to_swap_cache(page, entry);
        SetPageFlag(page, PG_dirty);
    }
    if (pte_dirty(e))
        SetPageFlag(page, PG_dirty);
    __swap_duplicate(entry);
    *pte = swp_entry_to_pte(entry);
    mm->rss--;
    mm->swap_out++;
    put_page(page); /* the cache still holds it */
    if (page_count(page) == 1) {
        if (PageFlag(page, PG_dirty)) {
            if (vm_swap_io(entry, page, 1) != 0)
                goto out; /* stays cached and dirty */
            vm_pswpout++;
            ClearPageFlag(page, PG_dirty);
        }
        __delete_from_swap_cache(page);
        freed = 1;
        atomic_fetch_add_explicit(&vm_pgsteal, 1, memory_order_relaxed);
    }
out:
    pthread_mutex_unlock(&vm_swap_lock);
    return freed;
}

/* Every vma but a locked one (mlock: its pages never leave), an I/O one
 * or a driver's (its pages are the driver's, 2.4's VM_RESERVED): private
 * anonymous pages go to swap, page-cache pages (files, shared anonymous
 * memory) are unmapped for shrink_page_cache. */
static int scannable(struct vm_area_struct *v)
{
    return !(v->vm_flags & (VM_LOCKED | VM_IO | VM_RESERVED)) &&
           !vm_is_driver(v);
}

/* The clock hand over one mm, mmap_sem held: at most two laps of its
 * present pages (one to arm, one to evict), stopping when want frames are
 * freed.  Returns the frames freed. */
static unsigned long swap_out_mm(struct mm_struct *mm, unsigned long want)
{
    unsigned long freed = 0, budget = 2 * mm->rss + SWAP_CLUSTER_MAX;
    unsigned long addr = mm->swap_address;
    int wraps = 0;

    while (budget && freed < want) {
        struct vm_area_struct *v = __find_vma(mm, addr);
        if (!v) {
            if (++wraps > 2 || !mm->rss)
                break;
            addr = 0;
            continue;
        }
        if (addr < v->vm_start)
            addr = v->vm_start;
        if (!scannable(v)) {
            addr = v->vm_end;
            continue;
        }
        while (addr < v->vm_end && budget && freed < want) {
            pte_t *pte = vm_pte_lookup(mm, addr);
            if (!pte) {
                addr = (addr + PMD_SIZE) & PMD_MASK;
                continue;
            }
            if (pte_present(*pte) && !(pte_val(*pte) & _PAGE_PROTNONE) &&
                pte_pfn(*pte) != ZERO_PAGE_PFN) {
                budget--;
                freed += (unsigned long)try_to_swap_out(mm, addr, pte);
            }
            addr += PAGE_SIZE;
        }
    }
    mm->swap_address = addr;
    return freed;
}

/*
 * do_try_to_free_pages: frees up to want frames of user memory; held is
 * the mm whose mmap_sem the caller holds (a fault), or NULL.  Returns the
 * frames freed.
 */
unsigned long do_try_to_free_pages(struct mm_struct *held, unsigned long want)
{
    pthread_mutex_lock(&vm_swap_lock);
    unsigned long freed = __shrink_cache(want, 0);
    pthread_mutex_unlock(&vm_swap_lock);
    if (freed < want)
        freed += vm_shrink_page_cache(want - freed);

    for (int pass = 0; pass < 2 && freed < want; pass++) {
        int n = vm_mmlist_count();
        for (int i = 0; i < n && freed < want; i++) {
            struct mm_struct *mm = vm_mmlist_rotate();
            if (!mm)
                break;
            if (mm == held) {
                freed += swap_out_mm(mm, want - freed);
            } else if (!held) {
                pthread_mutex_lock(&mm->mmap_sem);
                freed += swap_out_mm(mm, want - freed);
                pthread_mutex_unlock(&mm->mmap_sem);
            } else if (pthread_mutex_trylock(&mm->mmap_sem) == 0) {
                freed += swap_out_mm(mm, want - freed);
                pthread_mutex_unlock(&mm->mmap_sem);
            }
            mmput(mm);
        }
        if (freed < want) {
            pthread_mutex_lock(&vm_swap_lock);
            freed += __shrink_cache(want - freed, 0);
            pthread_mutex_unlock(&vm_swap_lock);
        }
        if (freed < want)
            freed += vm_shrink_page_cache(want - freed);
    }
    return freed;
}

/**
 * try_to_free_pages - reclaim up to @pages frames of user memory now.
 * Returns the frames freed.  Process context, no lock held.
 */
KSLAB_API unsigned long try_to_free_pages(unsigned long pages)
{
    if (vm_highmem_init() != 0 || !pages)
        return 0;
    return do_try_to_free_pages(NULL, pages);
}

/*
 * A frame of user memory for a fault (or vmalloc) — direct reclaim: below
 * pages_low, frames are freed up to pages_high first; when none is free
 * even then, reclaim is retried a few times (another thread may hold the
 * mm whose pages could go) before giving up (NULL: out of memory).
 */
struct page *vm_alloc_user_frame(struct mm_struct *held, unsigned long hint)
{
    unsigned long free = vm_free_user_frames();
    if (free < pages_low())
        do_try_to_free_pages(held, pages_high() - free);
    for (int i = 0; i < 20; i++) {
        struct page *page = vm_frame_alloc(hint);
        if (page)
            return page;
        if (!do_try_to_free_pages(held, SWAP_CLUSTER_MAX) && i >= 2) {
            vm_os_sleep_ms(1);
        }
    }
    return NULL;
}
