/*
 * <kslab/vm.h> — the page layer: page frames and zones (buddy allocator),
 * emulated address spaces (mm_struct, vmas, page tables, faults, COW fork),
 * swap and vmalloc.
 *
 * Low memory (ZONE_DMA, ZONE_NORMAL) is the allocator's direct map: one
 * reserved range of private anonymous host memory.  User memory
 * (ZONE_HIGHMEM) lives in a memfd and is mapped into the host window of
 * each mm_struct as its page tables allow.
 */
#ifndef KSLAB_VM_H
#define KSLAB_VM_H

#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h> /* RLIMIT_AS, RLIMIT_DATA, RLIMIT_STACK, ... */
#include <sys/types.h>    /* off_t */

#include <kslab/gfp.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KSLAB_API
#define KSLAB_API __attribute__((visibility("default")))
#endif

/*
 * The i386 page: 4 KiB.  <sys/user.h> (x86) defines PAGE_SHIFT, PAGE_SIZE
 * and PAGE_MASK too, with the same values; each is defined here only if it
 * is not yet, and spelled token for token as glibc spells it, so the two
 * headers may be included in either order without a "redefined" warning.
 */
// clang-format off
#ifndef PAGE_SHIFT
#define PAGE_SHIFT		12
#endif
#ifndef PAGE_SIZE
#define PAGE_SIZE		(1UL << PAGE_SHIFT)
#endif
#ifndef PAGE_MASK
#define PAGE_MASK		(~(PAGE_SIZE-1))
#endif
// clang-format on
#ifndef PAGE_ALIGN
#define PAGE_ALIGN(addr) (((addr) + PAGE_SIZE - 1) & PAGE_MASK)
#endif

/* The buddy allocator serves orders 0 … MAX_ORDER-1 (2.4: 10). */
#define MAX_ORDER 10

/* The 2.4 i386 3 GiB / 1 GiB split. */
#define TASK_SIZE 0xC0000000UL
#define TASK_UNMAPPED_BASE (TASK_SIZE / 3)

/* A returned unsigned long that is really -errno. */
#define IS_ERR_VALUE(x) ((unsigned long)(x) >= (unsigned long)-4095)

/* vm_area_struct.vm_flags: the 2.4 values. */
#define VM_READ 0x00000001
#define VM_WRITE 0x00000002
#define VM_EXEC 0x00000004
#define VM_SHARED 0x00000008
#define VM_MAYREAD 0x00000010
#define VM_MAYWRITE 0x00000020
#define VM_MAYEXEC 0x00000040
#define VM_MAYSHARE 0x00000080
#define VM_GROWSDOWN 0x00000100
#define VM_GROWSUP 0x00000200
#define VM_SHM 0x00000400
#define VM_DENYWRITE 0x00000800
#define VM_EXECUTABLE 0x00001000
#define VM_LOCKED 0x00002000
#define VM_IO 0x00004000
#define VM_SEQ_READ 0x00008000
#define VM_RAND_READ 0x00010000
#define VM_DONTCOPY 0x00020000
#define VM_DONTEXPAND 0x00040000
#define VM_RESERVED 0x00080000

struct page;
struct mm_struct;
struct vm_area_struct;
struct file;

/*
 * ---- page tables: the 2.4 i386 PAE layout ----
 * A pgd of 4 entries of 1 GiB, pmd tables of 512 entries of 2 MiB, pte
 * tables of 512 ptes of 4 KiB.  The first USER_PGD_PTRS entries map user
 * space (below TASK_SIZE), the last KERNEL_PGD_PTRS the kernel's fourth
 * gigabyte (vmalloc): every mm's pgd holds the kernel's entry, copied from
 * swapper_pg_dir (init_mm's pgd) when the mm is made.  A pte holds a frame
 * number above PAGE_SHIFT and the i386 bits below.  These are the tables
 * the fault handler follows: read them with mmap_sem held (inside a
 * driver's mmap or nopage method), never write them.
 */
#define PGDIR_SHIFT 30
#define PGDIR_SIZE (1UL << PGDIR_SHIFT)
#define PGDIR_MASK (~(PGDIR_SIZE - 1))
#define PTRS_PER_PGD 4
#define USER_PGD_PTRS (TASK_SIZE >> PGDIR_SHIFT) /* 3 */
#define KERNEL_PGD_PTRS (PTRS_PER_PGD - USER_PGD_PTRS)
#define PMD_SHIFT 21
#define PMD_SIZE (1UL << PMD_SHIFT)
#define PMD_MASK (~(PMD_SIZE - 1))
#define PTRS_PER_PMD 512
#define PTRS_PER_PTE 512

/* pte bits: the i386 values. */
#define _PAGE_PRESENT 0x001UL
#define _PAGE_RW 0x002UL
#define _PAGE_USER 0x004UL
#define _PAGE_ACCESSED 0x020UL
#define _PAGE_DIRTY 0x040UL
#define _PAGE_PROTNONE 0x080UL /* has a frame, but no access (PROT_NONE) */

typedef struct {
    unsigned long pte;
} pte_t;
typedef struct {
    pte_t *pmd; /* the pte table, or NULL */
} pmd_t;
typedef struct {
    pmd_t *pgd; /* the pmd table, or NULL */
} pgd_t;
typedef struct {
    unsigned long pgprot;
} pgprot_t;

#define pte_val(x) ((x).pte)
#define pgprot_val(x) ((x).pgprot)
#define __pte(x) ((pte_t){(x)})
#define __pgprot(x) ((pgprot_t){(x)})

/* The protections a driver passes to remap_page_range (2.4's names);
 * most pass vma->vm_page_prot. */
#define PAGE_NONE __pgprot(_PAGE_PROTNONE | _PAGE_ACCESSED)
#define PAGE_SHARED                                                            \
    __pgprot(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED)
#define PAGE_READONLY __pgprot(_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED)

#define pgd_none(x) (!(x).pgd)
#define pmd_none(x) (!(x).pmd)
#define pte_none(x) (!(x).pte)
#define pte_present(x) (((x).pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) != 0)

/* The kernel's page directory (init_mm's): its entries from USER_PGD_PTRS
 * on are the kernel half of every mm's pgd. */
KSLAB_API extern pgd_t swapper_pg_dir[PTRS_PER_PGD];

/* The walk.  pgd_offset: the entry of addr in mm's pgd; pgd_offset_k: in
 * the kernel's (pgd_offset_k(0) == swapper_pg_dir); pmd_offset and
 * pte_offset: the entry in the table below (which must exist: test
 * pgd_none / pmd_none first). */
KSLAB_API pgd_t *pgd_offset(struct mm_struct *mm, unsigned long addr);
KSLAB_API pgd_t *pgd_offset_k(unsigned long addr);
KSLAB_API pmd_t *pmd_offset(pgd_t *pgd, unsigned long addr);
KSLAB_API pte_t *pte_offset(pmd_t *pmd, unsigned long addr);
/* The frame a present pte maps. */
KSLAB_API struct page *pte_page(pte_t pte);
/* A reference on a frame (2.4's page->count): what nopage hands back
 * with the page it returns; put_page drops one (and frees the frame at
 * the last). */
KSLAB_API void get_page(struct page *page);
KSLAB_API void put_page(struct page *page);

/* The direct map: a physical address is a low-memory frame number above
 * PAGE_SHIFT and the offset below; only addresses of the direct map
 * (__get_free_pages, kmalloc) have one. */
KSLAB_API unsigned long virt_to_phys(const void *addr);
KSLAB_API void *phys_to_virt(unsigned long phys);
#define __pa(x) virt_to_phys((const void *)(x))
#define __va(x) phys_to_virt((unsigned long)(x))

/*
 * PG_reserved (2.4's mem_map_reserve): a reserved low-memory frame may be
 * mapped into user space with remap_page_range.  Reserving a frame makes
 * its page of the direct map shared memory, in place (its kernel address
 * does not change; its contents are kept), so the kernel address and
 * every user mapping of it see each other's stores.  Reserve a frame
 * before its buffer is in use and unreserve it after: a store made to it
 * by another thread meanwhile may be lost.  mem_map_unreserve makes the
 * page private again (contents kept); user mappings of it made before
 * keep the old shared copy until they go.  Both are no-ops for a page
 * that is not a low-memory frame in use.  Unreserve before you free: a
 * free_pages/__free_pages (or a slab page's return) of a block with a
 * reserved frame is reported in one line and aborts (2.4 skipped the
 * frame and leaked it).
 */
KSLAB_API void mem_map_reserve(struct page *page);
KSLAB_API void mem_map_unreserve(struct page *page);
KSLAB_API int PageReserved(struct page *page);

/*
 * The operations of a mapping (2.4's struct vm_operations_struct).  open
 * is called for every vma copied from one (mm_fork, and the new part of a
 * split by munmap or mprotect), close for every vma that goes (munmap,
 * mmput), so each open is matched by one close; the mapping's first vma
 * is counted by the mmap method, which gets no open.  nopage brings in
 * the page of a fault on a none pte: it returns a page with a reference
 * for the caller (get_page), NOPAGE_SIGBUS (the program gets SIGBUS,
 * BUS_ADRERR) or NOPAGE_OOM.  Called with the mm's mmap_sem held: they
 * may read the page tables, and must not call the mm's other calls.
 */
struct vm_operations_struct {
    void (*open)(struct vm_area_struct *area);
    void (*close)(struct vm_area_struct *area);
    struct page *(*nopage)(struct vm_area_struct *area, unsigned long address,
                           int write_access);
};
#define NOPAGE_SIGBUS ((struct page *)0)
#define NOPAGE_OOM ((struct page *)-1)

/*
 * One mapped range [vm_start, vm_end) of an mm, as find_vma() returns it.
 * The first eight fields are public: users read them, and a driver's mmap
 * method (do_mmap_pgoff) may set vm_flags, vm_page_prot, vm_ops and
 * vm_private_data of the vma it gets.  A vma is always made and freed by
 * kslab (users never allocate, copy or size one); the fields after the
 * marker are private to kslab's vm/mm/ and may change in any release.
 */
struct vm_area_struct {
    struct mm_struct *vm_mm;
    unsigned long vm_start;
    unsigned long vm_end;
    unsigned long vm_flags;
    unsigned long vm_pgoff; /* offset in the file, in pages */
    pgprot_t vm_page_prot;  /* the pte bits of a page mapped here */
    const struct vm_operations_struct *vm_ops;
    void *vm_private_data;

    /* ---- private to kslab (vm/mm/): do not use ---- */
    struct file *vm_filp; /* the device of a driver mapping, or NULL */
    struct vm_area_struct *vm_next; /* the mm's list, by address */
    int vm_file; /* host fd (dup'ed) of a file mapping, or -1 */
    /* the mm's AVL tree by address (2.4.0's vm_avl_*), in vm/mm/vma.c */
    int vm_avl_height;
    struct vm_area_struct *vm_avl_left, *vm_avl_right;
    /* the i_mmap / i_mmap_shared list of the mapping (vm_private_data) */
    struct vm_area_struct *vm_next_share;
    struct vm_area_struct **vm_pprev_share;
};

/*
 * A "device" a user defines, for do_mmap_pgoff: its mmap method is called
 * as 2.4's do_mmap_pgoff calls file->f_op->mmap.  The struct file is the
 * caller's and must outlive every mapping of it.
 */
struct file_operations {
    int (*mmap)(struct file *file, struct vm_area_struct *vma);
};
struct file {
    const struct file_operations *f_op;
    void *private_data;
};

/* ---- page frames (buddy) ---- */
KSLAB_API struct page *alloc_pages(int gfp_mask, unsigned int order);
KSLAB_API void __free_pages(struct page *page, unsigned int order);
KSLAB_API unsigned long __get_free_pages(int gfp_mask, unsigned int order);
KSLAB_API void free_pages(unsigned long addr, unsigned int order);
KSLAB_API void *page_address(struct page *page);
KSLAB_API struct page *virt_to_page(const void *addr);
#define alloc_page(gfp) alloc_pages(gfp, 0)
#define __get_free_page(gfp) __get_free_pages(gfp, 0)
#define free_page(addr) free_pages(addr, 0)

/* ---- address spaces ---- */
KSLAB_API struct mm_struct *mm_alloc(void);
KSLAB_API void mmput(struct mm_struct *mm);
KSLAB_API struct mm_struct *mm_fork(struct mm_struct *mm);
KSLAB_API void *mm_host(struct mm_struct *mm, unsigned long addr);
KSLAB_API unsigned long do_mmap(struct mm_struct *mm, int fd,
                                unsigned long addr, unsigned long len,
                                unsigned long prot, unsigned long flags,
                                unsigned long offset);
/*
 * do_mmap_pgoff - maps len bytes of the device file at page offset pgoff
 * (prot and flags as mmap(2): MAP_SHARED or MAP_PRIVATE, MAP_FIXED; no
 * MAP_ANONYMOUS) and calls file->f_op->mmap(file, vma), as 2.4 does.  The
 * method may set the vma's vm_flags, vm_page_prot, vm_ops and
 * vm_private_data and map pages at once (remap_page_range); a nonzero
 * return is the call's error, nothing mapped.  A driver's mapping is
 * never copy-on-write: its pages are the driver's, shared by mm_fork's
 * child and written in place whatever MAP_PRIVATE says (2.4 treats
 * reserved pages so), and reclaim leaves them alone.  Returns the user
 * address or -errno.
 */
KSLAB_API unsigned long do_mmap_pgoff(struct mm_struct *mm, struct file *file,
                                      unsigned long addr, unsigned long len,
                                      unsigned long prot, unsigned long flags,
                                      unsigned long pgoff);
/*
 * remap_page_range - maps the frames at phys_addr (virt_to_phys of
 * __get_free_pages or kmalloc memory) at [from, from + size) of vma with
 * protection prot: exactly 2.4's rule, only frames marked reserved
 * (mem_map_reserve) are mapped, the others are left unmapped.  Called
 * from a driver's mmap method (mmap_sem held).  0, -EINVAL (range outside
 * the vma or unaligned) or -ENOMEM.
 */
KSLAB_API int remap_page_range(struct vm_area_struct *vma, unsigned long from,
                               unsigned long phys_addr, unsigned long size,
                               pgprot_t prot);
KSLAB_API int do_munmap(struct mm_struct *mm, unsigned long addr, size_t len);
KSLAB_API unsigned long do_brk(struct mm_struct *mm, unsigned long addr,
                               unsigned long len);
KSLAB_API unsigned long sys_brk(struct mm_struct *mm, unsigned long brk);
KSLAB_API int sys_mprotect(struct mm_struct *mm, unsigned long start,
                           size_t len, unsigned long prot);
/*
 * sys_mremap - 2.4's mremap on mm: [addr, addr + old_len) of one vma
 * shrinks (its tail unmapped), grows in place when the room after it is
 * free, or with MREMAP_MAYMOVE moves to a free range, its page table
 * entries moved — present frames, swap entries and pages shared with
 * another mm go along, nothing is copied or swapped in.  MREMAP_FIXED
 * (with MAYMOVE) puts it at new_addr, unmapping what was there.  flags:
 * MREMAP_MAYMOVE, MREMAP_FIXED (<sys/mman.h>).  Returns the new address,
 * or -EINVAL (unaligned, empty, unknown flags, overlapping ranges),
 * -EFAULT (not one vma, or growing a VM_DONTEXPAND driver mapping),
 * -ENOMEM (no room, RLIMIT_AS), -EAGAIN (RLIMIT_MEMLOCK): then nothing
 * changed.
 */
KSLAB_API unsigned long sys_mremap(struct mm_struct *mm, unsigned long addr,
                                   unsigned long old_len, unsigned long new_len,
                                   unsigned long flags, unsigned long new_addr);
KSLAB_API int sys_mlock(struct mm_struct *mm, unsigned long start, size_t len);
KSLAB_API int sys_munlock(struct mm_struct *mm, unsigned long start,
                          size_t len);
KSLAB_API struct vm_area_struct *find_vma(struct mm_struct *mm,
                                          unsigned long addr);
KSLAB_API struct vm_area_struct *find_vma_prev(struct mm_struct *mm,
                                               unsigned long addr,
                                               struct vm_area_struct **pprev);
/*
 * The resource limits of one mm, as setrlimit(2) sets a process's (one
 * value, both soft and hard): resource is RLIMIT_AS, RLIMIT_DATA,
 * RLIMIT_STACK or RLIMIT_MEMLOCK, value in bytes or RLIM_INFINITY.
 * Returns 0, or -EINVAL (NULL mm, another resource) with nothing changed.
 * A new mm has RLIMIT_STACK and RLIMIT_MEMLOCK of 8 MiB (Linux's defaults)
 * and no other limit; mm_fork copies them.  See README.md for what each
 * limit refuses and with which error.
 */
KSLAB_API int mm_setrlimit(struct mm_struct *mm, int resource,
                           unsigned long value);
KSLAB_API int handle_mm_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                              unsigned long address, int write_access);

struct mm_stat {
    unsigned long rss;
    unsigned long min_flt;
    unsigned long maj_flt;
    unsigned long cow_flt;
    unsigned long zero_flt;
    unsigned long swap_in;
    unsigned long swap_out;
};
KSLAB_API void mm_get_stat(struct mm_struct *mm, struct mm_stat *st);
KSLAB_API int mm_dump_maps(struct mm_struct *mm, FILE *out);
/* msync(2): flags are <sys/mman.h>'s MS_ASYNC, MS_SYNC, MS_INVALIDATE. */
KSLAB_API int sys_msync(struct mm_struct *mm, unsigned long start, size_t len,
                        int flags);
/*
 * truncate(2) and ftruncate(2) of a file the mms may map (2.4's
 * sys_truncate / sys_ftruncate, which call vmtruncate): the host file
 * gets the new length, and when it shrank the pages wholly beyond the new
 * end leave every mapping of it in every mm and the page cache (an access
 * there then gets SIGBUS, BUS_ADRERR), the last page's tail zeroed.  Cut
 * a mapped file only through these: the page cache does not see a plain
 * ftruncate(2).  0 or -errno.
 */
KSLAB_API int sys_ftruncate(int fd, off_t length);
KSLAB_API int sys_truncate(const char *path, off_t length);
/* The page cache behind the file or shared mapping at addr: its pages and
 * the vmas of every mm on its share lists.  Returns the vmas listed. */
KSLAB_API int mm_dump_mapping(struct mm_struct *mm, unsigned long addr,
                              FILE *out);

/* ---- swap and reclaim ---- */
#define MAX_SWAPFILES 8
/* sys_swapon flags: those of swapon(2), as <sys/swap.h> defines them. */
#ifndef SWAP_FLAG_PREFER
#define SWAP_FLAG_PREFER 0x8000
#endif
#ifndef SWAP_FLAG_PRIO_MASK
#define SWAP_FLAG_PRIO_MASK 0x7fff
#endif
KSLAB_API int mkswap(const char *path, unsigned long pages);
KSLAB_API int sys_swapon(const char *path, int swap_flags);
KSLAB_API int sys_swapoff(const char *path);
KSLAB_API void vm_set_ram_pages(unsigned long pages);
KSLAB_API unsigned long try_to_free_pages(unsigned long pages);
KSLAB_API int vm_meminfo(FILE *out);
/* Swap-in readahead of 1 << order pages (0–5, default 3); returns the old
 * order or -EINVAL. */
KSLAB_API int vm_set_page_cluster(int order);

/* ---- kernel access to user memory (vm/mm/uaccess.c) ----
 * The host kernel does not fault into kslab: hand emulated memory to a
 * system call only through these (copy into or out of a buffer of your
 * own), or after get_user_pages/make_pages_present made the pages
 * present with the access the call needs. */
KSLAB_API unsigned long copy_to_user(struct mm_struct *mm, unsigned long uaddr,
                                     const void *src, unsigned long n);
KSLAB_API unsigned long copy_from_user(struct mm_struct *mm, void *dst,
                                       unsigned long uaddr, unsigned long n);
KSLAB_API long get_user_pages(struct mm_struct *mm, unsigned long start,
                              unsigned long nr, int write, struct page **pages);
/* Drop the pins (and references) get_user_pages returned in pages: while
 * pinned, a page keeps its frame and its window mapping whatever reclaim
 * and mm_fork do. */
KSLAB_API void unpin_user_page(struct page *page);
KSLAB_API void unpin_user_pages(struct page **pages, unsigned long nr);
KSLAB_API int make_pages_present(struct mm_struct *mm, unsigned long start,
                                 unsigned long end);

/*
 * A kiobuf (2.4's struct kiobuf, the fields a driver reads): the pages of
 * a user buffer pinned for I/O.  map_user_kiobuf fills one from [va, va +
 * len) of mm through get_user_pages — maplist[0 .. nr_pages) the pages,
 * offset the start within the first, length len — faulting the pages in
 * writable when rw is 0 (2.4's READ: the device writes into memory) and
 * readable when rw is 1 (WRITE).  0 or -errno (nothing pinned, maplist
 * NULL).  unmap_kiobuf unpins them and frees maplist.
 */
struct kiobuf {
    int nr_pages;
    int offset;
    int length;
    struct page **maplist;
};
KSLAB_API int map_user_kiobuf(int rw, struct kiobuf *iobuf,
                              struct mm_struct *mm, unsigned long va,
                              size_t len);
KSLAB_API void unmap_kiobuf(struct kiobuf *iobuf);

/* ---- vmalloc ---- */
KSLAB_API void *vmalloc(unsigned long size);
KSLAB_API void vfree(void *addr);
KSLAB_API struct page *vmalloc_to_page(const void *addr);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_VM_H */
