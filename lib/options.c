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
 * /proc/self/environ.  An unknown KSLAB_* variable or a malformed value
 * gives exactly one warning line and is ignored.  A set-user-id or
 * set-group-id process (AT_SECURE) reads none, as secure_getenv() would:
 * KSLAB_STATS=/path must not let a caller pick a file such a program
 * writes.
 */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <kslab/slab.h>

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

/* A comma-separated list of words; any unknown word rejects the value. */
static int opt_debug(const char *v)
{
    unsigned long flags = 0;
    while (*v) {
        const char *end = strchr(v, ',');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n == 6 && !strncmp(v, "poison", 6))
            flags |= SLAB_POISON;
        else if ((n == 7 && !strncmp(v, "redzone", 7)) ||
                 (n == 8 && !strncmp(v, "red_zone", 8)))
            flags |= SLAB_RED_ZONE;
        else if (n)
            return -1;
        v += n + (end ? 1 : 0);
    }
    kslab_opt.debug = flags;
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

/* ---- the table ---- */

const struct kslab_option kslab_option_table[] = {
    {"KSLAB_STATS", "1, 0 or /path",
     "at exit, slabinfo and the large-block totals: 1 to stderr, /path "
     "appended to that file (one block per process, headed by its pid), "
     "0 off (the default)",
     opt_stats},
    {"KSLAB_DEBUG", "poison, redzone or poison,redzone",
     "SLAB_POISON and/or SLAB_RED_ZONE on the kmalloc and malloc caches "
     "(from the start: set before the caches are made)",
     opt_debug},
    {"KSLAB_LOWMEM_MB", "a number of MiB, 32 or more",
     "size of the low-memory (direct-map) reservation; default 64 GiB, and "
     "at most half of an address-space limit (ulimit -v)",
     opt_lowmem_mb},
    {"KSLAB_DECAY_MS", "a number of milliseconds, at most 3600000, or never",
     "free memory (free frames, cached own mappings) goes back to the host "
     "once it has been free this long (while the program allocates; at once "
     "when it does not), from a background thread; default 1000; never: "
     "only malloc_trim gives it back and no thread is started",
     opt_decay_ms},
};

const size_t kslab_nr_options =
    sizeof kslab_option_table / sizeof kslab_option_table[0];

/* ---- the reader ---- */

static void warn_unknown(const char *e, size_t namelen)
{
    char known[256];
    size_t len = 0;
    for (size_t i = 0; i < kslab_nr_options; i++)
        len += (size_t)kslab_snprintf(
            known + (len < sizeof known ? len : sizeof known - 1),
            len < sizeof known ? sizeof known - len : 1, "%s%s", i ? ", " : "",
            kslab_option_table[i].name);
    char name[64];
    size_t k = namelen < sizeof name - 1 ? namelen : sizeof name - 1;
    memcpy(name, e, k);
    name[k] = 0;
    kslab_warn("unknown option %s ignored (known: %s)", name, known);
}

/* One "NAME=value" entry of the environment. */
static void opt_entry(const char *e)
{
    if (strncmp(e, "KSLAB_", 6))
        return;
    const char *eq = strchr(e, '=');
    size_t n = eq ? (size_t)(eq - e) : strlen(e);
    for (size_t i = 0; i < kslab_nr_options; i++) {
        const struct kslab_option *o = &kslab_option_table[i];
        if (strlen(o->name) != n || strncmp(e, o->name, n))
            continue;
        if (!eq || o->parse(eq + 1))
            kslab_warn("%s: expected %s; ignored", e, o->values);
        return;
    }
    warn_unknown(e, n);
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
