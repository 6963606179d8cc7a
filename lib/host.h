/*
 * lib/host.h — the host calls of lib/ itself (lib/host.c).  Every other
 * host call of kslab is in vm/frames/os.c; lib/ sits below vm/frames
 * (tools/layers.txt) and cannot use it, so what lib/ needs of the host
 * has this small home of its own: reading the initial environment
 * (lib/options.c), the thread registry's memory for its records
 * (lib/thread.c), the one-line reporter's descriptors (lib/report.c),
 * the statistics file (interpose/init.c) and a yield of the processor
 * (the slab's spins, slab/log.c and slab/stop.c: they sit above lib/).
 */
#ifndef KSLAB_LIB_HOST_H
#define KSLAB_LIB_HOST_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Reads the file at path (a /proc file: its size is not known before)
 * entry by entry, entries ending in sep, through the caller's buffer
 * (no malloc): fn(entry, arg) for each, its separator replaced by a NUL.
 * An entry longer than the buffer is skipped.  0, or -errno when the
 * file cannot be opened.
 */
int kslab_host_read_entries(const char *path, char sep, char *buf, size_t size,
                            void (*fn)(const char *, void *), void *arg);

/*
 * size bytes (a multiple of the page size) of fresh zeroed private memory
 * that is never given back: lib/thread.c's records, which a walk may read
 * whatever their thread did.  NULL when the host has none.
 */
void *kslab_host_map(size_t size);

/* The identity of the file open on fd: 0 and *dev, *ino set, or -1 (fd
 * is not open).  Async-signal-safe. */
int kslab_host_file_id(int fd, dev_t *dev, ino_t *ino);

/* A close-on-exec duplicate of fd at the lowest free descriptor from
 * floor, or -1. */
int kslab_host_dup(int fd, int floor);

/* The soft limit of open descriptors (RLIM_INFINITY as such), or -1. */
long kslab_host_fd_limit(void);

/* Writes buf whole to fd, as far as write(2) goes (no retry after an
 * error or a zero write).  Async-signal-safe, no malloc. */
void kslab_host_write_all(int fd, const char *buf, size_t len);

/* A stdio stream for a report of the user's: appending to the file at
 * path, or (path NULL) writing to a close-on-exec duplicate of fd (the
 * stream owns the duplicate).  NULL, errno set, when it cannot be made.
 * Uses malloc (stdio): never on an error path. */
FILE *kslab_host_report_stream(const char *path, int fd);

/* Gives the processor up (sched_yield): a spin's wait. */
void kslab_host_yield(void);

#endif /* KSLAB_LIB_HOST_H */
