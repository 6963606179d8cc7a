/*
 * lib/fork.h — kslab's one fork protocol (lib/fork.c): a registry of fork
 * hooks at fixed levels, run by the one pthread_atfork registration that
 * start-up makes.  The levels are the lock order; lib/fork.c says which
 * locks each level holds and why the order is what it is.
 */
#ifndef KSLAB_LIB_FORK_H
#define KSLAB_LIB_FORK_H

/* Prepare runs the levels top to bottom; parent and child bottom to top. */
enum kslab_fork_level {
    KSLAB_FORK_MM,     /* vm/mm/fork.c: address spaces (when in use) */
    KSLAB_FORK_IP,     /* interpose/init.c: the quarantine, large blocks */
    KSLAB_FORK_INIT,   /* lib/init.c: the start-up lock */
    KSLAB_FORK_SLAB,   /* slab/slab.c: the cache chain and every cache */
    KSLAB_FORK_SLABMM, /* vmmode/slabpages.c: slab pages in the vm mode's mm */
    KSLAB_FORK_FRAMES, /* vm/frames/lowmem.c: the zones, high memory */
    KSLAB_FORK_NR_LEVELS
};

/* A level's handlers.  prepare takes the level's locks; parent releases
 * them; child makes them anew (only the forking thread lives on there)
 * and may then use every level below, whose child handlers ran first. */
struct kslab_fork_hook {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
};

/* Puts hook at level: once per level (registering the same hook again is
 * a no-op; a second, different hook for a level dies).  Any context; a
 * fork already under way does not run a hook registered meanwhile. */
void kslab_fork_register(enum kslab_fork_level level,
                         const struct kslab_fork_hook *hook);

/* The start-up level (lib/init.c): the one pthread_atfork. */
void kslab_fork_init(void);

#endif /* KSLAB_LIB_FORK_H */
