/*
 * slab/log.c — KSLAB_DEBUG=log, libumem's transaction log: a ring of the
 * last log_entries allocation and free events, each with its thread,
 * time and stack, printed by kslab_log_print() and after a corruption
 * report (the events of the block concerned).
 *
 * No lock: an event's slot is chosen by an atomic increment of log_head,
 * its sequence number stored last (release), so a reader takes only whole
 * events.  The ring is a mapping of its own, not a root of the leak
 * search.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <kslab/kslab.h>

#include "lib/host.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/debug_internal.h"
/* One event of the log.  seq is 2 * (1 + its number), plus LOG_BUSY while
 * it is written (0: never written); slab_log_event() says how a slot
 * changes hands. */
struct log_ent {
    uint64_t seq;
    uintptr_t addr;
    size_t size;
    uint64_t ns;
    int tid;
    unsigned char op, depth;
    void *stack[AUDIT_DEPTH];
};

static struct log_ent *log_ring;
static unsigned long log_size;
static uint64_t log_head;
/* In a fork child, the events numbered below this were claimed by the
 * parent's threads: one still being written will never be finished. */
static uint64_t log_orphans_below;
#define LOG_BUSY 1
/* kslab_log_print() is running in this thread: its own events (stdio's
 * buffers) are not logged, so they cannot push out what it prints. */
static __thread int in_log_print __attribute__((tls_model("initial-exec")));

/*
 * Writes event s of the ring into slot s % log_size.  Several threads
 * write at once, and a writer may be stopped (preempted, under load)
 * between taking its number and publishing its event while the others go
 * a whole lap round the ring: two writers then meet at one slot.  The
 * slot's seq decides which keeps it, so that the ring always ends with the
 * newest event of each slot, whole: a writer claims the slot by a CAS
 * from an older, published number to its own number with LOG_BUSY, writes
 * the fields and publishes its number with a release store.  A writer
 * that finds a newer number (published or being written) has nothing to
 * do: its event has already left the ring.  One that finds an older event
 * still being written waits for it (a lap behind, that writer is a few
 * stores from the end), unless that writer was a thread of the parent and
 * this is a fork child (log_orphans_below): then the slot is taken over.
 */
void slab_log_event(int op, uintptr_t addr, size_t size, uint64_t ns, int tid,
                    void *const *stack, unsigned int depth)
{
    if (!log_ring || in_log_print)
        return;
    uint64_t s = __atomic_fetch_add(&log_head, 1, __ATOMIC_RELAXED);
    struct log_ent *e = &log_ring[s % log_size];
    uint64_t mine = (s + 1) << 1;
    uint64_t v = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    for (;;) {
        if (v >= mine)
            return; /* a later event holds the slot */
        if ((v & LOG_BUSY) &&
            (v >> 1) > __atomic_load_n(&log_orphans_below, __ATOMIC_RELAXED)) {
            kslab_host_yield();
            v = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
            continue;
        }
        /* acquire: the stores below stay after it, for log_read */
        if (__atomic_compare_exchange_n(&e->seq, &v, mine | LOG_BUSY, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    e->addr = addr;
    e->size = size;
    e->ns = ns;
    e->tid = tid;
    e->op = (unsigned char)op;
    e->depth = (unsigned char)depth;
    memcpy(e->stack, stack, depth * sizeof(void *));
    __atomic_store_n(&e->seq, mine, __ATOMIC_RELEASE);
}

/* In a fork child: events the parent's other threads were writing will
 * never be finished; their slots may be taken over. */
void slab_log_fork_child(void)
{
    log_orphans_below = log_head;
}

static void print_log_ent(int fd, FILE *f, const struct log_ent *e)
{
    slab_debug_out(fd, f, "#%llu %llu.%06llu s thread %d %s %p size %zu\n",
                   (unsigned long long)((e->seq >> 1) - 1),
                   (unsigned long long)(e->ns / 1000000000),
                   (unsigned long long)(e->ns / 1000 % 1000000), e->tid,
                   e->op == LOG_ALLOC ? "alloc" : "free", (void *)e->addr,
                   e->size);
    slab_debug_print_stack(fd, f, e->stack, e->depth);
}

/* Copies slot s of the ring when it holds a whole event numbered s. */
static int log_read(uint64_t s, struct log_ent *out)
{
    struct log_ent *e = &log_ring[s % log_size];
    uint64_t a = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
    if (a != (s + 1) << 1)
        return 0;
    memcpy(out, e, sizeof *out);
    /* an RMW that changes nothing, with release: the copy stays before
     * the second look at seq */
    return __atomic_fetch_add(&e->seq, 0, __ATOMIC_ACQ_REL) == a;
}

void slab_log_print_for(int fd, FILE *f, uintptr_t lo, uintptr_t hi)
{
    if (!log_ring)
        return;
    uint64_t head = __atomic_load_n(&log_head, __ATOMIC_ACQUIRE);
    uint64_t first = head > log_size ? head - log_size : 0;
    slab_debug_out(fd, f, "    log: events at %p (of the last %llu):\n",
                   (void *)lo, (unsigned long long)(head - first));
    for (uint64_t s = first; s < head; s++) {
        struct log_ent e;
        if (!log_read(s, &e))
            continue;
        if (e.addr < hi && e.addr + (e.size ? e.size : 1) > lo)
            print_log_ent(fd, f, &e);
    }
}

/**
 * kslab_log_print - print the KSLAB_DEBUG=log ring, oldest event first.
 * @out: the stream (stderr when NULL).
 *
 * One line per event ("#seq time thread tid alloc|free addr size n")
 * followed by its stack.  Events written while it prints are not waited
 * for.  Prints one line saying so when the log is off.
 */
void kslab_log_print(FILE *out)
{
    if (!out)
        out = stderr;
    if (!log_ring) {
        fprintf(out, "kslab: the log is off (KSLAB_DEBUG=log)\n");
        return;
    }
    in_log_print = 1;
    uint64_t head = __atomic_load_n(&log_head, __ATOMIC_ACQUIRE);
    uint64_t first = head > log_size ? head - log_size : 0;
    fprintf(out, "kslab: log of %llu events (%llu to %llu):\n",
            (unsigned long long)(head - first), (unsigned long long)first,
            (unsigned long long)(head ? head - 1 : 0));
    for (uint64_t s = first; s < head; s++) {
        struct log_ent e;
        if (log_read(s, &e))
            print_log_ent(-1, out, &e);
    }
    fflush(out);
    in_log_print = 0;
}

void slab_log_init(void)
{
    log_size = kslab_opt.log_entries;
    log_ring = slab_debug_map(log_size * sizeof *log_ring);
    if (!log_ring)
        kslab_warn("KSLAB_DEBUG=log: no memory for the ring");
}
