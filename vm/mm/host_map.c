/*
 * vm/mm/host_map.c — the host side of the ptes: the mirror that keeps an
 * mm's window in step with its page tables.  Every user page of the
 * window is mapped exactly as its pte says — a memfd frame with the pte's
 * protection (none while the aging scan has it _PAGE_OLD), or an
 * inaccessible hole (none or swap entry) — so the page tables are the
 * source of truth and the host mappings follow them.  memory.c and the
 * other files of vm/mm change a pte and then call here: one page
 * (vm_host_set_pte, vm_host_map_page), a fresh frame at a fault, with the
 * pages ahead mapped PROT_NONE in the same host call (vm_host_map_fresh:
 * the premapped run, fault-around on the host mappings), or a range walked
 * in runs, one host call a run (vm_host_sync remaps, vm_host_protect only
 * changes protections, vm_host_unmap makes holes).  Before any change a
 * linear range of the userfaultfd back end (uffd.c) that overlaps it is
 * turned back into this page-by-page layout (vm_uffd_demote).
 *
 * Locking: everything here runs with mm->mmap_sem held, from system calls
 * and from the SIGSEGV handler alike; the premapped run
 * (mm->premap_start/end/pfn) is under it too.
 */
#include <errno.h>
#include <sys/mman.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

static int host_prot(pte_t pte)
{
    if (pte_val(pte) & (_PAGE_PROTNONE | _PAGE_OLD))
        return PROT_NONE;
    return pte_write(pte) ? PROT_READ | PROT_WRITE : PROT_READ;
}

/*
 * With the handler thread in write-protect mode (uffd.c) a read-only page
 * of a writable vma — a COW page, the ZERO_PAGE after a read, a page
 * swapped in by a read, a clean page of a shared file — is mapped
 * readable and writable but write-protected through the thread's
 * descriptor (HOST_WP): a store to it, the host kernel's in a system call
 * as much as a thread's, waits for the thread, which runs do_wp_page.  A
 * PROT_READ page would fail the kernel's store with EFAULT.  A page of a
 * vma that does not allow writing stays PROT_READ.
 */
#define HOST_WP 0x100

/* host_prot of pte at addr, or HOST_WP (above); *vma caches the lookup
 * for the caller's next page. */
static int host_class(struct mm_struct *mm, unsigned long addr, pte_t pte,
                      struct vm_area_struct **vma)
{
    int prot = host_prot(pte);
    if (prot != PROT_READ || !vm_uffd_wp())
        return prot;
    struct vm_area_struct *v = *vma;
    if (!v || addr < v->vm_start || addr >= v->vm_end)
        v = *vma = __find_vma(mm, addr);
    if (v && v->vm_start <= addr && (v->vm_flags & VM_WRITE))
        return PROT_READ | PROT_WRITE | HOST_WP;
    return prot;
}

/* With the userfaultfd handler thread (uffd.c) a page the aging scan
 * armed is a hole of the window like a none pte, not a PROT_NONE view of
 * its frame: the host kernel's access to it must fault into the thread,
 * and an inaccessible page would fail it with EFAULT. */
static int host_hole(pte_t pte)
{
    return !pte_present(pte) ||
           ((pte_val(pte) & _PAGE_OLD) && vm_uffd_served());
}

int vm_host_unmap(struct mm_struct *mm, unsigned long start, unsigned long end)
{
    if (start >= end)
        return 0;
    if (vm_uffd_demote(mm, start, end, 1) != 0)
        return -ENOMEM;
    vm_premap_forget(mm, start, end);
    return vm_uffd_hole(mm, start, end) ? -ENOMEM : 0;
}

/* populate: fill the host pte now (one page, at a fault), so the retried
 * access does not take a second, host, fault. */
static int host_map_run(struct mm_struct *mm, unsigned long addr,
                        unsigned long npages, unsigned long pfn, int prot,
                        int populate)
{
    if (vm_uffd_demote(mm, addr, addr + (npages << PAGE_SHIFT), 0) != 0)
        return -ENOMEM;
    vm_premap_forget(mm, addr, addr + (npages << PAGE_SHIFT));
    if (prot & HOST_WP)
        return vm_uffd_wp_map(mm, addr, npages, pfn, populate);
    void *p = vm_os_map_shared(mm->window + addr, npages << PAGE_SHIFT, prot,
                               vm_highmem.memfd, (off_t)(pfn << PAGE_SHIFT),
                               populate);
    return p ? 0 : -ENOMEM;
}

int vm_host_map_page(struct mm_struct *mm, unsigned long addr, pte_t pte)
{
    if (vm_uffd_linear(mm, addr, pte))
        return 0; /* the linear range maps it already */
    if (host_hole(pte))
        return vm_host_unmap(mm, addr, addr + PAGE_SIZE);
    struct vm_area_struct *vma = NULL;
    return host_map_run(mm, addr, 1, pte_pfn(pte),
                        host_class(mm, addr, pte, &vma), 1);
}

/*
 * Walks [start, end) in runs and maps each run with one host call.  With
 * remap, a run is pages of consecutive frames and one protection (or a
 * stretch of none ptes) and is mmap()ed; without, a run is any present
 * pages of one protection and is mprotect()ed (the frames are already
 * there: fork's write-protect, mprotect).
 */
static int host_walk(struct mm_struct *mm, unsigned long start,
                     unsigned long end, int remap)
{
    unsigned long run = start, n = 0, run_pfn = 0;
    int run_prot = -1, err = 0; /* -1: a stretch of none ptes */
    struct vm_area_struct *vma = NULL;

    if (vm_uffd_demote(mm, start, end, 0) != 0)
        return -ENOMEM;

    for (unsigned long a = start; a <= end; a += PAGE_SIZE) {
        pte_t pte = __pte(0);
        int prot = -2; /* end marker */
        if (a < end) {
            pte_t *p = vm_pte_lookup(mm, a);
            pte = p ? *p : __pte(0);
            prot = host_hole(pte) ? -1 : host_class(mm, a, pte, &vma);
        }
        if (n && prot == run_prot &&
            (prot == -1 || !remap || pte_pfn(pte) == run_pfn + n)) {
            n++;
            continue;
        }
        if (n) {
            int r = 0;
            unsigned long len = n << PAGE_SHIFT;
            if (run_prot == -1)
                r = remap ? vm_host_unmap(mm, run, run + len) : 0;
            else if (remap)
                r = host_map_run(mm, run, n, run_pfn, run_prot, 0);
            else if (run_prot & HOST_WP)
                r = vm_uffd_wp_protect(mm, run, n);
            else if (vm_os_protect(mm->window + run, len, run_prot) != 0)
                r = -ENOMEM;
            if (r)
                err = r;
        }
        run = a;
        n = 1;
        run_prot = prot;
        run_pfn = pte_pfn(pte);
    }
    return err;
}

int vm_host_sync(struct mm_struct *mm, unsigned long start, unsigned long end)
{
    return host_walk(mm, start, end, 1);
}

int vm_host_protect(struct mm_struct *mm, unsigned long start,
                    unsigned long end)
{
    return host_walk(mm, start, end, 0);
}

/* Installs entry and maps it on the host; when the host refuses (out of
 * memory, vm.max_map_count) the old pte is put back and -1 returned. */
int vm_host_set_pte(struct mm_struct *mm, unsigned long addr, pte_t *pte,
                    pte_t entry)
{
    pte_t old = *pte;
    *pte = entry;
    if (vm_host_map_page(mm, addr, entry) == 0)
        return 1;
    *pte = old;
    vm_host_map_page(mm, addr, old);
    return -1;
}

/*
 * The host side of fault-around (memory.c): ptes [addr, addr + n pages),
 * none until now, take first and the frames after it, and the window maps
 * them with one host call, populated (the accesses that follow take no
 * host fault either).  1, or -1 when the host refused: the ptes are none
 * again and the pages inaccessible.
 */
int vm_host_map_fresh_run(struct mm_struct *mm, unsigned long addr, pte_t *pte,
                          unsigned long n, pte_t first)
{
    for (unsigned long i = 0; i < n; i++)
        pte[i] = __pte(pte_val(first) + (i << PAGE_SHIFT));
    if (host_map_run(mm, addr, n, pte_pfn(first), host_prot(first), 1) == 0)
        return 1;
    for (unsigned long i = 0; i < n; i++)
        pte[i] = __pte(0);
    vm_host_unmap(mm, addr, addr + (n << PAGE_SHIFT));
    return -1;
}

/*
 * The host side of a fresh frame at a pte that was none — the common
 * anonymous write fault, and the cost that dominates it: an mmap of one
 * page of the memfd splits the window's reservation and merges with the
 * neighbour's mapping (host VMA work), besides the host fault.  When
 * faults walk a vma upwards and the frame allocator follows them (frame
 * pfn at addr, pfn + 1 at addr + PAGE_SIZE, as memory.c's frame_hint
 * asks), the
 * pages ahead are mapped in one go: [addr, addr + n) to frames [pfn, pfn +
 * n), PROT_NONE beyond addr itself.  Their ptes stay none — nothing is
 * allocated, counted or made accessible for them; a PROT_NONE view of a
 * frame that is free or owned by someone else cannot be read or written,
 * and it faults exactly as the inaccessible hole it replaces.  The next
 * fault there, if it gets the frame the run expected, needs only an
 * mprotect of its page (which the host does by moving a VMA boundary),
 * and otherwise maps its frame as usual.  This is later Linux's
 * fault-around applied to the host mappings rather than to the ptes.
 */
#if defined(__SANITIZE_THREAD__)
/* TSan's mmap interceptor counts the whole range as written by the mapping
 * thread, so pages mapped ahead would look racy to the threads that later
 * use them: map only the faulting page. */
#define PREMAP_PAGES 1
#else
#define PREMAP_PAGES 64
#endif

static int premap_hit(struct mm_struct *mm, unsigned long addr,
                      unsigned long pfn)
{
    return addr >= mm->premap_start && addr < mm->premap_end &&
           pfn == mm->premap_pfn + ((addr - mm->premap_start) >> PAGE_SHIFT);
}

/* How many pages after addr (same vma, same pte table) have none ptes
 * and frames to premap, at most PREMAP_PAGES - 1. */
static unsigned long premap_ahead(struct vm_area_struct *vma,
                                  unsigned long addr, pte_t *pte,
                                  unsigned long pfn)
{
    unsigned long n = 0, max = PREMAP_PAGES - 1;
    unsigned long room = (((addr + PMD_SIZE) & PMD_MASK) - addr) >> PAGE_SHIFT;
    if (room - 1 < max)
        max = room - 1;
    if (((vma->vm_end - addr) >> PAGE_SHIFT) - 1 < max)
        max = ((vma->vm_end - addr) >> PAGE_SHIFT) - 1;
    if (vm_highmem.nr_frames - 1 - pfn < max)
        max = vm_highmem.nr_frames - 1 - pfn;
    while (n < max && pte_none(pte[n + 1]))
        n++;
    return n;
}

/* An mprotect does not fill the host pte: without this the retried access
 * would take a second host fault (the memfd page allocated there). */
static void premap_populate(struct mm_struct *mm, unsigned long addr, int prot)
{
    if (prot != PROT_NONE)
        vm_os_populate(mm->window + addr, PAGE_SIZE, prot & PROT_WRITE);
}

int vm_host_map_fresh(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long addr, pte_t *pte, pte_t entry)
{
    unsigned long pfn = pte_pfn(entry);
    int prot = host_prot(entry);

    /* the pages premapped ahead are PROT_NONE views that the host
     * kernel's access would fail on: not with the handler thread */
    if (vm_uffd_served())
        return vm_host_set_pte(mm, addr, pte, entry);
    if (premap_hit(mm, addr, pfn) &&
        vm_os_protect(mm->window + addr, PAGE_SIZE, prot) == 0) {
        *pte = entry;
        premap_populate(mm, addr, prot);
        return 1;
    }
    pte_t *prev = (addr & ~PMD_MASK) ? pte - 1 : NULL;
    unsigned long n = 0;
    if (prev && pte_present(*prev) && pte_pfn(*prev) + 1 == pfn)
        n = premap_ahead(vma, addr, pte, pfn);
    if (!n)
        return vm_host_set_pte(mm, addr, pte, entry);
    vm_premap_forget(mm, addr, addr + ((n + 1) << PAGE_SHIFT));
    void *p =
        vm_os_map_shared(mm->window + addr, (n + 1) << PAGE_SHIFT, VM_OS_NONE,
                         vm_highmem.memfd, (off_t)(pfn << PAGE_SHIFT), 0);
    if (!p)
        return vm_host_set_pte(mm, addr, pte, entry);
    mm->premap_start = addr;
    mm->premap_end = addr + ((n + 1) << PAGE_SHIFT);
    mm->premap_pfn = pfn;
    if (vm_os_protect(mm->window + addr, PAGE_SIZE, prot) == 0) {
        *pte = entry;
        premap_populate(mm, addr, prot);
        return 1;
    }
    return vm_host_set_pte(mm, addr, pte, entry);
}
