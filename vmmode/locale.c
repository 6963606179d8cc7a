/*
 * vmmode/locale.c — the locale data that every thread's start reads stays
 * host memory.
 *
 * glibc's start of a thread (nptl's start_thread) runs __ctype_init —
 * which reads the global locale's LC_CTYPE data, the struct __locale_data
 * that setlocale() malloc'd — before it restores the thread's signal
 * mask: pthread_create blocks every signal around the clone, SIGSEGV and
 * SIGBUS too, whatever the wrappers of vm/mm/fault.c allow.  With small
 * blocks in the mm that data is a slab object of the mm, and when its
 * page is not present (swapped out, armed by the aging scan) the new
 * thread's read is a fault that no signal may serve: the SIGSEGV back end
 * (and the SIGBUS back end a host fork's child starts on, vm/mm/fork.c)
 * has the process killed, and the handler thread itself, started anew in
 * a host fork's child, would wait for its own service.  So setlocale()
 * and newlocale() — the calls that load locale data, which glibc caches
 * and setlocale may reuse later — run with malloc pointed at the host
 * caches (slab_malloc_host_only, the bracket a host fork uses): what they
 * allocate is host memory, never swapped, and a thread's start touches no
 * page of the mm.  Other threads' blocks made meanwhile are host blocks
 * too, which free() tells apart by address.  A host fork made by another
 * thread inside the bracket leaves its child with host caches for good
 * (the bracket is a count, and the thread that would close it is not
 * there): correct, only without small blocks in the mm.  libc's own
 * functions are found with dlsym(RTLD_NEXT), once.
 */
#include <dlfcn.h>
#include <locale.h>
#include <stdatomic.h>

#include "slab/kmalloc.h"
#include "vmmode/vmmode.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*any_fn)(void);

static any_fn next_fn(any_fn _Atomic *cache, const char *name)
{
    any_fn f = atomic_load_explicit(cache, memory_order_acquire);
    if (!f) {
        f = (any_fn)dlsym(RTLD_NEXT, name);
        atomic_store_explicit(cache, f, memory_order_release);
    }
    return f;
}

static any_fn _Atomic libc_setlocale, libc_newlocale;

EXPORT char *setlocale(int category, const char *locale)
{
    char *(*f)(int, const char *) =
        (char *(*)(int, const char *))next_fn(&libc_setlocale, "setlocale");
    if (!locale) /* a query: nothing is loaded */
        return f(category, locale);
    slab_malloc_host_only(1);
    char *r = f(category, locale);
    slab_malloc_host_only(0);
    return r;
}

EXPORT locale_t newlocale(int mask, const char *locale, locale_t base)
{
    locale_t (*f)(int, const char *, locale_t) =
        (locale_t(*)(int, const char *, locale_t))next_fn(&libc_newlocale,
                                                          "newlocale");
    slab_malloc_host_only(1);
    locale_t r = f(mask, locale, base);
    slab_malloc_host_only(0);
    return r;
}

/* libstdc++'s std::locale calls glibc's other name for it. */
EXPORT locale_t __newlocale(int mask, const char *locale, locale_t base)
{
    return newlocale(mask, locale, base);
}
