/*
 * vm/frames/os.h — the host's memory primitives, the only place kslab
 * calls mmap, munmap, mprotect, madvise, mremap, mincore, memfd_create and
 * fallocate (mimalloc's os.c and libumem's vmem_mmap.c play this part);
 * and the other host calls of the layers above lib/: the clock, futexes,
 * signals to threads, sigaction, the reading of /proc.  Every layer above
 * reaches the host through these calls, so what kslab asks of the kernel
 * can be read, counted and changed in one file.
 *
 * All functions are thread-safe and async-signal-safe (system calls and
 * arithmetic only); none allocates.  Addresses and lengths are
 * page-aligned.  Failure is NULL or -errno, with nothing changed that the
 * caller can see.
 */
#ifndef KSLAB_VM_FRAMES_OS_H
#define KSLAB_VM_FRAMES_OS_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

/* Protection values, the host's PROT_* bits. */
enum { VM_OS_NONE = 0, VM_OS_READ = 1, VM_OS_WRITE = 2, VM_OS_EXEC = 4 };

/* Address space only: len bytes, inaccessible, not committed (no swap
 * reservation), aligned to align (a power of two; 0 or PAGE_SIZE for
 * none).  NULL when the host refuses (RLIMIT_AS, no room). */
void *vm_os_reserve(size_t len, size_t align);

/* Private zero-filled memory, readable and writable, aligned to align
 * (0 or PAGE_SIZE for none); noreserve maps it MAP_NORESERVE.  NULL when
 * the host refuses. */
void *vm_os_alloc(size_t len, size_t align, int noreserve);

/* Gives [addr, addr + len) back to the host; the range must be one the
 * caller owns. */
void vm_os_free(void *addr, size_t len);

/* Changes the protection of [addr, addr + len): 0 or -errno. */
int vm_os_protect(void *addr, size_t len, int prot);

/* Replaces [addr, addr + len) by a fresh inaccessible reservation (the
 * pages' contents go, the address range stays ours): 0 or -errno. */
int vm_os_decommit(void *addr, size_t len);

/* Tells the host the contents of [addr, addr + len) are no longer needed
 * (MADV_DONTNEED: private pages read back as zero). */
void vm_os_purge(void *addr, size_t len);

/* Resizes the private mapping [addr, addr + old_len) to new_len, moving
 * it when it cannot grow in place: the new address or NULL. */
void *vm_os_remap(void *addr, size_t old_len, size_t new_len);

/* Moves the pages of the private anonymous range [addr, addr + len) to
 * [to, to + len), replacing whatever was mapped there; the source is
 * unmapped.  The page tables move, the pages stay resident (no copy, no
 * fault on the next access).  0 or -errno (counted as a remap). */
int vm_os_move(void *addr, size_t len, void *to);

/* A memfd of len bytes (close-on-exec), or -errno. */
int vm_os_memfd(const char *name, size_t len);

/* Maps len bytes of fd at offset off, shared, with protection prot: at
 * addr exactly (MAP_FIXED, replacing what was there) when addr is not
 * NULL, anywhere otherwise; populate asks the host to fill its page
 * tables now.  The mapped address or NULL. */
void *vm_os_map_shared(void *addr, size_t len, int prot, int fd, off_t off,
                       int populate);

/* Fills the host page tables of [addr, addr + len) now, for writing when
 * write (MADV_POPULATE_WRITE / _READ, Linux 5.14): the access that follows
 * does not fault.  0 or -errno (-EINVAL from an older kernel: nothing
 * done, the access faults as before). */
int vm_os_populate(void *addr, size_t len, int write);

/* Punches a hole of len bytes at off in fd: the pages read as zero and
 * their memory goes back to the host. */
void vm_os_punch_hole(int fd, off_t off, size_t len);

/* Copies len bytes of fd from offset from to offset to (the ranges apart)
 * inside the host (copy_file_range): no mapping of either is touched, so
 * no host fault is taken on either side.  0 or -errno (-ENOSYS once the
 * host refused it: the caller copies through a mapping). */
int vm_os_copy_range(int fd, off_t from, off_t to, size_t len);

/*
 * userfaultfd: a descriptor with UFFD_FEATURE_SIGBUS (a fault on a
 * registered range that has no page is a SIGBUS, BUS_ADRERR, to the
 * faulting thread, no event is queued) and MISSING faults on shared
 * memory, or -errno when the host has no userfaultfd or does not allow it
 * (vm.unprivileged_userfaultfd, seccomp, an old kernel).  register: the
 * shared mapping [addr, addr + len) gets MISSING faults (-ENOTSUP when
 * the host cannot fill them with zero pages there).  zeropage: a zeroed
 * page goes into the file behind [addr, addr + len) and is mapped there
 * (0 also when one already was).
 */
int vm_os_uffd_open(void);
void vm_os_uffd_close(int fd);
int vm_os_uffd_register(int fd, void *addr, size_t len);
int vm_os_uffd_zeropage(int fd, void *addr, size_t len);

/*
 * userfaultfd served by a thread (vm/mm/uffd.c).  open_mode(0): a
 * descriptor without UFFD_FEATURE_SIGBUS: a fault on a registered range
 * that has no page waits in the host kernel — a user access and the
 * kernel's own (read(2) into the range) alike — until a thread fills the
 * page or wakes it (open_mode(VM_OS_UFFD_SIGBUS) is vm_os_uffd_open);
 * with VM_OS_UFFD_WP also write-protect faults on shared memory
 * (UFFD_FEATURE_WP_HUGETLBFS_SHMEM), or -ENOTSUP when the host has none.  hole:
 * [addr, addr + len) becomes private anonymous read-write memory with no page,
 * its MISSING faults going to fd (inaccessible until registered).  wake: the
 * accesses waiting on [addr, addr + len) are retried.  wait: blocks until
 * faults are queued and returns up to max of them (at most 16), or -errno.
 */
struct vm_os_uffd_fault {
    uintptr_t addr; /* the faulting address (page aligned by the host) */
    int write;
    int wp; /* a write to a write-protected page (below), not a hole */
};
enum { VM_OS_UFFD_SIGBUS = 1, VM_OS_UFFD_WP = 2 };
int vm_os_uffd_open_mode(int mode);
int vm_os_uffd_hole(int fd, void *addr, size_t len);
int vm_os_uffd_wake(int fd, void *addr, size_t len);
int vm_os_uffd_wait(int fd, struct vm_os_uffd_fault *out, int max);

/*
 * Write-protect mode (a descriptor opened with VM_OS_UFFD_WP).
 * wp_protect: the mapped range [addr, addr + len) is registered for WP
 * faults, write-protected and made writable on the host, in that order:
 * a store to it — a thread's or the host kernel's in a system call —
 * then waits in the host kernel for the thread reading fd, where a
 * PROT_READ page would fail the kernel's with EFAULT.  wp_map: the same
 * over a fresh shared mapping of memfd at off (mapped read-only first),
 * the address or NULL.  wp_release: the write protection of the range
 * lifted and the stores waiting on it retried.  0 or -errno.
 */
int vm_os_uffd_wp_protect(int fd, void *addr, size_t len);
void *vm_os_uffd_wp_map(int fd, void *addr, size_t len, int memfd, off_t off,
                        int populate);
int vm_os_uffd_wp_release(int fd, void *addr, size_t len);

/*
 * Is an address-space limit (RLIMIT_AS, ulimit -v) in force?  The program
 * may set one at any time (setrlimit), and kslab cannot see that call, so
 * the answer is read again with getrlimit when fresh is set (the slow paths
 * where the answer decides whether something fails: a mapping refused, low
 * memory about to grow, the purge pass) and otherwise at most every
 * VM_OS_AS_RECHECK_MS (a huge block's free, which must stay free of system
 * calls in a loop of big buffers).  Lock-free.
 */
#define VM_OS_AS_RECHECK_MS 100UL
int vm_os_as_limited(int fresh);

/* Calls made so far, for tests and statistics (relaxed counters). */
struct vm_os_counts {
    unsigned long map;   /* vm_os_reserve, vm_os_alloc, vm_os_map_shared */
    unsigned long unmap; /* vm_os_free */
    unsigned long remap; /* vm_os_remap */
    unsigned long purge; /* vm_os_purge */
};
void vm_os_get_counts(struct vm_os_counts *c);

/* The calling thread's signal mask as rt_sigprocmask(2) sets it, past
 * the wrappers of vm/mm/fault.c (which keep SIGSEGV and SIGBUS
 * unblocked): for kslab's own threads and the chained handler.  glibc's
 * own signals (32 and 33) stay unblocked, as glibc keeps them.  Returns 0
 * or an errno value. */
int vm_os_sigmask(int how, const sigset_t *set, sigset_t *old);

/* Sleeps ms milliseconds (the background purge's tick, purge.c).  The
 * clock is vm_now_ms() (page.h), read here too. */
void vm_os_sleep_ms(unsigned long ms);

/* ---- the other host calls ---- */

/* The monotonic clock (CLOCK_MONOTONIC) in nanoseconds: time stamps of
 * debugging events and their time-outs.  (The frames' decay clock is the
 * coarse vm_now_ms of vm/frames/page.h.) */
uint64_t vm_os_now_ns(void);

/* Which pages of [addr, addr + len) are resident (mincore(2)): one byte a
 * page in vec, bit 0 set when resident.  0 or -errno. */
int vm_os_resident(void *addr, size_t len, unsigned char *vec);

/* The calling thread's id (gettid(2)). */
int vm_os_gettid(void);

/* Sends sig to thread tid of this process (tgkill(2)): 0 or -errno. */
int vm_os_signal_thread(int tid, int sig);

/* Queues si (its si_signo) to the calling thread with its details
 * (rt_tgsigqueueinfo(2)): a forced SIGBUS that reaches the program's
 * handler as the kernel's would.  0 or -errno. */
int vm_os_queue_signal_self(const siginfo_t *si);

/* The path an open descriptor names (/proc/self/fd/N), NUL-terminated in
 * buf; its length, or -errno (buf then holds ""). */
ssize_t vm_os_fd_path(int fd, char *buf, size_t size);

/* Waits while *addr holds val (a private futex, no time-out); returns at
 * once when it does not, on a wake, or on a signal: the caller looks
 * again.  Wakes every thread waiting on addr. */
void vm_os_futex_wait(unsigned int *addr, unsigned int val);
void vm_os_futex_wake_all(unsigned int *addr);

/* libc's sigaction, never the wrapper that libkslab.so exports (the
 * SIGSEGV chaining of vm/mm/fault.c); in a sanitizer build the ordinary
 * one, whose interceptor must see every handler.  0 or -errno. */
int vm_os_sigaction(int sig, const struct sigaction *act,
                    struct sigaction *old);

/* /proc, read without malloc (the caller's buffer):
 *   vm_os_read_file: at most size - 1 bytes of the file at path, then a
 *     NUL; the bytes read or -errno.
 *   vm_os_read_lines: fn(line, arg) for each line of the file at path,
 *     its newline replaced by a NUL (a line longer than the buffer ends
 *     the reading); 0 or -errno when it cannot be opened.
 *   vm_os_for_each_thread: fn(tid, arg) for each thread of the process,
 *     the caller's included (/proc/self/task); 0 or -errno. */
ssize_t vm_os_read_file(const char *path, char *buf, size_t size);
/* membarrier(2) with cmd (MEMBARRIER_CMD_*) for this process: 0, or -1
 * when the host refuses or lacks it. */
int vm_os_membarrier(int cmd);
/* Files the frames keep (the high-memory memfd and its fork copy):
 *   vm_os_write_at: all len bytes of buf at offset off (EINTR retried);
 *     0, or -1 with errno set.
 *   vm_os_seek_data: the next offset from off that holds data (hole 0)
 *     or the next hole (hole 1), lseek's SEEK_DATA/SEEK_HOLE; -errno on
 *     failure (-ENXIO: no data from off to the end).
 *   vm_os_fd_move: fd from takes the number to (close-on-exec), and from
 *     is closed in every case; 0, or -1 when to is left as it was.
 *   vm_os_close: closes fd. */
int vm_os_write_at(int fd, const void *buf, size_t len, off_t off);
off_t vm_os_seek_data(int fd, off_t off, int hole);
int vm_os_fd_move(int from, int to);
void vm_os_close(int fd);
/* The process id (for report headers and file names). */
int vm_os_getpid(void);
int vm_os_read_lines(const char *path, char *buf, size_t size,
                     void (*fn)(char *line, void *arg), void *arg);
int vm_os_for_each_thread(char *buf, size_t size,
                          void (*fn)(int tid, void *arg), void *arg);

#endif /* KSLAB_VM_FRAMES_OS_H */
