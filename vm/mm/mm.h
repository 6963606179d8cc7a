/*
 * vm/mm/mm.h — the types of the emulated address spaces: mm_struct, the
 * three-level page tables (pgd → pmd → pte, the i386 PAE layout of 2.4:
 * 4 pgd entries of 1 GiB, 512 pmd entries of 2 MiB, 512 ptes of 4 KiB),
 * the high-memory frames that ptes point to, and the vm-internal helpers
 * shared by mmap.c, vma.c, memory.c, fault.c, fork.c, mprotect.c and mlock.c.
 *
 * Locking: one mutex per mm, mm->mmap_sem, serialises everything that
 * reads or changes the vmas, the page tables, the counters and the host
 * mappings of that mm — system calls and faults alike (2.4 had mmap_sem
 * plus page_table_lock; one lock is enough here because a fault always
 * needs both).  Functions named __xxx expect mmap_sem held.  kslab code
 * never touches a user window while it holds any lock below, so the
 * SIGSEGV handler, which takes them, never waits on its own thread.
 *
 * The lock order of the address-space emulator, in detail (kslab's whole
 * order, every layer's, is at the top of lib/fork.c: these are its level
 * 1, and vm_highmem.lock the leaf of its level 5); every path takes them
 * top to bottom:
 *
 *   1. mm->mmap_sem      one per mm.  A thread waits for one only while it
 *                        holds no other (mm_fork holds the parent's; the
 *                        child is private until published).  Reclaim from
 *                        a fault holds the faulting mm's and only
 *                        trylocks the others; try_to_free_pages, swapoff
 *                        and vm_check_swap take one at a time.  A host
 *                        fork() takes them all (mmlist_fork_lock),
 *                        waiting for one only with vm_mmlist_lock dropped.
 *   2. vm_mmlist_lock    the list of published mms (fork.c).
 *   3. windows_lock      the window table (fault.c).
 *   4. vmlist_lock       the vmalloc range (vmalloc.c).
 *   4b. shadow_lock      the reserved low-memory frames shared in place
 *                        (driver.c); a frame for one is allocated before
 *                        it is taken.
 *   4a. pagecache_lock   the page cache: address_spaces, their share lists
 *                        and swap slots, the page hash (filemap.c).  Taken
 *                        with an mmap_sem held or none; never while a frame
 *                        is allocated.
 *   5. vm_swap_lock      swap areas, swap_map counts, the swap cache and
 *                        PG_swapcache/PG_dirty/page->index of cached pages
 *                        (h_lock beside it, never nested with it).
 *   then the slab's and the zones' locks (page tables and vmas are slab
 *   objects), never held while taking any of the above, and last
 *   6. vm_highmem.lock   the frame bitmap, a spinlock (highmem.c).
 *
 * The rules that keep mms that share frames and swap slots (after
 * mm_fork) consistent, each closing a window that once corrupted them:
 *  - an mm is on the mm list — visible to reclaim, swapoff and a host
 *    fork — only once it is complete (mm_fork publishes the child after
 *    dup_mmap) and until its last mmput (no reference can be taken then,
 *    so exit_mmap runs alone);
 *  - whether a page is in the swap cache, and its entry, is read under
 *    vm_swap_lock whenever another reference to the page may exist
 *    (vm_pte_page_put, try_to_swap_out, do_wp_page): another mm's reclaim
 *    adds and removes it.  A page whose count is 1 is held by the caller's
 *    pte alone and cannot be in the cache;
 *  - direct reclaim from a fault also scans the faulting mm, so a fault
 *    that allocates a frame while it holds a pte value (do_wp_page) keeps
 *    its own page reference across the allocation and checks afterwards
 *    that the pte is unchanged (2.4's pte_same after dropping
 *    page_table_lock).
 */
#ifndef KSLAB_VM_MM_MM_H
#define KSLAB_VM_MM_MM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h> /* RLIMIT_*, RLIM_NLIMITS, RLIM_INFINITY */

#include <kslab/slab.h> /* vmas, mms, page tables come from slab caches */

#include "vm/frames/highmem.h"
#include "vm/frames/page.h"

/* ---- page tables: the 2.4 i386 PAE split (the layout, the types and the
 * i386 pte bits are public: <kslab/vm.h>) ---- */
#define USER_PTRS_PER_PGD USER_PGD_PTRS /* 3 */

/*
 * Software bit (one of i386's three "available" bits): reference sampling
 * is armed on this present pte.  User space has no hardware accessed bit,
 * so the aging scan (vmscan.c) clears _PAGE_ACCESSED, sets _PAGE_OLD and
 * maps the page PROT_NONE on the host; the next access faults, and the
 * fault clears _PAGE_OLD, sets _PAGE_ACCESSED and maps it back.  A page
 * still _PAGE_OLD at the next scan was not referenced in between.
 */
#define _PAGE_OLD 0x200UL

#define pte_write(x) (((x).pte & _PAGE_RW) != 0)
#define pte_dirty(x) (((x).pte & _PAGE_DIRTY) != 0)
#define pte_pfn(x) ((x).pte >> PAGE_SHIFT)
#define pte_wrprotect(x) __pte((x).pte & ~_PAGE_RW)
#define pte_mkwrite(x) __pte((x).pte | _PAGE_RW)
#define pte_mkdirty(x) __pte((x).pte | _PAGE_DIRTY)
#define pte_mkclean(x) __pte((x).pte & ~_PAGE_DIRTY)

/*
 * A pte that is neither none nor present holds a swap entry, laid out as
 * on i386 2.4: bit 0 (present) and bit 7 (PROTNONE) clear, the swap type
 * in bits 1-6, the offset (in pages, never 0: that is the header) from
 * bit 8, 24 bits of it.
 */
typedef struct {
    unsigned long val;
} swp_entry_t;
#define SWP_TYPE(x) (((x).val >> 1) & 0x3f)
#define SWP_OFFSET(x) ((x).val >> 8)
#define SWP_ENTRY(type, offset)                                                \
    ((swp_entry_t){((unsigned long)(type) << 1) |                              \
                   ((unsigned long)(offset) << 8)})
#define SWP_MAX_OFFSET (1UL << 24)
#define pte_to_swp_entry(pte) ((swp_entry_t){pte_val(pte)})
#define swp_entry_to_pte(x) ((pte_t){(x).val})
#define pte_is_swap(x) (!pte_none(x) && !pte_present(x))

/*
 * The walk and the page references inline, for kslab's own code: the
 * public functions of the same names (<kslab/vm.h>, defined in driver.c)
 * are these macros' out-of-line copies.
 */
static inline pgd_t *vm_pgd_offset(pgd_t *pgd, unsigned long addr)
{
    return pgd + (addr >> PGDIR_SHIFT);
}
static inline pmd_t *vm_pmd_offset(pgd_t *pgd, unsigned long addr)
{
    return pgd->pgd + ((addr >> PMD_SHIFT) & (PTRS_PER_PMD - 1));
}
static inline pte_t *vm_pte_offset(pmd_t *pmd, unsigned long addr)
{
    return pmd->pmd + ((addr >> PAGE_SHIFT) & (PTRS_PER_PTE - 1));
}
#define pgd_offset(mm, addr) vm_pgd_offset((mm)->pgd, addr)
#define pmd_offset(pgd, addr) vm_pmd_offset(pgd, addr)
#define pte_offset(pmd, addr) vm_pte_offset(pmd, addr)

static inline void vm_get_page(struct page *page)
{
    if (vm_frame_pfn(page) != ZERO_PAGE_PFN)
        atomic_fetch_add_explicit(&page->count, 1, memory_order_relaxed);
}
#define get_page(page) vm_get_page(page)
static inline int page_count(struct page *page)
{
    return atomic_load_explicit(&page->count, memory_order_relaxed);
}
#define put_page(page) vm_frame_put(page, NULL)

/*
 * Pins (get_user_pages with pages, dropped by unpin_user_page): a pinned
 * frame is one whose window mapping a system call may be using, so
 * reclaim neither arms nor swaps it out, fork copies it for the child
 * instead of write-protecting it, and a write fault keeps it when the
 * only other references are pins.  Each pin also holds a reference, so
 * page_count - page_pins is what the ptes and the caches hold.
 */
static inline unsigned int page_pins(struct page *page)
{
    return __atomic_load_n(&page->pins, __ATOMIC_ACQUIRE);
}
static inline int page_unpinned_count(struct page *page)
{
    return page_count(page) - (int)page_pins(page);
}
#define ZERO_PAGE(addr) vm_pfn_frame(ZERO_PAGE_PFN)

static inline pte_t mk_pte(struct page *page, unsigned long prot)
{
    return __pte((vm_frame_pfn(page) << PAGE_SHIFT) | prot);
}
static inline struct page *vm_pte_page(pte_t pte)
{
    return vm_pfn_frame(pte_pfn(pte));
}
#define pte_page(pte) vm_pte_page(pte)

/* ---- mm_struct ---- */

#define AVL_MIN_MAP_COUNT 32
#define DEFAULT_MAX_MAP_COUNT 65536
/* Where brk starts in a new mm: below TASK_UNMAPPED_BASE, as after exec. */
#define VM_DEFAULT_BRK 0x10000000UL
#define VM_DATA_DEFAULT_FLAGS                                                  \
    (VM_READ | VM_WRITE | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)

/*
 * One emulated address space.  The vmas are a list sorted by address
 * (mmap) and, from AVL_MIN_MAP_COUNT vmas on, also an AVL tree keyed by
 * address (mmap_avl) — once built the tree is kept up to date until the
 * mm dies.  window is the host reservation of TASK_SIZE bytes: user
 * address a is host address window + a, and every page of it is mapped
 * as its pte says (a frame of the memfd with the pte's protection, or an
 * inaccessible hole).  rss counts present ptes that are not ZERO_PAGE.
 */
struct mm_struct {
    struct vm_area_struct *mmap;
    struct vm_area_struct *mmap_avl;
    struct vm_area_struct *mmap_cache;
    pgd_t pgd[PTRS_PER_PGD];
    atomic_int mm_users;
    int map_count;
    pthread_mutex_t mmap_sem;
    char *window;
    int window_slot;
    unsigned long start_brk, brk;
    unsigned long def_flags;
    unsigned long locked_vm; /* unused: counted from the vmas (mmap.c) */
    unsigned long rss, min_flt, maj_flt, cow_flt, zero_flt;
    unsigned long swap_in, swap_out;
    /* fork.c: on vm_mmlist (under its lock); vmscan.c: where the aging
     * scan of this mm resumes (under mmap_sem). */
    struct list_head mmlist;
    unsigned long mmlist_seq;
    unsigned long swap_address;
    /* host_map.c, under mmap_sem: host pages [premap_start, premap_end)
     * of the window map memfd frames premap_pfn onwards, PROT_NONE where
     * the pte is none (see vm_host_map_fresh); forgotten by any other host
     * mapping change that overlaps it.  Empty when start == end. */
    unsigned long premap_start, premap_end, premap_pfn;
    /* fork.c: the chain of mms whose mmap_sem a host fork() holds. */
    struct mm_struct *fork_next;
    int fork_locked;
    /* mmap.c: the resource limits of this mm, in bytes (RLIM_INFINITY:
     * none), indexed by resource; only RLIMIT_AS, RLIMIT_DATA,
     * RLIMIT_STACK and RLIMIT_MEMLOCK are used.  Under mmap_sem; mm_fork
     * copies them. */
    unsigned long rlim[RLIM_NLIMITS];
    /* uffd.c, under mmap_sem: per 2 MiB pmd range, the first frame of
     * the block a linear range owns, or 0 (NULL until the first one);
     * uffd_nr linear ranges. */
    unsigned long *uffd_block;
    unsigned long uffd_nr;
};

/* Any host mapping change over [start, end) other than vm_host_map_fresh's
 * own ends the premapped run it overlaps (host_map.c, uffd.c). */
static inline void vm_premap_forget(struct mm_struct *mm, unsigned long start,
                                    unsigned long end)
{
    if (start < mm->premap_end && end > mm->premap_start)
        mm->premap_start = mm->premap_end = 0;
}

/* fault.c: window registry and the SIGSEGV handler. */
int vm_fault_init(void);
int vm_window_register(struct mm_struct *mm);
void vm_window_unregister(struct mm_struct *mm);

int vm_fault_bus_init(void);

/* uffd.c: the userfaultfd back end (see there).  demote: the linear
 * ranges overlapping [start, end) become page-by-page mappings again,
 * [start, end) itself left unmapped when unmapping (0, or -ENOMEM when
 * the host refused: nothing changed).  linear: pte at addr is what a
 * linear range maps there already.  anon_fault: 1 when it resolved the
 * anonymous fault at the none pte (-1 out of memory), 0 when the range is
 * not or cannot be made linear. */
int vm_uffd_enabled(void);
int vm_uffd_demote(struct mm_struct *mm, unsigned long start, unsigned long end,
                   int unmapping);
int vm_uffd_linear(struct mm_struct *mm, unsigned long addr, pte_t pte);
int vm_uffd_anon_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                       unsigned long addr, pte_t *pte, int write_access);
void vm_uffd_mm_free(struct mm_struct *mm);
/* A host fork's child (uffd.c's story): reset, the parent's descriptor
 * replaced by one that raises signals, before the mms are mapped again
 * (vm_uffd_fork_child, each); start, the handler thread started on a
 * descriptor of its own (1) or none to start (0); switch, that
 * descriptor in force, every mm's mmap_sem held, before each is mapped
 * again onto it. */
void vm_uffd_fork_child_reset(void);
int vm_uffd_fork_child(struct mm_struct *mm);
int vm_uffd_fork_child_start(void);
void vm_uffd_fork_child_switch(void);
/* The handler thread (uffd.c's story).  serve_by_thread: asked before the
 * first mm; 0 when a thread serves the descriptor, -1 when not.  served:
 * in force.  hole: [start, end) of the window has no page on the host,
 * and any access there — the host kernel's too — is a fault the thread
 * serves (without the thread: an inaccessible hole, SIGSEGV).
 * window_open: the whole window such a hole (a new mm).  poison: the page
 * at addr fails the next access (SIGSEGV, EFAULT).  thread_faults: how
 * many faults the thread served.  fault.c's vm_fault_serve serves one. */
int vm_uffd_serve_by_thread(void);
int vm_uffd_served(void);
/* Write-protect mode of the thread (uffd.c's story): wp, in force (the
 * host has write-protect faults on shared memory); wp_map, npages of
 * frames from pfn mapped at addr write-protected (a store waits for the
 * thread); wp_protect, the pages mapped there already made so.  0 or
 * -ENOMEM (the host refused). */
int vm_uffd_wp(void);
int vm_uffd_wp_map(struct mm_struct *mm, unsigned long addr,
                   unsigned long npages, unsigned long pfn, int populate);
int vm_uffd_wp_protect(struct mm_struct *mm, unsigned long addr,
                       unsigned long npages);
int vm_uffd_hole(struct mm_struct *mm, unsigned long start, unsigned long end);
int vm_uffd_window_open(struct mm_struct *mm);
void vm_uffd_poison(struct mm_struct *mm, unsigned long addr);
extern _Atomic unsigned long vm_uffd_thread_faults;
int vm_fault_serve(uintptr_t a, int write);

/*
 * Host fork() (fork.c): vm_mm_fork_prepare takes every lock of the
 * address-space side of vm/ in the order they nest — each mm's mmap_sem,
 * vm_mmlist_lock, the window table lock, vmlist_lock, vm_swap_lock — so no
 * other thread is inside any of them when the process is copied; the
 * parent releases them, the child makes them anew (only the forking thread
 * lives on there).  They are the first level of kslab's one fork protocol
 * and lock order (lib/fork.c); vm_mm_fork_register() puts them there, at
 * the emulator's first use.  The pieces below are the per-file halves,
 * each lock owned where it is defined.
 */
void vm_mm_fork_register(void);
void vm_mm_fork_child_serve(void);
void vm_window_fork_lock(void);
void vm_window_fork_unlock(int child);
void vm_vmalloc_fork_lock(void);
void vm_vmalloc_fork_unlock(int child);
void vm_swap_fork_lock(void);
void vm_swap_fork_unlock(int child);

/* memory.c */
struct address_space;
int __handle_mm_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long address, int write_access);
void zap_page_range(struct mm_struct *mm, struct vm_area_struct *vma,
                    unsigned long address, unsigned long size);
void clear_page_tables(struct mm_struct *mm, unsigned long start,
                       unsigned long end);
int copy_page_range(struct mm_struct *dst, struct mm_struct *src,
                    struct vm_area_struct *vma);
void vm_change_protection(struct mm_struct *mm, struct vm_area_struct *vma,
                          unsigned long start, unsigned long end);
int __make_pages_present(struct mm_struct *mm, unsigned long addr,
                         unsigned long end);
int vm_swap_pte_in(struct mm_struct *mm, struct vm_area_struct *vma,
                   unsigned long addr, pte_t *pte, struct page *page,
                   swp_entry_t entry, int write_access);
unsigned long vm_pte_prot(unsigned long vm_flags);
pte_t *vm_pte_lookup(struct mm_struct *mm, unsigned long addr);
pte_t *vm_pte_alloc(struct mm_struct *mm, unsigned long addr);
void vm_pgtable_free_all(struct mm_struct *mm);
int vm_access_ok(struct vm_area_struct *vma, int write);
int vmtruncate(struct address_space *mapping, loff_t offset);
/* Fault-around (memory.c): the run of none ptes around addr, pte its pte,
 * in the aligned window of KSLAB_VM_FAULT_AROUND pages inside vma — its
 * length in pages (1: nothing around, or the option off), from *lo. */
unsigned long vm_fault_around_run(struct vm_area_struct *vma,
                                  unsigned long addr, pte_t *pte,
                                  unsigned long *lo);

/* host_map.c: the host side of the ptes (see there), mmap_sem held.
 * set_pte: installs entry at pte and maps it (1), or puts the old pte
 * back when the host refuses (-1).  map_fresh: the same for a fresh frame
 * at a none pte of vma, mapping the pages ahead PROT_NONE.  map_page: the
 * host mapping of one page as pte says.  sync, protect, unmap: [start,
 * end) remapped, reprotected (the frames are mapped already) or made a
 * hole.  The last four return 0 or -ENOMEM. */
int vm_host_set_pte(struct mm_struct *mm, unsigned long addr, pte_t *pte,
                    pte_t entry);
int vm_host_map_fresh(struct mm_struct *mm, struct vm_area_struct *vma,
                      unsigned long addr, pte_t *pte, pte_t entry);
int vm_host_map_fresh_run(struct mm_struct *mm, unsigned long addr, pte_t *pte,
                          unsigned long n, pte_t first);
int vm_host_map_page(struct mm_struct *mm, unsigned long addr, pte_t pte);
int vm_host_sync(struct mm_struct *mm, unsigned long start, unsigned long end);
int vm_host_protect(struct mm_struct *mm, unsigned long start,
                    unsigned long end);
int vm_host_unmap(struct mm_struct *mm, unsigned long start, unsigned long end);

/* vma.c */
struct vm_area_struct *__find_vma(struct mm_struct *mm, unsigned long addr);
struct vm_area_struct *__find_vma_prev(struct mm_struct *mm, unsigned long addr,
                                       struct vm_area_struct **pprev);
struct vm_area_struct *vm_area_alloc(void);
void vm_area_free(struct vm_area_struct *vma);
void insert_vm_struct(struct mm_struct *mm, struct vm_area_struct *vma);
void vm_unlink_vma(struct mm_struct *mm, struct vm_area_struct *vma);
int vm_split_vma(struct mm_struct *mm, struct vm_area_struct *vma,
                 unsigned long addr, struct vm_area_struct *new);
void vm_merge_around(struct mm_struct *mm, struct vm_area_struct *vma);
void vm_copy_vma(struct vm_area_struct *dst, const struct vm_area_struct *src);
int vm_dup_vma_file(struct vm_area_struct *dst,
                    const struct vm_area_struct *src);
void vm_check_mm(struct mm_struct *mm);
/* Stacks and limits (mmap.c).  The gap below a VM_GROWSDOWN vma that no
 * other mapping is placed in and a stack does not grow into (current
 * Linux's stack_guard_gap, 256 pages; 2.4 had none). */
#define VM_STACK_GUARD_GAP (256UL << PAGE_SHIFT)
void vm_rlimit_init(struct mm_struct *mm);
int vm_expand_stack(struct mm_struct *mm, struct vm_area_struct *vma,
                    unsigned long address);
unsigned long vm_count_pages(struct mm_struct *mm, unsigned long start,
                             unsigned long end, unsigned long mask,
                             unsigned long want);

/* mmap.c, for mremap.c (mmap_sem held): where a stack's guard gap
 * starts below v; may the mm get npages more of vmas with flags (those in
 * [ostart, oend) given back first) under RLIMIT_AS and RLIMIT_DATA; may
 * bytes more be locked under RLIMIT_MEMLOCK; a free range of len bytes
 * (addr a hint, or MAP_FIXED in flags) or -errno; do_munmap. */
unsigned long vm_start_gap(const struct vm_area_struct *v);
int vm_may_expand_vm(struct mm_struct *mm, unsigned long flags,
                     unsigned long npages, unsigned long ostart,
                     unsigned long oend);
int vm_mlock_future_ok(struct mm_struct *mm, unsigned long flags,
                       unsigned long bytes);
unsigned long vm_get_unmapped_area(struct mm_struct *mm, unsigned long addr,
                                   unsigned long len, unsigned long flags);
int __do_munmap(struct mm_struct *mm, unsigned long addr, size_t len);

/* mprotect.c: vmas of [start, end) get (flags & ~clear) | set, split and
 * merged as needed; protect also rewrites ptes and host protections. */
int vm_fixup_range(struct mm_struct *mm, unsigned long start, unsigned long end,
                   unsigned long set, unsigned long clear, int protect);

/* The operations of a mapping: struct vm_operations_struct, public in
 * <kslab/vm.h> (file mappings and shared anonymous memory have theirs in
 * filemap.c, a driver's mapping its own). */

/*
 * The page cache of one mapped file (2.4's struct address_space with the
 * inode's share lists), or the object of one MAP_SHARED|MAP_ANONYMOUS
 * mapping (fd -1: 2.4's shmem inode).  Found by (dev, ino) in filemap.c's
 * inode table; lives while a vma uses it (i_count) or a page of it is
 * cached (nrpages).  i_mmap links the private vmas of the file, and
 * i_mmap_shared the shared ones, through vm_next_share / vm_pprev_share.
 * Shared anonymous memory has size pages; a page of it that reclaim wrote
 * to swap has its slot in swap[] (one swap_map count each).  Every field
 * is under pagecache_lock.
 */
struct address_space {
    struct address_space *i_next; /* inode table bucket, or anon list */
    unsigned long dev, ino;
    int fd;       /* dup of the file for I/O, or -1 */
    int writable; /* fd is O_RDWR (write-back needs it) */
    unsigned long i_count;
    unsigned long nrpages;
    struct vm_area_struct *i_mmap;
    struct vm_area_struct *i_mmap_shared;
    unsigned long size;
    swp_entry_t *swap;
    size_t swap_bytes;
    unsigned long nrswapped;
};

/* filemap.c: file mappings and shared anonymous memory share these ops
 * (vm_private_data is the address_space). */
extern pthread_mutex_t pagecache_lock;
extern const struct vm_operations_struct vm_shared_ops;
extern const struct vm_operations_struct vm_file_private_ops;
void vm_shared_writeback(struct vm_area_struct *vma, unsigned long start,
                         unsigned long end);
/* truncation (vmtruncate, memory.c): the pages of mapping from offset on
 * leave the cache, the last one's tail zeroed (pagecache_lock taken);
 * mapped_from: is a page of it from pgoff on still mapped by a pte? */
void truncate_inode_pages(struct address_space *mapping, loff_t lstart);
int vm_mapping_mapped_from(struct address_space *mapping, unsigned long pgoff);
unsigned long vm_page_cache_pages(void);
unsigned long vm_shrink_page_cache(unsigned long want);
int vm_shmem_unuse(unsigned int type);
void vm_shmem_for_each_swap(void (*fn)(swp_entry_t entry, void *arg),
                            void *arg);
void vm_pagecache_fork_lock(void);
void vm_pagecache_fork_unlock(int child);

/* ---- swap (swapfile.c, swap_state.c, swap.c, vmscan.c) ----
 *
 * vm_swap_lock, one mutex, guards the swap areas, their swap_map counts
 * and the swap cache (hash, list, PG_swapcache and page->index of cached
 * pages); swap I/O runs under it.  Order (see the top): mmap_sem → vm_swap_lock
 * → the frame spinlock.  It is never held while touching a user window, and no
 * frame is allocated while it is held (allocation may reclaim, which takes it).
 * Functions named __xxx below expect it held.
 */
extern pthread_mutex_t vm_swap_lock;

swp_entry_t __get_swap_page(void);
int __swap_duplicate(swp_entry_t entry);
void __swap_free(swp_entry_t entry);
int __swap_count(swp_entry_t entry);
int __swap_entry_used(swp_entry_t entry);
int __swap_entry_writeok(swp_entry_t entry);
/* Swap I/O counters of the whole system (2.4's pswpin / pswpout). */
extern _Atomic unsigned long vm_pswpin, vm_pswpout;
/* vmscan.c: present pages the clock hand looked at, and frames it freed
 * (/proc/vmstat's pgscan and pgsteal). */
extern _Atomic unsigned long vm_pgscan, vm_pgsteal;
int swap_duplicate(swp_entry_t entry);
int vm_swap_io(swp_entry_t entry, struct page *page, int write);
void vm_swap_totals(unsigned long *total, unsigned long *free);
void vm_check_swap(void);

void __add_to_swap_cache(struct page *page, swp_entry_t entry);
void __delete_from_swap_cache(struct page *page);
struct page *__lookup_swap_cache(swp_entry_t entry);
struct page *lookup_swap_cache(swp_entry_t entry);
struct page *read_swap_cache_async(struct mm_struct *held, swp_entry_t entry,
                                   int readahead);
void free_swap_and_cache(swp_entry_t entry);
void vm_put_swapcache_page(struct page *page);
void vm_pte_page_put(struct page *page, struct vm_free_batch *b);
unsigned long vm_swap_cache_pages(void);
unsigned long __shrink_cache(unsigned long want, int all);

void swapin_readahead(struct mm_struct *held, swp_entry_t entry);

/* vmalloc.c: the vmalloc range and the frames mapped in it, in pages;
 * the kernel half of a new mm's pgd (0 or -ENOMEM); the entry of
 * swapper_pg_dir for a kernel address or a vmalloc pointer, or NULL. */
void vm_vmalloc_stats(unsigned long *total, unsigned long *used);
int vm_kernel_pgd_copy(struct mm_struct *mm);
pgd_t *vm_pgd_offset_k(unsigned long addr);

/* driver.c: reserved low-memory frames shared in place (see there), in
 * kslab's fork protocol beside vmlist_lock. */
void vm_driver_fork_lock(void);
void vm_driver_fork_unlock(int child);

/* A driver's vma (do_mmap_pgoff): never copy-on-write, never reclaimed. */
static inline int vm_is_driver(const struct vm_area_struct *vma)
{
    return vma->vm_filp != NULL;
}

/* fork.c: the mm list.  next: the mm after prev (the first with NULL),
 * with a reference, prev's dropped; rotate: the next mm after reclaim's
 * clock hand, wrapping, with a reference; NULL when there is none. */
struct mm_struct *vm_mmlist_next(struct mm_struct *prev);
struct mm_struct *vm_mmlist_rotate(void);
int vm_mmlist_count(void);

/* vmscan.c: the user-memory limit, reclaim. */
unsigned long vm_free_user_frames(void);
unsigned long vm_pages_min(void);
struct page *vm_alloc_user_frame(struct mm_struct *held, unsigned long hint);
unsigned long do_try_to_free_pages(struct mm_struct *held, unsigned long want);

#endif /* KSLAB_VM_MM_MM_H */
