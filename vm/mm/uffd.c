/*
 * vm/mm/uffd.c — the userfaultfd back end of the host side of the ptes.
 *
 * The SIGSEGV back end (host_map.c) maps every present page of a window as
 * its own piece of the memfd, and every other page as an inaccessible
 * hole: a host VMA per run of consecutive frames of one protection.  With
 * every other page resident that is a host VMA per resident page, and the
 * host's vm.max_map_count (65530) stops a process at about 127 MiB of
 * such memory.
 *
 * Here a 2 MiB pmd range that lies wholly inside one private anonymous,
 * readable and writable vma is instead "linear": it owns a naturally
 * aligned block of 512 frames (an order-9 block of ZONE_HIGHMEM), page i
 * of the range belongs to frame block + i, and the whole range is one
 * shared read-write mapping of the memfd at the block, registered with
 * userfaultfd for MISSING faults.  A page whose pte is none is a hole of
 * the memfd (the frame is reserved but holds nothing); touching it is a
 * uffd fault, which UFFD_FEATURE_SIGBUS turns into a SIGBUS to the
 * faulting thread (fault.c), and the fault is resolved by UFFDIO_ZEROPAGE
 * into the page's own frame.  Such a range costs one host VMA whatever is
 * resident in it, and a fault costs one signal and one ioctl.
 *
 * The invariant of a linear range: every pte in it is none (its frame
 * reserved, count 1, a hole of the memfd) or present, writable and
 * mapping the range's own frame for that address.  Any other host change
 * there — munmap, mprotect, fork's write-protect, the aging scan, swap-out,
 * a page that must map another frame — first turns the range back into
 * per-page mappings (vm_uffd_demote: the SIGSEGV back end's layout), and
 * gives the reserved frames back.  So everything the SIGSEGV back end does
 * stays correct unchanged; linear ranges are an optimisation of the
 * common case (private anonymous memory written in place).
 *
 * A read of a hole in a linear range gets the page's own zeroed frame, not
 * the ZERO_PAGE (as a huge-page-backed range on Linux does).
 *
 * Back end: KSLAB_VM_BACKEND=auto (the default: uffd when the host allows
 * userfaultfd with SIGBUS and shmem MISSING faults, and not in a sanitizer
 * build), uffd (the same, said explicitly: sanitizer builds too) or
 * sigsegv.  A block is taken only while user memory has room for it
 * beside an eighth of the limit; otherwise the range stays per page.
 *
 * The handler thread (libkslab-vm.so, vmmode/init.c asks for it with
 * vm_uffd_serve_by_thread before its mm is made).  A fault that raises a
 * signal cannot serve the host kernel's own access to a page — a read(2)
 * or recvmsg into the heap, a getdents64 or stat result written there:
 * the kernel takes no signal and the call fails with EFAULT.  So in that
 * mode the descriptor is opened without UFFD_FEATURE_SIGBUS, and a
 * faulting access — the kernel's copy as much as a thread's load or
 * store, in a thread that blocks every signal too — waits in the host
 * kernel while a thread of ours reads the fault from the descriptor,
 * serves it with the signal handlers' own code (fault.c's fault_in:
 * handle_mm_fault, do_anonymous_page with its fault-around run,
 * do_swap_page with swapin_readahead) and wakes it.  For that every page
 * that can fault must be a registered hole, never an inaccessible one
 * (the kernel's access to a PROT_NONE page fails before any fault is
 * reported): the whole window starts as one private anonymous read-write
 * mapping registered for MISSING faults (vm_uffd_window_open), every hole
 * made later is one again (vm_uffd_hole: unmapped and swapped-out pages,
 * MADV_DONTNEED, munmap), the aging scan arms a page by unmapping it
 * (its data stays in its frame; the next access is a MISSING fault that
 * marks the pte young and maps the frame again: host_map.c, vmscan.c)
 * rather than by PROT_NONE, and host_map.c's premapped runs (PROT_NONE
 * views of frames ahead) are off.  An access the mm does not allow there
 * (no vma, a PROT_NONE vma, out of memory) has its page made PROT_NONE
 * (vm_uffd_poison) before the wake: the retry then fails as it would
 * have — SIGSEGV to the program with its own si_addr through fault.c's
 * handler, EFAULT to the kernel.
 *
 * Write-protect mode.  A store into a present read-only page — a COW
 * page after mm_fork, the ZERO_PAGE after a read, a page swapped in by a
 * read, a clean page of a shared file — must reach do_wp_page, and the
 * host kernel's store in a system call (read(2), recvmsg into such a
 * page) cannot take a signal: into a PROT_READ mapping it fails with
 * EFAULT.  Where the host has write-protect faults on shared memory
 * (UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux 5.19; probed when the
 * descriptor is made) the thread's descriptor takes them too, and
 * host_map.c maps such a page (in a vma that allows writing) readable and
 * writable on the host but write-protected through the descriptor
 * (vm_uffd_wp_map, vm_uffd_wp_protect: mapped read-only, registered for
 * WP, protected, then made writable — in that order, so no store passes
 * between the steps).  A store to it then waits in the host kernel while
 * the thread runs fault_in with a write — do_wp_page breaks the COW,
 * replaces the ZERO_PAGE or makes the page writable — and wakes it.  A
 * page of a vma that does not allow writing stays PROT_READ (EFAULT to
 * the kernel, SIGSEGV to the program).  Where the host has no such
 * faults, read-only pages stay PROT_READ as without the thread, and the
 * kernel's store into one fails with EFAULT unless the call pins its
 * buffer (vmmode/io.c); KSLAB_STATS says which.  UFFD_FEATURE_WP_UNPOPULATED
 * is not needed: the pages that are not present are holes of the window
 * registered for MISSING faults, and the pages write-protected are the
 * memfd's, whose empty ptes the host marks itself.  One gap is left:
 * while the thread sets such a page up (the four steps above, a few
 * microseconds, under mmap_sem), a kernel store by another thread that
 * reaches that very page in between finds it read-only, not yet
 * registered, and fails with EFAULT instead of waiting; mapping it
 * writable first would let a store into the shared frame pass.
 *
 * Which path serves which case with the thread: every fault on a page
 * that is not present (never touched, swapped out, armed by the aging
 * scan, purged), from any thread or the host kernel — the thread; a
 * store into a present read-only page of a writable vma (COW, the
 * ZERO_PAGE, a page swapped in by a read), from any thread or the host
 * kernel — the thread, in write-protect mode (without it, the SIGSEGV
 * handler on the faulting thread, and EFAULT to the kernel); an access to
 * a PROT_NONE page or a store into a read-only vma — the SIGSEGV handler
 * on the faulting thread, as before (fault.c keeps SIGSEGV and SIGBUS
 * deliverable in every thread).  A user store into a read-only page goes
 * to the thread because the kernel's must: the host cannot send one
 * access to a signal and the other to the descriptor.  Measured on a
 * loaded 2-vCPU VM (vmfault_bench, docs/vm-mode.md): a first write to
 * fresh memory through the thread costs what the SIGBUS path costs (a
 * fault-around run of 16 pages per wake-up); a store into a read-only
 * page about 1.4 times what the SIGSEGV path costs (two context switches
 * and, the process having two threads, a TLB shoot-down when the thread
 * maps the new frame); a kernel read into an untouched buffer through
 * the thread what io.c's pins cost.  Without
 * userfaultfd (or with KSLAB_VM_BACKEND=sigsegv) there is no thread and
 * vm mode is the SIGSEGV back end with io.c's pins.
 *
 * A host fork's child.  Its copy of the window still maps the parent's
 * memfd (a store there would reach the parent's frames) and is
 * registered with no descriptor (a hole reads as a host zero page), and
 * the parent's handler thread did not come along.  Two rules: nothing
 * may touch the child's window before it is mapped again, and the
 * thread that serves a descriptor must never be the only one able to
 * serve its own faults.  So, in this order: (1) in kslab's child handler
 * (vm/mm/fork.c, vm_mm_fork_child) the parent's descriptor is closed and
 * one with UFFD_FEATURE_SIGBUS opened, the thread flags cleared, and
 * every mm mapped again from its page tables as the SIGBUS back end maps
 * it (inaccessible holes, linear ranges registered with that
 * descriptor): from then on any access by any thread is a signal served
 * on the faulting thread.  (2) After every child handler of kslab's
 * (vm_mm_fork_child_serve, called by libkslab-vm.so's own child handler:
 * the thread registry has pruned the threads that did not come along, so
 * the new thread's record stays), a descriptor for the thread is opened
 * and its thread started, and waited for until it is in its loop;
 * pthread_create's own reads on this thread (the loader's data of
 * dlopen'd modules, perhaps blocks of the mm, swapped out) are served by
 * signals meanwhile.  (3) With every mmap_sem held, that descriptor is
 * put in force, the SIGBUS one closed (its registrations go with it: no
 * EBUSY), and each mm mapped again, now as the thread serves it.  The
 * second mapping costs what the first does (a host mmap per run of
 * pages), small beside the fork's copy of user memory (docs/vm-mode.md).
 * The thread itself reads one thing of the program's before it can
 * block anything: glibc's start_thread runs __ctype_init — the global
 * locale's data, which setlocale() malloc'd — with every signal blocked
 * (pthread_create blocks them all around the clone), so no signal could
 * serve that fault, and only the thread itself could serve it on its
 * descriptor; libkslab-vm.so keeps that data host memory
 * (vmmode/libcobj.c), which also keeps every other thread's start free
 * of faults on the SIGSEGV back end.
 *
 * Locking: mm->uffd_block and the ranges are under mmap_sem; the
 * descriptor is set once (kslab_once) and again only in a host fork's
 * child (above), which has one thread then, and then the handler thread
 * waiting on a descriptor with nothing registered.
 * The handler thread takes mmap_sem as the signal handlers do: no thread
 * may touch a window while it holds mmap_sem (or anything fault_in takes),
 * or the thread that would serve it waits for it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "lib/init.h"
#include "lib/options.h"
#include "vm/frames/os.h"
#include "vm/mm/mm.h"

#define UFFD_ORDER (PMD_SHIFT - PAGE_SHIFT)
#define UFFD_NR_PMDS (TASK_SIZE >> PMD_SHIFT)

static int uffd_fd = -1;
static struct kslab_once uffd_once = KSLAB_ONCE_INIT;
/* Asked for (vm_uffd_serve_by_thread, before the first mm) and in force:
 * the descriptor has no UFFD_FEATURE_SIGBUS and a thread serves it. */
static int uffd_want_thread;
static atomic_int uffd_thread;
/* The thread's descriptor takes write-protect faults on the memfd's
 * mappings too (host_map.c maps read-only pages write-protected). */
static atomic_int uffd_wp;
_Atomic unsigned long vm_uffd_thread_faults;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UFFD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UFFD_SANITIZED 1
#endif
#endif
#ifndef UFFD_SANITIZED
#define UFFD_SANITIZED 0
#endif

/* ---- the handler thread ---- */

/* 1 once the thread start_server made has reached its loop (every signal
 * blocked then); the starter of a host fork's child waits for it (a
 * futex word, host memory). */
static unsigned int server_ready;

/*
 * Reads the faults queued on fd and serves each one by vm_fault_serve
 * (fault.c: the signal handlers' fault_in), then wakes the accesses
 * waiting on its page — a thread's load or store, or the host kernel's
 * copy into or out of the page in the middle of a system call.  It never
 * touches a window itself, and blocks every signal; glibc's start of it
 * reads the global locale's data, which libkslab-vm.so keeps host memory
 * (vmmode/libcobj.c).  A resolution that
 * fills the page (UFFDIO_ZEROPAGE) wakes the waiters itself; one that
 * maps a frame over the hole (mmap) does not, hence the wake.
 */
static void *uffd_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct vm_os_uffd_fault f[16];
    __atomic_store_n(&server_ready, 1, __ATOMIC_RELEASE);
    vm_os_futex_wake_all(&server_ready);
    for (;;) {
        int n = vm_os_uffd_wait(fd, f, 16);
        if (n < 0)
            return NULL; /* the descriptor went (a host fork's child) */
        for (int i = 0; i < n; i++) {
            uintptr_t page = f[i].addr & ~(uintptr_t)(PAGE_SIZE - 1);
            vm_fault_serve(page, f[i].write);
            atomic_fetch_add_explicit(&vm_uffd_thread_faults, 1,
                                      memory_order_relaxed);
            vm_os_uffd_wake(fd, (void *)page, PAGE_SIZE);
        }
    }
}

/* The thread for fd, with every signal blocked from its first
 * instruction on (the mask is inherited).  With wait, returns once the
 * thread is in its loop.  0 or -1. */
static int start_server(int fd, int wait)
{
    sigset_t all, saved;
    sigfillset(&all);
    __atomic_store_n(&server_ready, 0, __ATOMIC_RELAXED);
    vm_os_sigmask(SIG_BLOCK, &all, &saved);
    pthread_attr_t attr;
    pthread_t t;
    int r = pthread_attr_init(&attr);
    if (!r) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 << 10);
        r = pthread_create(&t, &attr, uffd_server, (void *)(intptr_t)fd);
        pthread_attr_destroy(&attr);
    }
    vm_os_sigmask(SIG_SETMASK, &saved, NULL);
    if (r)
        return -1;
    while (wait && !__atomic_load_n(&server_ready, __ATOMIC_ACQUIRE))
        vm_os_futex_wait(&server_ready, 0);
    return 0;
}

/* A descriptor for the thread (write-protect mode where the host has
 * it): the descriptor, *wp set; -errno without. */
static int open_for_thread(int *wp)
{
    *wp = 1;
    int fd = vm_os_uffd_open_mode(VM_OS_UFFD_WP);
    if (fd < 0) { /* no write-protect faults on shared memory here */
        *wp = 0;
        fd = vm_os_uffd_open_mode(0);
    }
    return fd;
}

/* A descriptor as asked, with its thread when one is: -errno without. */
static int open_served(void)
{
    if (uffd_want_thread) {
        int wp, fd = open_for_thread(&wp);
        if (fd >= 0 && start_server(fd, 0) == 0) {
            atomic_store(&uffd_wp, wp);
            atomic_store(&uffd_thread, 1);
            return fd;
        }
        if (fd >= 0)
            vm_os_uffd_close(fd);
    }
    atomic_store(&uffd_wp, 0);
    atomic_store(&uffd_thread, 0);
    return vm_os_uffd_open();
}

static void uffd_setup(void)
{
    kslab_init(); /* the options are read */
    int want = kslab_opt.vm_backend;
    if (want == KSLAB_VM_BACKEND_SIGSEGV ||
        (want == KSLAB_VM_BACKEND_AUTO && UFFD_SANITIZED))
        return;
    int fd = open_served();
    if (fd < 0)
        return;
    if (vm_fault_bus_init() != 0) {
        vm_os_uffd_close(fd); /* the thread, if any, ends with it */
        atomic_store(&uffd_thread, 0);
        return;
    }
    uffd_fd = fd;
}

int vm_uffd_enabled(void)
{
    kslab_once(&uffd_once, uffd_setup);
    return uffd_fd >= 0;
}

int vm_uffd_serve_by_thread(void)
{
    uffd_want_thread = 1;
    return vm_uffd_enabled() && vm_uffd_served() ? 0 : -1;
}

int vm_uffd_served(void)
{
    return atomic_load_explicit(&uffd_thread, memory_order_relaxed);
}

int vm_uffd_wp(void)
{
    return atomic_load_explicit(&uffd_wp, memory_order_relaxed) &&
           vm_uffd_served();
}

int vm_uffd_wp_map(struct mm_struct *mm, unsigned long addr,
                   unsigned long npages, unsigned long pfn, int populate)
{
    return vm_os_uffd_wp_map(uffd_fd, mm->window + addr, npages << PAGE_SHIFT,
                             vm_highmem.memfd, (off_t)(pfn << PAGE_SHIFT),
                             populate)
               ? 0
               : -ENOMEM;
}

int vm_uffd_wp_protect(struct mm_struct *mm, unsigned long addr,
                       unsigned long npages)
{
    return vm_os_uffd_wp_protect(uffd_fd, mm->window + addr,
                                 npages << PAGE_SHIFT)
               ? -ENOMEM
               : 0;
}

int vm_uffd_hole(struct mm_struct *mm, unsigned long start, unsigned long end)
{
    if (vm_uffd_served())
        return vm_os_uffd_hole(uffd_fd, mm->window + start, end - start);
    return vm_os_decommit(mm->window + start, end - start);
}

int vm_uffd_window_open(struct mm_struct *mm)
{
    return vm_uffd_served() ? vm_uffd_hole(mm, 0, TASK_SIZE) : 0;
}

void vm_uffd_poison(struct mm_struct *mm, unsigned long addr)
{
    vm_uffd_demote(mm, addr, addr + PAGE_SIZE, 0);
    vm_premap_forget(mm, addr, addr + PAGE_SIZE);
    vm_os_protect(mm->window + addr, PAGE_SIZE, VM_OS_NONE);
}

/* The first frame of the block of the linear range holding addr, or 0. */
static unsigned long block_of(struct mm_struct *mm, unsigned long addr)
{
    return mm->uffd_block ? mm->uffd_block[addr >> PMD_SHIFT] : 0;
}

int vm_uffd_linear(struct mm_struct *mm, unsigned long addr, pte_t pte)
{
    unsigned long b = block_of(mm, addr);
    return b && pte_present(pte) && pte_write(pte) &&
           !(pte_val(pte) & _PAGE_OLD) &&
           pte_pfn(pte) == b + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
}

/* Frames of the block that are still holes (no pte holds them) go back. */
static void release_reserved(struct mm_struct *mm, unsigned long base,
                             unsigned long block, unsigned long lo,
                             unsigned long hi)
{
    struct vm_free_batch batch = {0, 0};
    pte_t *ptes = vm_pte_lookup(mm, base);
    for (unsigned long a = lo; a < hi; a += PAGE_SIZE) {
        unsigned long i = (a - base) >> PAGE_SHIFT;
        if (ptes && pte_present(ptes[i]) && pte_pfn(ptes[i]) == block + i)
            continue; /* the pte's */
        vm_frame_put(vm_pfn_frame(block + i), &batch);
    }
    vm_free_batch_flush(&batch);
}

/* The whole range, linear again (after a failed demotion). */
static int relink(struct mm_struct *mm, unsigned long base, unsigned long block)
{
    if (!vm_os_map_shared(mm->window + base, PMD_SIZE, VM_OS_READ | VM_OS_WRITE,
                          vm_highmem.memfd, (off_t)(block << PAGE_SHIFT), 0) ||
        vm_os_uffd_register(uffd_fd, mm->window + base, PMD_SIZE) != 0)
        return -1;
    return 0;
}

int vm_uffd_demote(struct mm_struct *mm, unsigned long start, unsigned long end,
                   int unmapping)
{
    if (!mm->uffd_nr || start >= end)
        return 0;
    int err = 0;
    for (unsigned long base = start & PMD_MASK; base < end; base += PMD_SIZE) {
        unsigned long block = block_of(mm, base);
        if (!block)
            continue;
        unsigned long top = base + PMD_SIZE;
        unsigned long lo = unmapping && start > base ? start : base;
        unsigned long hi = unmapping && end < top ? end : top;
        mm->uffd_block[base >> PMD_SHIFT] = 0;
        mm->uffd_nr--;
        vm_premap_forget(mm, base, top);
        int r = 0;
        if (unmapping) {
            /* [lo, hi) goes away; the rest is mapped page by page */
            r = vm_uffd_hole(mm, lo, hi);
            if (!r && base < lo)
                r = vm_host_sync(mm, base, lo);
            if (!r && hi < top)
                r = vm_host_sync(mm, hi, top);
        } else {
            r = vm_host_sync(mm, base, top);
        }
        if (r) {
            /* the host refused (vm.max_map_count): the range stays linear
             * and the caller's change fails */
            if (relink(mm, base, block) != 0)
                kslab_die("uffd: cannot map back the range %lx of mm %p", base,
                          (void *)mm);
            mm->uffd_block[base >> PMD_SHIFT] = block;
            mm->uffd_nr++;
            err = -ENOMEM;
            continue;
        }
        release_reserved(mm, base, block, base, top);
    }
    return err;
}

/* Makes the range of addr linear, if it can be: its block, or 0. */
static unsigned long link_range(struct mm_struct *mm,
                                struct vm_area_struct *vma, unsigned long addr)
{
    unsigned long base = addr & PMD_MASK;
    if (vma->vm_start > base || vma->vm_end < base + PMD_SIZE ||
        (vma->vm_flags & (VM_SHARED | VM_READ | VM_WRITE)) !=
            (VM_READ | VM_WRITE) ||
        vma->vm_ops || vm_is_driver(vma) ||
        (pgprot_val(vma->vm_page_prot) & (_PAGE_PRESENT | _PAGE_PROTNONE)) !=
            _PAGE_PRESENT)
        return 0;
    pte_t *ptes = vm_pte_lookup(mm, base);
    if (!ptes)
        return 0;
    for (int i = 0; i < PTRS_PER_PTE; i++)
        if (!pte_none(ptes[i]))
            return 0; /* already mapped page by page */
    unsigned long limit = __atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED);
    if (vm_free_user_frames() <
        (1UL << UFFD_ORDER) + limit / 8 + 4 * vm_pages_min())
        return 0;
    if (!mm->uffd_block) {
        mm->uffd_block =
            kmalloc(UFFD_NR_PMDS * sizeof(unsigned long), GFP_KERNEL);
        if (!mm->uffd_block)
            return 0;
        memset(mm->uffd_block, 0, UFFD_NR_PMDS * sizeof(unsigned long));
    }
    struct page *first = vm_highmem_alloc_pages(UFFD_ORDER);
    if (!first)
        return 0;
    unsigned long block = vm_frame_pfn(first);
    first->order = 0;
    /* every frame of the block must be a hole, so that the range faults
     * wherever no pte is */
    for (unsigned long i = 0; i < (1UL << UFFD_ORDER); i++) {
        struct page *p = vm_pfn_frame(block + i);
        if (!PageFlag(p, PG_clean)) {
            vm_os_punch_hole(vm_highmem.memfd,
                             (off_t)((block + i) << PAGE_SHIFT), PAGE_SIZE);
            SetPageFlag(p, PG_clean);
        }
    }
    vm_premap_forget(mm, base, base + PMD_SIZE);
    if (relink(mm, base, block) != 0) {
        if (vm_uffd_hole(mm, base, base + PMD_SIZE) != 0)
            kslab_die("uffd: cannot unmap the range %lx of mm %p", base,
                      (void *)mm);
        struct vm_free_batch batch = {0, 0};
        for (unsigned long i = 0; i < (1UL << UFFD_ORDER); i++)
            vm_frame_put(vm_pfn_frame(block + i), &batch);
        vm_free_batch_flush(&batch);
        return 0;
    }
    mm->uffd_block[base >> PMD_SHIFT] = block;
    mm->uffd_nr++;
    return block;
}

int vm_uffd_anon_fault(struct mm_struct *mm, struct vm_area_struct *vma,
                       unsigned long addr, pte_t *pte, int write_access)
{
    unsigned long block = block_of(mm, addr);
    if (!block && (!write_access || !vm_uffd_enabled() ||
                   !(block = link_range(mm, vma, addr))))
        return 0;
    /* fault-around (memory.c): the holes around addr too, one ioctl */
    unsigned long lo, n = vm_fault_around_run(vma, addr, pte, &lo);
    unsigned long pfn = block + ((lo & ~PMD_MASK) >> PAGE_SHIFT);
    pte_t *first = pte - ((addr - lo) >> PAGE_SHIFT);
    for (unsigned long i = 0; i < n; i++) {
        /* a none pte's frame is a hole (the invariant); were it not, the
         * ioctl would stop at it with EEXIST and leave the rest unfilled:
         * it is made one, as link_range does */
        struct page *page = vm_pfn_frame(pfn + i);
        if (!PageFlag(page, PG_clean)) {
            vm_os_punch_hole(vm_highmem.memfd, (off_t)((pfn + i) << PAGE_SHIFT),
                             PAGE_SIZE);
            SetPageFlag(page, PG_clean);
        }
    }
    int r = vm_os_uffd_zeropage(uffd_fd, mm->window + lo, n << PAGE_SHIFT);
    if (r == -EAGAIN)
        r = vm_os_uffd_zeropage(uffd_fd, mm->window + lo, n << PAGE_SHIFT);
    if (r && n > 1) {
        /* part of the run may be filled: holes again (a none pte is a
         * hole), and the faulting page alone */
        vm_os_punch_hole(vm_highmem.memfd, (off_t)(pfn << PAGE_SHIFT),
                         n << PAGE_SHIFT);
        pfn += (addr - lo) >> PAGE_SHIFT;
        first = pte;
        n = 1;
        r = vm_os_uffd_zeropage(uffd_fd, mm->window + addr, PAGE_SIZE);
        if (r == -EAGAIN)
            r = vm_os_uffd_zeropage(uffd_fd, mm->window + addr, PAGE_SIZE);
    }
    if (r)
        return -1;
    for (unsigned long i = 0; i < n; i++) {
        struct page *page = vm_pfn_frame(pfn + i);
        ClearPageFlag(page, PG_clean);
        first[i] =
            mk_pte(page, _PAGE_PRESENT | _PAGE_USER | _PAGE_RW | _PAGE_DIRTY |
                             (first + i == pte ? _PAGE_ACCESSED : 0));
    }
    mm->rss += n;
    mm->min_flt++;
    return 1;
}

void vm_uffd_mm_free(struct mm_struct *mm)
{
    kfree(mm->uffd_block);
    mm->uffd_block = NULL;
    mm->uffd_nr = 0;
}

/* ---- host fork ---- */

/* The holes of the linear ranges of mm read as zero pages: the pages
 * that no pte maps are punched out of the child's copy of user memory
 * (highmem.c copies only what holds data, so this is a safeguard). */
static void punch_reserved(struct mm_struct *mm)
{
    for (unsigned long i = 0; mm->uffd_nr && i < UFFD_NR_PMDS; i++) {
        unsigned long block = mm->uffd_block[i];
        if (!block)
            continue;
        pte_t *ptes = vm_pte_lookup(mm, i << PMD_SHIFT);
        for (unsigned long j = 0; j < PTRS_PER_PTE;) {
            unsigned long n = 0;
            while (j + n < PTRS_PER_PTE && !(ptes && pte_present(ptes[j + n])))
                n++;
            if (n)
                vm_os_punch_hole(vm_highmem.memfd,
                                 (off_t)((block + j) << PAGE_SHIFT),
                                 n << PAGE_SHIFT);
            j += n ? n : 1;
        }
    }
}

/* The thread's descriptor of a host fork's child, opened and served
 * (vm_uffd_fork_child_start) but not yet in force; -1 when none waits. */
static int child_fd = -1, child_wp;
/* The child of a host fork of a process served by a thread, until
 * vm_uffd_fork_child_start: the thread is to be started anew. */
static int child_wants_thread;

/* In the child (one thread), before any mm is mapped again: the parent's
 * descriptor goes (it belongs to the parent's address space, and the
 * child's mappings are no longer registered with it), and one that
 * raises signals takes its place — the SIGBUS back end, whose faults are
 * served on the faulting thread, whatever thread that is.  The handler
 * thread, if the parent had one, is started later (the story above). */
void vm_uffd_fork_child_reset(void)
{
    if (uffd_fd < 0)
        return;
    vm_os_uffd_close(uffd_fd);
    child_wants_thread = vm_uffd_served();
    atomic_store(&uffd_wp, 0);
    atomic_store(&uffd_thread, 0);
    uffd_fd = vm_os_uffd_open();
}

int vm_uffd_fork_child_start(void)
{
    if (!child_wants_thread)
        return 0;
    child_wants_thread = 0;
    int wp, fd = open_for_thread(&wp);
    if (fd < 0)
        return 0;
    if (start_server(fd, 1) != 0) {
        vm_os_uffd_close(fd);
        return 0;
    }
    child_fd = fd;
    child_wp = wp;
    return 1;
}

void vm_uffd_fork_child_switch(void)
{
    if (child_fd < 0)
        return;
    /* its linear ranges unregistered; nothing touches a window until
     * the caller has mapped every mm again */
    if (uffd_fd >= 0)
        vm_os_uffd_close(uffd_fd);
    uffd_fd = child_fd;
    child_fd = -1;
    atomic_store(&uffd_wp, child_wp);
    atomic_store(&uffd_thread, 1);
}

/* vm_host_sync of [start, end) except its linear ranges. */
static int sync_others(struct mm_struct *mm, unsigned long start,
                       unsigned long end)
{
    for (unsigned long a = start; a < end;) {
        unsigned long s = a;
        while (a < end && !block_of(mm, a))
            a = (a & PMD_MASK) + PMD_SIZE;
        if (a > end)
            a = end;
        if (a > s && vm_host_sync(mm, s, a) != 0)
            return -ENOMEM;
        while (a < end && block_of(mm, a))
            a += PMD_SIZE; /* a linear range starts on a pmd boundary */
    }
    return 0;
}

/* The child's linear ranges onto its copy of the frames, registered with
 * its descriptor (or page by page, without one); then every other range
 * of every vma, as the SIGSEGV back end maps it.  0 or -ENOMEM. */
int vm_uffd_fork_child(struct mm_struct *mm)
{
    /* the child's window is no longer registered: a hole of it would
     * read as a host zero page.  All holes again (the thread's, or
     * inaccessible ones), then mapped from the page tables. */
    if (uffd_want_thread && vm_uffd_hole(mm, 0, TASK_SIZE) != 0)
        return -ENOMEM;
    for (unsigned long i = 0; mm->uffd_nr && i < UFFD_NR_PMDS; i++) {
        unsigned long block = mm->uffd_block[i];
        if (!block)
            continue;
        if ((uffd_fd < 0 || relink(mm, i << PMD_SHIFT, block) != 0) &&
            vm_uffd_demote(mm, i << PMD_SHIFT, (i + 1) << PMD_SHIFT, 0) != 0)
            return -ENOMEM;
    }
    if (mm->uffd_nr)
        punch_reserved(mm);
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next)
        if (sync_others(mm, v->vm_start, v->vm_end) != 0)
            return -ENOMEM;
    return 0;
}
