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
 * family's large blocks move into the mm (heap.c).
 *
 * With KSLAB_STATS the exit report, after slabinfo and the large blocks,
 * has the mm's maps (/proc/PID/maps form, the mm's own addresses; the
 * program sees address a at window + a), meminfo lines and vmstat lines.
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
#include "vmmode/vmmode.h"

#define VMM_SWAP_DEFAULT (256UL << 20)

struct mm_struct *vmm_mm;
_Atomic uintptr_t vmm_base;
pthread_mutex_t vmm_lock = PTHREAD_MUTEX_INITIALIZER;

static struct kslab_once vmm_once = KSLAB_ONCE_INIT;
static int vmm_err;
static unsigned long swap_bytes;

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
    swap_bytes = pages << PAGE_SHIFT;
}

static void vmm_fork_prepare(void)
{
    pthread_mutex_lock(&vmm_lock);
}

static void vmm_fork_parent(void)
{
    pthread_mutex_unlock(&vmm_lock);
}

static void vmm_fork_child(void)
{
    pthread_mutex_init(&vmm_lock, NULL);
    vmm_heap_fork_child();
}

static void vmm_setup(void)
{
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
}

int vmm_ready(void)
{
    kslab_once(&vmm_once, vmm_setup);
    return vmm_mm ? 0 : -1;
}

/* ---- KSLAB_STATS ---- */

#define KB(pages) ((pages) << (PAGE_SHIFT - 10))

/* Present ptes of the mm: referenced since the aging scan last armed them
 * (Active) or armed and not referenced yet (Inactive). */
static void count_active(unsigned long *active, unsigned long *inactive)
{
    struct mm_struct *mm = vmm_mm;
    pthread_mutex_lock(&mm->mmap_sem);
    for (struct vm_area_struct *v = mm->mmap; v; v = v->vm_next) {
        for (unsigned long a = v->vm_start; a < v->vm_end;) {
            pte_t *pte = vm_pte_lookup(mm, a);
            if (!pte) {
                a = (a + PMD_SIZE) & PMD_MASK;
                continue;
            }
            if (pte_present(*pte) && !(pte_val(*pte) & _PAGE_PROTNONE)) {
                if (pte_val(*pte) & _PAGE_OLD)
                    (*inactive)++;
                else
                    (*active)++;
            }
            a += PAGE_SIZE;
        }
    }
    pthread_mutex_unlock(&mm->mmap_sem);
}

static void vmm_stats(FILE *out)
{
    if (!vmm_mm)
        return;
    struct mm_stat st;
    struct vmm_heap_stats hs;
    unsigned long active = 0, inactive = 0;
    unsigned long swap_total, swap_free;
    mm_get_stat(vmm_mm, &st);
    vmm_heap_stats(&hs);
    vm_swap_totals(&swap_total, &swap_free);
    count_active(&active, &inactive);
    unsigned long swapcache = vm_swap_cache_pages();
    inactive += swapcache;
    fprintf(out,
            "vm: the process's mm at window %p: %lu malloc blocks in it "
            "(%lu bytes), rss %lu kB, %lu kB of frames (KSLAB_VM_MEM), "
            "%lu kB of swap (KSLAB_VM_SWAP)\n"
            "vm: heap (brk) %lu kB: %lu blocks (%lu bytes), %lu kB freed "
            "and kept; %lu blocks mapped (%lu bytes)\n",
            (void *)atomic_load(&vmm_base), hs.heap_blocks + hs.map_blocks,
            hs.heap_bytes + hs.map_bytes, KB(st.rss),
            KB(__atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED)),
            swap_bytes >> 10, hs.heap_size >> 10, hs.heap_blocks, hs.heap_bytes,
            hs.heap_dirty >> 10, hs.map_blocks, hs.map_bytes);
    fprintf(out, "vm: maps\n");
    fflush(out);
    mm_dump_maps(vmm_mm, out);
    fprintf(out,
            "vm: meminfo\n"
            "MemTotal:     %8lu kB\n"
            "MemFree:      %8lu kB\n"
            "Cached:       %8lu kB\n"
            "SwapCached:   %8lu kB\n"
            "Active:       %8lu kB\n"
            "Inactive:     %8lu kB\n"
            "SwapTotal:    %8lu kB\n"
            "SwapFree:     %8lu kB\n",
            KB(__atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED)),
            KB(vm_free_user_frames()), KB(vm_page_cache_pages()), KB(swapcache),
            KB(active), KB(inactive), KB(swap_total), KB(swap_free));
    fprintf(out,
            "vm: vmstat\n"
            "pgfault %lu\n"
            "pgmajfault %lu\n"
            "pswpin %lu\n"
            "pswpout %lu\n"
            "pgscan %lu\n"
            "pgsteal %lu\n",
            st.min_flt + st.maj_flt, st.maj_flt,
            (unsigned long)atomic_load(&vm_pswpin),
            (unsigned long)atomic_load(&vm_pswpout),
            (unsigned long)atomic_load(&vm_pgscan),
            (unsigned long)atomic_load(&vm_pgsteal));
}

/* After interpose/init.c's constructor (101): start-up has run. */
__attribute__((constructor(102))) static void vmm_constructor(void)
{
    ip_stats_set_hook(vmm_stats);
    vmm_ready();
}
