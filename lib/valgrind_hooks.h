/*
 * lib/valgrind_hooks.h — kslab's tool hooks: what memcheck must be told so
 * that a program running on kslab under valgrind gets the reports it would
 * get under glibc (leaks of its blocks, reads and writes outside them or
 * after free).  Everything here compiles to nothing when the valgrind
 * headers are absent or KSLAB_NO_VALGRIND is defined.
 *
 * The model: the malloc family (interpose/tool.c) tells memcheck about every
 * block it hands out (VALGRIND_MALLOCLIKE_BLOCK over the requested bytes;
 * the slack up to the object's usable size is made inaccessible) and every
 * block it takes back (VALGRIND_FREELIKE_BLOCK: inaccessible until handed
 * out again).  kslab's own code may later reuse such memory for itself: a
 * frame leaving the buddy allocator, and an object taken by kslab's
 * internal locked path (array caches, off-slab slab management), is made
 * addressable-but-undefined first (vg_make_usable).
 *
 * Cost when not under valgrind: vm_tool_state is read once per call of the
 * malloc family (one load, one predictable branch) and in the page and slab
 * slow paths; the client requests themselves run only under valgrind.
 * vm_tool_state starts VM_TOOL_UNKNOWN so that the very first call takes the
 * tool path, which asks RUNNING_ON_VALGRIND once and settles it.
 */
#ifndef KSLAB_LIB_VALGRIND_HOOKS_H
#define KSLAB_LIB_VALGRIND_HOOKS_H

#include <stddef.h>

#include "lib/compiler.h"

#if !defined(KSLAB_NO_VALGRIND) && defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define KSLAB_VALGRIND 1
#endif
#endif

enum { VM_TOOL_OFF = 0, VM_TOOL_ON = 1, VM_TOOL_UNKNOWN = 2 };

#ifdef KSLAB_VALGRIND
/* VM_TOOL_UNKNOWN until the first allocation asks; then ON or OFF. */
extern int vm_tool_state;

/* Asks valgrind once; returns nonzero when running under it. */
static inline int vm_tool_settle(void)
{
    int s = RUNNING_ON_VALGRIND ? VM_TOOL_ON : VM_TOOL_OFF;
    __atomic_store_n(&vm_tool_state, s, __ATOMIC_RELAXED);
    return s;
}

/* Nonzero under valgrind (asks at the first call). */
static inline int vm_tool_active(void)
{
    int s = __atomic_load_n(&vm_tool_state, __ATOMIC_RELAXED);
    if (likely(s == VM_TOOL_OFF))
        return 0;
    return s == VM_TOOL_ON || vm_tool_settle();
}

/* Memory kslab takes for its own use: addressable, undefined. */
static inline void vg_make_usable(void *addr, size_t len)
{
    if (unlikely(vm_tool_active()))
        VALGRIND_MAKE_MEM_UNDEFINED(addr, len);
}
#else
static inline int vm_tool_active(void)
{
    return 0;
}
static inline void vg_make_usable(void *addr, size_t len)
{
    (void)addr;
    (void)len;
}
#endif

#endif /* KSLAB_LIB_VALGRIND_HOOKS_H */
