/*
 * interpose/interpose.h — what the files of the interposer share: the
 * start-up state, the options read from the environment, the fork handlers
 * and the cold error paths of the malloc family.
 *
 * interpose/malloc.c   the exported malloc family (hot paths)
 * interpose/init.c     start-up, options (KSLAB_STATS, KSLAB_DEBUG), fork
 *                      handlers, statistics at exit, kslab_stats_print()
 */
#ifndef KSLAB_INTERPOSE_H
#define KSLAB_INTERPOSE_H

#include <stdatomic.h>
#include <stddef.h>

#include "vm/frames/page.h"

/* Nonzero once ip_init() has started; read on every allocation. */
extern _Atomic int ip_started;

/* Reads the options, applies them, registers the fork handlers.  Runs once
 * (before main as a constructor, or at the first allocation if that comes
 * first); re-entered allocations during it go straight through. */
void ip_init(void);

static inline void ip_ensure_init(void)
{
    if (unlikely(!atomic_load_explicit(&ip_started, memory_order_relaxed)))
        ip_init();
}

/* Is p inside the dynamic loader's own image (its minimal malloc, used
 * before libc is relocated)?  Such a pointer is never ours and freeing it is
 * ignored rather than reported. */
int ip_pointer_from_loader(const void *p);

#endif /* KSLAB_INTERPOSE_H */
