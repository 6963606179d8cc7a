/*
 * vm/mm/driver.c — the driver's view of the emulator (2.4's
 * include/asm-i386/pgtable.h walk, mm/memory.c remap_page_range, the
 * mem_map_reserve rule and fs/iobuf.c's kiobufs): what a 2.4 driver's
 * mmap method and nopage handler use, public in <kslab/vm.h>.
 * do_mmap_pgoff, which calls the method, is in mmap.c beside do_mmap.
 *
 * remap_page_range maps low-memory frames (kmalloc, __get_free_pages)
 * into an mm, and only reserved ones, exactly 2.4's remap_pte_range rule.
 * Low memory is private anonymous host memory, which a user window cannot
 * share, so a reserved frame is "shadowed": its page of the direct map is
 * replaced in place (same kernel address, contents copied) by a shared
 * mapping of a ZONE_HIGHMEM frame of the memfd, and the user ptes map
 * that frame.  The kernel address and every user mapping are then one
 * page of host memory.  The shadows are a small hash by low-memory frame
 * number; each holds one reference on its frame, and each pte another, so
 * a frame outlives an unreserve while a mapping still uses it (the user
 * side keeps the last contents; the kernel side is private again).  In
 * the child of a host fork() the frames are the child's copies
 * (highmem.c), so every shadowed page of the direct map is mapped again
 * from the child's memfd (vm_driver_fork_unlock), as vmalloc does.
 *
 * Locking: shadow_lock guards the hash and the host mappings of shadowed
 * pages; it nests inside mmap_sem (remap_page_range runs in a driver's
 * mmap method) and vmlist_lock (the fork order, mm.h), and no frame is
 * allocated while it is held (allocation may reclaim).
 */
#include <errno.h>
#include <string.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

/* ---- the walk and the page references, out of line ---- */

#undef pgd_offset
#undef pmd_offset
#undef pte_offset
#undef pte_page
#undef get_page
#undef put_page

/* The always-none entry pgd_offset_k gives for an address that is in
 * neither half (a drivers' walk then ends at pgd_none). */
static pgd_t none_pgd;

KSLAB_API pgd_t *pgd_offset(struct mm_struct *mm, unsigned long addr)
{
    if (!mm || addr >> PGDIR_SHIFT >= PTRS_PER_PGD)
        return &none_pgd;
    return vm_pgd_offset(mm->pgd, addr);
}

KSLAB_API pgd_t *pgd_offset_k(unsigned long addr)
{
    pgd_t *pgd = vm_pgd_offset_k(addr);
    return pgd ? pgd : &none_pgd;
}

KSLAB_API pmd_t *pmd_offset(pgd_t *pgd, unsigned long addr)
{
    return vm_pmd_offset(pgd, addr);
}

KSLAB_API pte_t *pte_offset(pmd_t *pmd, unsigned long addr)
{
    return vm_pte_offset(pmd, addr);
}

KSLAB_API struct page *pte_page(pte_t pte)
{
    return vm_pte_page(pte);
}

/* The references of user-memory frames (vmalloc's, the pages nopage
 * returns).  A low-memory frame is its owner's, freed by it (2.4 never
 * frees a reserved page through put_page either): nothing is counted. */
KSLAB_API void get_page(struct page *page)
{
    if (page && PageFlag(page, PG_highmem))
        vm_get_page(page);
}

KSLAB_API void put_page(struct page *page)
{
    if (page && PageFlag(page, PG_highmem))
        vm_frame_put(page, NULL);
}

/* ---- the direct map's physical addresses ---- */

KSLAB_API unsigned long virt_to_phys(const void *addr)
{
    struct page *page = vm_virt_to_page(addr);
    if (!page)
        return ~0UL;
    return (vm_page_to_pfn(page) << PAGE_SHIFT) |
           ((uintptr_t)addr & ~PAGE_MASK);
}

/* The frame of pfn, or NULL when it is not committed low memory. */
static struct page *low_frame(unsigned long pfn)
{
    if (pfn >= atomic_load(&vm_lowmem.committed_pages))
        return NULL;
    return vm_pfn_to_page(pfn);
}

KSLAB_API void *phys_to_virt(unsigned long phys)
{
    struct page *page = low_frame(phys >> PAGE_SHIFT);
    if (!page)
        return NULL;
    return (char *)vm_page_address(page) + (phys & ~PAGE_MASK);
}

/* ---- reserved frames, shadowed ---- */

struct shadow {
    unsigned long pfn;  /* the low-memory frame */
    struct page *frame; /* the ZONE_HIGHMEM frame that backs it */
    struct shadow *next;
};

#define SHADOW_HASH 256
static struct shadow *shadow_hash[SHADOW_HASH];
static pthread_mutex_t shadow_lock = PTHREAD_MUTEX_INITIALIZER;

void vm_driver_fork_lock(void)
{
    pthread_mutex_lock(&shadow_lock);
}

/* In the child, the frames are the child's own copies: each shadowed page
 * of the direct map is mapped again from the child's memfd. */
void vm_driver_fork_unlock(int child)
{
    if (!child) {
        pthread_mutex_unlock(&shadow_lock);
        return;
    }
    for (int i = 0; i < SHADOW_HASH; i++)
        for (struct shadow *s = shadow_hash[i]; s; s = s->next)
            if (!vm_os_map_shared(
                    vm_page_address(vm_pfn_to_page(s->pfn)), PAGE_SIZE,
                    VM_OS_READ | VM_OS_WRITE, vm_highmem.memfd,
                    (off_t)(vm_frame_pfn(s->frame) << PAGE_SHIFT), 0))
                kslab_die("fork(): cannot map a reserved frame in the child");
    pthread_mutex_init(&shadow_lock, NULL);
}

static struct shadow **__shadow_find(unsigned long pfn)
{
    struct shadow **pp = &shadow_hash[pfn % SHADOW_HASH];
    while (*pp && (*pp)->pfn != pfn)
        pp = &(*pp)->next;
    return pp;
}

/* Is page a low-memory frame in use (one a driver may reserve)? */
static int low_in_use(struct page *page)
{
    return page && !PageFlag(page, PG_highmem) && !PageFlag(page, PG_buddy);
}

/*
 * The frame backing the reserved low-memory page, made if need be (held:
 * the mm whose mmap_sem the caller holds, for reclaim).  NULL when no
 * frame or host mapping could be had: the page stays private.
 */
static struct page *shadow_get(struct page *page, struct mm_struct *held)
{
    unsigned long pfn = vm_page_to_pfn(page);
    pthread_mutex_lock(&shadow_lock);
    struct shadow *s = *__shadow_find(pfn);
    pthread_mutex_unlock(&shadow_lock);
    if (s)
        return s->frame;
    if (vm_highmem_init() != 0)
        return NULL;
    vm_mm_fork_register(); /* shadow_lock is in the fork protocol */
    struct page *frame = vm_alloc_user_frame(held, 0);
    struct shadow *n = kmalloc(sizeof *n, GFP_KERNEL);
    if (!frame || !n)
        goto fail;
    pthread_mutex_lock(&shadow_lock);
    if ((s = *__shadow_find(pfn)) != NULL) { /* another thread's */
        pthread_mutex_unlock(&shadow_lock);
        goto fail_found;
    }
    char *addr = vm_page_address(page);
    if (PageFlag(frame, PG_clean))
        vm_os_populate(vm_kmap(frame), PAGE_SIZE, 1);
    memcpy(vm_kmap(frame), addr, PAGE_SIZE);
    ClearPageFlag(frame, PG_clean);
    if (!vm_os_map_shared(addr, PAGE_SIZE, VM_OS_READ | VM_OS_WRITE,
                          vm_highmem.memfd,
                          (off_t)(vm_frame_pfn(frame) << PAGE_SHIFT), 0)) {
        pthread_mutex_unlock(&shadow_lock);
        goto fail;
    }
    n->pfn = pfn;
    n->frame = frame;
    struct shadow **pp = __shadow_find(pfn);
    n->next = *pp;
    *pp = n;
    pthread_mutex_unlock(&shadow_lock);
    return frame;
fail_found:
    put_page(frame);
    kfree(n);
    return s->frame;
fail:
    if (frame)
        put_page(frame);
    kfree(n);
    return NULL;
}

/**
 * mem_map_reserve - marks a low-memory frame PG_reserved, so
 * remap_page_range maps it, and makes its page of the direct map shared
 * in place (see <kslab/vm.h>).  When no frame of user memory is free for
 * that now, remap_page_range tries again.  Until mem_map_unreserve, the
 * frame must not be freed: __free_pages/free_pages of a block holding it
 * is reported and aborts (buddy.c; 2.4 skipped it silently and leaked
 * it).  Process context, no lock held.
 */
KSLAB_API void mem_map_reserve(struct page *page)
{
    if (!low_in_use(page))
        return;
    if (!(__atomic_fetch_or(&page->flags, 1UL << PG_reserved,
                            __ATOMIC_RELAXED) &
          (1UL << PG_reserved)))
        atomic_fetch_add(&vm_reserved_frames, 1);
    shadow_get(page, NULL);
}

/**
 * mem_map_unreserve - clears PG_reserved: the page of the direct map is
 * private memory again, with the contents it has now.  User mappings made
 * while it was reserved keep their (shared) frame until they go, and no
 * longer see the kernel's stores.  Process context, no lock held.
 */
KSLAB_API void mem_map_unreserve(struct page *page)
{
    if (!low_in_use(page))
        return;
    if (__atomic_fetch_and(&page->flags, ~(1UL << PG_reserved),
                           __ATOMIC_RELAXED) &
        (1UL << PG_reserved))
        atomic_fetch_sub(&vm_reserved_frames, 1);
    char *tmp = vm_os_alloc(PAGE_SIZE, 0, 0);
    pthread_mutex_lock(&shadow_lock);
    struct shadow **pp = __shadow_find(vm_page_to_pfn(page));
    struct shadow *s = *pp;
    if (s && !tmp)
        kslab_die("mem_map_unreserve(): no host memory for frame %lu", s->pfn);
    if (s) {
        /* the private copy replaces the shared page in one step */
        memcpy(tmp, vm_page_address(page), PAGE_SIZE);
        if (vm_os_move(tmp, PAGE_SIZE, vm_page_address(page)) != 0)
            kslab_die("mem_map_unreserve(): cannot remap frame %lu", s->pfn);
        tmp = NULL;
        *pp = s->next;
    }
    pthread_mutex_unlock(&shadow_lock);
    if (tmp)
        vm_os_free(tmp, PAGE_SIZE);
    if (s) {
        put_page(s->frame); /* the shadow's reference; ptes keep theirs */
        kfree(s);
    }
}

KSLAB_API int PageReserved(struct page *page)
{
    return page && PageFlag(page, PG_reserved);
}

/* ---- remap_page_range ---- */

/* Drops what the pte mapped before remap_page_range replaced it (2.4's
 * forget_pte).  mmap_sem held. */
static void forget_pte(struct mm_struct *mm, pte_t old)
{
    if (pte_none(old))
        return;
    if (pte_is_swap(old)) {
        free_swap_and_cache(pte_to_swp_entry(old));
        return;
    }
    if (pte_pfn(old) != ZERO_PAGE_PFN)
        mm->rss--;
    vm_pte_page_put(pte_page(old), NULL);
}

/**
 * remap_page_range - see <kslab/vm.h>.  A frame that is not reserved (or
 * not low memory in use) is left unmapped, as 2.4's remap_pte_range
 * leaves a valid page that is not PageReserved.  From a driver's mmap
 * method: mmap_sem of vma->vm_mm held.
 */
KSLAB_API int remap_page_range(struct vm_area_struct *vma, unsigned long from,
                               unsigned long phys_addr, unsigned long size,
                               pgprot_t prot)
{
    if (!vma || !vma->vm_mm || (from & ~PAGE_MASK) || (phys_addr & ~PAGE_MASK))
        return -EINVAL;
    size = PAGE_ALIGN(size);
    if (from < vma->vm_start || size > vma->vm_end - from)
        return -EINVAL;
    struct mm_struct *mm = vma->vm_mm;
    unsigned long pfn = phys_addr >> PAGE_SHIFT;
    for (unsigned long a = from; a < from + size; a += PAGE_SIZE, pfn++) {
        struct page *page = low_frame(pfn);
        if (!low_in_use(page) || !PageFlag(page, PG_reserved))
            continue;
        struct page *frame = shadow_get(page, mm);
        pte_t *pte = frame ? vm_pte_alloc(mm, a) : NULL;
        if (!pte)
            return -ENOMEM;
        pte_t old = *pte;
        unsigned long bits = pgprot_val(prot) | _PAGE_ACCESSED;
        if (bits & _PAGE_RW)
            bits |= _PAGE_DIRTY;
        vm_get_page(frame);
        if (vm_host_set_pte(mm, a, pte, mk_pte(frame, bits)) < 0) {
            vm_frame_put(frame, NULL);
            return -ENOMEM;
        }
        forget_pte(mm, old);
        mm->rss++;
    }
    return 0;
}

/* ---- kiobufs ---- */

/**
 * map_user_kiobuf - see <kslab/vm.h>.  Process context, no lock held.
 */
KSLAB_API int map_user_kiobuf(int rw, struct kiobuf *iobuf,
                              struct mm_struct *mm, unsigned long va,
                              size_t len)
{
    if (!iobuf)
        return -EINVAL;
    iobuf->maplist = NULL;
    iobuf->nr_pages = iobuf->offset = iobuf->length = 0;
    if (!mm || !len || va + len < va || va + len > TASK_SIZE ||
        len > (size_t)1 << 30)
        return -EINVAL;
    unsigned long first = va & PAGE_MASK;
    unsigned long nr = (PAGE_ALIGN(va + len) - first) >> PAGE_SHIFT;
    if (nr * sizeof(struct page *) > 131072)
        return -ENOMEM; /* one kmalloc: 64 MiB of buffer at most */
    struct page **list = kmalloc(nr * sizeof *list, GFP_KERNEL);
    if (!list)
        return -ENOMEM;
    long got = get_user_pages(mm, first, nr, rw == 0, list);
    if (got < (long)nr) {
        if (got > 0)
            unpin_user_pages(list, (unsigned long)got);
        kfree(list);
        return -EFAULT;
    }
    iobuf->maplist = list;
    iobuf->nr_pages = (int)nr;
    iobuf->offset = (int)(va & ~PAGE_MASK);
    iobuf->length = (int)len;
    return 0;
}

KSLAB_API void unmap_kiobuf(struct kiobuf *iobuf)
{
    if (!iobuf || !iobuf->maplist)
        return;
    unpin_user_pages(iobuf->maplist, (unsigned long)iobuf->nr_pages);
    kfree(iobuf->maplist);
    iobuf->maplist = NULL;
    iobuf->nr_pages = iobuf->offset = iobuf->length = 0;
}
