/*
 * interpose/tool.h — the malloc family's path under a memory checker
 * (interpose/tool.c).  Each exported function of interpose/malloc.c starts
 * with `if (unlikely(ip_tool_wanted())) return ip_tool_...;`: one load and
 * one predictable branch when not under valgrind, nothing at all when kslab
 * is built without the valgrind headers.
 */
#ifndef KSLAB_INTERPOSE_TOOL_H
#define KSLAB_INTERPOSE_TOOL_H

#include <stddef.h>

#include "lib/valgrind_hooks.h"

#ifdef KSLAB_VALGRIND
/* Not yet known to be off: the caller tail-calls its out-of-line tool
 * entry, which settles the question (vm_tool_active()) and falls back to
 * the plain path when valgrind is absent.  Only one load and one branch
 * stay inline, so the hot functions need no stack frame. */
static inline int ip_tool_wanted(void)
{
    return unlikely(__atomic_load_n(&vm_tool_state, __ATOMIC_RELAXED) !=
                    VM_TOOL_OFF);
}
#else
static inline int ip_tool_wanted(void)
{
    return 0;
}
#endif

void *ip_tool_alloc(size_t size, size_t align, int zero);
void ip_tool_free(void *p, const char *fn);
void *ip_tool_realloc(void *p, size_t size);
size_t ip_tool_usable(void *p);

#endif /* KSLAB_INTERPOSE_TOOL_H */
