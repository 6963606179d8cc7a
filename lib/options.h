/*
 * lib/options.h — kslab's options: one table (lib/options.c) of every
 * KSLAB_* environment variable, read once by the start-up code (the first
 * step of lib/init.c's order) into kslab_opt, which every layer reads.
 * A new option is one row of the table, one field here and one row of
 * interpose/README.md's options table.
 */
#ifndef KSLAB_LIB_OPTIONS_H
#define KSLAB_LIB_OPTIONS_H

#include <limits.h>
#include <stddef.h>

/* glibc's malloc parameters, read from its MALLOC_*_ variables and its
 * glibc.malloc.* tunables (GLIBC_TUNABLES) and applied as mallopt() would
 * (interpose/extras.c). */
enum kslab_glibc_param {
    KSLAB_GLIBC_TRIM_THRESHOLD, /* M_TRIM_THRESHOLD */
    KSLAB_GLIBC_TOP_PAD,        /* M_TOP_PAD */
    KSLAB_GLIBC_MMAP_THRESHOLD, /* M_MMAP_THRESHOLD */
    KSLAB_GLIBC_MMAP_MAX,       /* M_MMAP_MAX */
    KSLAB_GLIBC_PERTURB,        /* M_PERTURB */
    KSLAB_GLIBC_ARENA_MAX,      /* M_ARENA_MAX */
    KSLAB_GLIBC_ARENA_TEST,     /* M_ARENA_TEST */
    KSLAB_GLIBC_NR
};

/* The options, as read at start.  Written only while start-up reads the
 * environment (before any layer is set up); read-only after. */
struct kslab_options {
    int stats;                 /* KSLAB_STATS: statistics at exit */
    char stats_path[PATH_MAX]; /*   to this file (append); "" = stderr */
    unsigned long debug;       /* KSLAB_DEBUG: KSLAB_DEBUG_POISON, _RED_ZONE */
    unsigned int dbg;          /* KSLAB_DEBUG: KSLAB_DBG_* (slab/debug.h) */
    unsigned long log_entries; /*   log=N: events the ring keeps */
    int leaks_exitcode;        /* KSLAB_LEAKS_EXITCODE: 0 = exit unchanged */
    char leaks_suppress[PATH_MAX]; /* KSLAB_LEAKS_SUPPRESS: "" = none */
    char leaks_log[PATH_MAX - 16]; /* KSLAB_LEAKS_LOG: "" = stderr */
    unsigned long lowmem_mb;       /* KSLAB_LOWMEM_MB: 0 = the default size */
    unsigned long decay_ms;        /* KSLAB_DECAY_MS, when decay_set */
    int decay_set;
    int vm_backend;   /* KSLAB_VM_BACKEND: KSLAB_VM_BACKEND_* */
    int no_magazines; /* KSLAB_MAGAZINES=0: no depot between arrays and slabs */
    int percpu;       /* KSLAB_PERCPU: KSLAB_PERCPU_* */
    unsigned long vm_fault_around; /* KSLAB_VM_FAULT_AROUND: pages a
                                    * fault maps; 1 = off, 0 = default */
    unsigned long vm_mem;          /* KSLAB_VM_MEM: bytes; 0 = the default */
    unsigned long vm_swap;         /* KSLAB_VM_SWAP: bytes; 0 = the default */
    int vm_small; /* KSLAB_VM_SMALL=1: small blocks in the mm too */
    char vm_swap_dir[PATH_MAX]; /* KSLAB_VM_SWAP_DIR: "" = $TMPDIR, /tmp */
    char vm_stats_dir[PATH_MAX - 64];    /* KSLAB_VM_STATS_DIR: "" = none */
    unsigned long glibc[KSLAB_GLIBC_NR]; /* glibc's parameters, */
    unsigned int glibc_set;              /*   bit p: glibc[p] was given */
};

/* kslab_opt.percpu: the arrays of free objects (slab/percpu.c). */
#define KSLAB_PERCPU_AUTO 0 /* the measured default where the host allows */
#define KSLAB_PERCPU_ON 1   /* per CPU, where the host allows */
#define KSLAB_PERCPU_OFF 2  /* per thread */

/* kslab_opt.vm_backend: how emulated address spaces take their faults
 * (vm/mm/uffd.c). */
#define KSLAB_VM_BACKEND_AUTO 0    /* userfaultfd when the host allows it */
#define KSLAB_VM_BACKEND_SIGSEGV 1 /* SIGSEGV only */
#define KSLAB_VM_BACKEND_UFFD 2    /* userfaultfd, sanitizer builds too */

/* Bits of kslab_opt.debug (KSLAB_DEBUG words): the cache flags the slab
 * gives the kmalloc and malloc caches (slab/kmalloc.c turns them into
 * SLAB_POISON and SLAB_RED_ZONE; lib/ knows no flag of a layer above). */
#define KSLAB_DEBUG_POISON 0x1UL   /* poison */
#define KSLAB_DEBUG_RED_ZONE 0x2UL /* redzone */

/* Bits of kslab_opt.dbg (KSLAB_DEBUG words). */
#define KSLAB_DBG_AUDIT 0x1u  /* audit: who allocated and freed each block */
#define KSLAB_DBG_LOG 0x2u    /* log[=N]: the ring of the last N events */
#define KSLAB_DBG_VERIFY 0x4u /* verify: validators at every slow path */
#define KSLAB_DBG_LEAKS 0x8u  /* leaks: audit + leak search at exit */
#define KSLAB_DBG_TRACK (KSLAB_DBG_AUDIT | KSLAB_DBG_LOG | KSLAB_DBG_LEAKS)
#define KSLAB_LOG_DEFAULT 4096UL
#define KSLAB_LOG_MAX (1UL << 22)

extern struct kslab_options kslab_opt;

/* One row of the table.  parse() returns 0 when it took the value, -1
 * when the value is malformed (the reader then warns once, for a KSLAB_*
 * option; a glibc one is ignored silently, as glibc does; kslab_opt is
 * left as it was). */
struct kslab_option {
    const char *name;   /* "KSLAB_STATS" */
    const char *values; /* what it accepts, as the README shows it */
    const char *doc;    /* what it does, one line */
    int (*parse)(const char *value);
};

extern const struct kslab_option kslab_option_table[];
extern const size_t kslab_nr_options;

/* Reads the environment into kslab_opt: `environ`, or the process's
 * initial environment from /proc/self/environ when libc has not set
 * environ yet; nothing in a set-user-id process (AT_SECURE).  No malloc,
 * no stdio, no getenv.  Called once, by start-up. */
void kslab_options_read(void);

#endif /* KSLAB_LIB_OPTIONS_H */
