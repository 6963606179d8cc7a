/*
 * vmmode/mman.c — the program's own mappings and break in the process's
 * mm: libc's mmap (mmap64), munmap, mremap, mprotect, madvise, brk and
 * sbrk, as libkslab-vm.so exports them.
 *
 * What goes into the mm: anonymous private mappings that are not
 * executable and not stacks (MAP_GROWSDOWN, MAP_STACK: a signal frame is
 * written by the host kernel onto a stack, where no fault handler can
 * help), placed anywhere or at a fixed address inside the window; the
 * break (brk, sbrk: sys_brk on the mm).  Everything else — file and
 * shared mappings, executable memory, huge pages, fixed addresses outside
 * the window — passes through to the host unchanged, as do the calls that
 * libc and the dynamic loader make internally (thread stacks, the
 * loader's mappings: they never reach these wrappers).  A call on a
 * range that is partly window and partly host is refused (EINVAL),
 * except munmap, which does each part.
 *
 * mremap is 2.4's sys_mremap (vm/mm/mremap.c): shrinking unmaps the
 * tail; growing takes the room after the vma when it is free, else
 * (MREMAP_MAYMOVE) moves the page table entries to a new place — nothing
 * is copied, a swapped-out page stays in swap.  madvise(MADV_DONTNEED) and
 * MADV_FREE zap the pages (zap_page_range: the next access reads zeros); other
 * advice is accepted and ignored.  PROT_EXEC is refused in the window (EACCES):
 * the window's host mappings are never executable.
 *
 * Locking: vmm_lock around every change (vmmode.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/compiler.h"
#include "vmmode/vmmode.h"

#define EXPORT __attribute__((visibility("default")))

static void *host_mmap(void *addr, size_t len, int prot, int flags, int fd,
                       off_t off)
{
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int fail(long err)
{
    errno = (int)-err;
    return -1;
}

static int emulated(void *addr, size_t len, int prot, int flags)
{
    if (!(flags & MAP_ANONYMOUS) || (flags & MAP_TYPE) != MAP_PRIVATE ||
        (flags & (MAP_GROWSDOWN | MAP_STACK | MAP_HUGETLB)) ||
        (prot & PROT_EXEC) || !len || len > TASK_SIZE)
        return 0;
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        return vmm_inside(addr, len) && vmm_ready() == 0;
    return vmm_ready() == 0;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    if (!emulated(addr, len, prot, flags)) {
        if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
            vmm_touches(addr, len)) {
            errno = EINVAL; /* a host mapping cannot replace the mm's */
            return MAP_FAILED;
        }
        return host_mmap(addr, len, prot, flags, fd, off);
    }
    vmm_stats_poke();
    int fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) != 0;
    unsigned long hint = addr && vmm_inside(addr, len) ? vmm_user(addr) : 0;
    pthread_mutex_lock(&vmm_lock);
    unsigned long r;
    if ((flags & MAP_FIXED_NOREPLACE) && !vmm_room(hint, PAGE_ALIGN(len)))
        r = (unsigned long)-EEXIST;
    else
        r = do_mmap(vmm_mm, -1, hint, len, (unsigned long)prot,
                    MAP_PRIVATE | MAP_ANONYMOUS | (fixed ? MAP_FIXED : 0), 0);
    pthread_mutex_unlock(&vmm_lock);
    if (IS_ERR_VALUE(r)) {
        if (!fixed && r == (unsigned long)-ENOMEM)
            return host_mmap(addr, len, prot, flags, fd, off); /* mm full */
        errno = (int)-(long)r;
        return MAP_FAILED;
    }
    if (flags & MAP_LOCKED)
        sys_mlock(vmm_mm, r, len);
    else if (flags & MAP_POPULATE)
        make_pages_present(vmm_mm, r, r + PAGE_ALIGN(len));
    return vmm_host(r);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
                    off_t off) __attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
    if (!vmm_touches(addr, len))
        return (int)syscall(SYS_munmap, addr, len);
    if (((uintptr_t)addr & (PAGE_SIZE - 1)) || !len)
        return fail(-EINVAL);
    uintptr_t a = (uintptr_t)addr, e = a + PAGE_ALIGN(len);
    uintptr_t ws = (uintptr_t)vmm_host(0), we = ws + TASK_SIZE;
    uintptr_t s = a > ws ? a : ws, t = e < we ? e : we;
    if (a < ws && syscall(SYS_munmap, addr, ws - a) != 0)
        return -1;
    if (e > we && syscall(SYS_munmap, (void *)we, e - we) != 0)
        return -1;
    pthread_mutex_lock(&vmm_lock);
    int r = do_munmap(vmm_mm, vmm_user((void *)s), t - s);
    pthread_mutex_unlock(&vmm_lock);
    return r ? fail(r) : 0;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
    if (!vmm_touches(addr, len))
        return (int)syscall(SYS_mprotect, addr, len, prot);
    if (!vmm_inside(addr, len))
        return fail(-EINVAL);
    if (prot & PROT_EXEC)
        return fail(-EACCES);
    pthread_mutex_lock(&vmm_lock);
    int r = sys_mprotect(vmm_mm, vmm_user(addr), len, (unsigned long)prot);
    pthread_mutex_unlock(&vmm_lock);
    return r ? fail(r) : 0;
}

/* MADV_DONTNEED on [start, end) of the mm: every vma's pages there are
 * zapped, as 2.4's madvise_dontneed does.  -ENOMEM when part of the range
 * is unmapped (the rest is done), as Linux. */
int vmm_dontneed(unsigned long start, unsigned long end)
{
    struct mm_struct *mm = vmm_mm;
    int r = 0;
    unsigned long covered = start;
    pthread_mutex_lock(&mm->mmap_sem);
    for (struct vm_area_struct *v = __find_vma(mm, start);
         v && v->vm_start < end; v = v->vm_next) {
        unsigned long s = v->vm_start > start ? v->vm_start : start;
        unsigned long e = v->vm_end < end ? v->vm_end : end;
        if (s > covered)
            r = -ENOMEM;
        if (v->vm_flags & VM_LOCKED) {
            r = -EINVAL; /* as Linux: locked pages stay */
            covered = e;
            continue;
        }
        if (vm_host_unmap(mm, s, e) != 0) {
            r = -ENOMEM;
            break;
        }
        zap_page_range(mm, v, s, e - s);
        covered = e;
    }
    if (covered < end && r == 0)
        r = -ENOMEM;
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
    if (!vmm_touches(addr, len))
        return (int)syscall(SYS_madvise, addr, len, advice);
    if (!vmm_inside(addr, len) || ((uintptr_t)addr & (PAGE_SIZE - 1)))
        return fail(-EINVAL);
    if (advice != MADV_DONTNEED && advice != MADV_FREE)
        return 0; /* advice: nothing the emulator needs to act on */
    unsigned long s = vmm_user(addr);
    pthread_mutex_lock(&vmm_lock);
    int r = vmm_dontneed(s, s + PAGE_ALIGN(len));
    pthread_mutex_unlock(&vmm_lock);
    return r ? fail(r) : 0;
}

EXPORT int posix_madvise(void *addr, size_t len, int advice)
{
    if (!vmm_touches(addr, len))
        return madvise(addr, len, advice) ? errno : 0;
    return 0; /* POSIX_MADV_DONTNEED is advice only, as in glibc */
}

EXPORT void *mremap(void *addr, size_t old, size_t len, int flags, ...)
{
    void *to = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        to = va_arg(ap, void *);
        va_end(ap);
    }
    if (!vmm_touches(addr, old ? old : 1) &&
        !((flags & MREMAP_FIXED) && vmm_touches(to, len)))
        return (void *)syscall(SYS_mremap, addr, old, len, flags, to);
    if (!vmm_inside(addr, old) || ((uintptr_t)addr & (PAGE_SIZE - 1)) || !len ||
        !old || (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) ||
        ((flags & MREMAP_FIXED) &&
         (!(flags & MREMAP_MAYMOVE) || !vmm_inside(to, len))) ||
        len > TASK_SIZE) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    old = PAGE_ALIGN(old);
    len = PAGE_ALIGN(len);
    unsigned long a = vmm_user(addr);
    unsigned long t = (flags & MREMAP_FIXED) ? vmm_user(to) : 0;
    if ((flags & MREMAP_FIXED) && t < a + old && a < t + len) {
        errno = EINVAL; /* overlapping source and destination */
        return MAP_FAILED;
    }
    pthread_mutex_lock(&vmm_lock);
    unsigned long r = sys_mremap(vmm_mm, a, old, len, (unsigned long)flags, t);
    pthread_mutex_unlock(&vmm_lock);
    if (IS_ERR_VALUE(r)) {
        errno = (int)-(long)r;
        return MAP_FAILED;
    }
    return vmm_host(r);
}

/* ---- the break ---- */

EXPORT int brk(void *addr)
{
    if (vmm_ready() != 0)
        return (int)syscall(SYS_brk, addr) == (long)addr ? 0 : fail(-ENOMEM);
    if (!vmm_inside(addr, 0))
        return fail(-ENOMEM);
    pthread_mutex_lock(&vmm_lock);
    unsigned long want = vmm_user(addr);
    unsigned long r = sys_brk(vmm_mm, want);
    pthread_mutex_unlock(&vmm_lock);
    return r == want ? 0 : fail(-ENOMEM);
}

EXPORT void *sbrk(intptr_t incr)
{
    if (vmm_ready() != 0) {
        errno = ENOMEM;
        return (void *)-1;
    }
    pthread_mutex_lock(&vmm_lock);
    unsigned long cur = sys_brk(vmm_mm, 0), want = cur + (unsigned long)incr;
    unsigned long r = cur;
    if (incr && (incr > 0 ? want < cur : want > cur))
        r = ~0UL; /* wraps */
    else if (incr)
        r = sys_brk(vmm_mm, want) == want ? cur : ~0UL;
    pthread_mutex_unlock(&vmm_lock);
    if (r == ~0UL) {
        errno = ENOMEM;
        return (void *)-1;
    }
    return vmm_host(r);
}
