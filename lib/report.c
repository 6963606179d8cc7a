/*
 * lib/report.c — how kslab speaks when something is wrong: one line on
 * stderr, built in a stack buffer by a small formatter and written with
 * write(2) (lib/host.c), then abort() for corruption.  No stdio and no malloc
 * here, so it is safe from inside the allocator, with its locks held, and from
 * a signal handler.
 *
 * Which stderr: when a report is asked for at exit or with every error
 * (KSLAB_DEBUG, KSLAB_STATS), start-up keeps a private duplicate of the
 * stderr the process started with, as valgrind keeps its log descriptor,
 * high and close-on-exec, with the identity (device, inode) of its file.
 * A program that closes stderr before exit (coreutils' close_stdout) still
 * gets its report, and a file that later takes descriptor 2 never gets
 * it: kslab_stderr_fd() checks the identity before each use, so a
 * duplicate the program closed (closefrom) or replaced is not written to.
 * A one-line message (corruption, misuse, a warning, kslab_verify()'s
 * findings) goes to the original stderr and also to descriptor 2 if that
 * is another open file (the program redirected its stderr, and glibc's
 * malloc_printerr writes there too): the line is as much the program's
 * business as the user's.  The reports that are only the user's (the leak
 * report, the statistics at exit) go to the original stderr alone.
 * Without a duplicate every message goes to descriptor 2.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "lib/host.h"
#include "lib/options.h"
#include "lib/report.h"

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_num(struct out *o, unsigned long long v, unsigned base, int neg)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        put(o, '-');
    while (n)
        put(o, tmp[--n]);
}

static int vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        int lng = 0;
        fmt++;
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            while (*s)
                put(&o, *s++);
            break;
        }
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 'd': {
            long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
            put_num(&o, v < 0 ? -(unsigned long long)v : (unsigned long long)v,
                    10, v < 0);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v =
                lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_num(&o, v, *fmt == 'x' ? 16 : 10, 0);
            break;
        }
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_num(&o, (uintptr_t)va_arg(ap, void *), 16, 0);
            break;
        case '%':
            put(&o, '%');
            break;
        default:
            if (!*fmt)
                goto out;
            put(&o, '%');
            put(&o, *fmt);
        }
    }
out:
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int kslab_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- the original stderr ---- */

/* The duplicate (-1: none taken) and its file's identity. */
static int orig_fd = -1;
static dev_t orig_dev;
static ino_t orig_ino;

/* Is fd open on the original stderr's file? */
static int is_orig_file(int fd)
{
    dev_t dev;
    ino_t ino;
    return kslab_host_file_id(fd, &dev, &ino) == 0 && dev == orig_dev &&
           ino == orig_ino;
}

/* The lowest descriptor the duplicate may take: high, out of the way of
 * a program that expects open() to return 3, 4 …, and below FD_SETSIZE
 * and the soft limit (a descriptor near a limit of a million would grow
 * the kernel's descriptor table by megabytes). */
static int orig_fd_floor(void)
{
    long lim = 1024, soft = kslab_host_fd_limit();
    if (soft >= 0 && soft < lim)
        lim = soft;
    return lim > 64 ? (int)lim - 32 : 3;
}

void kslab_report_setup(void)
{
    if (orig_fd >= 0 || !(kslab_opt.dbg || kslab_opt.debug || kslab_opt.stats))
        return;
    dev_t dev;
    ino_t ino;
    if (kslab_host_file_id(2, &dev, &ino) != 0)
        return; /* no stderr at start: reports go nowhere but a log file */
    int fd = kslab_host_dup(2, orig_fd_floor());
    if (fd < 0)
        fd = kslab_host_dup(2, 3);
    if (fd < 0)
        return;
    orig_dev = dev;
    orig_ino = ino;
    orig_fd = fd;
}

int kslab_stderr_fd(void)
{
    if (orig_fd < 0)
        return 2;
    if (is_orig_file(orig_fd))
        return orig_fd;
    return is_orig_file(2) ? 2 : -1;
}

void kslab_write_all(int fd, const char *buf, size_t len)
{
    kslab_host_write_all(fd, buf, len);
}

void kslab_report_write(const char *buf, size_t len, int also_fd2)
{
    int fd = kslab_stderr_fd();
    kslab_write_all(fd, buf, len);
    dev_t dev;
    ino_t ino;
    if (also_fd2 && fd != 2 && kslab_host_file_id(2, &dev, &ino) == 0 &&
        !(dev == orig_dev && ino == orig_ino))
        kslab_write_all(2, buf, len);
}

static void say(const char *fmt, va_list ap)
{
    char line[512];
    memcpy(line, "kslab: ", 7);
    int n = vformat(line + 7, sizeof line - 8, fmt, ap);
    size_t len =
        7 + ((size_t)n < sizeof line - 8 ? (size_t)n : sizeof line - 9);
    line[len++] = '\n';
    kslab_report_write(line, len, 1);
}

void kslab_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    abort();
}

static void (*report_hook)(const void *addr);

void kslab_set_report_hook(void (*hook)(const void *addr))
{
    __atomic_store_n(&report_hook, hook, __ATOMIC_RELEASE);
}

void kslab_die_at(const void *addr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    void (*hook)(const void *) =
        __atomic_exchange_n(&report_hook, NULL, __ATOMIC_ACQ_REL);
    if (hook) /* once: a corruption found while reporting just aborts */
        hook(addr);
    abort();
}

void kslab_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}
