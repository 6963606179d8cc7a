/*
 * interpose/interpose.h — what the files of the interposer share: the
 * start-up check of the slow paths and the loader's image.
 *
 * interpose/malloc.c   the exported malloc family (hot paths)
 * interpose/large.c    blocks above the slab sizes (large.h); their parts:
 *   huge.c, huge_pool.c, large_tcache.c (large_internal.h)
 * interpose/tool.c     hooks on the malloc path: valgrind, M_PERTURB
 * interpose/extras.c   mallinfo2, malloc_trim, malloc_stats, malloc_info,
 *                      mallopt
 * interpose/init.c     the interposer's start-up level and fork hook,
 *                      statistics at exit, kslab_stats_print()
 */
#ifndef KSLAB_INTERPOSE_H
#define KSLAB_INTERPOSE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/init.h"
#include "vm/frames/page.h"

/* Start-up (lib/init.c) for the malloc family's slow paths: before it,
 * every thread's arrays are empty, so the first allocation comes here. */
static inline void ip_ensure_init(void)
{
    kslab_init();
}

/* Is p inside the dynamic loader's own image (its minimal malloc, used
 * before libc is relocated)?  Such a pointer is never ours and freeing it is
 * ignored rather than reported. */
int ip_pointer_from_loader(const void *p);

/*
 * The one check of a pointer handed to the malloc family (interpose/
 * malloc.c).  ip_block_size: the usable bytes of a live block, 0 for a
 * block of the loader's own malloc.  ip_release: frees a live block (a
 * loader block is ignored).  Any other pointer ends the process with one
 * line naming the call fn and the address.
 */
size_t ip_block_size(const void *p, const char *fn);
void ip_release(void *p, const char *fn);

/* Applies glibc's MALLOC_*_ variables and glibc.malloc.* tunables, as
 * read by lib/options.c, as mallopt() would (extras.c); start-up only. */
void ip_glibc_options(void);

/* More lines for KSLAB_STATS, printed after the large blocks' and low
 * memory's (libkslab-vm.so: the emulated mm's maps, meminfo, vmstat).
 * Set once at start-up. */
void ip_stats_set_hook(void (*fn)(FILE *out));

#endif /* KSLAB_INTERPOSE_H */
