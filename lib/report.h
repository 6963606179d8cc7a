/*
 * lib/report.h — the one-line error reporter (lib/report.c).  Every layer
 * reports misuse and corruption through it: one line "kslab: ..." on
 * stderr (the one the process started with: see lib/report.c), written with
 * write(2), then abort() for kslab_die().  No stdio and no malloc, so it is
 * safe with allocator locks held and from a signal handler.
 */
#ifndef KSLAB_LIB_REPORT_H
#define KSLAB_LIB_REPORT_H

#include <stddef.h>

/* One line "kslab: ..." on stderr, then abort().  Takes a small printf
 * subset (%s %d %u %lu %zu %x %lx %p %c %%); no stdio, no malloc. */
__attribute__((noreturn, cold, format(printf, 1, 2))) void
kslab_die(const char *fmt, ...);
/* kslab_die() about the block at addr: the line, then what the report
 * hook (kslab_set_report_hook) knows of addr, then abort(). */
__attribute__((noreturn, cold, format(printf, 2, 3))) void
kslab_die_at(const void *addr, const char *fmt, ...);
/* The hook kslab_die_at() calls (slab/audit.c sets it with KSLAB_DEBUG
 * audit or log): writes with write(2), takes no lock it may not. */
void kslab_set_report_hook(void (*hook)(const void *addr));
/* Same line without abort(): warnings. */
__attribute__((cold, format(printf, 1, 2))) void kslab_warn(const char *fmt,
                                                            ...);
/* Start-up, right after the options are read: with KSLAB_DEBUG or
 * KSLAB_STATS, keeps a private duplicate of stderr (lib/report.c). */
void kslab_report_setup(void);
/* The descriptor of the stderr the process started with, while it is
 * still open on the same file; 2 when no duplicate was kept; -1 when the
 * original stderr is gone.  Leak reports and statistics go there. */
int kslab_stderr_fd(void);
/* Writes buf to kslab_stderr_fd(); also_fd2: also to descriptor 2 when
 * that is another open file (a one-line message and what follows it).
 * No stdio, no malloc. */
void kslab_report_write(const char *buf, size_t len, int also_fd2);
/* Writes all of buf to fd (nothing when fd < 0), stopping at an error:
 * write(2) only. */
void kslab_write_all(int fd, const char *buf, size_t len);
/* Formats into buf (always NUL-terminated); returns the length. */
int kslab_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* KSLAB_LIB_REPORT_H */
