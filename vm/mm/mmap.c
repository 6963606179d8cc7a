/*
 * vm/mm/mmap.c — the calls that create and remove the vmas of an mm:
 * do_mmap (anonymous, file and driver mappings), do_munmap, do_brk and
 * sys_brk, with get_unmapped_area placing what has no fixed address; also
 * mm_dump_maps.  And the two things that bound how far an mm may grow:
 * stacks (MAP_GROWSDOWN vmas that expand_stack extends downwards on a fault
 * just below them, with a guard gap nothing else is placed in) and the
 * per-mm resource limits (mm_setrlimit: RLIMIT_AS, RLIMIT_DATA,
 * RLIMIT_STACK, RLIMIT_MEMLOCK).  The vma list and tree these calls change
 * are vma.c's.
 *
 * Locking: every exported call takes mm->mmap_sem for its whole run; the
 * __xxx versions expect it held.  A call that fails returns -errno before
 * it has changed anything: all checks and allocations come first.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vm/mm/mm.h"

/* ---- stacks and resource limits ---- */

/*
 * The lowest address a mapping below v may end at: v->vm_start, less the
 * guard gap when v is a stack (current Linux's vm_start_gap).  2.4 had no
 * gap: a mapping placed just below a stack stopped it silently, and a
 * stack that grew up to another mapping ran into it with nothing between.
 */
unsigned long vm_start_gap(const struct vm_area_struct *v)
{
    unsigned long s = v->vm_start;
    if (v->vm_flags & VM_GROWSDOWN)
        s = s > VM_STACK_GUARD_GAP ? s - VM_STACK_GUARD_GAP : 0;
    return s;
}

/* A new mm's limits, Linux's INIT_RLIMITS: 8 MiB of stack (_STK_LIM) and
 * of locked memory (MLOCK_LIMIT since Linux 5.16; it was 64 KiB before,
 * and 2.4 let only CAP_IPC_LOCK lock at all), everything else unlimited. */
void vm_rlimit_init(struct mm_struct *mm)
{
    for (int i = 0; i < RLIM_NLIMITS; i++)
        mm->rlim[i] = RLIM_INFINITY;
    mm->rlim[RLIMIT_STACK] = 8UL << 20;
    mm->rlim[RLIMIT_MEMLOCK] = 8UL << 20;
}

/**
 * mm_setrlimit - set one resource limit of @mm to @value bytes (both soft
 * and hard: an mm has one value), RLIM_INFINITY for none.  @resource is
 * RLIMIT_AS, RLIMIT_DATA, RLIMIT_STACK or RLIMIT_MEMLOCK; anything else,
 * or no mm, is -EINVAL with nothing changed.  A limit below what the mm
 * already uses is allowed, as setrlimit(2) allows it: it refuses further
 * growth only.  Takes mmap_sem.
 */
KSLAB_API int mm_setrlimit(struct mm_struct *mm, int resource,
                           unsigned long value)
{
    if (!mm)
        return -EINVAL;
    switch (resource) {
    case RLIMIT_AS:
    case RLIMIT_DATA:
    case RLIMIT_STACK:
    case RLIMIT_MEMLOCK:
        break;
    default:
        return -EINVAL;
    }
    pthread_mutex_lock(&mm->mmap_sem);
    mm->rlim[resource] = value;
    pthread_mutex_unlock(&mm->mmap_sem);
    return 0;
}

/*
 * Pages of [start, end) in vmas whose (vm_flags & mask) == want.  The
 * counters Linux keeps (total_vm, data_vm, locked_vm) are counted here
 * from the vmas instead, and only when a finite limit needs them, so the
 * many paths that move vma bounds need no bookkeeping; the price is a
 * walk of the vma list at an mmap, brk, mlock or stack growth under a
 * finite limit.
 */
unsigned long vm_count_pages(struct mm_struct *mm, unsigned long start,
                             unsigned long end, unsigned long mask,
                             unsigned long want)
{
    unsigned long n = 0;
    if (start >= end)
        return 0;
    for (struct vm_area_struct *v = __find_vma(mm, start);
         v && v->vm_start < end; v = v->vm_next) {
        if ((v->vm_flags & mask) != want)
            continue;
        unsigned long s = v->vm_start > start ? v->vm_start : start;
        unsigned long e = v->vm_end < end ? v->vm_end : end;
        n += (e - s) >> PAGE_SHIFT;
    }
    return n;
}

/* What current Linux counts as data (is_data_mapping): private, writable,
 * not a stack.  2.4 counted only brk against RLIMIT_DATA. */
#define VM_DATA_MASK (VM_WRITE | VM_SHARED | VM_GROWSDOWN)
#define VM_DATA_WANT VM_WRITE

/*
 * may_expand_vm: may the mm get npages more of vmas with flags, the pages
 * it has in [ostart, oend) (about to be replaced, MAP_FIXED or brk) given
 * back first?  RLIMIT_AS bounds every vma, RLIMIT_DATA the data ones.
 */
int vm_may_expand_vm(struct mm_struct *mm, unsigned long flags,
                     unsigned long npages, unsigned long ostart,
                     unsigned long oend)
{
    unsigned long as = mm->rlim[RLIMIT_AS], data = mm->rlim[RLIMIT_DATA];
    if (as != RLIM_INFINITY) {
        unsigned long total = vm_count_pages(mm, 0, TASK_SIZE, 0, 0) -
                              vm_count_pages(mm, ostart, oend, 0, 0);
        if (total + npages > as >> PAGE_SHIFT)
            return 0;
    }
    if (data != RLIM_INFINITY && (flags & VM_DATA_MASK) == VM_DATA_WANT) {
        unsigned long used =
            vm_count_pages(mm, 0, TASK_SIZE, VM_DATA_MASK, VM_DATA_WANT) -
            vm_count_pages(mm, ostart, oend, VM_DATA_MASK, VM_DATA_WANT);
        if (used + npages > data >> PAGE_SHIFT)
            return 0;
    }
    return 1;
}

/*
 * mlock_future_ok: may bytes more be locked (VM_LOCKED in flags) under
 * RLIMIT_MEMLOCK?  An emulated mm has no capabilities, so no caller is
 * exempt (a process with CAP_IPC_LOCK is, in Linux).
 */
int vm_mlock_future_ok(struct mm_struct *mm, unsigned long flags,
                       unsigned long bytes)
{
    unsigned long lim = mm->rlim[RLIMIT_MEMLOCK];
    if (!(flags & VM_LOCKED) || lim == RLIM_INFINITY)
        return 1;
    unsigned long locked =
        vm_count_pages(mm, 0, TASK_SIZE, VM_LOCKED, VM_LOCKED) +
        (bytes >> PAGE_SHIFT);
    return locked <= lim >> PAGE_SHIFT;
}

/**
 * vm_expand_stack - grow the VM_GROWSDOWN @vma of @mm down to cover
 * @address (below vma->vm_start), as a fault or a kernel access there
 * asks.  The rules are current Linux's expand_downwards/acct_stack_growth:
 *  - the vma below (if it is not a stack itself and is accessible — a
 *    PROT_NONE guard mapping does not count) must end at least
 *    VM_STACK_GUARD_GAP below the new start (2.4 had no gap);
 *  - the whole stack, vm_end - address, must fit RLIMIT_STACK;
 *  - the growth must fit RLIMIT_AS, and RLIMIT_MEMLOCK when locked.
 * 2.4's i386 do_page_fault also refused an access more than 32 bytes
 * below the stack pointer; current Linux dropped that check, and an
 * emulated mm has no stack pointer to check against.  Returns 0 or
 * -ENOMEM (-EFAULT when the vma is not a stack); mmap_sem held.
 */
int vm_expand_stack(struct mm_struct *mm, struct vm_area_struct *vma,
                    unsigned long address)
{
    address &= PAGE_MASK;
    if (!(vma->vm_flags & VM_GROWSDOWN))
        return -EFAULT;
    if (address >= vma->vm_start)
        return 0;
    struct vm_area_struct *prev;
    if (__find_vma_prev(mm, vma->vm_start, &prev) != vma)
        kslab_die("vm_expand_stack(): vma %lx-%lx not in its mm", vma->vm_start,
                  vma->vm_end);
    if (prev && prev->vm_end > address)
        return -ENOMEM;
    if (prev && !(prev->vm_flags & VM_GROWSDOWN) &&
        (prev->vm_flags & (VM_READ | VM_WRITE | VM_EXEC)) &&
        address - prev->vm_end < VM_STACK_GUARD_GAP)
        return -ENOMEM;
    unsigned long grow = (vma->vm_start - address) >> PAGE_SHIFT;
    if (vma->vm_end - address > mm->rlim[RLIMIT_STACK])
        return -ENOMEM;
    if (!vm_may_expand_vm(mm, vma->vm_flags, grow, 0, 0))
        return -ENOMEM;
    if (!vm_mlock_future_ok(mm, vma->vm_flags, grow << PAGE_SHIFT))
        return -ENOMEM;
    /* the tree is keyed by vm_start and nothing lies in between: moving
     * the start in place keeps the order */
    vma->vm_start = address;
    vma->vm_pgoff -= grow;
    return 0;
}

/* ---- get_unmapped_area ---- */

/* Free room for [addr, addr + len): no vma there, nor the guard gap of a
 * stack above it. */
static int area_free(struct mm_struct *mm, unsigned long addr,
                     unsigned long len)
{
    struct vm_area_struct *v = __find_vma(mm, addr);
    return !v || addr + len <= vm_start_gap(v);
}

/* Without MAP_FIXED a mapping is never placed in a stack's guard gap (the
 * hint is dropped, the search skips it), as current Linux.  MAP_FIXED is
 * obeyed even there, as Linux obeys it: the stack then cannot grow to
 * within the gap of the new mapping (vm_expand_stack). */
unsigned long vm_get_unmapped_area(struct mm_struct *mm, unsigned long addr,
                                   unsigned long len, unsigned long flags)
{
    if (flags & MAP_FIXED) {
        if (addr & ~PAGE_MASK || addr > TASK_SIZE - len)
            return (unsigned long)-EINVAL;
        return addr;
    }
    if (addr) {
        addr = PAGE_ALIGN(addr);
        if (addr <= TASK_SIZE - len && area_free(mm, addr, len))
            return addr;
    }
    addr = TASK_UNMAPPED_BASE;
    for (struct vm_area_struct *v = __find_vma(mm, addr);; v = v->vm_next) {
        if (addr > TASK_SIZE - len)
            return (unsigned long)-ENOMEM;
        if (!v || addr + len <= vm_start_gap(v))
            return addr;
        if (v->vm_end > addr)
            addr = v->vm_end;
    }
}

/* ---- do_munmap ---- */

/*
 * Removes [addr, addr + len) from every vma it touches: whole vmas go
 * (closed), others lose a head or a tail or are split in two around the
 * hole (the one case that needs a new vma, allocated before anything
 * changes).  Host window first, then ptes and frames, then page tables.
 */
int __do_munmap(struct mm_struct *mm, unsigned long addr, size_t len)
{
    if (addr & ~PAGE_MASK || addr > TASK_SIZE || len > TASK_SIZE - addr)
        return -EINVAL;
    len = PAGE_ALIGN(len);
    if (!len)
        return -EINVAL;
    unsigned long end = addr + len;
    struct vm_area_struct *v = __find_vma(mm, addr);
    if (!v || v->vm_start >= end)
        return 0;

    struct vm_area_struct *extra = NULL;
    if (v->vm_start < addr && v->vm_end > end) {
        if (mm->map_count >= (int)DEFAULT_MAX_MAP_COUNT)
            return -ENOMEM;
        extra = vm_area_alloc();
        if (!extra)
            return -ENOMEM;
        if (vm_dup_vma_file(extra, v) != 0) {
            vm_area_free(extra);
            return -ENFILE;
        }
    }
    if (vm_host_unmap(mm, addr, end) != 0) {
        if (extra)
            vm_area_free(extra);
        return -ENOMEM;
    }
    while (v && v->vm_start < end) {
        struct vm_area_struct *next = v->vm_next;
        unsigned long s = v->vm_start > addr ? v->vm_start : addr;
        unsigned long e = v->vm_end < end ? v->vm_end : end;
        zap_page_range(mm, v, s, e - s);
        if (s == v->vm_start && e == v->vm_end) {
            vm_unlink_vma(mm, v);
            if (v->vm_ops && v->vm_ops->close)
                v->vm_ops->close(v);
            vm_area_free(v);
        } else if (s == v->vm_start) {
            v->vm_pgoff += (e - v->vm_start) >> PAGE_SHIFT;
            v->vm_start = e;
        } else if (e == v->vm_end) {
            v->vm_end = s;
        } else {
            int fd = extra->vm_file;
            vm_copy_vma(extra, v);
            extra->vm_file = fd;
            extra->vm_start = e;
            extra->vm_pgoff += (e - v->vm_start) >> PAGE_SHIFT;
            v->vm_end = s;
            if (extra->vm_ops && extra->vm_ops->open)
                extra->vm_ops->open(extra);
            insert_vm_struct(mm, extra);
            extra = NULL;
        }
        v = next;
    }
    mm->mmap_cache = NULL;
    clear_page_tables(mm, addr, end);
    return 0;
}

KSLAB_API int do_munmap(struct mm_struct *mm, unsigned long addr, size_t len)
{
    if (!mm)
        return -EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    int r = __do_munmap(mm, addr, len);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

/* ---- do_mmap ---- */

static unsigned long calc_vm_flags(unsigned long prot, unsigned long flags)
{
    unsigned long f = 0;
    if (prot & PROT_READ)
        f |= VM_READ;
    if (prot & PROT_WRITE)
        f |= VM_WRITE;
    if (prot & PROT_EXEC)
        f |= VM_EXEC;
    if (flags & MAP_GROWSDOWN)
        f |= VM_GROWSDOWN;
    if (flags & MAP_LOCKED)
        f |= VM_LOCKED;
    return f;
}

/* Checks fd against prot/flags as mmap(2) does; returns the vm_flags to
 * take off (a read-only file has no VM_MAYWRITE for shared maps). */
static int check_file(int fd, unsigned long prot, unsigned long flags,
                      unsigned long *clear)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -EBADF;
    if (!S_ISREG(st.st_mode))
        return -ENODEV;
    int mode = fcntl(fd, F_GETFL);
    if (mode < 0)
        return -EBADF;
    mode &= O_ACCMODE;
    if (mode == O_WRONLY)
        return -EACCES;
    *clear = 0;
    if ((flags & MAP_TYPE) == MAP_SHARED && mode != O_RDWR) {
        if (prot & PROT_WRITE)
            return -EACCES;
        *clear = VM_MAYWRITE | VM_SHARED;
    }
    return 0;
}

static unsigned long __do_mmap(struct mm_struct *mm, int fd, unsigned long addr,
                               unsigned long len, unsigned long prot,
                               unsigned long flags, unsigned long off)
{
    unsigned long type = flags & MAP_TYPE, clear = 0;
    int anon = (flags & MAP_ANONYMOUS) != 0;
    int r;

    if (off & ~PAGE_MASK || !len)
        return (unsigned long)-EINVAL;
    if (type != MAP_SHARED && type != MAP_PRIVATE)
        return (unsigned long)-EINVAL;
    if (prot & ~(unsigned long)(PROT_READ | PROT_WRITE | PROT_EXEC))
        return (unsigned long)-EINVAL;
    len = PAGE_ALIGN(len);
    if (!len || len > TASK_SIZE)
        return (unsigned long)-ENOMEM;
    if (off + len < off)
        return (unsigned long)-EOVERFLOW;
    if (!anon && (r = check_file(fd, prot, flags, &clear)) != 0)
        return (unsigned long)(long)r;
    /* a stack is private anonymous memory (current Linux's do_mmap) */
    if ((flags & MAP_GROWSDOWN) && (!anon || type != MAP_PRIVATE))
        return (unsigned long)-EINVAL;
    /* MAP_LOCKED needs some RLIMIT_MEMLOCK (can_do_mlock) */
    if ((flags & MAP_LOCKED) && !mm->rlim[RLIMIT_MEMLOCK])
        return (unsigned long)-EPERM;
    if (mm->map_count >= (int)DEFAULT_MAX_MAP_COUNT)
        return (unsigned long)-ENOMEM;
    addr = vm_get_unmapped_area(mm, addr, len, flags);
    if (IS_ERR_VALUE(addr))
        return addr;

    unsigned long vm_flags = calc_vm_flags(prot, flags) | mm->def_flags |
                             VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (type == MAP_SHARED)
        vm_flags |= VM_SHARED | VM_MAYSHARE;
    vm_flags &= ~clear;
    /* the limits, Linux's errors: locking beyond RLIMIT_MEMLOCK is
     * -EAGAIN, growing beyond RLIMIT_AS or RLIMIT_DATA -ENOMEM; a
     * MAP_FIXED mapping gives back what it replaces */
    if (!vm_mlock_future_ok(mm, vm_flags, len))
        return (unsigned long)-EAGAIN;
    if (!vm_may_expand_vm(mm, vm_flags, len >> PAGE_SHIFT, addr, addr + len))
        return (unsigned long)-ENOMEM;

    struct vm_area_struct *vma = vm_area_alloc();
    if (!vma)
        return (unsigned long)-ENOMEM;
    vma->vm_start = addr;
    vma->vm_end = addr + len;
    vma->vm_flags = vm_flags;
    vma->vm_pgoff = anon ? 0 : off >> PAGE_SHIFT;
    vma->vm_page_prot = __pgprot(vm_pte_prot(vm_flags));
    if (!anon) {
        vma->vm_file = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (vma->vm_file < 0) {
            r = -ENFILE;
            goto fail;
        }
        vma->vm_ops = &vm_file_private_ops;
    }
    if (vm_flags & VM_MAYSHARE)
        vma->vm_ops = &vm_shared_ops;
    if (vma->vm_ops) {
        /* the file's page cache, or a new shared anonymous object, and
         * the vma on its share list (filemap.c) */
        vma->vm_mm = mm;
        vma->vm_ops->open(vma);
        if (!vma->vm_private_data) {
            r = -ENOMEM;
            goto fail;
        }
    }
    /* MAP_FIXED replaces what was there; nothing is lost if this fails */
    if ((r = __do_munmap(mm, addr, len)) != 0)
        goto fail_close;
    insert_vm_struct(mm, vma);
    if (vm_flags & VM_LOCKED)
        __make_pages_present(mm, addr, addr + len);
    vm_merge_around(mm, vma);
    return addr;
fail_close:
    if (vma->vm_ops && vma->vm_ops->close)
        vma->vm_ops->close(vma);
fail:
    vm_area_free(vma);
    return (unsigned long)(long)r;
}

KSLAB_API unsigned long do_mmap(struct mm_struct *mm, int fd,
                                unsigned long addr, unsigned long len,
                                unsigned long prot, unsigned long flags,
                                unsigned long offset)
{
    if (!mm)
        return (unsigned long)-EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    unsigned long r = __do_mmap(mm, fd, addr, len, prot, flags, offset);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

/*
 * do_mmap_pgoff with a device file: the checks of do_mmap, a fresh range
 * (MAP_FIXED gives back what was there first, as 2.4 does), then
 * file->f_op->mmap(file, vma), which may set the vma's flags, protection,
 * operations and private data and map pages at once (remap_page_range);
 * the vma goes into the mm only when it succeeds.  The method's first vma
 * gets no open (2.4); copies and splits do, and every vma that goes gets
 * close.  mmap_sem held.
 */
static unsigned long __do_mmap_dev(struct mm_struct *mm, struct file *file,
                                   unsigned long addr, unsigned long len,
                                   unsigned long prot, unsigned long flags,
                                   unsigned long pgoff)
{
    unsigned long type = flags & MAP_TYPE;
    if (!file || !file->f_op || !file->f_op->mmap)
        return (unsigned long)-ENODEV;
    if ((flags & (MAP_ANONYMOUS | MAP_GROWSDOWN)) ||
        (type != MAP_SHARED && type != MAP_PRIVATE) || !len)
        return (unsigned long)-EINVAL;
    if (prot & ~(unsigned long)(PROT_READ | PROT_WRITE | PROT_EXEC))
        return (unsigned long)-EINVAL;
    len = PAGE_ALIGN(len);
    if (!len || len > TASK_SIZE)
        return (unsigned long)-ENOMEM;
    if (pgoff + (len >> PAGE_SHIFT) < pgoff)
        return (unsigned long)-EOVERFLOW;
    if ((flags & MAP_LOCKED) && !mm->rlim[RLIMIT_MEMLOCK])
        return (unsigned long)-EPERM;
    if (mm->map_count >= (int)DEFAULT_MAX_MAP_COUNT)
        return (unsigned long)-ENOMEM;
    addr = vm_get_unmapped_area(mm, addr, len, flags);
    if (IS_ERR_VALUE(addr))
        return addr;
    unsigned long vm_flags = calc_vm_flags(prot, flags) | mm->def_flags |
                             VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (type == MAP_SHARED)
        vm_flags |= VM_SHARED | VM_MAYSHARE;
    if (!vm_mlock_future_ok(mm, vm_flags, len))
        return (unsigned long)-EAGAIN;
    if (!vm_may_expand_vm(mm, vm_flags, len >> PAGE_SHIFT, addr, addr + len))
        return (unsigned long)-ENOMEM;
    struct vm_area_struct *vma = vm_area_alloc();
    if (!vma)
        return (unsigned long)-ENOMEM;
    int r = __do_munmap(mm, addr, len);
    if (r != 0) {
        vm_area_free(vma);
        return (unsigned long)(long)r;
    }
    vma->vm_mm = mm;
    vma->vm_start = addr;
    vma->vm_end = addr + len;
    vma->vm_flags = vm_flags;
    vma->vm_pgoff = pgoff;
    /* a driver's pages are written in place, MAP_PRIVATE or not */
    vma->vm_page_prot = __pgprot(vm_pte_prot(vm_flags | VM_SHARED));
    vma->vm_filp = file;
    r = file->f_op->mmap(file, vma);
    if (r != 0 || vma->vm_start != addr || vma->vm_end != addr + len) {
        /* what the method mapped goes; the vma was never in the mm */
        vm_host_unmap(mm, addr, addr + len);
        zap_page_range(mm, vma, addr, len);
        clear_page_tables(mm, addr, addr + len);
        vm_area_free(vma);
        return (unsigned long)(long)(r < 0 ? r : -EINVAL);
    }
    vma->vm_filp = file; /* the method may not take it away */
    insert_vm_struct(mm, vma);
    if (vma->vm_flags & VM_LOCKED)
        __make_pages_present(mm, addr, addr + len);
    return addr;
}

KSLAB_API unsigned long do_mmap_pgoff(struct mm_struct *mm, struct file *file,
                                      unsigned long addr, unsigned long len,
                                      unsigned long prot, unsigned long flags,
                                      unsigned long pgoff)
{
    if (!mm)
        return (unsigned long)-EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    unsigned long r = __do_mmap_dev(mm, file, addr, len, prot, flags, pgoff);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

/* ---- brk ---- */

/* do_brk: an anonymous private mapping at a fixed address, merged with
 * the vma before it when they are compatible (the usual case). */
static unsigned long __do_brk(struct mm_struct *mm, unsigned long addr,
                              unsigned long len)
{
    /* a length that rounds past the end is -ENOMEM, as in current Linux's
     * vm_brk_flags (2.4 let PAGE_ALIGN wrap to 0 and returned addr) */
    if (PAGE_ALIGN(len) < len)
        return (unsigned long)-ENOMEM;
    len = PAGE_ALIGN(len);
    if (!len)
        return addr;
    if (addr & ~PAGE_MASK || addr > TASK_SIZE || len > TASK_SIZE - addr)
        return (unsigned long)-EINVAL;
    if (mm->map_count >= (int)DEFAULT_MAX_MAP_COUNT)
        return (unsigned long)-ENOMEM;
    unsigned long flags = VM_DATA_DEFAULT_FLAGS | mm->def_flags;
    /* current Linux's vm_brk_flags: -EAGAIN past RLIMIT_MEMLOCK when
     * locked, -ENOMEM past RLIMIT_AS or RLIMIT_DATA (2.4's do_brk checked
     * RLIMIT_AS and left RLIMIT_DATA to sys_brk) */
    if (!vm_mlock_future_ok(mm, flags, len))
        return (unsigned long)-EAGAIN;
    if (!vm_may_expand_vm(mm, flags, len >> PAGE_SHIFT, addr, addr + len))
        return (unsigned long)-ENOMEM;
    struct vm_area_struct *vma = vm_area_alloc();
    if (!vma)
        return (unsigned long)-ENOMEM;
    int r = __do_munmap(mm, addr, len);
    if (r != 0) {
        vm_area_free(vma);
        return (unsigned long)(long)r;
    }
    vma->vm_start = addr;
    vma->vm_end = addr + len;
    vma->vm_flags = flags;
    vma->vm_page_prot = __pgprot(vm_pte_prot(vma->vm_flags));
    insert_vm_struct(mm, vma);
    if (vma->vm_flags & VM_LOCKED)
        __make_pages_present(mm, addr, addr + len);
    vm_merge_around(mm, vma);
    return addr;
}

KSLAB_API unsigned long do_brk(struct mm_struct *mm, unsigned long addr,
                               unsigned long len)
{
    if (!mm)
        return (unsigned long)-EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    unsigned long r = __do_brk(mm, addr, len);
    pthread_mutex_unlock(&mm->mmap_sem);
    return r;
}

/* sys_brk: moves the break; returns the new one, or the old one when the
 * move is not possible (the brk(2) contract): beyond RLIMIT_DATA (checked
 * first, as current Linux's check_data_rlimit, so even a shrink that
 * stays beyond a lowered limit fails), into a mapping or a stack's guard
 * gap, or when do_brk refuses. */
KSLAB_API unsigned long sys_brk(struct mm_struct *mm, unsigned long brk)
{
    if (!mm)
        return (unsigned long)-EINVAL;
    pthread_mutex_lock(&mm->mmap_sem);
    unsigned long newbrk, oldbrk, ret = mm->brk;
    if (brk < mm->start_brk || brk > TASK_UNMAPPED_BASE)
        goto out;
    if (mm->rlim[RLIMIT_DATA] != RLIM_INFINITY &&
        brk - mm->start_brk > mm->rlim[RLIMIT_DATA])
        goto out;
    newbrk = PAGE_ALIGN(brk);
    oldbrk = PAGE_ALIGN(mm->brk);
    if (oldbrk == newbrk)
        goto set;
    if (brk <= mm->brk) {
        if (__do_munmap(mm, newbrk, oldbrk - newbrk) == 0)
            goto set;
        goto out;
    }
    if (!area_free(mm, oldbrk, newbrk + PAGE_SIZE - oldbrk))
        goto out;
    if (__do_brk(mm, oldbrk, newbrk - oldbrk) != oldbrk)
        goto out;
set:
    mm->brk = ret = brk;
out:
    pthread_mutex_unlock(&mm->mmap_sem);
    return ret;
}

/* ---- /proc/PID/maps ---- */

/* A vma as mm_dump_maps prints it, copied under mmap_sem. */
struct maps_line {
    unsigned long start, end, flags, pgoff;
    int file, heap;
};
#define MAPS_BATCH 32

/* Prints one line of the maps; its length, or -1. */
static int maps_print(FILE *out, const struct maps_line *l)
{
    unsigned long ino = 0, dev = 0;
    char path[512] = "";
    if (l->file >= 0) {
        struct stat st;
        if (fstat(l->file, &st) == 0) {
            ino = (unsigned long)st.st_ino;
            dev = (unsigned long)st.st_dev;
        }
        vm_os_fd_path(l->file, path, sizeof path);
    } else if (l->heap) {
        strcpy(path, "[heap]");
    }
    int k = fprintf(
        out, "%08lx-%08lx %c%c%c%c %08lx %02lx:%02lx %lu", l->start, l->end,
        l->flags & VM_READ ? 'r' : '-', l->flags & VM_WRITE ? 'w' : '-',
        l->flags & VM_EXEC ? 'x' : '-', l->flags & VM_MAYSHARE ? 's' : 'p',
        l->pgoff << PAGE_SHIFT, (dev >> 8) & 0xfff, dev & 0xff, ino);
    if (k < 0)
        return -1;
    if (path[0])
        fprintf(out, "%*s%s", 73 - k > 1 ? 73 - k : 1, "", path);
    fputc('\n', out);
    return k;
}

/* The vmas are copied MAPS_BATCH at a time under mmap_sem and printed
 * without it: out may be memory of this very mm (a stdio buffer that
 * libkslab-vm.so's malloc gave), whose fault needs mmap_sem. */
KSLAB_API int mm_dump_maps(struct mm_struct *mm, FILE *out)
{
    if (!mm || !out)
        return -EINVAL;
    int n = 0;
    unsigned long from = 0;
    for (;;) {
        struct maps_line l[MAPS_BATCH];
        int k = 0;
        pthread_mutex_lock(&mm->mmap_sem);
        for (struct vm_area_struct *v = __find_vma(mm, from);
             v && k < MAPS_BATCH; v = v->vm_next, k++) {
            l[k].start = v->vm_start;
            l[k].end = v->vm_end;
            l[k].flags = v->vm_flags;
            l[k].pgoff = v->vm_pgoff;
            l[k].file = v->vm_file;
            l[k].heap = v->vm_file < 0 && v->vm_start < mm->brk + PAGE_SIZE &&
                        v->vm_end > mm->start_brk && mm->brk > mm->start_brk;
        }
        pthread_mutex_unlock(&mm->mmap_sem);
        for (int i = 0; i < k; i++) {
            if (maps_print(out, &l[i]) < 0)
                return -EIO;
            n++;
        }
        if (k < MAPS_BATCH)
            return n;
        from = l[k - 1].end;
    }
}
