/*
 * vm/frames/os.c — the host's primitives (see os.h): reservations of
 * address space, private and shared mappings, protection, purging and the
 * memfd behind user memory; the clock of the decay (vm_now_ms) and the
 * purge's sleep; then the fine clock, futexes, signals to threads and the
 * reading of /proc.  Each function is one or two system calls; the policy
 * (when to commit, purge or map, what to read) lives with the callers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/compiler.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"

/*
 * The host's memory calls, by system call: libkslab-vm.so exports mmap,
 * munmap, mprotect, madvise and mremap to the program (vmmode/), and
 * inside that library every call of those names would reach its
 * wrappers.  The sanitizer builds keep libc's, whose interceptors must
 * see every mapping (no libkslab-vm.so is built there).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define host_mmap mmap
#define host_munmap munmap
#define host_mprotect mprotect
#define host_madvise madvise
#define host_mremap mremap
#else
static void *host_mmap(void *addr, size_t len, int prot, int flags, int fd,
                       off_t off)
{
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int host_munmap(void *addr, size_t len)
{
    return (int)syscall(SYS_munmap, addr, len);
}

static int host_mprotect(void *addr, size_t len, int prot)
{
    return (int)syscall(SYS_mprotect, addr, len, prot);
}

static int host_madvise(void *addr, size_t len, int advice)
{
    return (int)syscall(SYS_madvise, addr, len, advice);
}

static void *host_mremap(void *addr, size_t old_len, size_t new_len, int flags,
                         ...)
{
    va_list ap;
    va_start(ap, flags);
    void *to = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
    va_end(ap);
    return (void *)syscall(SYS_mremap, addr, old_len, new_len, flags, to);
}
#endif

_Static_assert(VM_OS_READ == PROT_READ && VM_OS_WRITE == PROT_WRITE &&
                   VM_OS_EXEC == PROT_EXEC && VM_OS_NONE == PROT_NONE,
               "VM_OS_* are the host's PROT_* bits");

static struct {
    _Atomic unsigned long map, unmap, remap, purge;
} os_counts;

#define COUNT(c)                                                               \
    atomic_fetch_add_explicit(&os_counts.c, 1, memory_order_relaxed)

void vm_os_get_counts(struct vm_os_counts *c)
{
    c->map = atomic_load_explicit(&os_counts.map, memory_order_relaxed);
    c->unmap = atomic_load_explicit(&os_counts.unmap, memory_order_relaxed);
    c->remap = atomic_load_explicit(&os_counts.remap, memory_order_relaxed);
    c->purge = atomic_load_explicit(&os_counts.purge, memory_order_relaxed);
}

/*
 * Mappings over emulated user memory (an mm's window, vmalloc space).
 * ThreadSanitizer's mmap interceptor records a mapping as a write of the
 * whole range by the mapping thread.  Here the mapping thread is the one
 * that took a fault, and the threads that later use the page take no fault
 * and no lock: what orders their accesses after the mmap is the host's
 * page table, which TSan cannot see, so every such access would be
 * reported as a race with the fault handler.  In a TSan build these
 * mappings are made with the raw system call, which TSan does not see; the
 * races it reports there are then only those between the program's own
 * accesses, which it sees in full.
 */
static void *window_mmap(void *addr, size_t len, int prot, int flags, int fd,
                         off_t off)
{
#ifdef KSLAB_TSAN_BUILD
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    return r == -1 ? MAP_FAILED : (void *)r;
#else
    return host_mmap(addr, len, prot, flags, fd, off);
#endif
}

/* Maps len bytes aligned to align.  First the exact length: the host
 * places a mapping at the top of a gap, so when that address is not
 * aligned the aligned address below it is usually free, and is tried next
 * (MAP_FIXED_NOREPLACE: never over another mapping).  Only then over-maps
 * by align and trims both ends: under an address-space limit (RLIMIT_AS)
 * the over-mapping needs align bytes of room the others do not. */
static void *map_aligned(size_t len, size_t align, int prot, int flags)
{
    size_t extra = align > PAGE_SIZE ? align : 0;
    if (len + extra < len)
        return NULL;
    COUNT(map);
    char *m = host_mmap(NULL, len, prot, flags, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (!extra || !((uintptr_t)m & (align - 1)))
        return m;
    host_munmap(m, len);
    char *want = (char *)((uintptr_t)m & ~(uintptr_t)(align - 1));
    m = host_mmap(want, len, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == want)
        return m;
    if (m != MAP_FAILED) /* a kernel without MAP_FIXED_NOREPLACE */
        host_munmap(m, len);
    m = host_mmap(NULL, len + extra, prot, flags, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (a > m)
        host_munmap(m, (size_t)(a - m));
    if (m + len + extra > a + len)
        host_munmap(a + len, (size_t)(m + len + extra - (a + len)));
    return a;
}

/* The last answer of getrlimit(RLIMIT_AS) (-1: none yet) and when it was
 * read (ms of the decay clock). */
static _Atomic int as_limited = -1;
static _Atomic unsigned long as_read_ms;

int vm_os_as_limited(int fresh)
{
    unsigned long now = vm_now_ms();
    int lim = atomic_load_explicit(&as_limited, memory_order_relaxed);
    if (!fresh && lim >= 0 &&
        now - atomic_load_explicit(&as_read_ms, memory_order_relaxed) <
            VM_OS_AS_RECHECK_MS)
        return lim;
    struct rlimit rl;
    lim = getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    atomic_store_explicit(&as_limited, lim, memory_order_relaxed);
    atomic_store_explicit(&as_read_ms, now, memory_order_relaxed);
    return lim;
}

void *vm_os_reserve(size_t len, size_t align)
{
    return map_aligned(len, align, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
}

void *vm_os_alloc(size_t len, size_t align, int noreserve)
{
    return map_aligned(len, align, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS |
                           (noreserve ? MAP_NORESERVE : 0));
}

void vm_os_free(void *addr, size_t len)
{
    COUNT(unmap);
    host_munmap(addr, len);
}

int vm_os_protect(void *addr, size_t len, int prot)
{
    return host_mprotect(addr, len, prot) ? -errno : 0;
}

int vm_os_decommit(void *addr, size_t len)
{
    void *p = window_mmap(
        addr, len, PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}

void vm_os_purge(void *addr, size_t len)
{
    COUNT(purge);
    host_madvise(addr, len, MADV_DONTNEED);
}

void *vm_os_remap(void *addr, size_t old_len, size_t new_len)
{
    COUNT(remap);
    void *p = host_mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}

int vm_os_move(void *addr, size_t len, void *to)
{
    COUNT(remap);
    void *p = host_mremap(addr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    return p == MAP_FAILED ? -errno : 0;
}

int vm_os_memfd(const char *name, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

void *vm_os_map_shared(void *addr, size_t len, int prot, int fd, off_t off,
                       int populate)
{
    COUNT(map);
    int flags = MAP_SHARED | (addr ? MAP_FIXED : MAP_NORESERVE) |
                (populate ? MAP_POPULATE : 0);
    void *p = addr ? window_mmap(addr, len, prot, flags, fd, off)
                   : host_mmap(NULL, len, prot, flags, fd, off);
    return p == MAP_FAILED ? NULL : p;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

/* Set once a kernel older than 5.14 refused the advice: no more calls. */
static atomic_int populate_unsupported;

int vm_os_populate(void *addr, size_t len, int write)
{
    if (atomic_load_explicit(&populate_unsupported, memory_order_relaxed))
        return -EINVAL;
    if (!host_madvise(addr, len,
                      write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ))
        return 0;
    int e = errno;
    if (e == EINVAL)
        atomic_store_explicit(&populate_unsupported, 1, memory_order_relaxed);
    return -e;
}

void vm_os_punch_hole(int fd, off_t off, size_t len)
{
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len);
}

/* Set once the host refused copy_file_range within the memfd: no more. */
static atomic_int copy_range_unsupported;

int vm_os_copy_range(int fd, off_t from, off_t to, size_t len)
{
    if (atomic_load_explicit(&copy_range_unsupported, memory_order_relaxed))
        return -ENOSYS;
    while (len) {
        loff_t in = from, out = to;
        ssize_t n = syscall(SYS_copy_file_range, fd, &in, fd, &out, len, 0);
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            if (e == ENOSYS || e == EXDEV || e == EINVAL || e == EOPNOTSUPP ||
                e == EPERM)
                atomic_store_explicit(&copy_range_unsupported, 1,
                                      memory_order_relaxed);
            return -e;
        }
        from += n;
        to += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- userfaultfd (Linux 4.3; MISSING faults on shmem from 4.11) ---- */

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

int vm_os_uffd_open(void)
{
    return vm_os_uffd_open_mode(VM_OS_UFFD_SIGBUS);
}

/* A userfaultfd descriptor before its UFFDIO_API handshake, or -errno;
 * reads of a blocking one wait for a fault. */
static int uffd_new(int nonblock)
{
    int flags = O_CLOEXEC | (nonblock ? O_NONBLOCK : 0);
    int fd = -1;
#ifdef SYS_userfaultfd
    fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd < 0 && (errno == EPERM || errno == EACCES))
        fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
#endif
    if (fd < 0) {
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
            close(dev);
        }
    }
    return fd < 0 ? -errno : fd;
}

/* The features the host offers (the handshake of a throwaway
 * descriptor with none asked, as userfaultfd(2) describes), or 0. */
static unsigned long long uffd_host_features(void)
{
    int fd = uffd_new(1);
    if (fd < 0)
        return 0;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    unsigned long long f = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
    close(fd);
    return f;
}

int vm_os_uffd_open_mode(int mode)
{
    unsigned long long want = UFFD_FEATURE_MISSING_SHMEM;
    if (mode & VM_OS_UFFD_SIGBUS)
        want |= UFFD_FEATURE_SIGBUS;
    if (mode & VM_OS_UFFD_WP) {
        /* write-protect faults on the memfd's shared mappings (Linux
         * 5.19, pte markers) */
        if (!(uffd_host_features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
            return -ENOTSUP;
        want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    }
    /* a thread's descriptor blocks: its read waits for the next fault,
     * one system call a wake-up instead of poll and read */
    int fd = uffd_new(mode & VM_OS_UFFD_SIGBUS);
    if (fd < 0)
        return fd;
    struct uffdio_api api = {.api = UFFD_API, .features = want};
    errno = 0;
    if (ioctl(fd, UFFDIO_API, &api) != 0 ||
        !(api.ioctls & (1ULL << _UFFDIO_REGISTER))) {
        int e = errno ? errno : ENOSYS;
        close(fd);
        return -e;
    }
    return fd;
}

void vm_os_uffd_close(int fd)
{
    close(fd);
}

int vm_os_uffd_register(int fd, void *addr, size_t len)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
        return -errno;
    if (!(reg.ioctls & (1ULL << _UFFDIO_ZEROPAGE)))
        return -ENOTSUP;
    return 0;
}

int vm_os_uffd_zeropage(int fd, void *addr, size_t len)
{
    struct uffdio_zeropage z = {.range = {.start = (uintptr_t)addr, .len = len},
                                .mode = 0};
    if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
        return 0;
    return errno == EEXIST ? 0 : -errno;
}

/* Inaccessible until registered: a thread touching the range meanwhile
 * takes a SIGSEGV (and waits for the mm in the handler), never a host
 * zero page that the registration would then hide. */
int vm_os_uffd_hole(int fd, void *addr, size_t len)
{
    void *p = window_mmap(
        addr, len, PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
        return -errno;
    return host_mprotect(addr, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

int vm_os_uffd_wake(int fd, void *addr, size_t len)
{
    struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
    return ioctl(fd, UFFDIO_WAKE, &r) != 0 ? -errno : 0;
}

/* Write-protects [addr, addr + len), which the caller has mapped:
 * registered for WP faults with fd (besides what it was registered for),
 * its ptes marked, then made writable on the host (a store now faults
 * into fd, never through).  In that order, so that no store can pass
 * between the steps.  0 or -errno. */
int vm_os_uffd_wp_protect(int fd, void *addr, size_t len)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
        return -errno;
    struct uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = UFFDIO_WRITEPROTECT_MODE_WP};
    if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0)
        return -errno;
    return host_mprotect(addr, len, PROT_READ | PROT_WRITE) ? -errno : 0;
}

void *vm_os_uffd_wp_map(int fd, void *addr, size_t len, int memfd, off_t off,
                        int populate)
{
    void *p = vm_os_map_shared(addr, len, VM_OS_READ, memfd, off, populate);
    if (p && vm_os_uffd_wp_protect(fd, addr, len) != 0)
        return NULL;
    return p;
}

int vm_os_uffd_wp_release(int fd, void *addr, size_t len)
{
    struct uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)addr, .len = len}, .mode = 0};
    return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0 ? -errno : 0;
}

int vm_os_uffd_wait(int fd, struct vm_os_uffd_fault *out, int max)
{
    struct uffd_msg msg[16];
    if (max > 16)
        max = 16;
    for (;;) {
        ssize_t r = syscall(SYS_read, fd, msg, (size_t)max * sizeof msg[0]);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            /* a non-blocking descriptor: wait for one */
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        int n = 0;
        for (size_t i = 0; i < (size_t)r / sizeof msg[0]; i++) {
            if (msg[i].event != UFFD_EVENT_PAGEFAULT)
                continue;
            out[n].addr = (uintptr_t)msg[i].arg.pagefault.address;
            out[n].write =
                (msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
            out[n].wp =
                (msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
            n++;
        }
        if (n)
            return n;
    }
}

/* Under ASan or TSan the sanitizer intercepts pthread_sigmask and kslab
 * does not wrap it (vm/mm/fault.c): the sanitizer must see every mask. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define OS_SANITIZED 1
#endif
#endif

int vm_os_sigmask(int how, const sigset_t *set, sigset_t *old)
{
#ifdef OS_SANITIZED
    return pthread_sigmask(how, set, old);
#else
    sigset_t s;
    if (set) {
        s = *set;
        /* signal n is bit n - 1; sigdelset refuses glibc's own */
        ((unsigned long *)(void *)&s)[0] &= ~(3UL << 31);
        set = &s;
    }
    int saved = errno;
    long r = syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8);
    int err = r ? errno : 0;
    errno = saved;
    return err;
#endif
}

unsigned long vm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (unsigned long)ts.tv_sec * 1000UL +
           (unsigned long)ts.tv_nsec / 1000000UL;
}

void vm_os_sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the other host calls: the clock, threads, /proc ---- */

uint64_t vm_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int vm_os_resident(void *addr, size_t len, unsigned char *vec)
{
    return mincore(addr, len, vec) ? -errno : 0;
}

int vm_os_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

int vm_os_signal_thread(int tid, int sig)
{
    return syscall(SYS_tgkill, getpid(), tid, sig) ? -errno : 0;
}

int vm_os_queue_signal_self(const siginfo_t *si)
{
    siginfo_t copy = *si;
    return syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid),
                   si->si_signo, &copy)
               ? -errno
               : 0;
}

ssize_t vm_os_fd_path(int fd, char *buf, size_t size)
{
    char link[64];
    if (size == 0)
        return -EINVAL;
    buf[0] = 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, buf, size - 1);
    if (k < 0)
        return -errno;
    buf[k] = 0;
    return k;
}

void vm_os_futex_wait(unsigned int *addr, unsigned int val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void vm_os_futex_wake_all(unsigned int *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* libc's sigaction: libkslab.so exports a sigaction() of its own (the
 * SIGSEGV chaining of vm/mm/fault.c), a layer above; under a sanitizer,
 * whose interceptor must see every handler, the ordinary one. */
#ifndef OS_SANITIZED
extern int __sigaction(int sig, const struct sigaction *act,
                       struct sigaction *old);
#endif

int vm_os_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
#ifdef OS_SANITIZED
    return sigaction(sig, act, old) ? -errno : 0;
#else
    return __sigaction(sig, act, old) ? -errno : 0;
#endif
}

int vm_os_write_at(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len -= (size_t)r;
        p += r;
        off += r;
    }
    return 0;
}

off_t vm_os_seek_data(int fd, off_t off, int hole)
{
    off_t r = lseek(fd, off, hole ? SEEK_HOLE : SEEK_DATA);
    return r < 0 ? -errno : r;
}

int vm_os_fd_move(int from, int to)
{
    int r = dup3(from, to, O_CLOEXEC) < 0 ? -1 : 0;
    close(from);
    return r;
}

void vm_os_close(int fd)
{
    close(fd);
}

int vm_os_getpid(void)
{
    return (int)getpid();
}

int vm_os_membarrier(int cmd)
{
    return syscall(__NR_membarrier, cmd, 0, 0) == 0 ? 0 : -1;
}

ssize_t vm_os_read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int err = n < 0 ? errno : 0;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = 0;
    return n;
}

int vm_os_read_lines(const char *path, char *buf, size_t size,
                     void (*fn)(char *line, void *arg), void *arg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            fn(line, arg);
            line = nl + 1;
        }
        len = (size_t)(buf + len - line);
        memmove(buf, line, len);
    }
    close(fd);
    return 0;
}

int vm_os_for_each_thread(char *buf, size_t size,
                          void (*fn)(int tid, void *arg), void *arg)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    while ((n = getdents64(fd, buf, size)) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
            off += d->d_reclen;
            int tid = atoi(d->d_name);
            if (tid > 0)
                fn(tid, arg);
        }
    }
    close(fd);
    return 0;
}
