/*
 * lib/thread.h — kslab's one thread registry (lib/thread.c): one record a
 * thread, on one list, with a slot per layer for the layer's per-thread
 * state, and exit hooks at fixed levels run by the one pthread key's
 * destructor.  The levels are the exit order, upper layers first: the
 * malloc layer's cache of large blocks goes back before the slab's
 * arrays are flushed, so what an upper layer gives back at exit passes
 * through the arrays below and is flushed with them.
 */
#ifndef KSLAB_LIB_THREAD_H
#define KSLAB_LIB_THREAD_H

/* Exit runs the levels in this order, top to bottom. */
enum kslab_thread_level {
    KSLAB_THREAD_IP,   /* interpose/large_tcache.c: the large-block cache */
    KSLAB_THREAD_SLAB, /* slab/thread.c: the array caches */
    KSLAB_THREAD_NR_LEVELS
};

/* A level's exit hook: called once in each registered thread that exits
 * (one that has a record: it attached at some level), with the thread's
 * slot at that level — NULL when the thread never attached there.  The
 * hook detaches the slot (kslab_thread_detach) when it no longer wants
 * walks of the level to find it; the registry clears what is left. */
struct kslab_thread_hook {
    void (*exit)(void *slot);
};

/* One thread's record; its fields are the registry's. */
struct kslab_thread;

/*
 * Puts p in the calling thread's slot at level (under the level's lock),
 * first registering hook for the level (once per level, as
 * kslab_fork_register: the same hook again is a no-op, another dies) and
 * linking the thread's record and setting the one key if this is its
 * first attach.  Returns 0; 1 when the slot already holds a state — the
 * one a dead thread left with this thread's TLS block (lib/thread.c):
 * p is not used, the layer takes kslab_thread_slot(level) as its own;
 * or -1 when the thread cannot be registered (no memory for a record,
 * pthread_setspecific failed, the thread is being set up by an attach
 * that allocates, or it is past its exit): then nothing changed.  Slow
 * path; takes the list lock, then the level's lock.
 */
int kslab_thread_attach(enum kslab_thread_level level,
                        const struct kslab_thread_hook *hook, void *p);

/* Clears the calling thread's slot at level (under the level's lock):
 * walks of the level no longer find it. */
void kslab_thread_detach(enum kslab_thread_level level);

/* Clears the slot at level of the thread at pos (from kslab_thread_next):
 * its state is gone (a fork child releasing what the threads that did not
 * come along held).  The level's lock held, or the only thread. */
void kslab_thread_forget(struct kslab_thread *pos,
                         enum kslab_thread_level level);

/* The calling thread's slot at level (NULL when none). */
void *kslab_thread_slot(enum kslab_thread_level level);

/* The level's lock: it guards every thread's slot at the level, and a
 * walk of the level holds it throughout.  Its place in kslab's lock order
 * is its layer's (lib/fork.c); the layer's fork prepare and parent take
 * and release it; in the child the registry makes it anew. */
void kslab_thread_lock(enum kslab_thread_level level);
void kslab_thread_unlock(enum kslab_thread_level level);

/*
 * Walks the threads with a slot at level: start with *pos NULL; each call
 * returns the next thread's slot and moves *pos, NULL at the end.  The
 * level's lock held, so no thread leaves the walk's list meanwhile.
 */
void *kslab_thread_next(enum kslab_thread_level level,
                        struct kslab_thread **pos);

/* The fork protocol's part (lib/fork.c): the list lock is a leaf, taken
 * after every level's locks; in the child, once every level's child
 * handler has released what the other threads held, prune forgets their
 * records.  fork_child makes the list lock and every level's lock anew,
 * before the levels' child handlers run. */
void kslab_thread_fork_prepare(void);
void kslab_thread_fork_parent(void);
void kslab_thread_fork_child(void);
void kslab_thread_fork_prune(void);

#endif /* KSLAB_LIB_THREAD_H */
