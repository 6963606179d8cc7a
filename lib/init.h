/*
 * lib/init.h — kslab's one start-up order, and the once-only set-up of
 * what is made lazily (lib/init.c).
 *
 * Start-up runs once per process: from the interposer's constructor, or
 * at the first allocation, whichever comes first.  Each layer above lib/
 * hands its part to the order with KSLAB_INITCALL(level, fn), as 2.4's
 * __initcall() did (lib/'s own two levels are called by name);
 * kslab_init() runs the levels in this order:
 *
 *   KSLAB_INIT_OPTIONS  lib/options.c           the KSLAB_* environment
 *   KSLAB_INIT_FRAMES   vm/frames/lowmem.c      low memory reserved, zones
 *   KSLAB_INIT_SLAB     slab/slab.c             cache_cache, the kmalloc
 *                                               caches, the malloc classes
 *   KSLAB_INIT_FORK     lib/fork.c              the one pthread_atfork
 *   KSLAB_INIT_IP       interpose/init.c        the loader's image, the
 *                                               statistics stream
 *
 * A level missing from a program (kslab_core without the interposer) is
 * skipped.  The lazily made parts of the address-space emulator (its
 * caches, high memory) use kslab_once(), the same mechanism: one lock,
 * re-entrancy-safe, one acquire load when done.
 */
#ifndef KSLAB_LIB_INIT_H
#define KSLAB_LIB_INIT_H

#include <stdatomic.h>

#include "lib/compiler.h"

enum kslab_init_level {
    KSLAB_INIT_OPTIONS,
    KSLAB_INIT_FRAMES,
    KSLAB_INIT_SLAB,
    KSLAB_INIT_FORK,
    KSLAB_INIT_IP,
    KSLAB_INIT_NR_LEVELS
};

/* One initcall: the level it belongs to and what it runs. */
struct kslab_initcall {
    unsigned int level;
    void (*fn)(void);
    const char *name;
};

/* Clang's ASan would put red zones between the entries of the section;
 * GCC leaves globals of a named section alone. */
#if defined(__clang__)
#define KSLAB_INITCALL_NOASAN __attribute__((no_sanitize("address")))
#else
#define KSLAB_INITCALL_NOASAN
#endif

/* Puts fn in the start-up order at level (one static entry in the section
 * kslab_initcall, which lib/init.c walks). */
#define KSLAB_INITCALL(lvl, fn)                                                \
    static const struct kslab_initcall kslab_initcall_##fn __attribute__((     \
        used, section("kslab_initcall"), aligned(sizeof(void *))))             \
    KSLAB_INITCALL_NOASAN = {(lvl), (fn), #fn}

/* A once-only set-up: NOT_RUN → RUNNING → DONE. */
enum { KSLAB_ONCE_NOT_RUN, KSLAB_ONCE_RUNNING, KSLAB_ONCE_DONE };
struct kslab_once {
    _Atomic int state;
};
#define KSLAB_ONCE_INIT                                                        \
    {                                                                          \
        KSLAB_ONCE_NOT_RUN                                                     \
    }

void kslab_once_slow(struct kslab_once *once, void (*fn)(void));

/*
 * Runs fn once.  Other threads wait until it has run; the thread running
 * it, re-entering (fn allocates), returns at once.  Takes the start-up
 * lock, which sits after the mmap_sems and before every slab and frame
 * lock (lib/fork.c): fn may allocate, and may be reached with an
 * mmap_sem held.
 */
static inline void kslab_once(struct kslab_once *once, void (*fn)(void))
{
    if (likely(atomic_load_explicit(&once->state, memory_order_acquire) ==
               KSLAB_ONCE_DONE))
        return;
    kslab_once_slow(once, fn);
}

extern struct kslab_once kslab_boot;
void kslab_init_slow(void);

/*
 * kslab_init - bring kslab up: the whole order above, once.
 * For slow paths: one acquire load when done.  An allocation made while
 * start-up runs — by start-up itself, or by another thread once the slab
 * is up — proceeds without waiting for the rest.
 */
static inline void kslab_init(void)
{
    if (likely(atomic_load_explicit(&kslab_boot.state, memory_order_acquire) ==
               KSLAB_ONCE_DONE))
        return;
    kslab_init_slow();
}

/* Nonzero once start-up has completed level (its set-up can be used). */
int kslab_init_reached(enum kslab_init_level level);

#endif /* KSLAB_LIB_INIT_H */
