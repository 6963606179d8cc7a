/*
 * lib/init.c — the one start-up order of kslab (2.4's do_initcalls(), with
 * levels), and once-only set-up for what is made lazily.
 *
 * The order, level by level (each level is the KSLAB_INITCALL of the file
 * named; lib/init.h has the enum):
 *
 *   0 options  lib/options.c           read the KSLAB_* environment into
 *                                      kslab_opt; no layer reads the
 *                                      environment itself; then
 *              lib/report.c            the private duplicate of stderr
 *   1 frames   vm/frames/lowmem.c      reserve low memory (KSLAB_LOWMEM_MB),
 *                                      set up the zones; register the
 *                                      zones' fork hook
 *   2 slab     slab/slab.c             cache_cache, then the kmalloc
 *                                      caches and the malloc classes (with
 *                                      KSLAB_DEBUG's flags); register the
 *                                      slab's fork hook
 *   3 fork     lib/fork.c              the one pthread_atfork (it may
 *                                      allocate: the slab is up)
 *   4 ip       interpose/init.c        the loader's image, the statistics
 *                                      stream; register the interposer's
 *                                      fork hook
 *
 * Why this order: the slab takes its pages from the zones; the fork
 * protocol must exist before anything it protects can be locked by a
 * second thread, and pthread_atfork may call malloc, which needs the slab;
 * the interposer (interpose/, the malloc family) is the top.
 *
 * Locking and re-entrancy: one recursive mutex, init_lock, serialises
 * every once-only set-up (this one and the lazy ones of kslab_once()).
 * Another thread waits on it; the thread running a set-up finds the once
 * RUNNING when it re-enters (an allocation made by the set-up itself) and
 * returns at once, so start-up neither recurses nor deadlocks.  Once the
 * slab level is reached, an allocation from any thread proceeds without
 * waiting for the rest.
 * When done, kslab_init() is one acquire load on slow paths; the fast
 * paths of malloc, free and kmem_cache_alloc never test it (before
 * start-up every thread's arrays are empty, so the first allocation takes
 * a slow path).  init_lock's place in the fork lock order is in
 * lib/fork.c.
 */
#include <pthread.h>
#include <stdint.h>

#include "lib/fork.h"
#include "lib/init.h"
#include "lib/options.h"
#include "lib/report.h"

struct kslab_once kslab_boot = KSLAB_ONCE_INIT;

/* Levels completed so far (0 … KSLAB_INIT_NR_LEVELS). */
static _Atomic unsigned int levels_done;

static pthread_mutex_t init_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

/* The section's bounds, from the linker; hidden, so that each library of
 * a process walks its own initcalls. */
extern const struct kslab_initcall __start_kslab_initcall[]
    __attribute__((visibility("hidden")));
extern const struct kslab_initcall __stop_kslab_initcall[]
    __attribute__((visibility("hidden")));

void kslab_once_slow(struct kslab_once *once, void (*fn)(void))
{
    pthread_mutex_lock(&init_lock);
    /* RUNNING here means this very thread is inside fn: only the owner of
     * init_lock can see it. */
    if (atomic_load_explicit(&once->state, memory_order_relaxed) ==
        KSLAB_ONCE_NOT_RUN) {
        atomic_store_explicit(&once->state, KSLAB_ONCE_RUNNING,
                              memory_order_relaxed);
        fn();
        atomic_store_explicit(&once->state, KSLAB_ONCE_DONE,
                              memory_order_release);
    }
    pthread_mutex_unlock(&init_lock);
}

int kslab_init_reached(enum kslab_init_level level)
{
    return atomic_load_explicit(&levels_done, memory_order_acquire) >
           (unsigned int)level;
}

static void init_fork_prepare(void)
{
    pthread_mutex_lock(&init_lock);
}

static void init_fork_parent(void)
{
    pthread_mutex_unlock(&init_lock);
}

/* The child: a recursive mutex remembers its owner's thread id, which the
 * child does not share; a new one is the unlock. */
static void init_fork_child(void)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&init_lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

static const struct kslab_fork_hook init_fork_hook = {
    init_fork_prepare, init_fork_parent, init_fork_child};

/* lib/'s own levels are called by name (they are linked whenever this
 * file is); the layers above hand theirs in through the section. */
static void options_level(void)
{
    kslab_options_read();
    kslab_report_setup(); /* stderr as it is at start, if reports are due */
}

static void (*const lib_levels[KSLAB_INIT_NR_LEVELS])(void) = {
    [KSLAB_INIT_OPTIONS] = options_level,
    [KSLAB_INIT_FORK] = kslab_fork_init,
};

/* The entries of the section (bounds compared as addresses: the linker's
 * two symbols are, for C, different objects). */
static size_t nr_initcalls(void)
{
    return ((uintptr_t)__stop_kslab_initcall -
            (uintptr_t)__start_kslab_initcall) /
           sizeof(struct kslab_initcall);
}

/* do_initcalls(): every level in order, each level's calls in link order. */
static void run_initcalls(void)
{
    const struct kslab_initcall *c = __start_kslab_initcall;
    size_t n = nr_initcalls();
    kslab_fork_register(KSLAB_FORK_INIT, &init_fork_hook);
    for (size_t i = 0; i < n; i++)
        if (c[i].level >= KSLAB_INIT_NR_LEVELS || !c[i].fn)
            kslab_die("start-up: initcall table broken at %p", (void *)&c[i]);
    for (unsigned int level = 0; level < KSLAB_INIT_NR_LEVELS; level++) {
        if (lib_levels[level])
            lib_levels[level]();
        for (size_t i = 0; i < n; i++)
            if (c[i].level == level)
                c[i].fn();
        atomic_store_explicit(&levels_done, level + 1, memory_order_release);
    }
}

void kslab_init_slow(void)
{
    if (kslab_init_reached(KSLAB_INIT_SLAB))
        return; /* the allocator is up; the rest is on its way */
    kslab_once_slow(&kslab_boot, run_initcalls);
}
