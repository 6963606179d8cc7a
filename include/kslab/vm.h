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
struct vm_operations_struct;

/*
 * One mapped range [vm_start, vm_end) of an mm, as find_vma() returns it.
 * The first five fields are the public ones: users read them and never
 * write them.  A vma is always made and freed by kslab (users never
 * allocate, copy or size one); the fields after the marker are private to
 * kslab's vm/mm/ and may change in any release.  They stay in this struct
 * only because the vmas come from one slab cache of this layout.
 */
struct vm_area_struct {
    struct mm_struct *vm_mm;
    unsigned long vm_start;
    unsigned long vm_end;
    unsigned long vm_flags;
    unsigned long vm_pgoff; /* offset in the file, in pages */

    /* ---- private to kslab (vm/mm/): do not use ---- */
    unsigned long vm_page_prot;
    struct vm_area_struct *vm_next; /* the mm's list, by address */
    const struct vm_operations_struct *vm_ops;
    void *vm_private_data;
    int vm_file; /* host fd (dup'ed) of a file mapping, or -1 */
    /* the mm's AVL tree by address (2.4.0's vm_avl_*), in mmap.c */
    int vm_avl_height;
    struct vm_area_struct *vm_avl_left, *vm_avl_right;
    /* the i_mmap / i_mmap_shared list of the mapping (vm_private_data) */
    struct vm_area_struct *vm_next_share;
    struct vm_area_struct **vm_pprev_share;
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
KSLAB_API int do_munmap(struct mm_struct *mm, unsigned long addr, size_t len);
KSLAB_API unsigned long do_brk(struct mm_struct *mm, unsigned long addr,
                               unsigned long len);
KSLAB_API unsigned long sys_brk(struct mm_struct *mm, unsigned long brk);
KSLAB_API int sys_mprotect(struct mm_struct *mm, unsigned long start,
                           size_t len, unsigned long prot);
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

/* ---- vmalloc ---- */
KSLAB_API void *vmalloc(unsigned long size);
KSLAB_API void vfree(void *addr);
KSLAB_API struct page *vmalloc_to_page(const void *addr);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_VM_H */
