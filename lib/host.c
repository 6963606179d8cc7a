/*
 * lib/host.c — the host calls of lib/ itself: lib/ is the bottom layer
 * (tools/layers.txt), below vm/frames/os.c, which is the home of every
 * other host call, so lib/ cannot reach the host through it.  What lib/
 * needs is reading the initial environment from /proc/self/environ at
 * start-up (lib/options.c), before libc has set `environ`, memory for the
 * thread registry's records (lib/thread.c), the one-line reporter's
 * writes and its checks of the original stderr (lib/report.c:
 * async-signal-safe), and, for the layers above whose concept is not the
 * host, the statistics stream (interpose/init.c: stdio, at exit only)
 * and the yield of a spin (slab/log.c, slab/stop.c).  Without malloc or
 * stdio but for the statistics stream: the rest runs before the allocator
 * is up, or inside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/host.h"

int kslab_host_read_entries(const char *path, char sep, char *buf, size_t size,
                            void (*fn)(const char *, void *), void *arg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    int skipping = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < len; i++) {
            if (buf[i] != sep)
                continue;
            buf[i] = 0;
            if (!skipping)
                fn(buf + start, arg);
            skipping = 0;
            start = i + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (len == size - 1) { /* an over-long entry */
            skipping = 1;
            len = 0;
        }
    }
    close(fd);
    return 0;
}

/* By system call, as vm/frames/os.c maps: libkslab-vm.so exports mmap to
 * the program (vmmode/), and a call of that name from inside it would map
 * emulated memory.  The sanitizer builds keep libc's, for its
 * interceptors (no libkslab-vm.so there). */
void *kslab_host_map(size_t size)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#else
    void *p = (void *)syscall(SYS_mmap, NULL, size, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#endif
    return p == MAP_FAILED ? NULL : p;
}

int kslab_host_file_id(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

int kslab_host_dup(int fd, int floor)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, floor);
}

long kslab_host_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return rl.rlim_cur == RLIM_INFINITY ? (long)(~0UL >> 1) : (long)rl.rlim_cur;
}

void kslab_host_write_all(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

FILE *kslab_host_report_stream(const char *path, int fd)
{
    if (path)
        return fopen(path, "a");
    int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    FILE *f = dup >= 0 ? fdopen(dup, "w") : NULL;
    if (!f && dup >= 0) {
        int saved = errno;
        close(dup);
        errno = saved;
    }
    return f;
}

void kslab_host_yield(void)
{
    sched_yield();
}
