/*
 * lib/host.h — the host calls of lib/ itself (lib/host.c).  Every other
 * host call of kslab is in vm/frames/os.c; lib/ sits below vm/frames
 * (tools/layers.txt) and cannot use it, so what lib/ needs of the host
 * has this small home of its own: reading the initial environment
 * (lib/options.c) and the thread registry's memory for its records
 * (lib/thread.c).
 */
#ifndef KSLAB_LIB_HOST_H
#define KSLAB_LIB_HOST_H

#include <stddef.h>

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

#endif /* KSLAB_LIB_HOST_H */
