/*
 * vmmode/stats.c — the mm's statistics of libkslab-vm.so: its maps,
 * meminfo and vmstat lines (the forms of Linux's /proc/PID/maps,
 * /proc/meminfo and /proc/vmstat), formatted in one place for the two
 * views of them: the KSLAB_STATS report at exit, and the live files of
 * KSLAB_VM_STATS_DIR.
 *
 * The live view: DIR/maps, DIR/meminfo and DIR/vmstat, rewritten every
 * second by a background thread and once more at exit, each written to a
 * dot file of DIR and renamed over the old one, so that a reader (`watch
 * cat DIR/meminfo`, tools/kslab-vmstat) never sees half a file.  The
 * thread is not started by the constructor (a thread made while the
 * loader holds its locks may deadlock with them) but by the first large
 * block (heap.c) or emulated mmap (mman.c), outside every lock of kslab;
 * it blocks every signal from birth and is named "kslab-vmstat".  A host
 * fork's child has no thread: when DIR has %p (replaced by the pid) the
 * child starts its own, for its own directory, at its first large block
 * or mmap; otherwise the child writes nothing, so that the files stay the
 * parent's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kslab/vm.h>

#include "interpose/interpose.h"
#include "lib/options.h"
#include "lib/report.h"
#include "vmmode/vmmode.h"

#define KB(pages) ((pages) << (PAGE_SHIFT - 10))

/* ---- the formats ---- */

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

static void format_maps(FILE *out)
{
    fflush(out);
    mm_dump_maps(vmm_mm, out);
}

static void format_meminfo(FILE *out)
{
    unsigned long active = 0, inactive = 0;
    unsigned long swap_total, swap_free;
    vm_swap_totals(&swap_total, &swap_free);
    count_active(&active, &inactive);
    unsigned long swapcache = vm_swap_cache_pages();
    inactive += swapcache;
    fprintf(out,
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
}

static void format_vmstat(FILE *out)
{
    struct mm_stat st;
    mm_get_stat(vmm_mm, &st);
    fprintf(out,
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

/* KSLAB_STATS: after slabinfo and the large blocks (interpose/init.c). */
void vmm_stats(FILE *out)
{
    if (!vmm_mm)
        return;
    struct mm_stat st;
    struct vmm_heap_stats hs;
    mm_get_stat(vmm_mm, &st);
    vmm_heap_stats(&hs);
    fprintf(out,
            "vm: the process's mm at window %p: %lu malloc blocks in it "
            "(%lu bytes), rss %lu kB, %lu kB of frames (KSLAB_VM_MEM), "
            "%lu kB of swap (KSLAB_VM_SWAP)\n"
            "vm: heap (brk) %lu kB: %lu blocks (%lu bytes), %lu kB freed "
            "and kept; %lu blocks mapped (%lu bytes)\n",
            (void *)atomic_load(&vmm_base), hs.heap_blocks + hs.map_blocks,
            hs.heap_bytes + hs.map_bytes, KB(st.rss),
            KB(__atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED)),
            vmm_swap_bytes >> 10, hs.heap_size >> 10, hs.heap_blocks,
            hs.heap_bytes, hs.heap_dirty >> 10, hs.map_blocks, hs.map_bytes);
    struct vmm_slab_stats ss;
    vmm_slab_stats(&ss);
    fprintf(out,
            "vm: slabs (blocks of 64 KiB and less) %lu kB in %lu chunks of "
            "the mm: %lu kB in slabs, %lu kB freed and kept; %lu kB of "
            "slabs in host memory\n",
            ss.chunks << 12, ss.chunks, ss.slab_bytes >> 10,
            ss.dirty_bytes >> 10, ss.host_bytes >> 10);
    fprintf(out,
            "vm: faults of the host kernel's accesses: %s (%lu served by "
            "the thread)%s\n",
            vm_uffd_served() ? "served by the userfaultfd handler thread"
                             : "EFAULT unless the call pins its buffer",
            (unsigned long)atomic_load(&vm_uffd_thread_faults),
            !vm_uffd_served() ? ""
            : vm_uffd_wp()    ? ", write-protected pages too"
                              : "; a write into a read-only page: EFAULT "
                                "(no write-protect faults on shared memory "
                                "here)");
    fprintf(out, "vm: maps\n");
    format_maps(out);
    fprintf(out, "vm: meminfo\n");
    format_meminfo(out);
    fprintf(out, "vm: vmstat\n");
    format_vmstat(out);
}

/* ---- the live files ---- */

/* vmm_stats_state: 0 not started, 1 started (or starting), 2 off. */
_Atomic int vmm_stats_state;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static int live_stopped;             /* the exit's files are written: no more */
static int live_forked;              /* a host fork's child */
static char live_dir[PATH_MAX - 64]; /* KSLAB_VM_STATS_DIR, %p replaced */

/* DIR for this process, made if missing: 0, or -1 (the live view is off;
 * a warning when the directory cannot be made). */
static int live_prepare(void)
{
    const char *o = kslab_opt.vm_stats_dir;
    if (!o[0] || !vmm_mm || (live_forked && !strstr(o, "%p")))
        return -1;
    size_t n = 0;
    for (; *o && n < sizeof live_dir - 16; o++) {
        if (o[0] == '%' && o[1] == 'p') {
            n += (size_t)snprintf(live_dir + n, sizeof live_dir - n, "%d",
                                  (int)getpid());
            o++;
        } else {
            live_dir[n++] = *o;
        }
    }
    live_dir[n] = 0;
    if (mkdir(live_dir, 0755) != 0 && errno != EEXIST) {
        kslab_warn("KSLAB_VM_STATS_DIR: cannot make %s (errno %d): no live "
                   "statistics",
                   live_dir, errno);
        return -1;
    }
    return 0;
}

/* DIR/name: written to DIR/.name.PID, then renamed. */
static void live_file(const char *name, void (*format)(FILE *))
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    int a =
        snprintf(tmp, sizeof tmp, "%s/.%s.%d", live_dir, name, (int)getpid());
    int b = snprintf(dst, sizeof dst, "%s/%s", live_dir, name);
    if (a < 0 || (size_t)a >= sizeof tmp || b < 0 || (size_t)b >= sizeof dst)
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    format(f);
    if (fclose(f) != 0 || rename(tmp, dst) != 0)
        unlink(tmp);
}

static void live_files(void)
{
    live_file("maps", format_maps);
    live_file("meminfo", format_meminfo);
    live_file("vmstat", format_vmstat);
}

/* The three files, unless the exit's are written already. */
static int live_write(void)
{
    pthread_mutex_lock(&live_lock);
    int stopped = live_stopped;
    if (!stopped)
        live_files();
    pthread_mutex_unlock(&live_lock);
    return stopped;
}

static void *live_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "kslab-vmstat", 0, 0, 0);
    while (!live_write()) {
        struct timespec ts = {1, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return NULL;
}

void vmm_stats_start(void)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&vmm_stats_state, &expect, 1))
        return;
    if (live_prepare() != 0) {
        atomic_store(&vmm_stats_state, 2);
        return;
    }
    int saved = errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int r = pthread_create(&t, &attr, live_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        kslab_warn("KSLAB_VM_STATS_DIR: cannot start the thread (error %d): "
                   "files at exit only",
                   r);
    }
    errno = saved;
}

void vmm_stats_fork_child(void)
{
    pthread_mutex_init(&live_lock, NULL);
    live_forked = 1;
    live_stopped = 0;
    atomic_store(&vmm_stats_state, 0);
}

/* At exit, the last files: the thread (if any) writes no more after them.
 * A thread stuck with the lock for seconds is given up on. */
__attribute__((destructor)) static void live_exit(void)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&vmm_stats_state, &expect, 2) &&
        live_prepare() != 0)
        return;
    if (expect == 2)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    if (pthread_mutex_timedlock(&live_lock, &until) != 0)
        return;
    live_files();
    live_stopped = 1;
    pthread_mutex_unlock(&live_lock);
}
