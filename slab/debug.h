/*
 * slab/debug.h — kslab's debugging machinery (slab/audit.c, log.c,
 * stack.c, stop.c, leaks.c: slab/debug_internal.h), the model being
 * Solaris libumem's UMEM_DEBUG=audit, UMEM_LOGGING=transaction and
 * ::findleaks.  Switched on by KSLAB_DEBUG (lib/options.c):
 *
 *   audit   every block (malloc family, kmalloc, kmem_cache_alloc) gets an
 *           audit record: allocating thread, time, stack; once freed, the
 *           freeing thread, time and stack.  Every corruption report then
 *           prints them after its one line.
 *   log[=N] a ring of the last N (4096) allocation and free events.
 *   verify  the cache's validator at every slow path; kslab_verify() on
 *           demand whatever the options.
 *   leaks   audit, plus a conservative leak search at exit.
 *
 * With audit, log or leaks on, the caches are made without per-thread
 * arrays, so every allocation and free of a block takes the slow path of
 * slab.c, where the hooks below are called; the large blocks call them
 * from interpose/large.c.  With KSLAB_DEBUG unset the fast paths are the
 * same instructions as without this file: the hooks sit behind the test
 * of kslab_opt.dbg on the slow paths only.
 */
#ifndef KSLAB_SLAB_DEBUG_H
#define KSLAB_SLAB_DEBUG_H

#include <stddef.h>

#include "lib/compiler.h"
#include "lib/options.h"

/* Is any of audit, log, leaks on (blocks are tracked)? */
static inline int slab_debug_tracking(void)
{
    return unlikely(kslab_opt.dbg & KSLAB_DBG_TRACK);
}

/* After a block of size bytes at p was handed out (not recorded while
 * the calling thread defers: slab_debug_defer). */
void slab_debug_alloc(void *p, size_t size);
/* ... a block of usable bytes, of which the program asked for asked. */
void slab_debug_alloc_asked(void *p, size_t asked, size_t usable);
/* The malloc family is about to allocate for the program and will record
 * the block itself with the size asked for: until slab_debug_undefer(the
 * value returned), the hooks of the slab and of the large blocks record
 * nothing in this thread.  Returns the previous state (nests). */
int slab_debug_defer(void);
void slab_debug_undefer(int was);
/* The block at p stays where it is but now holds asked bytes (realloc in
 * place); asked is at most its usable size. */
void slab_debug_resize(const void *p, size_t asked);
/* Before the block at p is given back by fn ("free", "kfree" ...): dies
 * with both stacks when the audit record says it is already free. */
void slab_debug_free(const void *p, const char *fn);
/* An unwinder: return addresses of the caller's stack into buf, at most
 * size; the number written. */
typedef int (*slab_unwinder_fn)(void **buf, int size);
/* libunwind.so.8's unw_backtrace by dlopen, or NULL (slab/unwind_dl.c:
 * in the shared libraries only; a weak symbol, NULL in libkslab.a). */
slab_unwinder_fn slab_unwind_dlopen(void)
    __attribute__((weak, visibility("hidden")));
/* In a host fork()'s child, from the slab's fork hook (lib/fork.c, level
 * KSLAB_FORK_SLAB): the audit locks made anew, the cached thread id
 * forgotten. */
void slab_debug_fork_child(void);
/* The calling thread is exiting (its stack is no longer a root). */
void slab_debug_thread_exit(void);
/* kslab's own memory that holds block addresses but is not a root of the
 * leak search (a table of large blocks); len 0 forgets addr. */
void slab_debug_exclude(const void *addr, size_t len);

#endif /* KSLAB_SLAB_DEBUG_H */
