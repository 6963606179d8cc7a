/*
 * vm/mm/vmalloc.c — virtually contiguous kernel memory from scattered frames
 * (2.4 mm/vmalloc.c).  The kernel page tables are init_mm's pgd, the
 * 2.4 split's fourth gigabyte: VMALLOC_START..VMALLOC_END are emulated
 * kernel addresses whose ptes point to ZONE_HIGHMEM frames (swapper_pg_dir's
 * kernel entry, shared by every mm's pgd), and the host
 * range vmalloc_base (reserved PROT_NONE at first use) shows them, each
 * page mapped MAP_SHARED from the memfd at its frame.  The pointer that
 * vmalloc returns is the host address; vmalloc_to_page turns it back
 * into a kernel address and walks pgd_offset_k → pmd_offset →
 * pte_offset → pte_page, as Linux 2.4's get_page does.  Areas (struct
 * vm_struct, on vmlist sorted by address) are found first-fit, each
 * followed by one unmapped guard page, so running off the end of one
 * faults instead of writing into the next.  vmalloc pages are counted in
 * user memory (2.4: GFP_KERNEL | __GFP_HIGHMEM) and are never swapped.
 *
 * Locking: vmlist_lock guards vmlist and init_mm's page tables; frames
 * are allocated before it is taken (allocation may reclaim, which takes
 * mm locks).
 */
#include <errno.h>
#include <string.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

#define VMALLOC_START 0xC8000000UL /* 2.4: 8 MiB hole after the direct map */
#define VMALLOC_END 0xFF000000UL

struct vm_struct {
    unsigned long addr; /* kernel address */
    unsigned long size; /* including the guard page */
    struct vm_struct *next;
};

/*
 * The kernel's page directory, init_mm's (public: <kslab/vm.h>).  Its
 * kernel entry (USER_PGD_PTRS on: the fourth gigabyte) points to one pmd
 * table made at the first use and never freed, and every mm's pgd gets
 * the same entry when it is made (vm_kernel_pgd_copy) — as 2.4's PAE
 * pgd_alloc shares the kernel pmd — so an area vmalloc'ed later is in
 * every mm at once: kept in step eagerly, and 2.4's lazy vmalloc_fault
 * sync is never needed.
 */
KSLAB_API pgd_t swapper_pg_dir[PTRS_PER_PGD];
static struct vm_struct *vmlist;
static pthread_mutex_t vmlist_lock = PTHREAD_MUTEX_INITIALIZER;

void vm_vmalloc_fork_lock(void)
{
    pthread_mutex_lock(&vmlist_lock);
}

/* The host range that shows the vmalloc range: host address
 * vmalloc_base + (k - VMALLOC_START) is kernel address k, and both are
 * equal modulo PGDIR_SIZE, so pmd_offset and pte_offset of a vmalloc
 * pointer find the entries of its kernel address (a driver's nopage walks
 * the kernel tables with the pointer vmalloc returned, as in 2.4). */
static char *vmalloc_base;
static unsigned long vmalloc_pages;

/* Kernel addresses only, here (the public pgd_offset_k also takes a
 * vmalloc pointer: vm_pgd_offset_k). */
#define pgd_offset_k(k) vm_pgd_offset(swapper_pg_dir, k)

static char *k2host(unsigned long k)
{
    return vmalloc_base + (k - VMALLOC_START);
}

/* In the child of a host fork, after the frames were copied into the
 * child's own memfd (highmem.c): every present vmalloc pte is mapped
 * again, from that memfd. */
static void vmalloc_fork_remap(void)
{
    for (struct vm_struct *a = vmlist; a; a = a->next)
        for (unsigned long k = a->addr; k < a->addr + a->size; k += PAGE_SIZE) {
            pgd_t *pgd = pgd_offset_k(k);
            if (!pgd->pgd || !pmd_offset(pgd, k)->pmd)
                continue;
            pte_t *pte = pte_offset(pmd_offset(pgd, k), k);
            if (pte_present(*pte))
                vm_os_map_shared(k2host(k), PAGE_SIZE, VM_OS_READ | VM_OS_WRITE,
                                 vm_highmem.memfd,
                                 (off_t)(pte_pfn(*pte) << PAGE_SHIFT), 0);
        }
}

void vm_vmalloc_fork_unlock(int child)
{
    if (child) {
        if (vmalloc_base)
            vmalloc_fork_remap();
        pthread_mutex_init(&vmlist_lock, NULL);
    } else {
        pthread_mutex_unlock(&vmlist_lock);
    }
}

/* vmlist_lock held.  A gigabyte reserved at a gigabyte boundary; all of
 * it but [VMALLOC_START, VMALLOC_END) of its offsets given back.  The
 * boundary is what keeps a host pointer and its kernel address equal
 * modulo PGDIR_SIZE (pmd and pte indexes alike).  vm_os_reserve tries an
 * aligned place without over-mapping first, so the reservation briefly
 * holds 1 GiB and keeps 880 MiB (2 GiB only when that place is taken).
 * A failure (an address-space limit) is not remembered: the next call
 * tries again. */
static int vmalloc_init(void)
{
    if (vmalloc_base)
        return 0;
    char *p = vm_os_reserve(PGDIR_SIZE, PGDIR_SIZE);
    if (!p)
        return -ENOMEM;
    unsigned long head = VMALLOC_START & ~PGDIR_MASK;
    unsigned long tail = PGDIR_SIZE - (VMALLOC_END & ~PGDIR_MASK);
    vm_os_free(p, head);
    vm_os_free(p + PGDIR_SIZE - tail, tail);
    __atomic_store_n(&vmalloc_base, p + head, __ATOMIC_RELEASE);
    return 0;
}

static void *table_alloc(void)
{
    void *p = (void *)__get_free_page(GFP_KERNEL);
    if (p)
        memset(p, 0, PAGE_SIZE);
    return p;
}

/* The kernel half of a new mm's pgd, from swapper_pg_dir (its pmd table
 * made first if need be): 0, or -ENOMEM. */
int vm_kernel_pgd_copy(struct mm_struct *mm)
{
    pgd_t *k = swapper_pg_dir + USER_PGD_PTRS;
    pthread_mutex_lock(&vmlist_lock);
    for (int i = 0; i < (int)KERNEL_PGD_PTRS; i++)
        if (!k[i].pgd && !(k[i].pgd = table_alloc()))
            break;
    int r = 0;
    for (int i = 0; i < (int)KERNEL_PGD_PTRS; i++) {
        if (!k[i].pgd)
            r = -ENOMEM;
        mm->pgd[USER_PGD_PTRS + i] = k[i];
    }
    pthread_mutex_unlock(&vmlist_lock);
    return r;
}

/* The public pgd_offset_k's index: a kernel address below 4 GiB, or a
 * pointer vmalloc returned (the kernel entry); NULL for anything else. */
pgd_t *vm_pgd_offset_k(unsigned long addr)
{
    char *a = (char *)addr;
    char *base = __atomic_load_n(&vmalloc_base, __ATOMIC_ACQUIRE);
    if (base && a >= base && a < base + (VMALLOC_END - VMALLOC_START))
        return pgd_offset_k(VMALLOC_START);
    if (addr >> PGDIR_SHIFT < PTRS_PER_PGD)
        return pgd_offset_k(addr);
    return NULL;
}

/* The pte of kernel address k, built as needed.  vmlist_lock held. */
static pte_t *pte_alloc_k(unsigned long k)
{
    pgd_t *pgd = pgd_offset_k(k);
    if (!pgd->pgd && !(pgd->pgd = table_alloc()))
        return NULL;
    pmd_t *pmd = pmd_offset(pgd, k);
    if (!pmd->pmd && !(pmd->pmd = table_alloc()))
        return NULL;
    return pte_offset(pmd, k);
}

/* Linux 2.4's get_page walk.  NULL where nothing is mapped. */
static struct page *get_page_k(unsigned long address)
{
    struct page *page = NULL;
    pgd_t *pgd = pgd_offset_k(address);
    if (pgd->pgd) {
        pmd_t *pmd = pmd_offset(pgd, address);
        if (pmd->pmd) {
            pte_t *pte = pte_offset(pmd, address);
            if (pte_present(*pte))
                page = pte_page(*pte);
        }
    }
    return page;
}

/* get_vm_area: first fit in vmlist, size includes the guard page. */
static struct vm_struct *get_vm_area(unsigned long size)
{
    struct vm_struct *area = kmalloc(sizeof *area, GFP_KERNEL);
    if (!area)
        return NULL;
    unsigned long addr = VMALLOC_START;
    struct vm_struct **p;
    for (p = &vmlist; *p; p = &(*p)->next) {
        if (size + addr <= (*p)->addr)
            break;
        addr = (*p)->addr + (*p)->size;
    }
    if (addr + size > VMALLOC_END || addr + size < addr) {
        kfree(area);
        return NULL;
    }
    area->addr = addr;
    area->size = size;
    area->next = *p;
    *p = area;
    return area;
}

/* Unmaps [k, k + n pages) and gives the frames back.  vmlist_lock held. */
static void unmap_area(unsigned long k, unsigned long n)
{
    vm_os_decommit(k2host(k), n << PAGE_SHIFT);
    for (unsigned long i = 0; i < n; i++) {
        unsigned long a = k + (i << PAGE_SHIFT);
        pte_t *pte = pte_offset(pmd_offset(pgd_offset_k(a), a), a);
        if (pte_present(*pte)) {
            put_page(pte_page(*pte));
            vmalloc_pages--;
        }
        *pte = __pte(0);
    }
}

/**
 * vmalloc - @size bytes (rounded up to pages) of virtually contiguous
 * memory, readable and writable, not zeroed unless fresh.  Returns NULL
 * with errno ENOMEM (no frame, no room in the vmalloc range) or EINVAL
 * (size 0).  Process context, no lock held.
 */
KSLAB_API void *vmalloc(unsigned long size)
{
    if (!size || size > VMALLOC_END - VMALLOC_START) {
        errno = size ? ENOMEM : EINVAL;
        return NULL;
    }
    if (vm_highmem_init() != 0) {
        errno = ENOMEM;
        return NULL;
    }
    vm_mm_fork_register(); /* vmlist_lock is in the fork protocol */
    unsigned long n = PAGE_ALIGN(size) >> PAGE_SHIFT;
    pthread_mutex_lock(&vmlist_lock);
    struct vm_struct *area =
        vmalloc_init() == 0 ? get_vm_area((n + 1) << PAGE_SHIFT) : NULL;
    pthread_mutex_unlock(&vmlist_lock);
    if (!area) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned long prev = 0, i;
    for (i = 0; i < n; i++) {
        unsigned long k = area->addr + (i << PAGE_SHIFT);
        struct page *page = vm_alloc_user_frame(NULL, prev ? prev + 1 : 0);
        if (!page)
            break;
        ClearPageFlag(page, PG_clean);
        prev = vm_frame_pfn(page);
        pthread_mutex_lock(&vmlist_lock);
        pte_t *pte = pte_alloc_k(k);
        if (pte)
            *pte = mk_pte(page, _PAGE_PRESENT | _PAGE_RW | _PAGE_DIRTY |
                                    _PAGE_ACCESSED);
        if (pte)
            vmalloc_pages++;
        pthread_mutex_unlock(&vmlist_lock);
        if (!pte || !vm_os_map_shared(
                        k2host(k), PAGE_SIZE, VM_OS_READ | VM_OS_WRITE,
                        vm_highmem.memfd, (off_t)(prev << PAGE_SHIFT), 0)) {
            if (!pte)
                put_page(page);
            else
                i++;
            break;
        }
    }
    if (i < n || n == 0) {
        vfree(k2host(area->addr));
        errno = ENOMEM;
        return NULL;
    }
    return k2host(area->addr);
}

/**
 * vfree - frees what vmalloc returned; NULL is a no-op.  Anything else is
 * a corruption: one line and abort().
 */
KSLAB_API void vfree(void *addr)
{
    if (!addr)
        return;
    unsigned long k =
        (unsigned long)((char *)addr - vmalloc_base) + VMALLOC_START;
    pthread_mutex_lock(&vmlist_lock);
    struct vm_struct **p;
    for (p = &vmlist; *p; p = &(*p)->next)
        if ((*p)->addr == k && vmalloc_base)
            break;
    if (!*p) {
        pthread_mutex_unlock(&vmlist_lock);
        kslab_die("vfree(): bad address %p", addr);
    }
    struct vm_struct *area = *p;
    *p = area->next;
    unmap_area(area->addr, (area->size >> PAGE_SHIFT) - 1);
    pthread_mutex_unlock(&vmlist_lock);
    kfree(area);
}

/**
 * vmalloc_to_page - the frame behind a vmalloc address (any byte of the
 * page), found through init_mm's page tables; NULL when @addr is not a
 * mapped vmalloc page.
 */
KSLAB_API struct page *vmalloc_to_page(const void *addr)
{
    const char *a = addr;
    if (!vmalloc_base || a < vmalloc_base ||
        a >= vmalloc_base + (VMALLOC_END - VMALLOC_START))
        return NULL;
    pthread_mutex_lock(&vmlist_lock);
    struct page *page =
        get_page_k((unsigned long)(a - vmalloc_base) + VMALLOC_START);
    pthread_mutex_unlock(&vmlist_lock);
    return page;
}

void vm_vmalloc_stats(unsigned long *total, unsigned long *used)
{
    *total = (VMALLOC_END - VMALLOC_START) >> PAGE_SHIFT;
    *used = __atomic_load_n(&vmalloc_pages, __ATOMIC_RELAXED);
}
