/*
 * vm/mm/mlock.c — sys_mlock / sys_munlock (2.4 mm/mlock.c): VM_LOCKED on the
 * vmas of a range (split and merged like mprotect), and every page of a
 * newly locked range faulted in by make_pages_present — written when the
 * vma is writable, swapped pages read back — so touching it later never
 * faults.  A fork does
 * not inherit VM_LOCKED.  The reclaim scan (vmscan.c) skips VM_LOCKED
 * vmas, so locked pages are never armed for aging nor swapped.
 *
 * RLIMIT_MEMLOCK (mm_setrlimit) bounds the pages an mm has locked, as in
 * current Linux: a limit of 0 refuses mlock with -EPERM (can_do_mlock), a
 * lock that would take the mm's locked pages (those of the range already
 * locked not counted twice) beyond it is -ENOMEM.  An emulated mm has no
 * capabilities, so nothing is exempt as CAP_IPC_LOCK is in Linux.  2.4
 * let only CAP_IPC_LOCK lock at all (-EPERM otherwise), then checked the
 * limit and half of physical memory.
 *
 * Locking: mmap_sem for the whole call.
 */
#include <errno.h>

#include "vm/mm/mm.h"

/* RLIMIT_MEMLOCK for locking [start, end): 0, -EPERM or -ENOMEM. */
static int mlock_limit_ok(struct mm_struct *mm, unsigned long start,
                          unsigned long end)
{
    unsigned long lim = mm->rlim[RLIMIT_MEMLOCK];
    if (!lim)
        return -EPERM;
    if (lim == RLIM_INFINITY)
        return 0;
    unsigned long locked =
        ((end - start) >> PAGE_SHIFT) +
        vm_count_pages(mm, 0, TASK_SIZE, VM_LOCKED, VM_LOCKED) -
        vm_count_pages(mm, start, end, VM_LOCKED, VM_LOCKED);
    return locked <= lim >> PAGE_SHIFT ? 0 : -ENOMEM;
}

static int do_mlock(struct mm_struct *mm, unsigned long start, size_t len,
                    int on)
{
    if (!mm)
        return -EINVAL;
    /* a range that rounds up past the end of the address space is
     * -ENOMEM (2.4 let the rounding wrap to 0 and returned 0) */
    size_t total = len + (start & ~PAGE_MASK);
    if (total < len || PAGE_ALIGN(total) < total)
        return -ENOMEM;
    len = PAGE_ALIGN(total);
    start &= PAGE_MASK;
    unsigned long end = start + len;
    if (end < start || end > TASK_SIZE)
        return -ENOMEM;
    if (!len)
        return 0;
    pthread_mutex_lock(&mm->mmap_sem);
    int r = on ? mlock_limit_ok(mm, start, end) : 0;
    if (r == 0)
        r = vm_fixup_range(mm, start, end, on ? VM_LOCKED : 0,
                           on ? 0 : VM_LOCKED, 0);
    if (r == 0 && on)
        r = __make_pages_present(mm, start, end);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

KSLAB_API int sys_mlock(struct mm_struct *mm, unsigned long start, size_t len)
{
    return do_mlock(mm, start, len, 1);
}

KSLAB_API int sys_munlock(struct mm_struct *mm, unsigned long start, size_t len)
{
    return do_mlock(mm, start, len, 0);
}
