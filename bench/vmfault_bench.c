/*
 * bench/vmfault_bench.c — what an emulated fault costs, beside the
 * host kernel doing the same thing in the same run:
 *   - one anonymous write fault (emulated: SIGSEGV → handle_mm_fault →
 *     do_anonymous_page → mmap of the frame; host: the kernel's own),
 *     measured with fault-around off (a copy of this program run with
 *     KSLAB_VM_FAULT_AROUND=off);
 *   - one anonymous read fault (the ZERO_PAGE mapped; host: the same);
 *   - a fresh heap written page by page in order, as configured (with
 *     fault-around: pages per fault taken), beside the host's per page;
 *   - one COW break after a fork (emulated do_wp_page copy; host: a write
 *     in a forked child);
 *   - mm_fork of an mm with 64 MiB resident beside fork() of this process
 *     with 64 MiB resident;
 *   - the floor of the design: a SIGSEGV on a present, write-protected
 *     page whose handler only mprotects it, and what an emulated fault
 *     costs above it (the emulator's own work);
 *   - with --maxmap: how much emulated memory one process can hold before
 *     the host's vm.max_map_count stops it, sequential and scattered (in
 *     one mm, and over two mms at once).  KSLAB_VM_BACKEND=sigsegv or uffd
 *     chooses the back end measured (vm/mm/uffd.c);
 *   - the userfaultfd mechanism itself, without the emulator: a fault on
 *     a registered memfd mapping resolved by UFFDIO_ZEROPAGE from a
 *     SIGBUS handler (the signal path) or by a handler thread that reads
 *     the fault from the descriptor (the path that also serves the host
 *     kernel's own accesses), one page a fault or 16 (a fault-around run);
 *   - the emulated faults again with the emulator's own handler thread
 *     serving them (vm/mm/uffd.c, as libkslab-vm.so runs: a copy of this
 *     program that asks for the thread before its first mm), beside the
 *     signal path's figures above.
 * Each figure is the best of a few rounds.  --profile FIGURE runs only
 * that figure (fault, cow, read, heap or floor), many rounds, for perf;
 * with --thread, served by the handler thread.
 * Usage: vmfault_bench [--cpu] [--maxmap] [--profile FIGURE [--thread]]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kslab/vm.h>

/* vm/mm/uffd.c: the handler thread serves the mms made after this call
 * (what libkslab-vm.so asks for); 0 when it does.  enabled: the
 * userfaultfd back end is in force (KSLAB_VM_BACKEND). */
int vm_uffd_serve_by_thread(void);
int vm_uffd_enabled(void);

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define FAULT_PAGES 8192 /* 32 MiB */
#define FORK_BYTES (64UL << 20)
#define ROUNDS 5

/*
 * Host page-fault traps taken by this thread so far: the software event
 * perf counts where the CPU's fault enters the kernel — also a fault the
 * kernel turns into SIGSEGV, but not one a system call resolves for the
 * caller (MAP_POPULATE, MADV_POPULATE_*), which getrusage would count.
 * -1 when perf events are not allowed here.
 */
static int fault_counter = -1;

static long host_faults(void)
{
    if (fault_counter < 0) {
        struct perf_event_attr pe;
        memset(&pe, 0, sizeof pe);
        pe.type = PERF_TYPE_SOFTWARE;
        pe.size = sizeof pe;
        pe.config = PERF_COUNT_SW_PAGE_FAULTS;
        fault_counter = (int)syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
        if (fault_counter < 0)
            return -1;
    }
    long long n;
    if (read(fault_counter, &n, sizeof n) != sizeof n)
        return -1;
    return (long)n;
}

/* Host faults per emulated fault in the last emu_fault_us/emu_cow_us. */
static double fault_hf, cow_hf;

/* --cpu: the CPU time of the measuring thread (user + system), so that
 * time other processes take the CPU away is not counted (a loaded
 * machine); wall-clock time otherwise. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void touch(volatile char *p, unsigned long pages)
{
    for (unsigned long i = 0; i < pages; i++)
        p[i * PAGE_SIZE] = 1;
}

static void read_pages(volatile char *p, unsigned long pages)
{
    for (unsigned long i = 0; i < pages; i++)
        (void)p[i * PAGE_SIZE];
}

static double host_fault_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double t = now_us();
    touch(p, FAULT_PAGES);
    t = now_us() - t;
    munmap(p, len);
    return t / FAULT_PAGES;
}

/*
 * The floor of the design: a write to a present page the host has
 * write-protected, a SIGSEGV handler that only mprotects that page, and
 * the write retried — what every emulated fault pays before the emulator
 * does any work of its own.  Measured before the first mm, so the handler
 * is the process's own, not chained behind kslab's.
 */
static void floor_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    void *page = (void *)((unsigned long)si->si_addr & PAGE_MASK);
    if (mprotect(page, PAGE_SIZE, PROT_READ | PROT_WRITE) != 0)
        _exit(2);
}

static double floor_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    touch(p, FAULT_PAGES);
    mprotect(p, len, PROT_READ);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = floor_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    double t = now_us();
    touch(p, FAULT_PAGES);
    t = now_us() - t;
    sigaction(SIGSEGV, &old, NULL);
    munmap(p, len);
    return t / FAULT_PAGES;
}

static double host_read_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double t = now_us();
    read_pages(p, FAULT_PAGES);
    t = now_us() - t;
    munmap(p, len);
    return t / FAULT_PAGES;
}

static double host_cow_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(p, FAULT_PAGES);
    int fd[2];
    if (pipe(fd) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        double t = now_us();
        touch(p, FAULT_PAGES);
        t = (now_us() - t) / FAULT_PAGES;
        if (write(fd[1], &t, sizeof t) != sizeof t)
            _exit(1);
        _exit(0);
    }
    double t = 0;
    if (read(fd[0], &t, sizeof t) != sizeof t)
        t = 0;
    waitpid(pid, NULL, 0);
    close(fd[0]);
    close(fd[1]);
    munmap(p, len);
    return t;
}

static double host_fork_us(void)
{
    char *p = mmap(NULL, FORK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(p, FORK_BYTES / PAGE_SIZE);
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_us();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        t = now_us() - t;
        waitpid(pid, NULL, 0);
        if (t < best)
            best = t;
    }
    munmap(p, FORK_BYTES);
    return best;
}

static unsigned long map_anon(struct mm_struct *mm, unsigned long len)
{
    return do_mmap(mm, -1, 0, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, 0);
}

/* Emulated faults taken in the last emu_fault_us, per page written. */
static double fault_per_page;

static double emu_fault_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FAULT_PAGES * PAGE_SIZE);
    long hf = host_faults();
    double t = now_us();
    touch(mm_host(mm, a), FAULT_PAGES);
    t = now_us() - t;
    fault_hf = hf < 0 ? -1 : (double)(host_faults() - hf) / FAULT_PAGES;
    struct mm_stat st;
    mm_get_stat(mm, &st);
    fault_per_page = (double)st.min_flt / FAULT_PAGES;
    mmput(mm);
    return t / FAULT_PAGES;
}

/* A fresh heap: sys_brk grows it, its pages are written in order. */
static double emu_heap_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long base = sys_brk(mm, 0);
    sys_brk(mm, base + FAULT_PAGES * PAGE_SIZE);
    double t = now_us();
    touch(mm_host(mm, base), FAULT_PAGES);
    t = now_us() - t;
    mmput(mm);
    return t / FAULT_PAGES;
}

static double emu_read_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FAULT_PAGES * PAGE_SIZE);
    double t = now_us();
    read_pages(mm_host(mm, a), FAULT_PAGES);
    t = now_us() - t;
    mmput(mm);
    return t / FAULT_PAGES;
}

/* ---- the userfaultfd mechanism, without the emulator ---- */

#define UFFD_RUN 16

/* Non-blocking: the handler thread poll()s it (a blocking descriptor
 * polls as an error). */
static int uffd_open(int sigbus)
{
    int fd = (int)syscall(SYS_userfaultfd,
                          O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct uffdio_api api = {.api = UFFD_API,
                             .features = UFFD_FEATURE_MISSING_SHMEM |
                                         (sigbus ? UFFD_FEATURE_SIGBUS : 0)};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A memfd of FAULT_PAGES pages mapped shared, registered for MISSING
 * faults with fd: the mapping, or NULL. */
static char *uffd_area(int fd, int *memfd)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    *memfd = memfd_create("vmfault", MFD_CLOEXEC);
    if (*memfd < 0 || ftruncate(*memfd, (off_t)len) != 0)
        return NULL;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct uffdio_register reg = {.range = {.start = (uintptr_t)p, .len = len},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        munmap(p, len);
        return NULL;
    }
    return p;
}

static int uffd_sig_fd;
static unsigned long uffd_run_pages, uffd_base;

/* The run of the faulting address, aligned from the area's start. */
static void uffd_zero(int fd, unsigned long addr)
{
    unsigned long run = uffd_run_pages * PAGE_SIZE;
    struct uffdio_zeropage z = {
        .range = {.start = uffd_base + ((addr - uffd_base) & ~(run - 1)),
                  .len = run},
        .mode = 0};
    while (ioctl(fd, UFFDIO_ZEROPAGE, &z) != 0 && errno == EAGAIN)
        ;
}

static void uffd_bus_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uffd_zero(uffd_sig_fd, (unsigned long)si->si_addr);
}

static void *uffd_thread(void *arg)
{
    int fd = *(int *)arg;
    struct uffd_msg msg;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            break;
        if (pfd.revents & (POLLERR | POLLHUP))
            break;
        ssize_t n = read(fd, &msg, sizeof msg);
        if (n != sizeof msg)
            continue;
        if (msg.event == UFFD_EVENT_PAGEFAULT)
            uffd_zero(fd, (unsigned long)msg.arg.pagefault.address);
    }
    return NULL;
}

/* Per page written: the signal path (sigbus) or the handler thread,
 * resolving run pages a fault.  -1 when the host has no userfaultfd. */
static double uffd_mech_us(int sigbus, unsigned long run)
{
    int fd = uffd_open(sigbus), memfd = -1;
    char *p = fd < 0 ? NULL : uffd_area(fd, &memfd);
    if (!p) {
        if (fd >= 0)
            close(fd);
        if (memfd >= 0)
            close(memfd);
        return -1;
    }
    uffd_run_pages = run;
    uffd_base = (unsigned long)p;
    pthread_t th;
    struct sigaction sa, old;
    if (sigbus) {
        uffd_sig_fd = fd;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = uffd_bus_handler;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &old);
    } else if (pthread_create(&th, NULL, uffd_thread, &fd) != 0) {
        return -1;
    }
    /* the handler thread's time counts too: with --cpu, the process's */
    clockid_t saved = bench_clock;
    if (!sigbus && bench_clock != CLOCK_MONOTONIC)
        bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    double t = now_us();
    touch(p, FAULT_PAGES);
    t = now_us() - t;
    bench_clock = saved;
    if (sigbus)
        sigaction(SIGBUS, &old, NULL);
    munmap(p, FAULT_PAGES * PAGE_SIZE);
    if (!sigbus) {
        pthread_cancel(th); /* in poll(), a cancellation point */
        pthread_join(th, NULL);
    }
    close(fd);
    close(memfd);
    return t / FAULT_PAGES;
}

static double uffd_sig1(void)
{
    return uffd_mech_us(1, 1);
}
static double uffd_sig16(void)
{
    return uffd_mech_us(1, UFFD_RUN);
}
static double uffd_thr1(void)
{
    return uffd_mech_us(0, 1);
}
static double uffd_thr16(void)
{
    return uffd_mech_us(0, UFFD_RUN);
}

/* ---- the bare mechanisms, without the emulator ---- */

/*
 * What an emulated fault asks of the host, done by a handler that knows
 * the answer already: the signal, and the calls that resolve the fault on
 * a memfd mapped as the emulator maps user memory.  An emulated fault
 * costs this plus the emulator's own work (finding the mm, vma and pte,
 * choosing the frame, counting).
 *   anon: a SIGSEGV on a page of a PROT_NONE run of the memfd, resolved
 *         by mprotect and MADV_POPULATE_WRITE (the SIGSEGV back end's
 *         premapped run); the userfaultfd back end's is the SIGBUS +
 *         UFFDIO_ZEROPAGE of "userfaultfd alone" above;
 *   cow:  a SIGSEGV on a read-only page of the memfd holding data,
 *         resolved by copying it into a fresh page of the memfd
 *         (copy_file_range) and mapping that one over it (one mmap,
 *         MAP_FIXED | MAP_POPULATE).
 */
static int bare_fd;
static char *bare_base;
static int bare_cow;

static void bare_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char *page = (char *)((unsigned long)si->si_addr & PAGE_MASK);
    off_t i = (off_t)((page - bare_base) / PAGE_SIZE);
    if (!bare_cow) {
        if (mprotect(page, PAGE_SIZE, PROT_READ | PROT_WRITE) != 0)
            _exit(2);
        madvise(page, PAGE_SIZE, 23 /* MADV_POPULATE_WRITE */);
        return;
    }
    loff_t from = i * (off_t)PAGE_SIZE,
           to = (FAULT_PAGES + i) * (off_t)PAGE_SIZE;
    if (copy_file_range(bare_fd, &from, bare_fd, &to, PAGE_SIZE, 0) !=
            (ssize_t)PAGE_SIZE ||
        mmap(page, PAGE_SIZE, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED | MAP_POPULATE, bare_fd,
             (FAULT_PAGES + i) * (off_t)PAGE_SIZE) == MAP_FAILED)
        _exit(2);
}

static double bare_us(int cow)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    bare_fd = memfd_create("vmfault-bare", MFD_CLOEXEC);
    if (bare_fd < 0 || ftruncate(bare_fd, (off_t)(2 * len)) != 0)
        return -1;
    static char chunk[PAGE_SIZE];
    memset(chunk, 1, sizeof chunk);
    for (size_t o = 0; cow && o < len; o += PAGE_SIZE)
        if (pwrite(bare_fd, chunk, PAGE_SIZE, (off_t)o) != (ssize_t)PAGE_SIZE)
            return -1;
    bare_cow = cow;
    bare_base =
        mmap(NULL, len, cow ? PROT_READ : PROT_NONE, MAP_SHARED, bare_fd, 0);
    if (bare_base == MAP_FAILED)
        return -1;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = bare_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    double t = now_us();
    touch(bare_base, FAULT_PAGES);
    t = now_us() - t;
    sigaction(SIGSEGV, &old, NULL);
    munmap(bare_base, len);
    close(bare_fd);
    return t / FAULT_PAGES;
}

static double bare_anon_us(void)
{
    return bare_us(0);
}

static double bare_cow_us(void)
{
    return bare_us(1);
}

static double emu_cow_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FAULT_PAGES * PAGE_SIZE);
    touch(mm_host(mm, a), FAULT_PAGES);
    struct mm_struct *child = mm_fork(mm);
    long hf = host_faults();
    double t = now_us();
    touch(mm_host(child, a), FAULT_PAGES);
    t = now_us() - t;
    cow_hf = hf < 0 ? -1 : (double)(host_faults() - hf) / FAULT_PAGES;
    struct mm_stat st;
    mm_get_stat(child, &st);
    if (st.cow_flt != FAULT_PAGES)
        fprintf(stderr, "warning: %lu COW faults, expected %d\n", st.cow_flt,
                FAULT_PAGES);
    mmput(child);
    mmput(mm);
    return t / FAULT_PAGES;
}

static double emu_fork_us(double *put_us)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FORK_BYTES);
    touch(mm_host(mm, a), FORK_BYTES / PAGE_SIZE);
    double best = 1e30;
    *put_us = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_us();
        struct mm_struct *child = mm_fork(mm);
        t = now_us() - t;
        double u = now_us();
        mmput(child);
        u = now_us() - u;
        if (t < best)
            best = t;
        if (u < *put_us)
            *put_us = u;
    }
    mmput(mm);
    return best;
}

static double best_of(double (*fn)(void))
{
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = fn();
        if (t < best)
            best = t;
    }
    return best;
}

/* Faults pages in (order: sequential, or every other page) with
 * handle_mm_fault until the host refuses a mapping; returns MiB held. */
static unsigned long max_resident_mib(int stride, unsigned long limit_pages)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long len = limit_pages * PAGE_SIZE * stride;
    unsigned long a = do_mmap(mm, -1, 0x100000, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (IS_ERR_VALUE(a))
        return 0;
    struct vm_area_struct *vma = find_vma(mm, a);
    unsigned long n = 0;
    for (unsigned long i = 0; i < limit_pages; i++, n++)
        if (handle_mm_fault(mm, vma, a + i * stride * PAGE_SIZE, 1) <= 0)
            break;
    struct mm_stat st;
    mm_get_stat(mm, &st);
    mmput(mm);
    return st.rss * PAGE_SIZE >> 20;
}

/* Every other page of 2 GiB in each of two mms, held at once (one window
 * is 3 GiB): MiB resident in all when the host refused or all were in. */
static unsigned long scattered_two_mms_mib(void)
{
    struct mm_struct *mm[2];
    unsigned long len = 2048UL << 20, rss = 0;
    int stop = 0;
    for (int m = 0; m < 2; m++) {
        mm[m] = mm_alloc();
        unsigned long a =
            do_mmap(mm[m], -1, 0x20000000UL, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0);
        if (IS_ERR_VALUE(a))
            continue;
        struct vm_area_struct *vma = find_vma(mm[m], a);
        for (unsigned long o = 0; !stop && o < len; o += 2 * PAGE_SIZE)
            if (handle_mm_fault(mm[m], vma, a + o, 1) <= 0)
                stop = 1;
        struct mm_stat st;
        mm_get_stat(mm[m], &st);
        rss += st.rss;
    }
    for (int m = 0; m < 2; m++)
        mmput(mm[m]);
    return rss * PAGE_SIZE >> 20;
}

/*
 * A copy of this program run with argument what (and --cpu when this run
 * has it), with KSLAB_VM_FAULT_AROUND=off when fa_off: up to n figures it
 * prints on one line into out.  Returns how many it printed (0 on error).
 * Options are read at start, and the handler thread must be asked for
 * before the first mm: hence a new process for each such figure.
 */
static int child_figures(const char *what, int fa_off, double *out, int n)
{
    int fd[2];
    if (pipe(fd) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        if (fa_off)
            setenv("KSLAB_VM_FAULT_AROUND", "off", 1);
        execl("/proc/self/exe", "vmfault_bench", what,
              bench_clock == CLOCK_MONOTONIC ? NULL : "--cpu", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[256] = "";
    size_t got = 0;
    ssize_t r;
    while (pid > 0 && got < sizeof line - 1 &&
           (r = read(fd[0], line + got, sizeof line - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    line[got] = 0;
    int k = 0;
    char *p = line, *end;
    while (k < n) {
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[k++] = v;
        p = end;
    }
    return k;
}

/* The anonymous write fault with fault-around off: this program again,
 * with KSLAB_VM_FAULT_AROUND=off (read at start), printing that figure. */
static double fault_off_us(void)
{
    double v;
    return child_figures("--fault-only", 1, &v, 1) == 1 ? v : -1;
}

/* The emulated figures with the handler thread serving the faults
 * (--thread-figures): anonymous write fault, read fault, COW break, and
 * the fresh heap a page (fault-around as configured). */
static void thread_figures(void)
{
    if (vm_uffd_serve_by_thread() != 0) {
        printf("-1\n");
        return;
    }
    /* the thread's work counts: with --cpu, the process's CPU time */
    if (bench_clock != CLOCK_MONOTONIC)
        bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    double f = best_of(emu_fault_us), r = best_of(emu_read_us);
    double c = best_of(emu_cow_us), h = best_of(emu_heap_us);
    printf("%.4f %.4f %.4f %.4f\n", f, r, c, h);
}

/* --profile: one figure, many rounds, for perf record. */
static int profile(const char *what, int thread)
{
    if (thread && vm_uffd_serve_by_thread() != 0) {
        fprintf(stderr, "vmfault_bench: no handler thread here\n");
        return 77;
    }
    static const struct {
        const char *name;
        double (*fn)(void);
    } figs[] = {{"fault", emu_fault_us},
                {"cow", emu_cow_us},
                {"read", emu_read_us},
                {"heap", emu_heap_us},
                {"floor", floor_us}};
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++) {
        if (strcmp(what, figs[i].name))
            continue;
        double best = 1e30;
        for (int r = 0; r < 20; r++) {
            double t = figs[i].fn();
            best = t < best ? t : best;
        }
        printf("%s: best %.2f us\n", what, best);
        return 0;
    }
    fprintf(stderr, "vmfault_bench: --profile fault|cow|read|heap|floor\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc > 1 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: vmfault_bench [--cpu] [--maxmap] [--profile FIGURE "
              "[--thread]]\n"
              "  emulated fault costs against the host kernel\'s; --cpu: "
              "thread CPU\n  time; --maxmap: resident memory under "
              "vm.max_map_count;\n  --profile fault|cow|read|heap|floor: "
              "that figure alone, for perf\n  (--thread: served by the "
              "handler thread)\n",
              stdout);
        return 0;
    }
    int maxmap = 0, fault_only = 0, thread_only = 0, thread = 0;
    const char *prof = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu"))
            bench_clock = CLOCK_THREAD_CPUTIME_ID;
        else if (!strcmp(argv[i], "--maxmap"))
            maxmap = 1;
        else if (!strcmp(argv[i], "--fault-only"))
            fault_only = 1;
        else if (!strcmp(argv[i], "--thread-figures"))
            thread_only = 1;
        else if (!strcmp(argv[i], "--profile") && i + 1 < argc)
            prof = argv[++i];
        else if (!strcmp(argv[i], "--thread"))
            thread = 1;
    }
    if (fault_only) { /* fault_off_us's copy */
        printf("%.4f\n", best_of(emu_fault_us));
        return 0;
    }
    if (thread_only) { /* the handler thread's copy */
        thread_figures();
        return 0;
    }
    if (prof)
        return profile(prof, thread);
    /* host figures first, before this process maps its emulated windows */
    double hf = best_of(host_fault_us);
    double hr = best_of(host_read_us);
    double hc = best_of(host_cow_us);
    double hk = host_fork_us();
    double fl = best_of(floor_us);
    double ba = best_of(bare_anon_us), bc = best_of(bare_cow_us);
    double us1 = best_of(uffd_sig1), us16 = best_of(uffd_sig16);
    double ut1 = best_of(uffd_thr1), ut16 = best_of(uffd_thr16);
    double ef = fault_off_us();
    /* the handler thread: fault-around off for the one-fault figures,
     * as configured for the heap */
    double th[4] = {-1, -1, -1, -1}, thh[4] = {-1, -1, -1, -1};
    int nth = child_figures("--thread-figures", 1, th, 4);
    if (nth == 4)
        child_figures("--thread-figures", 0, thh, 4);
    double eh = best_of(emu_heap_us);
    double ew = best_of(emu_fault_us);
    double fpp = fault_per_page, whf = fault_hf;
    double er = best_of(emu_read_us);
    double ec = best_of(emu_cow_us);
    double put;
    double ek = emu_fork_us(&put);

    printf("anonymous write fault: emulated %.2f us, host kernel %.2f us "
           "(%.1fx)\n",
           ef, hf, ef / hf);
    printf("anonymous read fault (ZERO_PAGE): emulated %.2f us, host kernel "
           "%.2f us (%.1fx)\n",
           er, hr, er / hr);
    printf("fresh heap written in order: emulated %.2f us a page, host "
           "kernel %.2f us (%.2fx); anonymous mapping %.2f us a page, %.3f "
           "faults a page\n",
           eh, hf, eh / hf, ew, fpp);
    printf("COW break after fork:  emulated %.2f us, host kernel %.2f us "
           "(%.1fx)\n",
           ec, hc, ec / hc);
    printf("floor (SIGSEGV on a present page, handler mprotects it): "
           "%.2f us; emulated above it: fault %.2f us, COW %.2f us\n",
           fl, ef - fl, ec - fl);
    if (us1 > 0 && ut1 > 0)
        printf("userfaultfd alone, us a page (1 page a fault / %d): SIGBUS "
               "handler %.2f / %.2f, handler thread %.2f / %.2f\n",
               UFFD_RUN, us1, us16, ut1, ut16);
    /* the anonymous fault measured was the userfaultfd back end's
     * SIGBUS + UFFDIO_ZEROPAGE, or the SIGSEGV back end's */
    int uffd = vm_uffd_enabled() && us1 > 0;
    double bf = uffd ? us1 : ba;
    printf("bare mechanism (the signal and the host calls that resolve the "
           "fault, no emulator): anonymous fault %.2f us (%s), COW break "
           "%.2f us (SIGSEGV + copy_file_range + mmap); the emulator's own "
           "work: fault %.2f us, COW %.2f us\n",
           bf,
           uffd ? "SIGBUS + UFFDIO_ZEROPAGE"
                : "SIGSEGV + mprotect + MADV_POPULATE_WRITE",
           bc, ef - bf, ec - bc);
    if (nth == 4)
        printf("handler thread (the path that also serves the host kernel's "
               "accesses): anonymous write fault %.2f us, read fault %.2f "
               "us, COW break %.2f us, fresh heap %.2f us a page; above the "
               "floor: fault %.2f us, COW %.2f us\n",
               th[0], th[1], th[2], thh[3], th[0] - fl, th[2] - fl);
    else
        printf("handler thread: not available here\n");
    if (fault_hf >= 0)
        printf("host fault traps per page written: anonymous %.2f, COW "
               "%.2f (the floor takes 1)\n",
               whf, cow_hf);
    printf("fork, 64 MiB resident: mm_fork %.0f us (mmput of the child "
           "%.0f us), host fork() %.0f us\n",
           ek, put, hk);

    if (maxmap) {
        FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
        long maxmap = 0;
        if (f) {
            if (fscanf(f, "%ld", &maxmap) != 1)
                maxmap = 0;
            fclose(f);
        }
        printf("vm.max_map_count = %ld\n", maxmap);
        printf("scattered (every other page): %lu MiB resident before the "
               "host refused a mapping\n",
               max_resident_mib(2, (TASK_SIZE - 0x100000) / PAGE_SIZE / 2));
        printf("scattered over two mms (every other page of 2 GiB each): "
               "%lu MiB resident\n",
               scattered_two_mms_mib());
        printf("sequential: %lu MiB resident (stopped at 3 GiB = TASK_SIZE "
               "or when frames ran out)\n",
               max_resident_mib(1, (TASK_SIZE - 0x100000) / PAGE_SIZE));
    }
    return 0;
}
