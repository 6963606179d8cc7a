/*
 * lib/report.c — how kslab speaks when something is wrong: one line on
 * stderr, built in a stack buffer by a small formatter and written with
 * write(2), then abort() for corruption.  No stdio and no malloc here, so
 * it is safe from inside the allocator, with its locks held, and from a
 * signal handler.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void say(const char *fmt, va_list ap)
{
    char line[512];
    memcpy(line, "kslab: ", 7);
    int n = vformat(line + 7, sizeof line - 8, fmt, ap);
    size_t len =
        7 + ((size_t)n < sizeof line - 8 ? (size_t)n : sizeof line - 9);
    line[len++] = '\n';
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(2, line + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
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
