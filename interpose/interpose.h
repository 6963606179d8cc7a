/*
 * interpose/interpose.h — what the files of the interposer share: the
 * start-up check of the slow paths and the loader's image.
 *
 * interpose/malloc.c   the exported malloc family (hot paths)
 * interpose/init.c     the malloc layer's start-up level and fork hook,
 *                      statistics at exit, kslab_stats_print()
 */
#ifndef KSLAB_INTERPOSE_H
#define KSLAB_INTERPOSE_H

#include <stdatomic.h>
#include <stddef.h>

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

#endif /* KSLAB_INTERPOSE_H */
