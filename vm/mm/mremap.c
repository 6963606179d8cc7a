/*
 * vm/mm/mremap.c — sys_mremap (2.4 mm/mremap.c): a mapping shrinks by
 * unmapping its tail, grows in place when the room after it is free, and
 * otherwise (MREMAP_MAYMOVE) moves: a new vma at the new address, the
 * page table entries moved across one by one (move_page_tables), the old
 * range unmapped.  Nothing is copied: present frames, swap entries,
 * ZERO_PAGE and COW sharing with another mm travel with their ptes, so a
 * swapped-out page stays swapped out and a page shared after mm_fork
 * stays shared.  MREMAP_FIXED puts the mapping at new_addr, unmapping
 * whatever was there, as 2.4.4 on does.
 *
 * The host side: both ranges leave the userfaultfd back end's linear
 * layout first (their ptes no longer map each range's own frames), the
 * moved ptes are mapped at the new place by one walk (vm_host_sync), and
 * the old range becomes a hole through do_munmap.  When the host refuses
 * (vm.max_map_count) the ptes go back where they were and the call fails
 * with -ENOMEM, nothing changed, as 2.4 moves them back when a page
 * table cannot be allocated.
 *
 * Locking: mmap_sem for the whole call.
 */
#include <errno.h>
#include <sys/mman.h>

#include "vm/mm/mm.h"

/* Moves the ptes of [old, old + len) to [new, new + len); the ranges do
 * not overlap.  0, or -ENOMEM when a page table for the new place could
 * not be allocated (then every pte moved so far is back). */
static int move_page_tables(struct mm_struct *mm, unsigned long new,
                            unsigned long old, unsigned long len)
{
    for (unsigned long off = 0; off < len; off += PAGE_SIZE) {
        pte_t *src = vm_pte_lookup(mm, old + off);
        if (!src || pte_none(*src))
            continue;
        pte_t *dst = vm_pte_alloc(mm, new + off);
        if (!dst) {
            /* 2.4's move_page_tables: put back what moved */
            for (unsigned long b = 0; b < off; b += PAGE_SIZE) {
                pte_t *d = vm_pte_lookup(mm, new + b);
                if (d && !pte_none(*d)) {
                    *vm_pte_alloc(mm, old + b) = *d;
                    *d = __pte(0);
                }
            }
            return -ENOMEM;
        }
        *dst = *src;
        *src = __pte(0);
    }
    return 0;
}

/* Moves [addr, addr + old_len) of vma to [new_addr, new_addr + new_len)
 * (new_addr free, or to be freed: MREMAP_FIXED unmapped it first). */
static unsigned long move_vma(struct mm_struct *mm, struct vm_area_struct *vma,
                              unsigned long addr, unsigned long old_len,
                              unsigned long new_len, unsigned long new_addr)
{
    if (mm->map_count >= (int)DEFAULT_MAX_MAP_COUNT)
        return (unsigned long)-ENOMEM;
    struct vm_area_struct *n = vm_area_alloc();
    if (!n)
        return (unsigned long)-ENOMEM;
    vm_copy_vma(n, vma);
    if (vm_dup_vma_file(n, vma) != 0) {
        vm_area_free(n);
        return (unsigned long)-ENFILE;
    }
    unsigned long moved = old_len < new_len ? old_len : new_len;
    /* the linear ranges of both places become page by page first, so a
     * failure below leaves the host as the ptes say */
    if (vm_uffd_demote(mm, addr, addr + old_len, 0) != 0 ||
        vm_uffd_demote(mm, new_addr, new_addr + new_len, 0) != 0 ||
        move_page_tables(mm, new_addr, addr, moved) != 0)
        goto fail;
    if (vm_host_sync(mm, new_addr, new_addr + moved) != 0) {
        move_page_tables(mm, addr, new_addr, moved);
        vm_host_sync(mm, addr, addr + moved);
        vm_host_unmap(mm, new_addr, new_addr + moved);
        goto fail;
    }
    n->vm_start = new_addr;
    n->vm_end = new_addr + new_len;
    n->vm_pgoff += (addr - vma->vm_start) >> PAGE_SHIFT;
    if (n->vm_ops && n->vm_ops->open)
        n->vm_ops->open(n);
    insert_vm_struct(mm, n);
    /* the old range has no ptes left: this unmaps and closes it */
    __do_munmap(mm, addr, old_len);
    if (n->vm_flags & VM_LOCKED)
        __make_pages_present(mm, new_addr + moved, new_addr + new_len);
    return new_addr;
fail:
    vm_area_free(n); /* closes its file; it was never opened */
    return (unsigned long)-ENOMEM;
}

static unsigned long __do_mremap(struct mm_struct *mm, unsigned long addr,
                                 unsigned long old_len, unsigned long new_len,
                                 unsigned long flags, unsigned long new_addr)
{
    if (flags & ~(unsigned long)(MREMAP_FIXED | MREMAP_MAYMOVE))
        return (unsigned long)-EINVAL;
    if (addr & ~PAGE_MASK)
        return (unsigned long)-EINVAL;
    old_len = PAGE_ALIGN(old_len);
    new_len = PAGE_ALIGN(new_len);
    if (!new_len || !old_len || old_len > TASK_SIZE || new_len > TASK_SIZE ||
        addr > TASK_SIZE - old_len)
        return (unsigned long)-EINVAL;

    /* new_addr is only valid with MREMAP_FIXED, which needs MAYMOVE */
    if (flags & MREMAP_FIXED) {
        if (new_addr & ~PAGE_MASK || !(flags & MREMAP_MAYMOVE))
            return (unsigned long)-EINVAL;
        if (new_addr > TASK_SIZE - new_len)
            return (unsigned long)-EINVAL;
        /* the old and the new range may not overlap */
        if (addr + old_len > new_addr && new_addr + new_len > addr)
            return (unsigned long)-EINVAL;
    }

    struct vm_area_struct *vma = __find_vma(mm, addr);
    if (!vma || vma->vm_start > addr || old_len > vma->vm_end - addr)
        return (unsigned long)-EFAULT;
    if (vm_is_driver(vma) && (vma->vm_flags & VM_DONTEXPAND) &&
        new_len > old_len)
        return (unsigned long)-EFAULT;
    if (new_len > old_len) {
        unsigned long more = new_len - old_len;
        if (!vm_mlock_future_ok(mm, vma->vm_flags, more))
            return (unsigned long)-EAGAIN;
        if (!vm_may_expand_vm(mm, vma->vm_flags, more >> PAGE_SHIFT, 0, 0))
            return (unsigned long)-ENOMEM;
    }

    if (flags & MREMAP_FIXED) {
        int r = __do_munmap(mm, new_addr, new_len);
        if (r)
            return (unsigned long)(long)r;
        if (old_len > new_len) {
            r = __do_munmap(mm, addr + new_len, old_len - new_len);
            if (r)
                return (unsigned long)(long)r;
            old_len = new_len;
        }
        vma = __find_vma(mm, addr);
        return move_vma(mm, vma, addr, old_len, new_len, new_addr);
    }

    /* shrinking (or the same size): the tail goes, the mapping stays */
    if (old_len >= new_len) {
        if (old_len > new_len) {
            int r = __do_munmap(mm, addr + new_len, old_len - new_len);
            if (r)
                return (unsigned long)(long)r;
        }
        return addr;
    }

    /* growing the end of a vma into free room: in place */
    if (old_len == vma->vm_end - addr &&
        vma->vm_end + (new_len - old_len) <= TASK_SIZE &&
        (!vma->vm_next ||
         vma->vm_end + (new_len - old_len) <= vm_start_gap(vma->vm_next))) {
        unsigned long end = vma->vm_end;
        vma->vm_end = addr + new_len;
        mm->mmap_cache = NULL;
        if (vma->vm_flags & VM_LOCKED)
            __make_pages_present(mm, end, vma->vm_end);
        return addr;
    }
    if (!(flags & MREMAP_MAYMOVE))
        return (unsigned long)-ENOMEM;
    unsigned long to = vm_get_unmapped_area(mm, 0, new_len, 0);
    if (IS_ERR_VALUE(to))
        return to;
    return move_vma(mm, vma, addr, old_len, new_len, to);
}

KSLAB_API unsigned long sys_mremap(struct mm_struct *mm, unsigned long addr,
                                   unsigned long old_len, unsigned long new_len,
                                   unsigned long flags, unsigned long new_addr)
{
    if (!mm)
        return (unsigned long)-EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    unsigned long r = __do_mremap(mm, addr, old_len, new_len, flags, new_addr);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}
