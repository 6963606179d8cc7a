/*
 * lib/host.c — the host calls of lib/ itself: lib/ is the bottom layer
 * (tools/layers.txt), below vm/frames/os.c, which is the home of every
 * other host call, so lib/ cannot reach the host through it.  What lib/
 * needs is reading the initial environment from /proc/self/environ at
 * start-up (lib/options.c), before libc has set `environ`, and memory for
 * the thread registry's records (lib/thread.c).  Without malloc or stdio:
 * this runs before the allocator is up.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
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

void *kslab_host_map(size_t size)
{
    void *p =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
