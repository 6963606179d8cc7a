/*
 * vm/mm/memory.c — page tables and demand paging (2.4 mm/memory.c): the
 * pgd → pmd → pte walk and allocation, handle_mm_fault → handle_pte_fault
 * → do_no_page / do_anonymous_page / do_wp_page / do_swap_page,
 * zap_page_range, clear_page_tables, copy_page_range (fork's COW),
 * change_protection and make_pages_present.  The page tables are the
 * source of truth: each change of a pte here is followed by the host side
 * of it (host_map.c, vm_host_*), which maps the window as the ptes say;
 * an anonymous fault in a linear range of the userfaultfd back end is
 * resolved there (uffd.c, vm_uffd_anon_fault).
 *
 * Locking: all of it runs with mm->mmap_sem held (the __ functions and the
 * helpers), including from the SIGSEGV handler; frames are reference
 * counted atomically because forked mms share them.
 */
#include <errno.h>
#include <string.h>

#include "lib/init.h"
#include "lib/options.h"
#include "vm/frames/os.h"
#include "vm/mm/mm.h"

static kmem_cache_t *pgtable_cachep;
static struct kslab_once pgtable_once = KSLAB_ONCE_INIT; /* lib/init.h */

static void pgtable_cache_init(void)
{
    pgtable_cachep = kmem_cache_create("pgtable", PAGE_SIZE, 0,
                                       SLAB_HWCACHE_ALIGN, NULL, NULL);
}

static void *pgtable_alloc(void)
{
    kslab_once(&pgtable_once, pgtable_cache_init);
    void *p =
        pgtable_cachep ? kmem_cache_alloc(pgtable_cachep, GFP_KERNEL) : NULL;
    if (p)
        memset(p, 0, PAGE_SIZE);
    return p;
}

static void pgtable_free(void *p)
{
    kmem_cache_free(pgtable_cachep, p);
}

/* The pte of addr, or NULL when its table does not exist. */
pte_t *vm_pte_lookup(struct mm_struct *mm, unsigned long addr)
{
    if (addr >= TASK_SIZE)
        return NULL;
    pgd_t *pgd = pgd_offset(mm, addr);
    if (!pgd->pgd)
        return NULL;
    pmd_t *pmd = pmd_offset(pgd, addr);
    if (!pmd->pmd)
        return NULL;
    return pte_offset(pmd, addr);
}

/* pmd_alloc + pte_alloc: the pte of addr, building tables as needed. */
pte_t *vm_pte_alloc(struct mm_struct *mm, unsigned long addr)
{
    pgd_t *pgd = pgd_offset(mm, addr);
    if (!pgd->pgd && !(pgd->pgd = pgtable_alloc()))
        return NULL;
    pmd_t *pmd = pmd_offset(pgd, addr);
    if (!pmd->pmd && !(pmd->pmd = pgtable_alloc()))
        return NULL;
    return pte_offset(pmd, addr);
}

/* The pte bits a fresh mapping of a vma with these flags gets (2.4's
 * protection_map: private mappings are read-only until a write fault). */
unsigned long vm_pte_prot(unsigned long vm_flags)
{
    if (!(vm_flags & (VM_READ | VM_WRITE | VM_EXEC)))
        return _PAGE_PROTNONE | _PAGE_USER;
    if ((vm_flags & (VM_SHARED | VM_WRITE)) == (VM_SHARED | VM_WRITE))
        return _PAGE_PRESENT | _PAGE_USER | _PAGE_RW;
    return _PAGE_PRESENT | _PAGE_USER;
}

int vm_access_ok(struct vm_area_struct *vma, int write)
{
    if (write)
        return (vma->vm_flags & VM_WRITE) != 0;
    return (vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC)) != 0;
}

/* ---- faults ---- */

/* A frame next to the neighbours' frames, so the host mappings coalesce. */
static unsigned long frame_hint(struct mm_struct *mm, unsigned long addr)
{
    pte_t *p = addr >= PAGE_SIZE ? vm_pte_lookup(mm, addr - PAGE_SIZE) : NULL;
    if (p && pte_present(*p) && pte_pfn(*p) != ZERO_PAGE_PFN)
        return pte_pfn(*p) + 1;
    p = vm_pte_lookup(mm, addr + PAGE_SIZE);
    if (p && pte_present(*p) && pte_pfn(*p) > 1)
        return pte_pfn(*p) - 1;
    return 0;
}

static struct page *alloc_zeroed(struct mm_struct *mm, unsigned long addr)
{
    struct page *page = vm_alloc_user_frame(mm, frame_hint(mm, addr));
    if (page && !PageFlag(page, PG_clean))
        memset(vm_kmap(page), 0, PAGE_SIZE);
    if (page)
        ClearPageFlag(page, PG_clean);
    return page;
}

/*
 * The copy of a COW break (and of a private copy of a file page or a
 * pinned page): made by the host inside the memfd (copy_file_range), so
 * neither frame's page of the kmap is touched.  Through the kmap the copy
 * would take a host fault on each side whose kmap page this process never
 * touched — the source was written through a window, the destination is
 * a fresh hole of the memfd — and such a fault, or the populate that
 * avoids it, costs about what the whole call does (docs/vm.md, fault
 * costs).  Without copy_file_range (refused once: never asked again) the
 * kmap it is, the destination populated first.
 */
static void copy_frame(struct page *to, struct page *from)
{
    if (vm_os_copy_range(
            vm_highmem.memfd, (off_t)(vm_frame_pfn(from) << PAGE_SHIFT),
            (off_t)(vm_frame_pfn(to) << PAGE_SHIFT), PAGE_SIZE) == 0)
        return;
    if (PageFlag(to, PG_clean))
        vm_os_populate(vm_kmap(to), PAGE_SIZE, 1);
    memcpy(vm_kmap(to), vm_kmap(from), PAGE_SIZE);
}

/*
 * Fault-around for anonymous memory.  Later Linux maps, on a fault in a
 * file mapping, the neighbouring pages the page cache already holds
 * (do_fault_around, fault_around_bytes: 64 KiB); its large anonymous
 * folios do the like for anonymous memory.  Here a write fault at a none
 * pte of a private anonymous vma also gives the none ptes around it —
 * those of the naturally aligned window of KSLAB_VM_FAULT_AROUND pages
 * holding the address, inside the vma — zeroed frames of their own,
 * mapped writable and dirty with the faulting page by one host call for
 * each stretch of consecutive frames (usually one: vm_host_map_fresh_run).
 * A touched neighbour (present, or a swap entry) ends the run: nothing is
 * done to it.  The neighbours
 * count in rss as the pages they are; pgfault (min_flt) counts the faults
 * taken, one for the run — what the hardware took, not the 2.4 count of
 * one per page first touched.  Reads still map the ZERO_PAGE one page at
 * a time (no frame is spent on a page that may never be written).  No
 * fault-around below the high watermark of free frames: a speculative
 * page is never worth a reclaim.  The userfaultfd back end resolves the
 * same run in its linear ranges with one ioctl (uffd.c).
 */
#if defined(__SANITIZE_THREAD__)
/* TSan counts a range mapped by one thread as written by it (see
 * host_map.c's PREMAP_PAGES): pages mapped around would look racy. */
#define FAULT_AROUND_DEFAULT 1
#else
#define FAULT_AROUND_DEFAULT 16
#endif
#define FAULT_AROUND_MAX 512

static unsigned long fault_around_pages(void)
{
    unsigned long n = kslab_opt.vm_fault_around;
    return !n                     ? FAULT_AROUND_DEFAULT
           : n > FAULT_AROUND_MAX ? FAULT_AROUND_MAX
                                  : n;
}

unsigned long vm_fault_around_run(struct vm_area_struct *vma,
                                  unsigned long addr, pte_t *pte,
                                  unsigned long *lo)
{
    unsigned long nr = fault_around_pages(), start, end;
    *lo = addr;
    if (nr < 2)
        return 1;
    start = addr & ~((nr << PAGE_SHIFT) - 1);
    end = start + (nr << PAGE_SHIFT);
    if (start < vma->vm_start)
        start = vma->vm_start;
    if (end > vma->vm_end)
        end = vma->vm_end;
    unsigned long a = addr, b = addr + PAGE_SIZE;
    while (a > start && pte_none(pte[-(long)((addr - a) >> PAGE_SHIFT) - 1]))
        a -= PAGE_SIZE;
    while (b < end && pte_none(pte[(b - addr) >> PAGE_SHIFT]))
        b += PAGE_SIZE;
    *lo = a;
    return (b - a) >> PAGE_SHIFT;
}

static void zero_frame(struct page *page)
{
    if (!PageFlag(page, PG_clean))
        memset(vm_kmap(page), 0, PAGE_SIZE);
    ClearPageFlag(page, PG_clean);
}

/* Gives back the frames of ptes [0, n) and makes them none again. */
static void around_undo(pte_t *ptes, unsigned long n)
{
    struct vm_free_batch batch = {0, 0};
    for (unsigned long i = 0; i < n; i++) {
        vm_frame_put(pte_page(ptes[i]), &batch);
        ptes[i] = __pte(0);
    }
    vm_free_batch_flush(&batch);
}

/*
 * The write fault at addr with its none neighbours (see above): 1 when
 * resolved, 0 when there is nothing around to map or no frame to spare
 * (the caller maps the one page as without fault-around).  Each frame is
 * asked for next to the one before, so the run is usually one stretch of
 * consecutive frames and one host call; where it is not, each stretch is
 * its own.  A stretch the host refuses is given back (its pages stay
 * untouched) and the fault, if it was there, is retried alone.
 */
static int do_anonymous_around(struct mm_struct *mm, struct vm_area_struct *vma,
                               unsigned long addr, pte_t *pte)
{
    unsigned long lo, n = vm_fault_around_run(vma, addr, pte, &lo);
    if (n < 2 || vm_free_user_frames() < n + 3 * vm_pages_min())
        return 0;
    pte_t *ptes = pte - ((addr - lo) >> PAGE_SHIFT);
    unsigned long hint = frame_hint(mm, lo);
    for (unsigned long i = 0; i < n; i++) {
        struct page *page = vm_frame_alloc(hint); /* no reclaim */
        if (!page) {
            around_undo(ptes, i);
            return 0;
        }
        zero_frame(page);
        hint = vm_frame_pfn(page) + 1;
        ptes[i] =
            mk_pte(page, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW | _PAGE_DIRTY);
    }
    for (unsigned long i = 0, k; i < n; i += k) {
        for (k = 1; i + k < n && pte_pfn(ptes[i + k]) == pte_pfn(ptes[i]) + k;
             k++)
            ;
        pte_t first = ptes[i];
        if (vm_host_map_fresh_run(mm, lo + (i << PAGE_SHIFT), ptes + i, k,
                                  first) < 0) {
            /* the refused stretch's ptes are none again: its frames
             * from first; the later ones from their ptes */
            for (unsigned long j = 0; j < k; j++)
                ptes[i + j] = __pte(pte_val(first) + (j << PAGE_SHIFT));
            around_undo(ptes + i, n - i);
            n = i;
            break;
        }
    }
    mm->rss += n;
    if (pte_none(*pte))
        return 0;
    *pte = __pte(pte_val(*pte) | _PAGE_ACCESSED);
    return 1;
}

/* A not-present page of an anonymous private vma: a read maps the shared
 * ZERO_PAGE read-only (no rss), a write gets a zeroed frame of its own,
 * and its untouched neighbours too (fault-around, above). */
static int do_anonymous_page(struct mm_struct *mm, struct vm_area_struct *vma,
                             unsigned long addr, pte_t *pte, int write_access)
{
    int r = vm_uffd_anon_fault(mm, vma, addr, pte, write_access);
    if (r)
        return r;
    mm->min_flt++;
    if (!write_access) {
        mm->zero_flt++;
        return vm_host_set_pte(
            mm, addr, pte, mk_pte(ZERO_PAGE(addr), _PAGE_PRESENT | _PAGE_USER));
    }
    if (do_anonymous_around(mm, vma, addr, pte))
        return 1;
    struct page *page = alloc_zeroed(mm, addr);
    if (!page)
        return -1;
    r = vm_host_map_fresh(mm, vma, addr, pte,
                          mk_pte(page, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW |
                                           _PAGE_DIRTY | _PAGE_ACCESSED));
    if (r < 0)
        put_page(page);
    else
        mm->rss++;
    return r;
}

/* A not-present page: the vma's nopage brings it in (file, shared
 * object), or it is anonymous.  A private write gets its own copy. */
static int do_no_page(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long addr, int write_access, pte_t *pte)
{
    if (!vma->vm_ops || !vma->vm_ops->nopage)
        return do_anonymous_page(mm, vma, addr, pte, write_access);
    struct page *page = vma->vm_ops->nopage(vma, addr, write_access);
    if (page == NOPAGE_SIGBUS)
        return 0;
    if (page == NOPAGE_OOM)
        return -1;
    /* a private write gets its own copy — but a driver's page is mapped
     * as it is (its mapping is never copy-on-write) */
    if (write_access && !(vma->vm_flags & VM_SHARED) && !vm_is_driver(vma) &&
        page_count(page) > 1) {
        struct page *new = vm_alloc_user_frame(mm, frame_hint(mm, addr));
        if (!new) {
            put_page(page);
            return -1;
        }
        copy_frame(new, page);
        ClearPageFlag(new, PG_clean);
        put_page(page);
        page = new;
    }
    pte_t entry = mk_pte(page, pgprot_val(vma->vm_page_prot));
    if (write_access) {
        entry = pte_mkdirty(pte_mkwrite(entry));
        if ((vma->vm_flags & VM_SHARED) && !vm_is_driver(vma))
            SetPageFlag(page, PG_dirty);
    } else if ((vma->vm_flags & VM_SHARED) && vma->vm_file >= 0) {
        /* a shared file page is mapped clean: its first store faults
         * (do_wp_page) and marks it dirty — no hardware dirty bit here */
        entry = pte_wrprotect(entry);
    }
    mm->min_flt++;
    int r = vm_host_set_pte(mm, addr, pte, entry);
    if (r < 0)
        put_page(page);
    else
        mm->rss++;
    return r;
}

/* A write to a present, write-protected page: shared mappings just become
 * writable; a private page is reused when this pte holds its only
 * reference, and copied otherwise (break_cow). */
static int do_wp_page(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long addr, pte_t *pte, pte_t entry)
{
    struct page *old = pte_page(entry);
    int zero = pte_pfn(entry) == ZERO_PAGE_PFN;

    mm->min_flt++;
    /* the only reference is ours (a cached page has the cache's too); a
     * driver's page is written in place */
    if (((vma->vm_flags & VM_SHARED) && !vm_is_driver(vma)) ||
        (vm_is_driver(vma) && !zero) ||
        (!zero && atomic_load_explicit(&old->count, memory_order_acquire) -
                          (int)page_pins(old) ==
                      1)) {
        /* a shared page stored to is dirty: written back before it goes
         * (2.4 marks the pte; the page cache reads it from the page) */
        if ((vma->vm_flags & VM_SHARED) && !zero && !vm_is_driver(vma))
            SetPageFlag(old, PG_dirty);
        return vm_host_set_pte(mm, addr, pte, pte_mkdirty(pte_mkwrite(entry)));
    }
    if (!zero && page_count(old) == 2) {
        /* only we and the swap cache hold it, and no other pte holds its
         * slot: reuse it, dirty (as 2.4 does: "marked dirty").  Under
         * vm_swap_lock: another mm's reclaim changes PG_swapcache. */
        pthread_mutex_lock(&vm_swap_lock);
        int mine = PageFlag(old, PG_swapcache) && page_count(old) == 2 &&
                   __swap_count((swp_entry_t){old->index}) == 1;
        if (mine)
            SetPageFlag(old, PG_dirty);
        pthread_mutex_unlock(&vm_swap_lock);
        if (mine)
            return vm_host_set_pte(mm, addr, pte,
                                   pte_mkdirty(pte_mkwrite(entry)));
    }
    /* The new frame may come from direct reclaim, which scans this mm as
     * well (held): it may arm or swap out this very pte and drop its
     * reference.  So, as 2.4 holds old across the allocation with
     * page_table_lock dropped, we keep a reference of our own and go on
     * only if the pte is still the one that faulted (else the access is
     * simply retried). */
    if (!zero)
        get_page(old);
    struct page *new = zero ? alloc_zeroed(mm, addr)
                            : vm_alloc_user_frame(mm, frame_hint(mm, addr));
    int r = -1;
    if (!new)
        goto out;
    r = 1;
    if (pte_val(*pte) != pte_val(entry)) {
        put_page(new);
        goto out;
    }
    if (!zero) {
        copy_frame(new, old);
        ClearPageFlag(new, PG_clean);
    }
    r = vm_host_set_pte(mm, addr, pte,
                        mk_pte(new, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW |
                                        _PAGE_DIRTY | _PAGE_ACCESSED));
    if (r < 0) {
        put_page(new);
        goto out;
    }
    if (zero) {
        mm->rss++;
        return r;
    }
    mm->cow_flt++;
    vm_pte_page_put(old, NULL); /* the pte's reference */
out:
    if (!zero)
        vm_pte_page_put(old, NULL); /* ours */
    return r;
}

/*
 * Maps page (the swap-cache page of entry, with a reference for us) where
 * the pte held entry, and drops the pte's count of entry.  The page stays
 * in the swap cache; it is mapped writable (and dirty) only for a write
 * when nobody else can reach it.  Returns 1, or -1 when the host refused
 * (the pte and counts are as before, our reference dropped).
 */
int vm_swap_pte_in(struct mm_struct *mm, struct vm_area_struct *vma,
                   unsigned long addr, pte_t *pte, struct page *page,
                   swp_entry_t entry, int write_access)
{
    pte_t new = mk_pte(page, pgprot_val(vma->vm_page_prot) | _PAGE_ACCESSED);
    pthread_mutex_lock(&vm_swap_lock);
    __swap_free(entry);
    int mine = PageFlag(page, PG_swapcache) && page_count(page) == 2 &&
               __swap_count(entry) == 1;
    if (write_access && mine && !(pte_val(new) & _PAGE_PROTNONE)) {
        new = pte_mkdirty(pte_mkwrite(new));
        SetPageFlag(page, PG_dirty);
    }
    pthread_mutex_unlock(&vm_swap_lock);
    if (vm_host_set_pte(mm, addr, pte, new) < 0) {
        swap_duplicate(entry);
        vm_put_swapcache_page(page);
        return -1;
    }
    mm->rss++;
    return 1;
}

/*
 * do_swap_page: the pte holds a swap entry.  The page is looked up in the
 * swap cache (another mm sharing the slot, or readahead, may have brought
 * it in: a minor fault); otherwise the aligned cluster around it is read
 * ahead and the page itself read (a major fault, swap_in counted).
 */
static int do_swap_page(struct mm_struct *mm, struct vm_area_struct *vma,
                        unsigned long address, pte_t *page_table,
                        pte_t orig_pte, int write_access)
{
    swp_entry_t entry = pte_to_swp_entry(orig_pte);
    int major = 0;
    struct page *page = lookup_swap_cache(entry);
    if (!page) {
        swapin_readahead(mm, entry);
        page = lookup_swap_cache(entry);
        if (!page) {
            page = read_swap_cache_async(mm, entry, 0);
            if (!page)
                return -1;
        }
        major = 1;
    }
    int r =
        vm_swap_pte_in(mm, vma, address, page_table, page, entry, write_access);
    if (r < 0)
        return r;
    if (major) {
        mm->maj_flt++;
        mm->swap_in++;
        return 2;
    }
    mm->min_flt++;
    return 1;
}

static int handle_pte_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                            unsigned long addr, int write_access, pte_t *pte)
{
    pte_t entry = *pte;
    if (pte_none(entry))
        return do_no_page(mm, vma, addr, write_access, pte);
    if (!pte_present(entry))
        return do_swap_page(mm, vma, addr, pte, entry, write_access);
    if (pte_val(entry) & _PAGE_OLD) {
        /* a reference the aging scan was waiting for (see mm.h) */
        entry = __pte((pte_val(entry) & ~_PAGE_OLD) | _PAGE_ACCESSED);
        *pte = entry;
        if (!write_access || pte_write(entry))
            return vm_host_map_page(mm, addr, entry) == 0 ? 1 : -1;
    }
    if (write_access && !pte_write(entry))
        return do_wp_page(mm, vma, addr, pte, entry);
    /* The pte already allows it (another thread won the race): make sure
     * the host agrees and let the access retry. */
    return vm_host_map_page(mm, addr, entry) == 0 ? 1 : -1;
}

/* Returns 1 (minor) or 2 (major) when resolved, 0 for SIGBUS, -1 when out
 * of memory.  mmap_sem held; the access was checked against the vma. */
int __handle_mm_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long address, int write_access)
{
    address &= PAGE_MASK;
    pte_t *pte = vm_pte_alloc(mm, address);
    if (!pte)
        return -1;
    return handle_pte_fault(mm, vma, address, write_access, pte);
}

KSLAB_API int handle_mm_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                              unsigned long address, int write_access)
{
    int r = 0;
    if (!mm)
        return 0; /* as for an address no vma covers: SIGBUS */
    pthread_mutex_lock(&mm->mmap_sem);
    if (vma && vma->vm_mm == mm && vma->vm_start <= address &&
        address < vma->vm_end && vm_access_ok(vma, write_access))
        r = __handle_mm_fault(mm, vma, address, write_access);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

/* make_pages_present: faults in every page of [addr, end) as a locked
 * vma wants it (written when the vma is writable, so no fault is left). */
int __make_pages_present(struct mm_struct *mm, unsigned long addr,
                         unsigned long end)
{
    for (addr &= PAGE_MASK; addr < end; addr += PAGE_SIZE) {
        struct vm_area_struct *vma = __find_vma(mm, addr);
        if (!vma || vma->vm_start > addr)
            return -ENOMEM;
        int write = (vma->vm_flags & VM_WRITE) != 0;
        if (!vm_access_ok(vma, write))
            continue;
        pte_t *pte = vm_pte_lookup(mm, addr);
        if (pte && pte_present(*pte) && !(pte_val(*pte) & _PAGE_OLD) &&
            (!write || pte_write(*pte)))
            continue;
        if (__handle_mm_fault(mm, vma, addr, write) <= 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- unmapping and teardown ---- */

/* Drops the frames of [address, address + size) of vma and clears their
 * ptes; the host window must already be unmapped there.  Shared file
 * pages that may have been written are marked dirty and written back. */
void zap_page_range(struct mm_struct *mm, struct vm_area_struct *vma,
                    unsigned long address, unsigned long size)
{
    unsigned long end = address + size;
    int shared = vma->vm_ops == &vm_shared_ops;
    struct vm_free_batch batch = {0, 0};

    for (unsigned long a = address; a < end;) {
        pte_t *pte = vm_pte_lookup(mm, a);
        if (!pte) {
            a = (a + PMD_SIZE) & PMD_MASK;
            continue;
        }
        if (pte_is_swap(*pte)) {
            free_swap_and_cache(pte_to_swp_entry(*pte));
            *pte = __pte(0);
        } else if (!pte_none(*pte)) {
            struct page *page = pte_page(*pte);
            if (shared && (pte_val(*pte) & (_PAGE_RW | _PAGE_DIRTY)))
                __atomic_fetch_or(&page->flags, 1UL << PG_dirty,
                                  __ATOMIC_RELAXED);
            if (pte_pfn(*pte) != ZERO_PAGE_PFN)
                mm->rss--;
            *pte = __pte(0);
            vm_pte_page_put(page, &batch);
        }
        a += PAGE_SIZE;
    }
    vm_free_batch_flush(&batch);
    if (shared && vma->vm_file >= 0)
        vm_shared_writeback(vma, address, end);
}

/* Frees the page tables of [start, end) that no vma uses any more. */
void clear_page_tables(struct mm_struct *mm, unsigned long start,
                       unsigned long end)
{
    for (unsigned long a = start & PMD_MASK; a < end && a < TASK_SIZE;
         a += PMD_SIZE) {
        pgd_t *pgd = pgd_offset(mm, a);
        if (!pgd->pgd)
            continue;
        pmd_t *pmd = pmd_offset(pgd, a);
        if (!pmd->pmd)
            continue;
        struct vm_area_struct *v = __find_vma(mm, a);
        if (v && v->vm_start < a + PMD_SIZE)
            continue;
        for (int i = 0; i < PTRS_PER_PTE; i++)
            if (!pte_none(pmd->pmd[i]))
                kslab_die("clear_page_tables(): live pte at %lx",
                          a + ((unsigned long)i << PAGE_SHIFT));
        pgtable_free(pmd->pmd);
        pmd->pmd = NULL;
    }
}

/* The user half of the pgd; the kernel half is swapper_pg_dir's. */
void vm_pgtable_free_all(struct mm_struct *mm)
{
    for (int i = 0; i < (int)USER_PTRS_PER_PGD; i++) {
        if (!mm->pgd[i].pgd)
            continue;
        for (int j = 0; j < PTRS_PER_PMD; j++)
            if (mm->pgd[i].pgd[j].pmd)
                pgtable_free(mm->pgd[i].pgd[j].pmd);
        pgtable_free(mm->pgd[i].pgd);
        mm->pgd[i].pgd = NULL;
    }
}

/* ---- fork and mprotect ---- */

/*
 * copy_page_range: the child's ptes of vma are the parent's, each frame
 * gaining a reference.  A COW mapping — (vm_flags & (VM_SHARED |
 * VM_MAYWRITE)) == VM_MAYWRITE — is write-protected on both sides, so the
 * first write on either side faults into do_wp_page; a pinned page is
 * copied for the child instead (copy_pinned_page).  The parent's host
 * mappings are write-protected here; the child's are built by the caller.
 */
/* A pinned page of a COW mapping at fork: the child's pte d gets a
 * copy, so the parent's mapping (which a system call may be using) is
 * not write-protected (later Linux does the same for pages pinned for
 * DMA).  The child's host mapping is built by the caller. */
static int copy_pinned_page(struct mm_struct *dst, unsigned long addr, pte_t *d,
                            pte_t pte)
{
    struct page *new = vm_alloc_user_frame(dst, frame_hint(dst, addr));
    if (!new)
        return -ENOMEM;
    copy_frame(new, pte_page(pte));
    ClearPageFlag(new, PG_clean);
    *d = mk_pte(new, (pte_val(pte) & ~PAGE_MASK & ~_PAGE_OLD) | _PAGE_DIRTY);
    dst->rss++;
    return 0;
}

int copy_page_range(struct mm_struct *dst, struct mm_struct *src,
                    struct vm_area_struct *vma)
{
    int cow = (vma->vm_flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE &&
              !vm_is_driver(vma);
    int wrprotected = 0;

    for (unsigned long a = vma->vm_start; a < vma->vm_end;) {
        pte_t *s = vm_pte_lookup(src, a);
        if (!s) {
            a = (a + PMD_SIZE) & PMD_MASK;
            continue;
        }
        if (pte_is_swap(*s)) {
            pte_t *d = vm_pte_alloc(dst, a);
            if (!d)
                return -ENOMEM;
            swap_duplicate(pte_to_swp_entry(*s));
            *d = *s;
        } else if (!pte_none(*s)) {
            pte_t *d = vm_pte_alloc(dst, a);
            if (!d)
                return -ENOMEM;
            pte_t pte = *s;
            if (cow && pte_pfn(pte) != ZERO_PAGE_PFN &&
                page_pins(pte_page(pte))) {
                /* pinned: the parent keeps it, writable; the child gets
                 * a copy now */
                int r = copy_pinned_page(dst, a, d, pte);
                if (r)
                    return r;
                a += PAGE_SIZE;
                continue;
            }
            if (cow && pte_write(pte)) {
                pte = pte_wrprotect(pte);
                *s = pte;
                wrprotected = 1;
            }
            if (vma->vm_flags & VM_SHARED)
                pte = pte_mkclean(pte);
            get_page(pte_page(pte));
            if (pte_pfn(pte) != ZERO_PAGE_PFN)
                dst->rss++;
            *d = pte;
        }
        a += PAGE_SIZE;
    }
    if (wrprotected)
        vm_host_protect(src, vma->vm_start, vma->vm_end);
    return 0;
}

/* change_protection: the ptes of [start, end) of vma take the vma's new
 * vm_page_prot; a private page that is dirty and only ours stays
 * writable (no needless fault after mprotect back to PROT_WRITE). */
void vm_change_protection(struct mm_struct *mm, struct vm_area_struct *vma,
                          unsigned long start, unsigned long end)
{
    unsigned long prot = pgprot_val(vma->vm_page_prot);
    int keep_rw = (vma->vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE;
    /* a clean shared file page stays read-only: its next store must
     * fault to mark it dirty (do_wp_page) */
    int clean_ro = (vma->vm_flags & VM_SHARED) && vma->vm_file >= 0;

    for (unsigned long a = start; a < end;) {
        pte_t *pte = vm_pte_lookup(mm, a);
        if (!pte) {
            a = (a + PMD_SIZE) & PMD_MASK;
            continue;
        }
        if (pte_present(*pte)) {
            pte_t old = *pte;
            pte_t new = __pte((pte_pfn(old) << PAGE_SHIFT) | prot |
                              (pte_val(old) & _PAGE_DIRTY));
            if (keep_rw && pte_dirty(old) && pte_pfn(old) != ZERO_PAGE_PFN &&
                page_unpinned_count(pte_page(old)) == 1)
                new = pte_mkwrite(new);
            if (clean_ro && !pte_dirty(old))
                new = pte_wrprotect(new);
            *pte = new;
        }
        a += PAGE_SIZE;
    }
    vm_host_protect(mm, start, end);
}

/* ---- truncation (2.4's vmtruncate) ---- */

/*
 * vmtruncate_list: the pages from file page pgoff on leave every vma of
 * mm on the share list at *head (i_mmap or i_mmap_shared): host window
 * first, then ptes and frames (zap_page_range), as 2.4's vmtruncate_list
 * does for every vma of the list.  mm->mmap_sem held; pagecache_lock is
 * taken only to step along the list and dropped to zap (zap_page_range
 * writes back under it).  A vma of mm cannot leave the list while its
 * mmap_sem is held, so the walk resumes from the one just zapped.
 * Returns 0, or -ENOMEM when the host refused to unmap a range (its ptes
 * are left as they were).
 */
static int vmtruncate_list(struct mm_struct *mm, struct vm_area_struct **head,
                           unsigned long pgoff)
{
    struct vm_area_struct *v = NULL;
    int err = 0;
    for (;;) {
        pthread_mutex_lock(&pagecache_lock);
        for (v = v ? v->vm_next_share : *head; v && v->vm_mm != mm;
             v = v->vm_next_share)
            ;
        pthread_mutex_unlock(&pagecache_lock);
        if (!v)
            return err;
        unsigned long start = v->vm_start;
        unsigned long len = (v->vm_end - v->vm_start) >> PAGE_SHIFT;
        if (v->vm_pgoff < pgoff) { /* partly before the new end */
            unsigned long diff = pgoff - v->vm_pgoff;
            if (diff >= len)
                continue; /* wholly before it: unaffected */
            start += diff << PAGE_SHIFT;
        }
        if (vm_host_unmap(mm, start, v->vm_end) != 0) {
            err = -ENOMEM;
            continue;
        }
        zap_page_range(mm, v, start, v->vm_end - start);
    }
}

/*
 * vmtruncate - the file of mapping was cut to offset bytes (its new
 * size is the host file's already, so a fault beyond it from now on gets
 * SIGBUS): every pte of every mm that maps a page wholly beyond it goes,
 * private copies of such pages included, then the pages leave the page
 * cache and the tail of the last one is zeroed (truncate_inode_pages).
 * 2.4's vmtruncate takes the inode and holds i_shared_lock across the
 * walk, zap_page_range taking page_table_lock inside it; here mmap_sem
 * comes before pagecache_lock, so the walk goes over the mm list in its
 * order, one mmap_sem at a time, and over the mapping's share lists
 * inside each.  A child that mm_fork copied from an mm the walk had not
 * yet reached joins the list behind the walk and is reached too; one
 * copied just before the walk passed its parent may join the list only
 * after the walk ended, so the walk is run again while a page beyond
 * the end is still mapped (a few passes at most; then the pages leave
 * the cache anyway).  The caller holds a reference to mapping (i_count).
 * Returns 0 or -ENOMEM (a host unmap was refused; the rest is done).
 * Process context, no lock held.
 */
int vmtruncate(struct address_space *mapping, loff_t offset)
{
    unsigned long pgoff = ((unsigned long)offset + PAGE_SIZE - 1) >> PAGE_SHIFT;
    int err = 0;
    for (int pass = 0; pass < 8; pass++) {
        for (struct mm_struct *mm = vm_mmlist_next(NULL); mm;
             mm = vm_mmlist_next(mm)) {
            pthread_mutex_lock(&mm->mmap_sem);
            int r = vmtruncate_list(mm, &mapping->i_mmap, pgoff);
            if (vmtruncate_list(mm, &mapping->i_mmap_shared, pgoff) != 0 || r)
                err = -ENOMEM;
            pthread_mutex_unlock(&mm->mmap_sem);
        }
        if (err || !vm_mapping_mapped_from(mapping, pgoff))
            break;
    }
    truncate_inode_pages(mapping, offset);
    return err;
}
