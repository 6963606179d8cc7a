/*
 * slab/percpu.h — the per-CPU arrays' fast paths: a pop and a push on the
 * current CPU's array of a cache inside a restartable sequence (Linux's
 * rseq, registered for every thread by glibc 2.35 on).  slab/percpu.c has
 * the story and the slow paths.
 *
 * slab_cpu_acs[cpu][id] is the array of cache id on CPU cpu, one row of
 * SLAB_PERCPU_ROW pointers (a page) per possible CPU and two guard rows
 * before them, each pointer starting at slab_empty_ac.  A sequence reads
 * the CPU number from the thread's rseq area, loads that CPU's array,
 * works on it, and commits with one store of the array's count; the
 * kernel sends a thread preempted, migrated or signalled inside it to the
 * abort handler, which starts it again, so no other thread on that CPU
 * ever sees half of it.  Entries above the count
 * are written before the commit, never below it: at every instant an
 * array is whole (entries 0 … avail-1), which a fork child relies on.
 *
 * x86-64 only, and never in sanitizer builds (their instrumentation
 * cannot run inside a sequence): SLAB_PERCPU is 0 there and the arrays
 * are per thread.
 */
#ifndef KSLAB_SLAB_PERCPU_H
#define KSLAB_SLAB_PERCPU_H

#include <stddef.h>

#include "lib/compiler.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__x86_64__) && defined(__linux__) &&                               \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) &&         \
    !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer)
#define SLAB_PERCPU 1
#else
#define SLAB_PERCPU 0
#endif

#define SLAB_PERCPU_ROW 512        /* >= SLAB_MAX_IDS; 4 KiB a CPU */
#define SLAB_PERCPU_ROW_SHIFT 12   /* log2(SLAB_PERCPU_ROW * 8) */
#define SLAB_PERCPU_MAX_CPUS 1024  /* more possible CPUs: per thread */
#define SLAB_PERCPU_MAX_LIMIT 256U /* largest array a slow path stages */
/* Rows before CPU 0's, every slot the empty array: the rseq area's cpu_id
 * of a thread without a registration (-1 RSEQ_CPU_ID_UNINITIALIZED, -2
 * RSEQ_CPU_ID_REGISTRATION_FAILED) indexes them, so a sequence needs no
 * bounds test: such a thread finds an empty, full array and takes the
 * slow path, which sends it to the locked one. */
#define SLAB_PERCPU_GUARD 2

/* Read by every fast path: one cache line. */
struct slab_percpu_state {
    int on;          /* per-CPU arrays in use (set once at start-up) */
    unsigned int nr; /* rows of slab_cpu_acs made: the possible CPUs */
    long rseq_off;   /* glibc's __rseq_offset: the rseq area from %fs */
} __attribute__((aligned(64)));

extern struct slab_percpu_state slab_pcpu __hidden;
extern struct array_cache
    *slab_cpu_rows[SLAB_PERCPU_GUARD + SLAB_PERCPU_MAX_CPUS]
                  [SLAB_PERCPU_ROW] __hidden;
/* slab_cpu_acs[cpu][id]: CPU cpu's array of cache id (cpu may be -1, -2). */
#define slab_cpu_acs (slab_cpu_rows + SLAB_PERCPU_GUARD)

#if SLAB_PERCPU

/* clang-format off */
/* struct rseq (linux/rseq.h): cpu_id at 4, rseq_cs at 8. */
#define RSEQ_CPU_ID_OFF "4"
#define RSEQ_CS_OFF "8"

/* The descriptor of the sequence [1, 2) with its abort handler at 4 (the
 * numbered labels of the asm that follows), in __rseq_cs, as the kernel's
 * rseq ABI and librseq lay it out; then the sequence's registration, the
 * one store the per-thread arrays do not pay. */
#define SLAB_RSEQ_DESC                                                         \
    ".pushsection __rseq_cs, \"aw\"\n\t"                                       \
    ".balign 32\n"                                                             \
    "3:\n\t"                                                                   \
    ".long 0x0, 0x0\n\t"                                                       \
    ".quad 1f, (2f - 1f), 4f\n\t"                                              \
    ".popsection\n\t"                                                          \
    ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"                             \
    ".quad 3b\n\t"                                                             \
    ".popsection\n"                                                            \
    "6:\n\t"                                                                   \
    "leaq 3b(%%rip), %[t1]\n\t"                                                \
    "movq %[t1], %%fs:" RSEQ_CS_OFF "(%[off])\n"

/* The abort handler: glibc's signature (RSEQ_SIG, 0x53053053, as the
 * operand of a ud1, so a disassembler stays in step), then a restart. */
#define SLAB_RSEQ_ABORT                                                        \
    ".pushsection __rseq_failure, \"ax\"\n\t"                                  \
    ".byte 0x0f, 0xb9, 0x3d\n\t"                                               \
    ".long 0x53053053\n"                                                       \
    "4:\n\t"                                                                   \
    "jmp 6b\n\t"                                                               \
    ".popsection\n"

/* t1 := this CPU's array of the cache whose column is col: the CPU
 * number read once, sign-extended (a guard row when it is negative), no
 * bounds test (every possible CPU has a row). */
#define SLAB_RSEQ_ARRAY                                                        \
    "movslq %%fs:" RSEQ_CPU_ID_OFF "(%[off]), %[t1]\n\t"                       \
    "shlq $12, %[t1]\n\t"                                                      \
    "movq (%[col], %[t1]), %[t1]\n\t"

#if SLAB_STATS
#define SLAB_RSEQ_COUNT(field) "addl $1, %c[" field "](%[t1])\n\t"
#else
#define SLAB_RSEQ_COUNT(field) ""
#endif

#define SLAB_RSEQ_IN                                                           \
    [off] "r"(slab_pcpu.rseq_off), [col] "r"(&slab_cpu_acs[0][id]),           \
        [ent] "i"(offsetof(struct array_cache, entry)),                        \
        [lim] "i"(offsetof(struct array_cache, limit))

#if SLAB_STATS
#define SLAB_RSEQ_STATS_IN                                                     \
    , [ahit] "i"(offsetof(struct array_cache, allochit)),                      \
        [fhit] "i"(offsetof(struct array_cache, freehit))
#else
#define SLAB_RSEQ_STATS_IN
#endif

/* Pops the hottest object of this CPU's array of cache id; NULL when the
 * array is empty (or the CPU has none).  The empty case leaves the
 * sequence by a jump to a C label (asm goto), so the caller's test of the
 * result folds into it.  (volatile: GCC 12 deletes an asm goto whose
 * outputs are unused, jumps and all.) */
static inline __attribute__((always_inline)) void *slab_cpu_pop(unsigned int id)
{
    unsigned long obj, t1, t2;
    __asm__ __volatile__ goto(
        SLAB_RSEQ_DESC
        "1:\n\t"
        SLAB_RSEQ_ARRAY
        "movl (%[t1]), %k[t2]\n\t"             /* avail */
        "subl $1, %k[t2]\n\t"
        "jb %l[empty]\n\t"
        "movq %c[ent](%[t1], %[t2], 8), %[obj]\n\t"
        SLAB_RSEQ_COUNT("ahit")
        "movl %k[t2], (%[t1])\n"                 /* commit: avail - 1 */
        "2:\n\t"
        SLAB_RSEQ_ABORT
        : [obj] "=&r"(obj), [t1] "=&r"(t1), [t2] "=&r"(t2)
        : SLAB_RSEQ_IN SLAB_RSEQ_STATS_IN
        : "memory", "cc"
        : empty);
    if (!obj) /* never: an array holds objects, so callers' tests go */
        __builtin_unreachable();
    return (void *)obj;
empty:
    return NULL;
}

/* Pushes objp on this CPU's array of cache id: 1, or 0 when the array is
 * full (or the CPU has none) or, with check, when objp is the object
 * pushed last (a double free the slow path reports). */
#define SLAB_CPU_PUSH(name, check)                                             \
    static inline __attribute__((always_inline)) int name(unsigned int id,    \
                                                          const void *objp)    \
    {                                                                          \
        unsigned long t1, t2;                                                  \
        __asm__ __volatile__ goto(                                             \
            SLAB_RSEQ_DESC                                                     \
            "1:\n\t"                                                           \
            SLAB_RSEQ_ARRAY                                                    \
            "movl (%[t1]), %k[t2]\n\t"                 /* avail */             \
            "cmpl %c[lim](%[t1]), %k[t2]\n\t"                                  \
            "jae %l[full]\n\t"                                                 \
            check                                                              \
            "movq %[obj], %c[ent](%[t1], %[t2], 8)\n\t" /* above avail */      \
            SLAB_RSEQ_COUNT("fhit")                                            \
            "addl $1, %k[t2]\n\t"                                              \
            "movl %k[t2], (%[t1])\n"                    /* commit */            \
            "2:\n\t"                                                           \
            SLAB_RSEQ_ABORT                                                    \
            : [t1] "=&r"(t1), [t2] "=&r"(t2)                                   \
            : [obj] "r"(objp), SLAB_RSEQ_IN SLAB_RSEQ_STATS_IN                 \
            : "memory", "cc"                                                   \
            : full);                                                           \
        return 1;                                                              \
    full:                                                                      \
        return 0;                                                              \
    }

SLAB_CPU_PUSH(slab_cpu_push,
              "testl %k[t2], %k[t2]\n\t"
              "jz 5f\n\t"
              "cmpq %[obj], %c[ent]-8(%[t1], %[t2], 8)\n\t"
              "je %l[full]\n"
              "5:\n\t")
SLAB_CPU_PUSH(slab_cpu_push_nocheck, "")

/* Moves up to want of the hottest objects of this CPU's array of cache id
 * to buf; returns how many.  The copy is one rep movsq: an abort in the
 * middle restarts the sequence, and nothing is published before its
 * commit (buf is the caller's). */
static inline unsigned int slab_cpu_pop_batch(unsigned int id, void **buf,
                                              unsigned int want)
{
    unsigned long n, t1, t2;
    __asm__ __volatile__(
        SLAB_RSEQ_DESC "1:\n\t"
                       "xorl %k[n], %k[n]\n\t" SLAB_RSEQ_ARRAY
                       "movl (%[t1]), %k[t2]\n\t"
                       "movl %[want], %k[n]\n\t"
                       "cmpl %k[t2], %k[n]\n\t"
                       "cmoval %k[t2], %k[n]\n\t"
                       "testl %k[n], %k[n]\n\t"
                       "jz 2f\n\t"
                       "subl %k[n], %k[t2]\n\t"
                       "leaq %c[ent](%[t1], %[t2], 8), %%rsi\n\t"
                       "movq %[buf], %%rdi\n\t"
                       "movl %k[n], %%ecx\n\t"
                       "rep movsq\n\t"
                       "movl %k[t2], (%[t1])\n"
                       "2:\n\t" SLAB_RSEQ_ABORT
        : [n] "=&r"(n), [t1] "=&r"(t1), [t2] "=&r"(t2)
        : [buf] "r"(buf), [want] "r"(want), SLAB_RSEQ_IN
        : "memory", "cc", "rsi", "rdi", "rcx");
    return (unsigned int)n;
}

/* Moves up to n objects of buf (the first ones) onto this CPU's array of
 * cache id, as many as it has room for; returns how many.  Written above
 * the count, then published by the commit. */
static inline unsigned int slab_cpu_push_batch(unsigned int id,
                                               void *const *buf, unsigned int n)
{
    unsigned long k, t1, t2;
    __asm__ __volatile__(
        SLAB_RSEQ_DESC "1:\n\t"
                       "xorl %k[k], %k[k]\n\t" SLAB_RSEQ_ARRAY
                       "movl (%[t1]), %k[t2]\n\t"
                       "movl %c[lim](%[t1]), %k[k]\n\t"
                       "subl %k[t2], %k[k]\n\t"
                       "jbe 9f\n\t"
                       "cmpl %[want], %k[k]\n\t"
                       "cmoval %[want], %k[k]\n\t"
                       "leaq %c[ent](%[t1], %[t2], 8), %%rdi\n\t"
                       "movq %[buf], %%rsi\n\t"
                       "movl %k[k], %%ecx\n\t"
                       "rep movsq\n\t"
                       "addl %k[k], %k[t2]\n\t"
                       "movl %k[t2], (%[t1])\n\t"
                       "jmp 2f\n"
                       "9:\n\t"
                       "xorl %k[k], %k[k]\n"
                       "2:\n\t" SLAB_RSEQ_ABORT
        : [k] "=&r"(k), [t1] "=&r"(t1), [t2] "=&r"(t2)
        : [buf] "r"(buf), [want] "r"(n), SLAB_RSEQ_IN
        : "memory", "cc", "rsi", "rdi", "rcx");
    return (unsigned int)k;
}

/* clang-format on */

/* The CPU the calling thread runs on (a snapshot outside any sequence),
 * or a number >= slab_pcpu.nr when rseq is not registered. */
static inline unsigned int slab_cpu_now(void)
{
    const char *tp = (const char *)__builtin_thread_pointer();
    return __atomic_load_n((const unsigned int *)(tp + slab_pcpu.rseq_off + 4),
                           __ATOMIC_RELAXED);
}

#else  /* !SLAB_PERCPU */

static inline void *slab_cpu_pop(unsigned int id)
{
    (void)id;
    return NULL;
}
static inline int slab_cpu_push(unsigned int id, const void *objp)
{
    (void)id;
    (void)objp;
    return 0;
}
static inline int slab_cpu_push_nocheck(unsigned int id, const void *objp)
{
    return slab_cpu_push(id, objp);
}
static inline unsigned int slab_cpu_pop_batch(unsigned int id, void **buf,
                                              unsigned int want)
{
    (void)id;
    (void)buf;
    (void)want;
    return 0;
}
static inline unsigned int slab_cpu_push_batch(unsigned int id,
                                               void *const *buf, unsigned int n)
{
    (void)id;
    (void)buf;
    (void)n;
    return 0;
}
static inline unsigned int slab_cpu_now(void)
{
    return ~0U;
}
#endif /* SLAB_PERCPU */

/* Are the arrays per CPU?  Always 0 without SLAB_PERCPU, so the test
 * folds away. */
static inline int slab_percpu_on(void)
{
    return SLAB_PERCPU && __builtin_expect(slab_pcpu.on, 0);
}

/* ---- slab/percpu.c ---- */

/* Start-up: per-CPU arrays when KSLAB_PERCPU and the host allow them. */
void slab_percpu_setup(void);
/* The slow paths of the per-CPU arrays (cachep->id != 0). */
void *slab_percpu_alloc(kmem_cache_t *cachep, int flags);
void slab_percpu_free(kmem_cache_t *cachep, void *objp, const char *fn);
/* Every CPU's array of cachep empties into the cache; with release the
 * arrays are freed too (kmem_cache_destroy).  No lock held but, perhaps,
 * the chain's. */
void slab_percpu_drain(kmem_cache_t *cachep, int release);
/* Objects of cache id in the CPUs' arrays (a racy snapshot). */
unsigned long slab_percpu_count(unsigned int id);
/* Arrays of cache id made (the CPUs that used the cache). */
unsigned int slab_percpu_arrays(unsigned int id);
/* Is objp in a CPU's array of cache id (below its count)? */
int slab_percpu_holds(unsigned int id, const void *objp);
#if SLAB_STATS
void slab_percpu_stats(unsigned int id, unsigned long *ah, unsigned long *fh);
#endif
/* The fork protocol's steps for the per-CPU lock (slab.c's hook). */
void slab_percpu_fork_prepare(void);
void slab_percpu_fork_parent(void);
void slab_percpu_fork_child(void);

#endif /* KSLAB_SLAB_PERCPU_H */
