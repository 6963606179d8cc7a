/*
 * interpose/init.c — the malloc layer's part of start-up (the last level of
 * lib/init.c's order): the dynamic loader's image, the statistics stream
 * and at exit the statistics; its fork hook (the quarantine of the tool
 * hooks, the large blocks).
 *
 * Start-up runs from this file's constructor (before main) or at the first
 * allocation, whichever comes first — with LD_PRELOAD the dynamic loader
 * and libc may allocate before any constructor runs.  The options
 * (KSLAB_STATS, KSLAB_DEBUG, …) are read by start-up itself
 * (lib/options.c), and the fork protocol is the core's (lib/fork.c).
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "interpose/large.h"
#include "interpose/tool.h"
#include "lib/fork.h"
#include "lib/host.h"
#include "lib/init.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/kmalloc.h"
#include "vm/frames/os.h"

/* The loader's image [ldso_lo, ldso_hi): see ip_pointer_from_loader(). */
static uintptr_t ldso_lo, ldso_hi;

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

/* ---- start-up ---- */

/* The fork hook, level KSLAB_FORK_IP (the order is at the top of
 * lib/fork.c): the quarantine's lock (tool.c), then the large blocks'
 * (the thread caches, the huge blocks). */
static void ip_fork_prepare(void)
{
    ip_tool_fork_prepare();
    ip_large_fork_prepare();
}

static void ip_fork_parent(void)
{
    ip_large_fork_parent();
    ip_tool_fork_parent();
}

static void ip_fork_child(void)
{
    ip_large_fork_child();
    ip_tool_fork_child();
}

static const struct kslab_fork_hook ip_fork_hook = {
    ip_fork_prepare, ip_fork_parent, ip_fork_child};

/* Level KSLAB_INIT_IP: the slab and the fork protocol are up. */
static void ip_init(void)
{
    ldso_find();
    ip_glibc_options();
    ip_tool_debug_init();
    ip_tool_percpu_init();
    kslab_fork_register(KSLAB_FORK_IP, &ip_fork_hook);
}
KSLAB_INITCALL(KSLAB_INIT_IP, ip_init);

__attribute__((constructor(101))) static void ip_constructor(void)
{
    kslab_init();
}

/* ---- statistics ---- */

static void (*_Atomic stats_hook)(FILE *out);

void ip_stats_set_hook(void (*fn)(FILE *out))
{
    atomic_store_explicit(&stats_hook, fn, memory_order_release);
}

KSLAB_API void kslab_stats_print(FILE *out)
{
    if (!out)
        return;
    struct ip_large_stats s;
    kmem_slabinfo(out);
    ip_large_get_stats(&s);
    fprintf(out,
            "large: %lu allocated, %lu freed; buddy blocks %lu (%lu pages); "
            "own mappings %lu (%lu bytes); cached mappings %lu (%lu bytes); "
            "unmapped %lu bytes; realloc in place %lu, moved %lu; "
            "mappings reused %lu, gathered %lu\n",
            s.nr_alloc, s.nr_free, s.live_blocks, s.live_pages, s.huge_blocks,
            s.huge_bytes, s.huge_cached, s.huge_cached_bytes,
            s.huge_unmapped_bytes, s.grow_in_place, s.moved, s.huge_cache_hits,
            s.huge_gathered);
    fprintf(out, "lowmem: %lu MiB reserved, %lu MiB committed\n",
            vm_lowmem.reserved_pages >> (20 - PAGE_SHIFT),
            (unsigned long)(atomic_load(&vm_lowmem.committed_pages) -
                            atomic_load(&vm_lowmem.absent_pages)) >>
                (20 - PAGE_SHIFT));
    void (*hook)(FILE *) =
        atomic_load_explicit(&stats_hook, memory_order_acquire);
    if (hook)
        hook(out);
}

/* The stream for the statistics: the file of KSLAB_STATS=/path (append),
 * else the stderr the process started with (NULL when it is gone). */
static FILE *stats_stream(void)
{
    if (kslab_opt.stats_path[0]) {
        FILE *f = kslab_host_report_stream(kslab_opt.stats_path, -1);
        if (!f)
            kslab_warn("KSLAB_STATS: cannot open %s (errno %d)",
                       kslab_opt.stats_path, errno);
        return f;
    }
    /* the stderr of start-up (lib/report.c): coreutils close stderr in an
     * atexit handler, before this destructor */
    return kslab_host_report_stream(NULL, kslab_stderr_fd());
}

/* At exit (after main's destructors: a preloaded library is finalised
 * last).  A file is opened for append, so every process of a forking
 * program adds its own block. */
__attribute__((destructor)) static void ip_stats_at_exit(void)
{
    if (!kslab_opt.stats)
        return;
    int saved = errno;
    FILE *f = stats_stream();
    if (f) {
        fprintf(f, "kslab: statistics of pid %d\n", vm_os_getpid());
        kslab_stats_print(f);
        fclose(f);
    }
    errno = saved;
}
