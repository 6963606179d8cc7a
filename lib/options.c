/*
 * lib/options.c — the environment, read in one place (libumem's envvar.c
 * is the model): one table of every KSLAB_* option with its parser and its
 * documentation, read once as the first step of start-up (lib/init.c), so
 * the options are there before the page frames, the slab or the malloc
 * layer are set up, whether or not the interposer is linked.
 *
 * The reader uses neither malloc nor stdio nor getenv: under LD_PRELOAD
 * the dynamic loader and libc may allocate before libc has set `environ`,
 * and then the process's initial environment is read from
 * /proc/self/environ (through lib/host.c, lib/'s home for host calls).  An
 * unknown KSLAB_* variable or a malformed value gives exactly one warning line
 * and is ignored.  A set-user-id or set-group-id process (AT_SECURE) reads
 * none, as secure_getenv() would: KSLAB_STATS=/path must not let a caller pick
 * a file such a program writes.
 */
#include <limits.h>
#include <string.h>
#include <sys/auxv.h>

#include "lib/host.h"
#include "lib/options.h"
#include "lib/report.h"

extern char **environ;

struct kslab_options kslab_opt;

/* ---- the parsers ---- */

static int opt_stats(const char *v)
{
    size_t n = strlen(v);
    if (!strcmp(v, "1") || !strcmp(v, "stderr")) {
        kslab_opt.stats = 1;
        kslab_opt.stats_path[0] = 0;
    } else if (!strcmp(v, "0") || n == 0) {
        kslab_opt.stats = 0;
    } else if (v[0] == '/' && n < sizeof kslab_opt.stats_path) {
        memcpy(kslab_opt.stats_path, v, n + 1);
        kslab_opt.stats = 1;
    } else {
        return -1;
    }
    return 0;
}

/* A decimal number of n characters, at most max; -1 when malformed. */
static long opt_number(const char *v, size_t n, unsigned long max)
{
    unsigned long x = 0;
    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || x > max)
            return -1;
        x = x * 10 + (unsigned long)(v[i] - '0');
    }
    return x > max ? -1 : (long)x;
}

/* The word w (n characters) of KSLAB_DEBUG into flags/dbg/log. */
static int opt_debug_word(const char *w, size_t n, unsigned long *flags,
                          unsigned int *dbg, unsigned long *log)
{
#define IS(word) (n == sizeof(word) - 1 && !strncmp(w, word, n))
    if (IS("poison"))
        *flags |= KSLAB_DEBUG_POISON;
    else if (IS("redzone") || IS("red_zone"))
        *flags |= KSLAB_DEBUG_RED_ZONE;
    else if (IS("audit"))
        *dbg |= KSLAB_DBG_AUDIT;
    else if (IS("verify"))
        *dbg |= KSLAB_DBG_VERIFY;
    else if (IS("leaks"))
        *dbg |= KSLAB_DBG_LEAKS | KSLAB_DBG_AUDIT;
    else if (IS("log"))
        *dbg |= KSLAB_DBG_LOG;
    else if (n > 4 && !strncmp(w, "log=", 4)) {
        long x = opt_number(w + 4, n - 4, KSLAB_LOG_MAX);
        if (x < 1)
            return -1;
        *dbg |= KSLAB_DBG_LOG;
        *log = (unsigned long)x;
    } else if (n)
        return -1;
#undef IS
    return 0;
}

/* A comma-separated list of words; any unknown word rejects the value. */
static int opt_debug(const char *v)
{
    unsigned long flags = 0, log = KSLAB_LOG_DEFAULT;
    unsigned int dbg = 0;
    while (*v) {
        const char *end = strchr(v, ',');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (opt_debug_word(v, n, &flags, &dbg, &log))
            return -1;
        v += n + (end ? 1 : 0);
    }
    kslab_opt.debug = flags;
    kslab_opt.dbg = dbg;
    kslab_opt.log_entries = log;
    return 0;
}

/* 1 … 255. */
static int opt_leaks_exitcode(const char *v)
{
    long x = opt_number(v, strlen(v), 255);
    if (x < 1)
        return -1;
    kslab_opt.leaks_exitcode = (int)x;
    return 0;
}

static int opt_leaks_suppress(const char *v)
{
    size_t n = strlen(v);
    if (v[0] != '/' || n >= sizeof kslab_opt.leaks_suppress)
        return -1;
    memcpy(kslab_opt.leaks_suppress, v, n + 1);
    return 0;
}

/* A path: the report goes to path.PID.  Relative paths are taken as they
 * are (from the directory of the process at exit), as LeakSanitizer's
 * log_path. */
static int opt_leaks_log(const char *v)
{
    size_t n = strlen(v);
    if (!n || n >= sizeof kslab_opt.leaks_log)
        return -1;
    memcpy(kslab_opt.leaks_log, v, n + 1);
    return 0;
}

/* Mebibytes, decimal, at least 32 (the smallest direct map that holds
 * ZONE_DMA and the kmalloc caches) and at most 2^24 (16 TiB). */
static int opt_lowmem_mb(const char *v)
{
    unsigned long mb = 0;
    if (!*v)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || mb > (1UL << 24))
            return -1;
        mb = mb * 10 + (unsigned long)(*v - '0');
    }
    if (mb < 32 || mb > (1UL << 24))
        return -1;
    kslab_opt.lowmem_mb = mb;
    return 0;
}

/* Pages, decimal, 0 to 512, rounded down to a power of two; 0 and 1
 * (and "off") leave every fault its own page. */
static int opt_vm_fault_around(const char *v)
{
    long n = strcmp(v, "off") ? opt_number(v, strlen(v), 512) : 1;
    if (n < 0)
        return -1;
    while (n & (n - 1))
        n &= n - 1;
    kslab_opt.vm_fault_around = n ? (unsigned long)n : 1;
    return 0;
}

static int opt_vm_backend(const char *v)
{
    if (!strcmp(v, "auto"))
        kslab_opt.vm_backend = KSLAB_VM_BACKEND_AUTO;
    else if (!strcmp(v, "sigsegv"))
        kslab_opt.vm_backend = KSLAB_VM_BACKEND_SIGSEGV;
    else if (!strcmp(v, "uffd"))
        kslab_opt.vm_backend = KSLAB_VM_BACKEND_UFFD;
    else
        return -1;
    return 0;
}

/* A size in bytes with an optional K, M or G suffix (KiB, MiB, GiB), at
 * least min bytes and below 2^46; -1 when malformed. */
static int opt_size(const char *v, unsigned long min, unsigned long *out)
{
    unsigned long x = 0;
    size_t n = strlen(v);
    unsigned int shift = 0;
    if (n && (v[n - 1] | 0x20) == 'k')
        shift = 10;
    else if (n && (v[n - 1] | 0x20) == 'm')
        shift = 20;
    else if (n && (v[n - 1] | 0x20) == 'g')
        shift = 30;
    long d = opt_number(v, shift ? n - 1 : n, 1UL << 46);
    if (d < 0)
        return -1;
    x = (unsigned long)d << shift;
    if (x < min || x >= (1UL << 46))
        return -1;
    *out = x;
    return 0;
}

static int opt_vm_mem(const char *v)
{
    return opt_size(v, 1UL << 20, &kslab_opt.vm_mem);
}

static int opt_vm_swap(const char *v)
{
    return opt_size(v, 1UL << 20, &kslab_opt.vm_swap);
}

static int opt_vm_swap_dir(const char *v)
{
    size_t n = strlen(v);
    if (v[0] != '/' || n >= sizeof kslab_opt.vm_swap_dir)
        return -1;
    memcpy(kslab_opt.vm_swap_dir, v, n + 1);
    return 0;
}

/* An absolute path whose only % is %p (the pid). */
static int opt_vm_stats_dir(const char *v)
{
    size_t n = strlen(v);
    if (v[0] != '/' || n >= sizeof kslab_opt.vm_stats_dir - 32)
        return -1;
    for (const char *c = strchr(v, '%'); c; c = strchr(c + 2, '%'))
        if (c[1] != 'p')
            return -1;
    memcpy(kslab_opt.vm_stats_dir, v, n + 1);
    return 0;
}

/* Milliseconds, decimal, at most an hour; or "never" (ULONG_MAX: no
 * purge by time and no background thread). */
static int opt_decay_ms(const char *v)
{
    unsigned long ms = 0;
    if (!strcmp(v, "never")) {
        kslab_opt.decay_ms = ULONG_MAX;
        kslab_opt.decay_set = 1;
        return 0;
    }
    if (!*v)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || ms > 3600000UL)
            return -1;
        ms = ms * 10 + (unsigned long)(*v - '0');
    }
    if (ms > 3600000UL)
        return -1;
    kslab_opt.decay_ms = ms;
    kslab_opt.decay_set = 1;
    return 0;
}

/* 1 (the default) or 0. */
static int opt_magazines(const char *v)
{
    if (strcmp(v, "0") && strcmp(v, "1"))
        return -1;
    kslab_opt.no_magazines = v[0] == '0';
    return 0;
}

/* 1 or 0: vm_small 1 or -1 (0, unset, is on: vmmode/slabpages.c). */
static int opt_vm_small(const char *v)
{
    if (strcmp(v, "0") && strcmp(v, "1"))
        return -1;
    kslab_opt.vm_small = v[0] == '1' ? 1 : -1;
    return 0;
}

/* auto (the default), 1 or 0. */
static int opt_percpu(const char *v)
{
    if (!strcmp(v, "auto"))
        kslab_opt.percpu = KSLAB_PERCPU_AUTO;
    else if (!strcmp(v, "1"))
        kslab_opt.percpu = KSLAB_PERCPU_ON;
    else if (!strcmp(v, "0"))
        kslab_opt.percpu = KSLAB_PERCPU_OFF;
    else
        return -1;
    return 0;
}

/* glibc's parameters given by GLIBC_TUNABLES (bit p), which a MALLOC_*_
 * variable does not override; set while GLIBC_TUNABLES is parsed. */
static unsigned int glibc_from_tunables;
static int glibc_in_tunables;

/* glibc's parameters.  A number as glibc's tunables read it (decimal,
 * 0x hexadecimal or 0 octal), within [min, max]; anything else is ignored,
 * as glibc ignores it. */
static int glibc_number(const char *v, unsigned long min, unsigned long max,
                        enum kslab_glibc_param param)
{
    if (!glibc_in_tunables && (glibc_from_tunables & (1U << param)))
        return 0;
    unsigned long n = 0, base = 10;
    if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X') && v[2]) {
        base = 16;
        v += 2;
    } else if (v[0] == '0' && v[1]) {
        base = 8;
        v++;
    }
    if (!*v)
        return -1;
    for (; *v; v++) {
        unsigned long d;
        if (*v >= '0' && *v <= '9')
            d = (unsigned long)(*v - '0');
        else if (*v >= 'a' && *v <= 'f')
            d = (unsigned long)(*v - 'a' + 10);
        else if (*v >= 'A' && *v <= 'F')
            d = (unsigned long)(*v - 'A' + 10);
        else
            return -1;
        if (d >= base || n > (ULONG_MAX - d) / base)
            return -1;
        n = n * base + d;
    }
    if (n < min || n > max)
        return -1;
    kslab_opt.glibc[param] = n;
    kslab_opt.glibc_set |= 1U << param;
    if (glibc_in_tunables)
        glibc_from_tunables |= 1U << param;
    return 0;
}

static int opt_trim_threshold(const char *v)
{
    return glibc_number(v, 0, ULONG_MAX, KSLAB_GLIBC_TRIM_THRESHOLD);
}

static int opt_top_pad(const char *v)
{
    return glibc_number(v, 0, ULONG_MAX, KSLAB_GLIBC_TOP_PAD);
}

/* Any size, as glibc 2.36 takes it. */
static int opt_mmap_threshold(const char *v)
{
    return glibc_number(v, 0, ULONG_MAX, KSLAB_GLIBC_MMAP_THRESHOLD);
}

static int opt_mmap_max(const char *v)
{
    return glibc_number(v, 0, INT_MAX, KSLAB_GLIBC_MMAP_MAX);
}

static int opt_perturb(const char *v)
{
    return glibc_number(v, 0, 0xff, KSLAB_GLIBC_PERTURB);
}

static int opt_arena_max(const char *v)
{
    return glibc_number(v, 1, ULONG_MAX, KSLAB_GLIBC_ARENA_MAX);
}

static int opt_arena_test(const char *v)
{
    return glibc_number(v, 1, ULONG_MAX, KSLAB_GLIBC_ARENA_TEST);
}

/* The glibc.malloc.* tunables of GLIBC_TUNABLES ("name=value:name=value"),
 * by the parsers of the MALLOC_*_ rows; other tunables are glibc's. */
static const struct {
    const char *name;
    int (*parse)(const char *value);
} glibc_tunables[] = {
    {"glibc.malloc.trim_threshold", opt_trim_threshold},
    {"glibc.malloc.top_pad", opt_top_pad},
    {"glibc.malloc.mmap_threshold", opt_mmap_threshold},
    {"glibc.malloc.mmap_max", opt_mmap_max},
    {"glibc.malloc.perturb", opt_perturb},
    {"glibc.malloc.arena_max", opt_arena_max},
    {"glibc.malloc.arena_test", opt_arena_test},
};

static int opt_tunables(const char *v)
{
    glibc_in_tunables = 1;
    while (*v) {
        const char *end = strchr(v, ':');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        const char *eq = memchr(v, '=', n);
        char value[32];
        if (eq && (size_t)(v + n - eq - 1) < sizeof value) {
            size_t k = (size_t)(eq - v);
            memcpy(value, eq + 1, (size_t)(v + n - eq - 1));
            value[v + n - eq - 1] = 0;
            for (size_t i = 0;
                 i < sizeof glibc_tunables / sizeof glibc_tunables[0]; i++)
                if (strlen(glibc_tunables[i].name) == k &&
                    !strncmp(v, glibc_tunables[i].name, k))
                    glibc_tunables[i].parse(value);
        }
        v += n + (end ? 1 : 0);
    }
    glibc_in_tunables = 0;
    return 0;
}

/* ---- the table ---- */

const struct kslab_option kslab_option_table[] = {
    {"KSLAB_STATS", "1, 0 or /path",
     "at exit, slabinfo and the large-block totals: 1 to the stderr the "
     "process started with, /path "
     "appended to that file (one block per process, headed by its pid), "
     "0 off (the default)",
     opt_stats},
    {"KSLAB_DEBUG",
     "a comma-separated list of poison, redzone, audit, log or log=N, "
     "verify, leaks",
     "poison/redzone: SLAB_POISON/SLAB_RED_ZONE on the kmalloc and malloc "
     "caches; audit: allocating and freeing thread, time and stack of every "
     "block, printed with every corruption report; log=N: ring of the last "
     "N (4096) events (kslab_log_print); verify: cache validators at every "
     "slow path; leaks: audit and a leak report at exit (kslab_leak_check)",
     opt_debug},
    {"KSLAB_LEAKS_EXITCODE", "a number 1 to 255",
     "with KSLAB_DEBUG=leaks, a run that leaks exits with this status",
     opt_leaks_exitcode},
    {"KSLAB_LEAKS_SUPPRESS", "/path",
     "with KSLAB_DEBUG=leaks, a file of `leak:pattern' lines: leaks whose "
     "stack has a function or object containing pattern are not reported",
     opt_leaks_suppress},
    {"KSLAB_LEAKS_LOG", "path",
     "with KSLAB_DEBUG=leaks, the leak report goes to the file path.PID "
     "(made when there is something to report) instead of stderr",
     opt_leaks_log},
    {"KSLAB_LOWMEM_MB", "a number of MiB, 32 or more",
     "size of the low-memory (direct-map) reservation; default 64 GiB; under "
     "an address-space limit (ulimit -v) the most low memory may grow to, "
     "by 32 MiB sections reserved as needed",
     opt_lowmem_mb},
    {"KSLAB_DECAY_MS", "a number of milliseconds, at most 3600000, or never",
     "free memory (free frames, cached own mappings) goes back to the host "
     "once it has been free this long (while the program allocates; a "
     "quarter of it when it does not), from the allocator's slow paths and, "
     "once 8 MiB waits, a background thread; default 1000; never: nothing "
     "goes back by time and no thread is started; malloc_trim, "
     "kmem_cache_reap and kmem_cache_shrink give it back at once",
     opt_decay_ms},
    {"KSLAB_MAGAZINES", "1 or 0",
     "1 (the default): each cache keeps a depot of full and empty "
     "magazines between the threads' arrays and the slabs, so objects move "
     "between threads a magazine at a time; 0: arrays refill from and flush "
     "to the slabs, one object at a time under the cache lock (2.4)",
     opt_magazines},
    {"KSLAB_PERCPU", "auto, 1 or 0",
     "1: the arrays of free objects are per CPU (2.4's cpucache), popped and "
     "pushed inside restartable sequences, so memory held in arrays stays "
     "flat in the thread count; needs glibc's rseq registration (glibc 2.35 "
     "on, not with GLIBC_TUNABLES=glibc.pthread.rseq=0) and membarrier, and "
     "is never used in sanitizer builds; 0: per-thread arrays; auto (the "
     "default): per-thread arrays (per-CPU measured slower on one thread)",
     opt_percpu},
    {"KSLAB_VM_FAULT_AROUND", "a number of pages, 0 to 512, or off",
     "emulated address spaces: a write fault on private anonymous memory "
     "also maps the untouched pages around it, in the aligned window of "
     "this many pages (rounded down to a power of two), with one host call; "
     "0, 1 or off: one page a fault; default 16",
     opt_vm_fault_around},
    {"KSLAB_VM_BACKEND", "auto, uffd or sigsegv",
     "how emulated address spaces take their faults: uffd maps private "
     "anonymous 2 MiB ranges whole and takes faults through userfaultfd "
     "(no vm.max_map_count limit on scattered memory); sigsegv maps page by "
     "page; auto (the default) is uffd when the host allows userfaultfd, "
     "except in sanitizer builds",
     opt_vm_backend},
    {"KSLAB_VM_MEM", "a size: bytes, or a number with K, M or G; 1M or more",
     "libkslab-vm.so: the emulated physical memory (frames) of the "
     "process's address space; past it, pages are aged and swapped out; "
     "default: all of user memory (8 GiB), so that nothing swaps",
     opt_vm_mem},
    {"KSLAB_VM_SWAP", "a size: bytes, or a number with K, M or G; 1M or more",
     "libkslab-vm.so: the size of the emulated swap area, a sparse file "
     "unlinked as soon as it is open (exit and exec leave nothing); "
     "default 256M, at most 64 GiB (2.4's 24-bit swap offsets)",
     opt_vm_swap},
    {"KSLAB_VM_SWAP_DIR", "/path of a directory",
     "libkslab-vm.so: where the swap file is made; default $TMPDIR, else "
     "/tmp",
     opt_vm_swap_dir},
    {"KSLAB_VM_SMALL", "1 or 0",
     "libkslab-vm.so: 1 (the default): the malloc family's blocks of 64 "
     "KiB and less (slab objects) live in the emulated mm too, in slabs "
     "cut from it; 0: they are host memory (the host caches)",
     opt_vm_small},
    {"KSLAB_VM_STATS_DIR", "/path of a directory; %p is the pid",
     "libkslab-vm.so: the mm's maps, meminfo and vmstat, as files of this "
     "directory (made if missing) rewritten every second and at exit; a "
     "host fork's child writes only when the path has %p",
     opt_vm_stats_dir},
    {"MALLOC_TRIM_THRESHOLD_", "a number of bytes",
     "as mallopt(M_TRIM_THRESHOLD): dirty free memory a zone (and a "
     "thread's cache of large blocks) keeps before the oldest goes back",
     opt_trim_threshold},
    {"MALLOC_TOP_PAD_", "a number of bytes",
     "as mallopt(M_TOP_PAD): accepted, no effect", opt_top_pad},
    {"MALLOC_MMAP_THRESHOLD_", "a number of bytes",
     "as mallopt(M_MMAP_THRESHOLD): blocks from this size up are own "
     "mappings (any size, as glibc 2.36 takes it)",
     opt_mmap_threshold},
    {"MALLOC_MMAP_MAX_", "a number, at most 2147483647",
     "as mallopt(M_MMAP_MAX): at most this many own mappings live; further "
     "big blocks come from low memory",
     opt_mmap_max},
    {"MALLOC_PERTURB_", "a number, 0 to 255",
     "as mallopt(M_PERTURB): blocks are filled with ~value when handed out "
     "and value when freed",
     opt_perturb},
    {"MALLOC_ARENA_MAX", "a number, 1 or more",
     "as mallopt(M_ARENA_MAX): accepted, no effect", opt_arena_max},
    {"MALLOC_ARENA_TEST", "a number, 1 or more",
     "as mallopt(M_ARENA_TEST): accepted, no effect", opt_arena_test},
    {"GLIBC_TUNABLES", "glibc.malloc.NAME=value:...",
     "glibc.malloc.trim_threshold, top_pad, mmap_threshold, mmap_max, "
     "perturb, arena_max and arena_test, as the MALLOC_ variables (and over "
     "them); other tunables are left to glibc",
     opt_tunables},
};

const size_t kslab_nr_options =
    sizeof kslab_option_table / sizeof kslab_option_table[0];

/* ---- the reader ---- */

static void warn_unknown(const char *e, size_t namelen)
{
    char known[256];
    size_t len = 0;
    for (size_t i = 0; i < kslab_nr_options; i++)
        if (!strncmp(kslab_option_table[i].name, "KSLAB_", 6))
            len += (size_t)kslab_snprintf(
                known + (len < sizeof known ? len : sizeof known - 1),
                len < sizeof known ? sizeof known - len : 1, "%s%s",
                i ? ", " : "", kslab_option_table[i].name);
    char name[64];
    size_t k = namelen < sizeof name - 1 ? namelen : sizeof name - 1;
    memcpy(name, e, k);
    name[k] = 0;
    kslab_warn("unknown option %s ignored (known: %s)", name, known);
}

/* One "NAME=value" entry of the environment.  KSLAB_* names are ours: an
 * unknown one or a malformed value is warned about.  glibc's names
 * (MALLOC_*, GLIBC_TUNABLES) are glibc's too: the rest of them, and
 * values glibc would ignore, are ignored silently. */
static void opt_entry(const char *e)
{
    int ours = !strncmp(e, "KSLAB_", 6);
    if (!ours && strncmp(e, "MALLOC_", 7) && strncmp(e, "GLIBC_TUNABLES=", 15))
        return;
    const char *eq = strchr(e, '=');
    size_t n = eq ? (size_t)(eq - e) : strlen(e);
    for (size_t i = 0; i < kslab_nr_options; i++) {
        const struct kslab_option *o = &kslab_option_table[i];
        if (strlen(o->name) != n || strncmp(e, o->name, n))
            continue;
        if ((!eq || o->parse(eq + 1)) && ours)
            kslab_warn("%s: expected %s; ignored", e, o->values);
        return;
    }
    if (ours)
        warn_unknown(e, n);
}

static void opt_proc_entry(const char *e, void *arg)
{
    (void)arg;
    opt_entry(e);
}

/* The initial environment from /proc (lib/host.c), entry by entry;
 * entries longer than the buffer are not ours (they are skipped). */
static void opt_read_proc(void)
{
    static char buf[PATH_MAX + 64];
    kslab_host_read_entries("/proc/self/environ", 0, buf, sizeof buf,
                            opt_proc_entry, NULL);
}

void kslab_options_read(void)
{
    if (getauxval(AT_SECURE))
        return;
    if (environ) {
        for (char **e = environ; *e; e++)
            opt_entry(*e);
        return;
    }
    opt_read_proc();
}
