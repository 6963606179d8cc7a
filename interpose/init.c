/*
 * interpose/init.c — start-up of the interposer: the options, the fork
 * handlers, the dynamic loader's image, and the statistics at exit.
 *
 * ip_init() runs once, either as a constructor (before main) or at the first
 * allocation, whichever comes first — with LD_PRELOAD the dynamic loader and
 * libc may allocate before any constructor runs.  ip_started is set first,
 * so an allocation made while ip_init() is running (pthread_atfork may
 * allocate) goes straight to the slab without recursion.
 *
 * Options are one table, read from the environment once, with neither
 * malloc nor stdio nor getenv: `environ` when libc has set it, else the
 * process's initial environment from /proc/self/environ (the loader may
 * allocate before libc has set environ).  An unknown or malformed value
 * gives one warning line and is ignored.  A set-user-id or set-group-id
 * process (AT_SECURE) reads none, as secure_getenv() would.
 *
 *   KSLAB_STATS=1 | 0 | /path   slabinfo + large-block totals at exit, to
 *                               stderr or appended to /path
 *   KSLAB_DEBUG=poison,redzone  SLAB_POISON / SLAB_RED_ZONE for kmalloc
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "slab/kmalloc.h"
#include "interpose/large.h"

extern char **environ;

_Atomic int ip_started;

/* The options, as read at start. */
static struct {
    int stats;                 /* print statistics at exit */
    char stats_path[PATH_MAX]; /* "" = stderr */
    unsigned long debug;       /* SLAB_POISON | SLAB_RED_ZONE */
} ip_opt;

/* KSLAB_STATS=1: a duplicate of stderr taken at start (programs such as
 * coreutils close stderr in an atexit handler, before our destructor), and
 * its identity, so a reused descriptor number is never written to. */
static int stats_fd = -1;
static struct stat stats_fd_st;

/* The loader's image [ldso_lo, ldso_hi): see ip_pointer_from_loader(). */
static uintptr_t ldso_lo, ldso_hi;

/* ---- options ---- */

static void opt_stats(const char *v)
{
    size_t n = strlen(v);
    if (!strcmp(v, "1") || !strcmp(v, "stderr")) {
        ip_opt.stats = 1;
    } else if (!strcmp(v, "0") || n == 0) {
        ip_opt.stats = 0;
    } else if (v[0] == '/' && n < sizeof ip_opt.stats_path) {
        memcpy(ip_opt.stats_path, v, n + 1);
        ip_opt.stats = 1;
    } else {
        kslab_warn("KSLAB_STATS=%s: expected 1, 0 or an absolute path; ignored",
                   v);
    }
}

static void opt_debug(const char *v)
{
    unsigned long flags = 0;
    while (*v) {
        const char *end = strchr(v, ',');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n == 6 && !strncmp(v, "poison", 6)) {
            flags |= SLAB_POISON;
        } else if ((n == 7 && !strncmp(v, "redzone", 7)) ||
                   (n == 8 && !strncmp(v, "red_zone", 8))) {
            flags |= SLAB_RED_ZONE;
        } else if (n) {
            char word[64];
            size_t k = n < sizeof word - 1 ? n : sizeof word - 1;
            memcpy(word, v, k);
            word[k] = 0;
            kslab_warn("KSLAB_DEBUG: unknown option '%s' ignored (known: "
                       "poison, redzone)",
                       word);
        }
        v += n + (end ? 1 : 0);
    }
    ip_opt.debug = flags;
}

static const struct {
    const char *name; /* with the '=' */
    void (*parse)(const char *value);
} opt_table[] = {
    {"KSLAB_STATS=", opt_stats},
    {"KSLAB_DEBUG=", opt_debug},
};

#define NR_OPTS (sizeof opt_table / sizeof opt_table[0])

/* One "NAME=value" entry of the environment. */
static void opt_entry(const char *e)
{
    if (strncmp(e, "KSLAB_", 6))
        return;
    for (size_t i = 0; i < NR_OPTS; i++) {
        size_t n = strlen(opt_table[i].name);
        if (!strncmp(e, opt_table[i].name, n)) {
            opt_table[i].parse(e + n);
            return;
        }
    }
    const char *eq = strchr(e, '=');
    char name[64];
    size_t k = eq ? (size_t)(eq - e) : strlen(e);
    if (k > sizeof name - 1)
        k = sizeof name - 1;
    memcpy(name, e, k);
    name[k] = 0;
    kslab_warn("unknown option %s ignored (known: KSLAB_STATS, KSLAB_DEBUG)",
               name);
}

/* The initial environment from /proc, entry by entry; entries longer than
 * the buffer are not ours (they are skipped). */
static void opt_read_proc(void)
{
    static char buf[PATH_MAX + 64];
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t len = 0;
    int skipping = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < len; i++) {
            if (buf[i])
                continue;
            if (!skipping)
                opt_entry(buf + start);
            skipping = 0;
            start = i + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (len == sizeof buf - 1) { /* an over-long entry */
            skipping = 1;
            len = 0;
        }
    }
    close(fd);
}

static void opt_read(void)
{
    /* A set-user-id program must not let its caller pick a file to write
     * (what secure_getenv() would refuse): no options there. */
    if (getauxval(AT_SECURE))
        return;
    if (environ) {
        for (char **e = environ; *e; e++)
            opt_entry(*e);
        return;
    }
    opt_read_proc();
}

/* ---- the loader's image ---- */

/*
 * Before libc is relocated, ld.so allocates with its own minimal malloc,
 * inside its image and the page after; glibc never frees those blocks, but
 * if it ever did, the pointer would not be ours and not misuse either.  The
 * image's extent comes from its program headers (AT_BASE); no call that
 * could allocate is made.
 */
static void ldso_find(void)
{
    uintptr_t base = getauxval(AT_BASE);
    if (!base)
        return;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG))
        return;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
    uintptr_t hi = 0;
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr + ph[i].p_memsz > hi)
            hi = ph[i].p_vaddr + ph[i].p_memsz;
    ldso_lo = base;
    ldso_hi = PAGE_ALIGN(base + hi) + PAGE_SIZE;
}

int ip_pointer_from_loader(const void *p)
{
    return (uintptr_t)p >= ldso_lo && (uintptr_t)p < ldso_hi;
}

/* ---- fork ---- */

/*
 * Every allocator lock is taken before fork and released after it, in the
 * order the allocator nests them (large, then slab, which takes the
 * page layer's), so the child of
 * a multi-threaded parent finds none of them held by a thread that does not
 * exist in it.
 */
static void ip_fork_prepare(void)
{
    vm_large_fork_prepare();
    slab_fork_prepare(); /* takes the page layer's locks too */
}

static void ip_fork_parent(void)
{
    slab_fork_parent();
    vm_large_fork_parent();
}

static void ip_fork_child(void)
{
    slab_fork_child();
    vm_large_fork_child();
}

/* ---- start-up ---- */

void ip_init(void)
{
    if (atomic_exchange(&ip_started, 1))
        return;
    ldso_find();
    opt_read();
    if (ip_opt.debug) {
        int r = slab_set_kmalloc_flags(ip_opt.debug);
        if (r)
            kslab_warn("KSLAB_DEBUG: kmalloc caches already in use (%d); "
                       "ignored",
                       r);
    }
    if (ip_opt.stats && !ip_opt.stats_path[0]) {
        stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
        if (stats_fd >= 0 && fstat(stats_fd, &stats_fd_st) != 0) {
            close(stats_fd);
            stats_fd = -1;
        }
    }
    pthread_atfork(ip_fork_prepare, ip_fork_parent, ip_fork_child);
}

__attribute__((constructor(101))) static void ip_constructor(void)
{
    ip_init();
}

/* ---- statistics ---- */

KSLAB_API void kslab_stats_print(FILE *out)
{
    struct vm_large_stats s;
    kmem_slabinfo(out);
    vm_large_get_stats(&s);
    fprintf(out,
            "large: %lu allocated, %lu freed; buddy blocks %lu (%lu pages); "
            "own mappings %lu (%lu bytes); cached mappings %lu (%lu bytes); "
            "unmapped %lu bytes; realloc in place %lu, moved %lu\n",
            s.nr_alloc, s.nr_free, s.live_blocks, s.live_pages, s.huge_blocks,
            s.huge_bytes, s.huge_cached, s.huge_cached_bytes,
            s.huge_unmapped_bytes, s.grow_in_place, s.moved);
}

/* At exit (after main's destructors: a preloaded library is finalised
 * last).  A file is opened for append, so every process of a forking
 * program adds its own block. */
/* The stream for the statistics: the file of KSLAB_STATS=/path (append),
 * else the duplicate of stderr if it is still the same file, else stderr. */
static FILE *stats_stream(void)
{
    if (ip_opt.stats_path[0]) {
        FILE *f = fopen(ip_opt.stats_path, "a");
        if (!f)
            kslab_warn("KSLAB_STATS: cannot open %s (errno %d)",
                       ip_opt.stats_path, errno);
        return f;
    }
    struct stat st;
    if (stats_fd >= 0 && fstat(stats_fd, &st) == 0 &&
        st.st_dev == stats_fd_st.st_dev && st.st_ino == stats_fd_st.st_ino) {
        FILE *f = fdopen(stats_fd, "w");
        if (f) {
            stats_fd = -1;
            return f;
        }
    }
    return stderr;
}

/* At exit (after main's destructors: a preloaded library is finalised
 * last).  A file is opened for append, so every process of a forking
 * program adds its own block. */
__attribute__((destructor)) static void ip_stats_at_exit(void)
{
    if (!ip_opt.stats)
        return;
    int saved = errno;
    FILE *f = stats_stream();
    if (f) {
        fprintf(f, "kslab: statistics of pid %d\n", (int)getpid());
        kslab_stats_print(f);
        if (f == stderr)
            fflush(f);
        else
            fclose(f);
    }
    errno = saved;
}
