/*
 * interpose/tool.h — hooks on the one malloc path (interpose/malloc.c) for
 * a memory checker (valgrind's memcheck) and for mallopt(M_PERTURB).
 *
 * Every exported function of the malloc family reads ip_hooks once: zero
 * (the normal case) is one load and one predictable branch, and the plain
 * path runs; nonzero sends the call through the same allocation and free
 * code with a hook after the allocation (ip_tool_alloc) and before the
 * free (ip_tool_free).  There is no second allocator: the hooks only tell
 * memcheck about the block, fill it, or keep a freed block out of use for
 * a while (quarantine).
 */
#ifndef KSLAB_INTERPOSE_TOOL_H
#define KSLAB_INTERPOSE_TOOL_H

#include <stddef.h>

#include "lib/valgrind_hooks.h"

/* Bits of ip_hooks. */
enum {
    IP_HOOK_TOOL = 1,    /* valgrind: running under it, or not asked yet */
    IP_HOOK_PERTURB = 2, /* mallopt(M_PERTURB) */
    IP_HOOK_DEBUG = 4,   /* KSLAB_DEBUG audit, log, leaks: sizes asked for */
    /* Not a hook: the arrays are per CPU (set once at start-up).  malloc
     * and free, which read ip_hooks anyway, take their per-CPU fast path
     * when it is the only bit, so the per-thread one pays no test for it;
     * ip_hooked() does not see it. */
    IP_HOOK_PERCPU = 8,
};
extern int ip_hooks __hidden;

/* Nonzero when a hook may be on: the one test on every call. */
static inline int ip_hooked(void)
{
    return unlikely(
        (__atomic_load_n(&ip_hooks, __ATOMIC_RELAXED) & ~IP_HOOK_PERCPU) != 0);
}

/* Start-up, the slab up: IP_HOOK_PERCPU when its arrays are per CPU. */
void ip_tool_percpu_init(void);

/* Under valgrind?  Settles the question at the first call (hooks on). */
int ip_tool_on(void);

/* Before an allocation through the hooks: returns what ip_tool_alloc
 * (or, on failure, ip_tool_alloc_failed) is handed back. */
int ip_tool_before_alloc(void);
/* After an allocation of size bytes (zero: calloc) at p: memcheck learns
 * of the block, KSLAB_DEBUG's record says size, then it is zeroed or
 * perturbed.  Returns p. */
void *ip_tool_alloc(void *p, size_t size, int zero, int before);
void ip_tool_alloc_failed(int before);

/* realloc kept p in place for size bytes. */
void ip_tool_resize(void *p, size_t size);

/* Start-up: KSLAB_DEBUG tracks blocks, so every call takes the hooks. */
void ip_tool_debug_init(void);

/* Before p is freed: 1 when the caller frees it now, 0 when the hook kept
 * it (quarantine) or memcheck reported the free as invalid. */
int ip_tool_free(void *p, const char *fn);

/* The size p was asked with (memcheck's view of the block), for a block
 * of usable bytes. */
size_t ip_tool_usable(void *p, size_t usable);

/* The quarantine's lock in the fork protocol, called by the layer's fork
 * hook (interpose/init.c). */
void ip_tool_fork_prepare(void);
void ip_tool_fork_parent(void);
void ip_tool_fork_child(void);

/* mallopt(M_PERTURB, value): fill blocks with ~value on allocation and
 * value on free; 0 turns it off. */
void ip_set_perturb(int value);

#endif /* KSLAB_INTERPOSE_TOOL_H */
