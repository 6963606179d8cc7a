/*
 * slab/debug_internal.h — what the files of KSLAB_DEBUG share (the
 * switches and the hooks the other files call are in slab/debug.h):
 *
 *   slab/audit.c  the audit records, the hooks, the report hook, start-up
 *   slab/log.c    the ring of the last events (KSLAB_DEBUG=log)
 *   slab/stack.c  the unwinder, taking and printing stacks, report lines
 *   slab/stop.c   stopping the other threads for the leak search
 *   slab/leaks.c  the leak search, and the memory it does not scan
 *
 * Locking: an audit stripe lock (slab_audit_lock) is a leaf, taken after
 * any cache lock; under it only the record cache's own lock is taken.
 * Nothing here is on a fast path.
 */
#ifndef KSLAB_SLAB_DEBUG_INTERNAL_H
#define KSLAB_SLAB_DEBUG_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "slab/debug.h"

#define AUDIT_DEPTH 16
#define AUDIT_BUCKETS (1UL << 20)
#define AUDIT_LOCKS 256

/* ---- audit records (slab/audit.c) ---- */

enum { AUDIT_ALLOCATED = 1, AUDIT_FREED = 2 };

/* One block address: the last allocation there and the free after it. */
struct audit_rec {
    struct audit_rec *next; /* hash chain */
    uintptr_t addr;
    size_t size;  /* usable: the block's extent */
    size_t asked; /* what the program asked for */
    int state;
    int alloc_tid, free_tid;
    unsigned char alloc_depth, free_depth;
    uint64_t alloc_ns, free_ns;
    void *alloc_stack[AUDIT_DEPTH];
    void *free_stack[AUDIT_DEPTH];
};

/* The hash of records (NULL unless audit is on), AUDIT_BUCKETS chains,
 * chain b under slab_audit_lock(b). */
extern struct audit_rec **slab_audit_hash;
extern pthread_mutex_t slab_audit_locks[AUDIT_LOCKS];

static inline size_t slab_audit_bucket(uintptr_t addr)
{
    return (size_t)((addr >> 4) * 0x9E3779B97F4A7C15ULL >> 44) &
           (AUDIT_BUCKETS - 1);
}

static inline pthread_mutex_t *slab_audit_lock(size_t b)
{
    return &slab_audit_locks[b & (AUDIT_LOCKS - 1)];
}

/* Record of addr in chain b or NULL; its stripe lock held. */
static inline struct audit_rec *__slab_audit_find(size_t b, uintptr_t addr)
{
    for (struct audit_rec *r = slab_audit_hash[b]; r; r = r->next)
        if (r->addr == addr)
            return r;
    return NULL;
}

/* ---- the log (slab/log.c) ---- */

enum { LOG_ALLOC = 1, LOG_FREE = 2 };

/* Makes the ring of kslab_opt.log_entries events (start-up). */
void slab_log_init(void);
/* Logs one event, unless the log is off or kslab_log_print() is running
 * in this thread. */
/* In a fork child: lets the slots the parent's threads were writing be
 * taken over (log.c). */
void slab_log_fork_child(void);
void slab_log_event(int op, uintptr_t addr, size_t size, uint64_t ns, int tid,
                    void *const *stack, unsigned int depth);
/* The ring's events for blocks overlapping [lo, hi), oldest first
 * (nothing when the log is off). */
void slab_log_print_for(int fd, FILE *f, uintptr_t lo, uintptr_t hi);

/* ---- stacks and report lines (slab/stack.c) ---- */

/* Chooses the unwinder once libc is ready (start-up, when stacks are
 * wanted): from then on slab_stack_capture() takes stacks. */
void slab_stack_init(void);
/* Up to AUDIT_DEPTH return addresses of the caller's caller chain, the
 * frames in kslab's own code left out; 0 inside the unwinder itself. */
unsigned int slab_stack_capture(void **out);

/* slab_debug_out()'s fd for the lines after a fatal one-line error: where
 * lib/report.c sends that line (the original stderr, and descriptor 2
 * when the program redirected it). */
#define SLAB_DEBUG_FATAL_FD (-2)
/* ... for the leak report at exit: the file of KSLAB_LEAKS_LOG, opened at
 * its first line (slab_leaks_log_fd), else the original stderr. */
#define SLAB_DEBUG_LEAKS_LOG_FD (-3)

/* One line of a report, to f when not NULL, else to fd with write(2)
 * (no malloc); at most 600 bytes. */
void slab_debug_out(int fd, FILE *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "    #i 0xpc in func /obj+0xoff" per frame (LeakSanitizer's shape). */
void slab_debug_print_stack(int fd, FILE *f, void *const *stack,
                            unsigned int n);

/* ---- the leak search's side (slab/leaks.c) ---- */

/* Private memory of the debugging machinery: not a root of the leak
 * search (slab_debug_exclude); NULL when the host refuses. */
void *slab_debug_map(size_t len);
/* The calling thread makes blocks: its stack is noted (a dead thread's
 * stack is no root). */
void slab_leaks_thread_mark(void);
/* The descriptor of the leak report at exit (KSLAB_LEAKS_LOG), opened at
 * its first use. */
int slab_leaks_log_fd(void);
/* The search at exit, when KSLAB_DEBUG=leaks (start-up). */
void slab_leaks_init(void);

/* ---- stopping the other threads (slab/stop.c) ---- */

/* Stops every other thread it can (old: the program's handler of the
 * stop signal): 0 or -errno (nothing stopped).  One caller at a time. */
int slab_stop_world(struct sigaction *old);
/* Lets them go; waits until they are out of the table. */
void slab_resume_world(const struct sigaction *old);
/* The lowest stack address in use of a stopped thread whose stack is in
 * [lo, hi), or 0. */
uintptr_t slab_stopped_sp_in(uintptr_t lo, uintptr_t hi);

#endif /* KSLAB_SLAB_DEBUG_INTERNAL_H */
