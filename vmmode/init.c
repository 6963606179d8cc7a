/*
 * vmmode/init.c — start-up of libkslab-vm.so: the process's mm, its
 * emulated physical memory and swap area, and what KSLAB_STATS adds.
 *
 * The mm is made once (vmm_ready: from this file's constructor, or from
 * the first wrapper that needs it, whichever comes first): mm_alloc, the
 * user memory limited to KSLAB_VM_MEM frames (vm_set_ram_pages; by
 * default all of user memory, 8 GiB, so that nothing swaps), and a swap
 * file of KSLAB_VM_SWAP bytes (default 256 MiB) made by mkswap in
 * KSLAB_VM_SWAP_DIR, $TMPDIR or /tmp, turned on by sys_swapon and
 * unlinked at once: the open descriptor (close-on-exec) keeps it, so
 * neither exit nor exec leaves a file behind, and a host fork's child
 * gets a copy of the used slots (vm/mm/swapfile.c).  Then the malloc
 * family's large blocks move into the mm (heap.c), and its small ones
 * (slabpages.c).
 *
 * With KSLAB_STATS the exit report, after slabinfo and the large blocks,
 * has the mm's maps (/proc/PID/maps form, the mm's own addresses; the
 * program sees address a at window + a), meminfo lines and vmstat lines
 * (stats.c, which also keeps them live in KSLAB_VM_STATS_DIR).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kslab/vm.h>

#include "interpose/interpose.h"
#include "lib/init.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/kmalloc.h"
#include "vmmode/vmmode.h"

#define VMM_SWAP_DEFAULT (256UL << 20)

struct mm_struct *vmm_mm;
_Atomic uintptr_t vmm_base;
pthread_mutex_t vmm_lock = PTHREAD_MUTEX_INITIALIZER;

static struct kslab_once vmm_once = KSLAB_ONCE_INIT;
static int vmm_err;
unsigned long vmm_swap_bytes;

int vmm_room(unsigned long addr, unsigned long len)
{
    if (addr >= TASK_SIZE || len > TASK_SIZE - addr)
        return 0;
    struct vm_area_struct *v = find_vma(vmm_mm, addr);
    return !v || v->vm_start >= addr + len;
}

/* The swap file: made, turned on, unlinked.  A failure is one warning;
 * the program runs on without swap. */
static void swap_setup(void)
{
    unsigned long bytes =
        kslab_opt.vm_swap ? kslab_opt.vm_swap : VMM_SWAP_DEFAULT;
    unsigned long pages = bytes >> PAGE_SHIFT;
    if (pages > SWP_MAX_OFFSET)
        pages = SWP_MAX_OFFSET;
    const char *dir = kslab_opt.vm_swap_dir;
    if (!dir[0]) {
        dir = secure_getenv("TMPDIR");
        if (!dir || dir[0] != '/')
            dir = "/tmp";
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/kslab-swap.%d.XXXXXX", dir,
                     (int)getpid());
    int fd = n > 0 && (size_t)n < sizeof path ? mkstemp(path) : -1;
    if (fd < 0) {
        kslab_warn("KSLAB_VM_SWAP: cannot make a swap file in %s (errno %d): "
                   "no swap",
                   dir, errno);
        return;
    }
    close(fd);
    int r = mkswap(path, pages);
    if (r == 0)
        r = sys_swapon(path, 0);
    unlink(path);
    if (r != 0) {
        kslab_warn("KSLAB_VM_SWAP: swapon %s: error %d: no swap", path, r);
        return;
    }
    vmm_swap_bytes = pages << PAGE_SHIFT;
}

/* Across a host fork the malloc path's small blocks come from the host
 * caches (slab_malloc_host_only): in the child, until the emulator's own
 * child handler mapped its window anew, a write to the window would
 * reach the parent's frames; and the child's handler thread is started
 * here (vm_mm_fork_child_serve: after every child handler of kslab's, so
 * the thread registry keeps its record), whose pthread_create allocates. */
static void vmm_fork_prepare(void)
{
    atomic_store(&vmm_forking, 1);
    slab_malloc_host_only(1);
    pthread_mutex_lock(&vmm_lock);
}

static void vmm_fork_parent(void)
{
    pthread_mutex_unlock(&vmm_lock);
    atomic_store(&vmm_forking, 0);
    slab_malloc_host_only(0);
}

static void vmm_fork_child(void)
{
    pthread_mutex_init(&vmm_lock, NULL);
    /* the emulator's handler thread anew, malloc still on the host
     * caches (pthread_create allocates): vm/mm/fork.c */
    vm_mm_fork_child_serve();
    atomic_store(&vmm_forking, 0);
    slab_malloc_host_only(0);
    vmm_heap_fork_child();
    vmm_stats_fork_child();
}

static void vmm_setup(void)
{
    /* the host kernel's accesses to the mm (a read(2) into the heap, a
     * stat written there) wait for a userfaultfd handler thread where
     * the host allows one (vm/mm/uffd.c); before the mm is made */
    vm_uffd_serve_by_thread();
    struct mm_struct *mm = mm_alloc();
    if (!mm) {
        kslab_warn("libkslab-vm.so: cannot make the process's mm (errno "
                   "%d): memory stays host memory",
                   errno);
        vmm_err = -1;
        return;
    }
    if (kslab_opt.vm_mem)
        vm_set_ram_pages(kslab_opt.vm_mem >> PAGE_SHIFT);
    vmm_mm = mm;
    swap_setup();
    /* after kslab's own fork handler: this one's prepare runs first */
    pthread_atfork(vmm_fork_prepare, vmm_fork_parent, vmm_fork_child);
    atomic_store_explicit(&vmm_base, (uintptr_t)mm_host(mm, 0),
                          memory_order_release);
    vmm_heap_init();
    vmm_slab_init();
}

int vmm_ready(void)
{
    kslab_once(&vmm_once, vmm_setup);
    return vmm_mm ? 0 : -1;
}

/* After interpose/init.c's constructor (101): start-up has run. */
__attribute__((constructor(102))) static void vmm_constructor(void)
{
    ip_stats_set_hook(vmm_stats);
    vmm_ready();
}
