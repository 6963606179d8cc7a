/*
 * slab/unwind_dl.c — libunwind.so.8 loaded at run time, for KSLAB_DEBUG's
 * stacks (slab/stack.c chooses the unwinder).  Linked into the shared
 * libraries (libkslab.so, libkslab-preload.so) and the tests' core only,
 * never into libkslab.a: a -static program that references dlopen at all
 * gets glibc's warning that it needs the shared libraries of the glibc it
 * was linked with, and its dlopen would load a second libc.  stack.c
 * references slab_unwind_dlopen weakly; without this file it is NULL.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/auxv.h>

#include "slab/debug.h"

/* unw_backtrace of libunwind.so.8, loaded privately (RTLD_LOCAL: its
 * symbols, its weak backtrace among them, do not join the program's), or
 * NULL when it is not installed.  Only in a dynamically linked process
 * (it has a loader: AT_BASE is not 0).  Called once libc is ready (after
 * kslab's constructors), from start-up. */
slab_unwinder_fn slab_unwind_dlopen(void)
{
    if (!getauxval(AT_BASE))
        return NULL;
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    return h ? (slab_unwinder_fn)dlsym(h, "unw_backtrace") : NULL;
}
