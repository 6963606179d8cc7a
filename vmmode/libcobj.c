/*
 * vmmode/libcobj.c — libc's own objects that must stay host memory: the
 * locale data every thread's start reads, and the FILEs and the NSS state
 * a host fork's child touches before any fork handler runs.
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
 * a host fork's child, would wait for its own service.
 *
 * glibc's fork(), in the child of a process with threads (the handler
 * thread is one), resets the lock of every FILE on its list
 * (fresetlockfiles) before it runs any pthread_atfork handler — before
 * kslab's child handler has mapped the window anew.  A FILE that fopen()
 * malloc'd in the mm is then read through the parent's mapping: a page
 * not present reads as zeros (its registration did not come along: a
 * NULL lock pointer, and the child dies) or faults with the mm's
 * mmap_sem held by the fork (the child hangs), and a present one is the
 * parent's frame, whose lock the child would write.
 *
 * So the calls that make these objects — setlocale() and newlocale()
 * (and __newlocale, libstdc++'s name), which load locale data that glibc
 * caches and setlocale may reuse later; fopen(), fdopen(), fmemopen(),
 * open_memstream(), fopencookie(), popen(), tmpfile() — run with malloc
 * pointed at the host caches (slab_malloc_host_only, the bracket a host
 * fork uses): what they allocate is host memory, never swapped, and
 * copied privately by a host fork.  A stream's buffer, allocated at its
 * first transfer, stays the mm's.  Other threads' blocks made meanwhile
 * are host blocks too, which free() tells apart by address.  A host fork
 * made by another thread inside the bracket leaves its child with host
 * caches for good (the bracket is a count, and the thread that would
 * close it is not there): correct, only without small blocks in the mm.
 * libc's own functions are found with dlsym(RTLD_NEXT), once.
 */
#include <dlfcn.h>
#include <grp.h>
#include <locale.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <wchar.h>
#include <stdatomic.h>

#include "slab/kmalloc.h"
#include "vmmode/vmmode.h"

#define EXPORT __attribute__((visibility("default")))

/* r = call, with malloc's small blocks on the host caches meanwhile. */
#define ON_HOST_CACHES(r, call)                                                \
    do {                                                                       \
        slab_malloc_host_only(1);                                              \
        r = call;                                                              \
        slab_malloc_host_only(0);                                              \
    } while (0)

static vmm_any_fn _Atomic libc_setlocale, libc_newlocale;

EXPORT char *setlocale(int category, const char *locale)
{
    char *(*f)(int, const char *) =
        (char *(*)(int, const char *))vmm_libc_fn(&libc_setlocale, "setlocale");
    if (!locale) /* a query: nothing is loaded */
        return f(category, locale);
    char *r;
    ON_HOST_CACHES(r, f(category, locale));
    return r;
}

EXPORT locale_t newlocale(int mask, const char *locale, locale_t base)
{
    locale_t (*f)(int, const char *, locale_t) =
        (locale_t(*)(int, const char *, locale_t))vmm_libc_fn(&libc_newlocale,
                                                              "newlocale");
    locale_t r;
    ON_HOST_CACHES(r, f(mask, locale, base));
    return r;
}

/* libstdc++'s std::locale calls glibc's other name for it. */
EXPORT locale_t __newlocale(int mask, const char *locale, locale_t base)
{
    return newlocale(mask, locale, base);
}

/* libc's name, called with the small blocks on the host caches. */
#define HOST_OBJ_CALL(ret, name, params, args)                                 \
    EXPORT ret name params                                                     \
    {                                                                          \
        static vmm_any_fn _Atomic next;                                        \
        ret(*f) params = (ret(*) params)vmm_libc_fn(&next, #name);             \
        ret r;                                                                 \
        ON_HOST_CACHES(r, f args);                                             \
        return r;                                                              \
    }

HOST_OBJ_CALL(FILE *, fopen, (const char *path, const char *mode), (path, mode))
HOST_OBJ_CALL(FILE *, fopen64, (const char *path, const char *mode),
              (path, mode))
HOST_OBJ_CALL(FILE *, fdopen, (int fd, const char *mode), (fd, mode))
HOST_OBJ_CALL(FILE *, fmemopen, (void *buf, size_t size, const char *mode),
              (buf, size, mode))
HOST_OBJ_CALL(FILE *, open_memstream, (char **ptr, size_t *size), (ptr, size))
HOST_OBJ_CALL(FILE *, open_wmemstream, (wchar_t * *ptr, size_t *size),
              (ptr, size))
HOST_OBJ_CALL(FILE *, fopencookie,
              (void *cookie, const char *mode, cookie_io_functions_t io),
              (cookie, mode, io))
HOST_OBJ_CALL(FILE *, popen, (const char *cmd, const char *mode), (cmd, mode))
HOST_OBJ_CALL(FILE *, tmpfile, (void), ())
HOST_OBJ_CALL(FILE *, tmpfile64, (void), ())

/*
 * The NSS state.  glibc's fork, in the child of a process with threads,
 * also writes the NSS database state (__nss_database_fork_subprocess:
 * its configuration copied back and its lock made anew) before any fork
 * handler runs, through the parent's mapping of the window: on a page
 * the parent has swapped out that store fills the parent's hole with a
 * page the parent then reads without a fault (the rest of that page's
 * blocks lost), on a present one it writes the parent's frame.  That
 * state is malloc'd once, by the first lookup of any database, and never
 * freed: so the lookups a program calls run with malloc pointed at the
 * host caches until one has returned (one load afterwards).  A first
 * lookup made inside libc itself (glob's or wordexp's `~user`,
 * getlogin) is not seen, and its state stays the mm's.
 */
static atomic_int nss_state_made;

#define NSS_FIRST_CALL(ret, name, params, args)                                \
    EXPORT ret name params                                                     \
    {                                                                          \
        static vmm_any_fn _Atomic next;                                        \
        ret(*f) params = (ret(*) params)vmm_libc_fn(&next, #name);             \
        if (atomic_load_explicit(&nss_state_made, memory_order_relaxed))       \
            return f args;                                                     \
        ret r;                                                                 \
        ON_HOST_CACHES(r, f args);                                             \
        atomic_store_explicit(&nss_state_made, 1, memory_order_relaxed);       \
        return r;                                                              \
    }

NSS_FIRST_CALL(struct passwd *, getpwnam, (const char *name), (name))
NSS_FIRST_CALL(struct passwd *, getpwuid, (uid_t uid), (uid))
NSS_FIRST_CALL(int, getpwnam_r,
               (const char *name, struct passwd *pw, char *buf, size_t len,
                struct passwd **res),
               (name, pw, buf, len, res))
NSS_FIRST_CALL(int, getpwuid_r,
               (uid_t uid, struct passwd *pw, char *buf, size_t len,
                struct passwd **res),
               (uid, pw, buf, len, res))
NSS_FIRST_CALL(struct passwd *, getpwent, (void), ())
NSS_FIRST_CALL(struct group *, getgrnam, (const char *name), (name))
NSS_FIRST_CALL(struct group *, getgrgid, (gid_t gid), (gid))
NSS_FIRST_CALL(int, getgrnam_r,
               (const char *name, struct group *gr, char *buf, size_t len,
                struct group **res),
               (name, gr, buf, len, res))
NSS_FIRST_CALL(int, getgrgid_r,
               (gid_t gid, struct group *gr, char *buf, size_t len,
                struct group **res),
               (gid, gr, buf, len, res))
NSS_FIRST_CALL(struct group *, getgrent, (void), ())
NSS_FIRST_CALL(int, getgrouplist,
               (const char *user, gid_t group, gid_t *groups, int *n),
               (user, group, groups, n))
NSS_FIRST_CALL(int, initgroups, (const char *user, gid_t group), (user, group))
NSS_FIRST_CALL(struct hostent *, gethostbyname, (const char *name), (name))
NSS_FIRST_CALL(struct hostent *, gethostbyname2, (const char *name, int af),
               (name, af))
NSS_FIRST_CALL(struct hostent *, gethostbyaddr,
               (const void *addr, socklen_t len, int type), (addr, len, type))
NSS_FIRST_CALL(int, getaddrinfo,
               (const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res),
               (node, service, hints, res))
NSS_FIRST_CALL(int, getnameinfo,
               (const struct sockaddr *sa, socklen_t salen, char *host,
                socklen_t hostlen, char *serv, socklen_t servlen, int flags),
               (sa, salen, host, hostlen, serv, servlen, flags))
NSS_FIRST_CALL(struct servent *, getservbyname,
               (const char *name, const char *proto), (name, proto))
NSS_FIRST_CALL(struct servent *, getservbyport, (int port, const char *proto),
               (port, proto))
NSS_FIRST_CALL(struct protoent *, getprotobyname, (const char *name), (name))
NSS_FIRST_CALL(struct protoent *, getprotobynumber, (int proto), (proto))
