/*
 * vmmode/io.c — the host kernel's accesses to the program's memory.
 *
 * With the SIGSEGV back end a page of the mm that is not present (never
 * touched, swapped out, armed by the aging scan) is an inaccessible hole
 * of the window on the host, and a fault there is served by the SIGSEGV
 * handler (vm/mm/fault.c) only when the CPU takes it in user mode: the
 * host kernel's own access to it — read(2) into a buffer, write(2) from
 * one — fails with EFAULT and no signal.  So the libc calls that hand
 * the kernel a buffer are wrapped here: when the buffer lies in the
 * window its pages are faulted in and pinned with get_user_pages
 * (present, mapped for the access, neither aged nor swapped out while
 * pinned: 2.4's kiobufs, later Linux's pin_user_pages), the call is made,
 * and the pins are dropped.  A buffer outside the window costs one comparison.
 *
 * Wrapped: read, pread (pread64), readv, write, pwrite (pwrite64),
 * writev, recv, recvfrom, send, sendto, and stdio's fread, fwrite,
 * fread_unlocked and fwrite_unlocked, and the _FORTIFY_SOURCE entry
 * points of the reading ones (__read_chk ...) (glibc's stdio calls its own
 * internal read and write, which no wrapper sees, straight into the
 * caller's buffer for big requests).  At most a quarter of the emulated
 * memory is pinned at a time: a bigger buffer is transferred in pieces
 * (a read goes on to the next piece only on a regular file and while
 * each piece came whole, so a pipe or socket returns what it has, as
 * read(2) may; a write goes on while each piece was written whole).  A
 * vector call whose buffers are in the window is done one buffer at a
 * time, with the same rule.  The plain calls go to the host by system
 * call (pass-through has no cancellation point); stdio's are libc's own,
 * found with dlsym(RTLD_NEXT).  Other calls that write into memory the
 * program chose (getdents, recvmsg, stat into a heap buffer) are not
 * wrapped: where the host allows userfaultfd, the mm's handler thread
 * (vm/mm/uffd.c) serves their faults on pages that are not present, as
 * it serves the wrapped calls' ones; without it (the SIGSEGV back end)
 * they see EFAULT there.  The wrappers stay with the thread too: they are
 * the SIGSEGV back end's only way, they cost what the thread costs
 * (docs/vm-mode.md), and they pin a buffer writable, breaking COW, which
 * the thread does too only in its write-protect mode (where the host has
 * write-protect faults on shared memory: a page the program read but
 * never wrote maps the read-only ZERO_PAGE, and without that mode the
 * kernel's write there fails with EFAULT unless pinned).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vm/frames/os.h"
#include "vmmode/vmmode.h"

#define EXPORT __attribute__((visibility("default")))
#undef fread_unlocked
#undef fwrite_unlocked
#define LOCAL_PINS 64

struct pins {
    struct page **pages;
    unsigned long nr, alloc; /* pinned; entries of a mapped array */
    struct page *local[LOCAL_PINS];
};

/* The most pages pinned at once: a quarter of the emulated memory. */
static unsigned long pin_cap(void)
{
    unsigned long c = __atomic_load_n(&vm_highmem.limit, __ATOMIC_RELAXED) / 4;
    return c < LOCAL_PINS ? LOCAL_PINS : c;
}

/* Pins the window's pages of [buf, buf + len): returns how many bytes
 * from buf may be handed to the kernel now (all of them when the buffer
 * is pinned whole; fewer when the cap or the end of a mapping stops the
 * pinning; len when nothing could be pinned: the kernel then finds what
 * the program would, EFAULT). */
static size_t pin(struct pins *ps, const void *buf, size_t len, int write)
{
    ps->pages = ps->local;
    ps->nr = ps->alloc = 0;
    uintptr_t base = (uintptr_t)vmm_host(0), s = (uintptr_t)buf, e = s + len;
    uintptr_t ps_ = s > base ? s : base;
    uintptr_t pe = e < base + TASK_SIZE ? e : base + TASK_SIZE;
    if (ps_ >= pe)
        return len;
    unsigned long first = (ps_ - base) & PAGE_MASK;
    unsigned long n = (PAGE_ALIGN(pe - base) - first) >> PAGE_SHIFT;
    if (n > pin_cap())
        n = pin_cap();
    if (n > LOCAL_PINS) {
        struct page **a = vm_os_alloc(n * sizeof *a, 0, 0);
        if (a) {
            ps->pages = a;
            ps->alloc = n;
        } else {
            n = LOCAL_PINS;
        }
    }
    long got = get_user_pages(vmm_mm, first, n, write, ps->pages);
    if (got <= 0)
        return len;
    ps->nr = (unsigned long)got;
    uintptr_t end = base + first + ((unsigned long)got << PAGE_SHIFT);
    return end >= e ? len : (size_t)(end - s);
}

static void unpin(struct pins *ps)
{
    int saved = errno;
    unpin_user_pages(ps->pages, ps->nr);
    if (ps->alloc)
        vm_os_free(ps->pages, ps->alloc * sizeof *ps->pages);
    errno = saved;
}

/* One transfer of the kernel: fd, buffer, length, file offset (-1: the
 * call has none), and the call's own argument. */
typedef ssize_t (*xfer_fn)(int fd, void *buf, size_t len, off_t off, void *arg);

static int is_regular(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* The transfer of [buf, buf + len) in pinned pieces.  into: the kernel
 * writes the memory (a read).  more: the call may go on after a whole
 * piece (1), never (0), or on a regular file only (-1). */
static ssize_t pinned(int fd, void *buf, size_t len, off_t off, int into,
                      int more, xfer_fn fn, void *arg)
{
    size_t done = 0;
    do {
        struct pins ps;
        size_t piece = pin(&ps, (char *)buf + done, len - done, into);
        ssize_t r = fn(fd, (char *)buf + done, piece,
                       off < 0 ? -1 : off + (off_t)done, arg);
        unpin(&ps);
        if (r < 0)
            return done ? (ssize_t)done : r;
        done += (size_t)r;
        if ((size_t)r < piece || done >= len)
            break;
        if (more < 0)
            more = is_regular(fd);
    } while (more);
    return (ssize_t)done;
}

/* ---- the system calls ---- */

static ssize_t x_read(int fd, void *b, size_t n, off_t off, void *arg)
{
    (void)arg;
    return off < 0 ? syscall(SYS_read, fd, b, n)
                   : syscall(SYS_pread64, fd, b, n, off);
}

static ssize_t x_write(int fd, void *b, size_t n, off_t off, void *arg)
{
    (void)arg;
    return off < 0 ? syscall(SYS_write, fd, b, n)
                   : syscall(SYS_pwrite64, fd, b, n, off);
}

struct sock_arg {
    int flags;
    const struct sockaddr *to;
    struct sockaddr *from;
    socklen_t tolen, *fromlen;
};

static ssize_t x_recv(int fd, void *b, size_t n, off_t off, void *arg)
{
    struct sock_arg *a = arg;
    (void)off;
    return syscall(SYS_recvfrom, fd, b, n, a->flags, a->from, a->fromlen);
}

static ssize_t x_send(int fd, void *b, size_t n, off_t off, void *arg)
{
    struct sock_arg *a = arg;
    (void)off;
    return syscall(SYS_sendto, fd, b, n, a->flags, a->to, a->tolen);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_read, fd, buf, n);
    return pinned(fd, buf, n, -1, 1, -1, x_read, NULL);
}

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (!vmm_touches(buf, n) || off < 0)
        return syscall(SYS_pread64, fd, buf, n, off);
    return pinned(fd, buf, n, off, 1, -1, x_read, NULL);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
    __attribute__((alias("pread")));

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_write, fd, buf, n);
    return pinned(fd, (void *)buf, n, -1, 0, 1, x_write, NULL);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!vmm_touches(buf, n) || off < 0)
        return syscall(SYS_pwrite64, fd, buf, n, off);
    return pinned(fd, (void *)buf, n, off, 0, 1, x_write, NULL);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
    __attribute__((alias("pwrite")));

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
    struct sock_arg a = {flags, NULL, NULL, 0, NULL};
    return pinned(fd, buf, n, -1, 1, 0, x_recv, &a);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                        struct sockaddr *from, socklen_t *fromlen)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_recvfrom, fd, buf, n, flags, from, fromlen);
    struct sock_arg a = {flags, NULL, from, 0, fromlen};
    return pinned(fd, buf, n, -1, 1, 0, x_recv, &a);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
    struct sock_arg a = {flags, NULL, NULL, 0, NULL};
    return pinned(fd, (void *)buf, n, -1, 0, 0, x_send, &a);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                      const struct sockaddr *to, socklen_t tolen)
{
    if (!vmm_touches(buf, n))
        return syscall(SYS_sendto, fd, buf, n, flags, to, tolen);
    struct sock_arg a = {flags, to, NULL, tolen, NULL};
    return pinned(fd, (void *)buf, n, -1, 0, 0, x_send, &a);
}

static int iov_touches(const struct iovec *iov, int cnt)
{
    for (int i = 0; i < cnt; i++)
        if (vmm_touches(iov[i].iov_base, iov[i].iov_len))
            return 1;
    return 0;
}

/* A vector call one buffer at a time: on to the next only while each
 * came whole (a read: on a regular file only). */
static ssize_t iov_each(int fd, const struct iovec *iov, int cnt, int into)
{
    ssize_t total = 0;
    int more = into ? -1 : 1;
    for (int i = 0; i < cnt; i++) {
        ssize_t r = into ? read(fd, iov[i].iov_base, iov[i].iov_len)
                         : write(fd, iov[i].iov_base, iov[i].iov_len);
        if (r < 0)
            return total ? total : r;
        total += r;
        if ((size_t)r < iov[i].iov_len)
            break;
        if (more < 0)
            more = is_regular(fd);
        if (!more)
            break;
    }
    return total;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    if (cnt <= 0 || !iov_touches(iov, cnt))
        return syscall(SYS_readv, fd, iov, cnt);
    return iov_each(fd, iov, cnt, 1);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (cnt <= 0 || !iov_touches(iov, cnt))
        return syscall(SYS_writev, fd, iov, cnt);
    return iov_each(fd, iov, cnt, 0);
}

/* ---- stdio ---- */

typedef size_t (*stdio_fn)(void *, size_t, size_t, FILE *);

/* libc's own stdio function called name, found once. */
static stdio_fn next_fn(vmm_any_fn _Atomic *cache, const char *name)
{
    return (stdio_fn)vmm_libc_fn(cache, name);
}

/* fread/fwrite of nmemb items into or out of the window: in pinned
 * pieces of whole items while each piece is done whole. */
static size_t stdio_pinned_buf(stdio_fn f, void *ptr, size_t size, size_t nmemb,
                               FILE *fp, int into)
{
    if (!size || !nmemb || nmemb > SIZE_MAX / size ||
        !vmm_touches(ptr, size * nmemb))
        return f(ptr, size, nmemb, fp);
    size_t done = 0;
    while (done < nmemb) {
        struct pins ps;
        char *p = (char *)ptr + done * size;
        size_t piece = pin(&ps, p, (nmemb - done) * size, into) / size;
        if (!piece)
            piece = 1; /* an item bigger than the pinned piece */
        size_t r = f(p, size, piece, fp);
        unpin(&ps);
        done += r;
        if (r < piece)
            break;
    }
    return done;
}

/* The same, the stream's own buffer (a small malloc block: the mm's)
 * pinned too while it reads: libc refills it by its internal read, which
 * no wrapper sees, and the host kernel's write into a page of it that is
 * present read-only (swapped in by a read) would fail with EFAULT. */
static size_t stdio_pinned(stdio_fn f, void *ptr, size_t size, size_t nmemb,
                           FILE *fp, int into)
{
    struct pins fb;
    int held = 0;
    char *b = fp->_IO_buf_base, *e = fp->_IO_buf_end;
    if (into && b && e > b && vmm_touches(b, (size_t)(e - b))) {
        pin(&fb, b, (size_t)(e - b), 1);
        held = 1;
    }
    size_t r = stdio_pinned_buf(f, ptr, size, nmemb, fp, into);
    if (held)
        unpin(&fb);
    return r;
}

static vmm_any_fn _Atomic next_fread, next_fwrite, next_fread_u, next_fwrite_u;

EXPORT size_t fread(void *ptr, size_t size, size_t nmemb, FILE *fp)
{
    return stdio_pinned(next_fn(&next_fread, "fread"), ptr, size, nmemb, fp, 1);
}

EXPORT size_t fwrite(const void *ptr, size_t size, size_t nmemb, FILE *fp)
{
    return stdio_pinned(next_fn(&next_fwrite, "fwrite"), (void *)ptr, size,
                        nmemb, fp, 0);
}

EXPORT size_t fread_unlocked(void *ptr, size_t size, size_t nmemb, FILE *fp)
{
    return stdio_pinned(next_fn(&next_fread_u, "fread_unlocked"), ptr, size,
                        nmemb, fp, 1);
}

EXPORT size_t fwrite_unlocked(const void *ptr, size_t size, size_t nmemb,
                              FILE *fp)
{
    return stdio_pinned(next_fn(&next_fwrite_u, "fwrite_unlocked"), (void *)ptr,
                        size, nmemb, fp, 0);
}

/* ---- _FORTIFY_SOURCE's checked entry points ----
 *
 * A program built with _FORTIFY_SOURCE (Debian's packages are) calls
 * __read_chk, __fread_chk ... where its source says read, fread: the
 * same wrappers, after the same check of the buffer's size (a failure
 * goes to libc's own, which reports it and aborts). */

static vmm_any_fn _Atomic chk_read, chk_pread, chk_recv, chk_recvfrom,
    chk_fread, chk_fread_u;

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        return ((ssize_t(*)(int, void *, size_t, size_t))vmm_libc_fn(
            &chk_read, "__read_chk"))(fd, buf, n, buflen);
    return read(fd, buf, n);
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off,
                           size_t buflen)
{
    if (n > buflen)
        return ((ssize_t(*)(int, void *, size_t, off_t, size_t))vmm_libc_fn(
            &chk_pread, "__pread_chk"))(fd, buf, n, off, buflen);
    return pread(fd, buf, n, off);
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off,
                             size_t buflen)
    __attribute__((alias("__pread_chk")));

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        return ((ssize_t(*)(int, void *, size_t, size_t, int))vmm_libc_fn(
            &chk_recv, "__recv_chk"))(fd, buf, n, buflen, flags);
    return recv(fd, buf, n, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                              int flags, struct sockaddr *from,
                              socklen_t *fromlen)
{
    if (n > buflen)
        return ((ssize_t(*)(int, void *, size_t, size_t, int, struct sockaddr *,
                            socklen_t *))vmm_libc_fn(&chk_recvfrom,
                                                     "__recvfrom_chk"))(
            fd, buf, n, buflen, flags, from, fromlen);
    return recvfrom(fd, buf, n, flags, from, fromlen);
}

EXPORT size_t __fread_chk(void *ptr, size_t buflen, size_t size, size_t nmemb,
                          FILE *fp)
{
    if (size && nmemb && (nmemb > SIZE_MAX / size || size * nmemb > buflen))
        return ((size_t(*)(void *, size_t, size_t, size_t, FILE *))vmm_libc_fn(
            &chk_fread, "__fread_chk"))(ptr, buflen, size, nmemb, fp);
    return fread(ptr, size, nmemb, fp);
}

EXPORT size_t __fread_unlocked_chk(void *ptr, size_t buflen, size_t size,
                                   size_t nmemb, FILE *fp)
{
    if (size && nmemb && (nmemb > SIZE_MAX / size || size * nmemb > buflen))
        return ((size_t(*)(void *, size_t, size_t, size_t, FILE *))vmm_libc_fn(
            &chk_fread_u, "__fread_unlocked_chk"))(ptr, buflen, size, nmemb,
                                                   fp);
    return fread_unlocked(ptr, size, nmemb, fp);
}
