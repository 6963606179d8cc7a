/*
 * vm/mm/mprotect.c — sys_mprotect (2.4 mm/mprotect.c) and the range fixup it
 * shares with mlock: the vmas covering [start, end) take new flags, the
 * ones that stick out are split first (mprotect_fixup_start/_end/_middle
 * in 2.4), and afterwards compatible neighbours merge again.  mprotect then
 * rewrites the ptes (change_protection) and the host protections.
 *
 * Locking: mmap_sem for the whole call.  Everything that can fail (a gap,
 * a protection the mapping may not have, the vmas a split needs) is
 * checked or allocated before the first change.
 */
#include <errno.h>
#include <sys/mman.h>

#include "vm/mm/mm.h"

int vm_fixup_range(struct mm_struct *mm, unsigned long start, unsigned long end,
                   unsigned long set, unsigned long clear, int protect)
{
    struct vm_area_struct *vma = __find_vma(mm, start), *v, *spare[2] = {0};
    int nspare = 0, need = 0, r = 0;

    if (!vma || vma->vm_start > start)
        return -ENOMEM;
    for (v = vma; v && v->vm_start < end; v = v->vm_next) {
        unsigned long nf = (v->vm_flags & ~clear) | set;
        if (protect && (nf & (VM_READ | VM_WRITE | VM_EXEC)) & ~(nf >> 4) &
                           (VM_READ | VM_WRITE | VM_EXEC))
            return -EACCES;
        if (nf != v->vm_flags) {
            need += v->vm_start < start;
            need += v->vm_end > end;
        }
        if (v->vm_end < end &&
            (!v->vm_next || v->vm_next->vm_start != v->vm_end))
            return -ENOMEM;
    }
    if (mm->map_count + need > DEFAULT_MAX_MAP_COUNT)
        return -ENOMEM;
    for (nspare = 0; nspare < need; nspare++)
        if (!(spare[nspare] = vm_area_alloc())) {
            r = -ENOMEM;
            goto out;
        }

    for (v = vma; v && v->vm_start < end; v = v->vm_next) {
        unsigned long nf = (v->vm_flags & ~clear) | set;
        if (nf == v->vm_flags)
            continue;
        if (v->vm_start < start) {
            struct vm_area_struct *n = spare[--nspare];
            spare[nspare] = NULL;
            if ((r = vm_split_vma(mm, v, start, n)) != 0)
                goto out;
            v = n;
        }
        if (v->vm_end > end) {
            struct vm_area_struct *n = spare[--nspare];
            spare[nspare] = NULL;
            if ((r = vm_split_vma(mm, v, end, n)) != 0)
                goto out;
        }
        v->vm_flags = nf;
        /* a driver's pages are written in place (never COW) */
        v->vm_page_prot =
            __pgprot(vm_pte_prot(vm_is_driver(v) ? nf | VM_SHARED : nf));
        if (protect)
            vm_change_protection(mm, v, v->vm_start, v->vm_end);
    }
    /* merge what became compatible again */
    unsigned long a = start >= PAGE_SIZE ? start - PAGE_SIZE : 0;
    for (v = __find_vma(mm, a); v && v->vm_start <= end;
         v = __find_vma(mm, a)) {
        a = v->vm_end;
        vm_merge_around(mm, v);
    }
out:
    while (nspare > 0)
        if (spare[--nspare])
            vm_area_free(spare[nspare]);
    return r;
}

KSLAB_API int sys_mprotect(struct mm_struct *mm, unsigned long start,
                           size_t len, unsigned long prot)
{
    if (start & ~PAGE_MASK)
        return -EINVAL;
    if (prot & ~(unsigned long)(PROT_READ | PROT_WRITE | PROT_EXEC))
        return -EINVAL;
    if (!mm)
        return -EINVAL;
    if (!len)
        return 0;
    /* a length that rounds up past the end of the address space is
     * -ENOMEM, as in current Linux (2.4 let PAGE_ALIGN wrap to 0 and
     * returned 0 having done nothing) */
    if (PAGE_ALIGN(len) < len)
        return -ENOMEM;
    len = PAGE_ALIGN(len);
    unsigned long end = start + len;
    if (end < start || end > TASK_SIZE)
        return -ENOMEM;
    unsigned long set = 0;
    if (prot & PROT_READ)
        set |= VM_READ;
    if (prot & PROT_WRITE)
        set |= VM_WRITE;
    if (prot & PROT_EXEC)
        set |= VM_EXEC;
    pthread_mutex_lock(&mm->mmap_sem);
    int r =
        vm_fixup_range(mm, start, end, set, VM_READ | VM_WRITE | VM_EXEC, 1);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}
