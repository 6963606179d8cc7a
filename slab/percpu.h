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
#define SLAB_PERCPU_MAX_LIMIT 256U /* a magazine's most objects, for a look */
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

/* What a magazine exchange found (slab_cpu_swap_prev, slab_cpu_load). */
enum slab_cpu_swap {
    SLAB_CPU_SWAPPED, /* committed */
    SLAB_CPU_AGAIN,   /* the array changed (or the commit lost): try the hit */
    SLAB_CPU_DEPOT,   /* the previous magazine cannot help: go to the depot */
    SLAB_CPU_NONE,    /* this CPU has no array of the cache */
};

/* The Bonwick-Adams exchange of this CPU's loaded magazine of cache id
 * with its previous one, for a free (the loaded one full, the previous
 * one with room) or an allocation (the loaded one empty, the previous
 * one holding objects): the previous becomes the loaded one, the loaded
 * one its previous.  The new loaded one's prev is written first (it is
 * not read while that magazine is not loaded), then the CPU's slot
 * commits with a lock cmpxchg: a drain on another CPU that takes the
 * slot (an xchg) and the commit are ordered either way, so one of them
 * owns each magazine. */
#define SLAB_CPU_SWAP_PREV(name, loaded_can_not, prev_cannot)                  \
    static inline enum slab_cpu_swap name(unsigned int id)                     \
    {                                                                          \
        unsigned long slot, l, p, t;                                           \
        __asm__ __volatile__ goto(                                             \
            SLAB_RSEQ_DESC                                                     \
            "1:\n\t"                                                           \
            "movslq %%fs:" RSEQ_CPU_ID_OFF "(%[off]), %[slot]\n\t"             \
            "shlq $12, %[slot]\n\t"                                            \
            "addq %[col], %[slot]\n\t"                                         \
            "movq (%[slot]), %[l]\n\t"                                         \
            "movl %c[lim](%[l]), %k[t1]\n\t"                                    \
            "testl %k[t1], %k[t1]\n\t"                                           \
            "jz %l[none]\n\t"                                                  \
            loaded_can_not                                                     \
            "movq %c[prv](%[l]), %[p]\n\t"                                     \
            "testq %[p], %[p]\n\t"                                             \
            "jz %l[depot]\n\t"                                                 \
            prev_cannot                                                        \
            "movq %[l], %c[prv](%[p])\n\t"                                     \
            "lock cmpxchgq %[p], (%[slot])\n"         /* commit */             \
            "2:\n\t"                                                           \
            "jnz %l[again]\n\t"                                                \
            SLAB_RSEQ_ABORT                                                    \
            : [slot] "=&r"(slot), [l] "=&a"(l), [p] "=&r"(p), [t1] "=&r"(t)     \
            : SLAB_RSEQ_IN, [prv] "i"(offsetof(struct array_cache, prev))      \
            : "memory", "cc"                                                   \
            : none, depot, again);                                             \
        return SLAB_CPU_SWAPPED;                                               \
    none:                                                                      \
        return SLAB_CPU_NONE;                                                  \
    depot:                                                                     \
        return SLAB_CPU_DEPOT;                                                 \
    again:                                                                     \
        return SLAB_CPU_AGAIN;                                                 \
    }

/* for a free: loaded full (avail >= limit, t), previous not full */
SLAB_CPU_SWAP_PREV(slab_cpu_swap_prev_free,
                   "cmpl %k[t1], (%[l])\n\t"
                   "jb %l[again]\n\t",
                   "movl (%[p]), %k[t1]\n\t"
                   "cmpl %c[lim](%[p]), %k[t1]\n\t"
                   "jae %l[depot]\n\t")
/* for an allocation: loaded empty, previous not empty */
SLAB_CPU_SWAP_PREV(slab_cpu_swap_prev_alloc,
                   "cmpl $0, (%[l])\n\t"
                   "jne %l[again]\n\t",
                   "cmpl $0, (%[p])\n\t"
                   "je %l[depot]\n\t")

/* Loads the caller's magazine ac (private to it until the commit) on
 * this CPU for cache id, the loaded one becoming its previous, when
 * neither the loaded nor the previous one can serve a free (both full, or
 * no previous: for_free) or an allocation (both empty).  SLAB_CPU_SWAPPED:
 * *old is the old previous one (or NULL), the caller's now, to go to the
 * depot; anything else: ac is still the caller's. */
#define SLAB_CPU_LOAD(name, loaded_can, prev_can)                              \
    static inline enum slab_cpu_swap name(unsigned int id,                     \
                                          struct array_cache *ac,              \
                                          struct array_cache **old)            \
    {                                                                          \
        unsigned long slot, l, p, t;                                           \
        __asm__ __volatile__ goto(                                             \
            SLAB_RSEQ_DESC                                                     \
            "1:\n\t"                                                           \
            "movslq %%fs:" RSEQ_CPU_ID_OFF "(%[off]), %[slot]\n\t"             \
            "shlq $12, %[slot]\n\t"                                            \
            "addq %[col], %[slot]\n\t"                                         \
            "movq (%[slot]), %[l]\n\t"                                         \
            "movl %c[lim](%[l]), %k[t1]\n\t"                                    \
            "testl %k[t1], %k[t1]\n\t"                                           \
            "jz %l[none]\n\t"                                                  \
            loaded_can                                                         \
            "movq %c[prv](%[l]), %[p]\n\t"                                     \
            "testq %[p], %[p]\n\t"                                             \
            "jz 7f\n\t"                                                        \
            prev_can                                                           \
            "7:\n\t"                                                           \
            "movq %[l], %c[prv](%[ac])\n\t"                                    \
            "lock cmpxchgq %[ac], (%[slot])\n"        /* commit */             \
            "2:\n\t"                                                           \
            "jnz %l[again]\n\t"                                                \
            SLAB_RSEQ_ABORT                                                    \
            : [slot] "=&r"(slot), [l] "=&a"(l), [p] "=&r"(p), [t1] "=&r"(t)     \
            : [ac] "r"(ac), SLAB_RSEQ_IN,                                      \
              [prv] "i"(offsetof(struct array_cache, prev))                    \
            : "memory", "cc"                                                   \
            : none, again);                                                    \
        *old = (struct array_cache *)p;                                        \
        return SLAB_CPU_SWAPPED;                                               \
    none:                                                                      \
        return SLAB_CPU_NONE;                                                  \
    again:                                                                     \
        return SLAB_CPU_AGAIN;                                                 \
    }

/* for a free: loaded full, previous full (or none) */
SLAB_CPU_LOAD(slab_cpu_load_free,
              "cmpl %k[t1], (%[l])\n\t"
              "jb %l[again]\n\t",
              "movl (%[p]), %k[t1]\n\t"
              "cmpl %c[lim](%[p]), %k[t1]\n\t"
              "jb %l[again]\n\t")
/* for an allocation: loaded empty, previous empty (or none) */
SLAB_CPU_LOAD(slab_cpu_load_alloc,
              "cmpl $0, (%[l])\n\t"
              "jne %l[again]\n\t",
              "cmpl $0, (%[p])\n\t"
              "jne %l[again]\n\t")

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
enum slab_cpu_swap {
    SLAB_CPU_SWAPPED,
    SLAB_CPU_AGAIN,
    SLAB_CPU_DEPOT,
    SLAB_CPU_NONE,
};
static inline enum slab_cpu_swap slab_cpu_swap_prev_free(unsigned int id)
{
    (void)id;
    return SLAB_CPU_NONE;
}
static inline enum slab_cpu_swap slab_cpu_swap_prev_alloc(unsigned int id)
{
    (void)id;
    return SLAB_CPU_NONE;
}
static inline enum slab_cpu_swap slab_cpu_load_free(unsigned int id,
                                                    struct array_cache *ac,
                                                    struct array_cache **old)
{
    (void)id;
    (void)ac;
    *old = NULL;
    return SLAB_CPU_NONE;
}
static inline enum slab_cpu_swap slab_cpu_load_alloc(unsigned int id,
                                                     struct array_cache *ac,
                                                     struct array_cache **old)
{
    return slab_cpu_load_free(id, ac, old);
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
/* Adds the hits of the CPUs' magazines of cachep, those still on a CPU
 * and those that left one. */
void slab_percpu_stats(kmem_cache_t *cachep, unsigned long *ah,
                       unsigned long *fh);
#endif
/* The fork protocol's steps for the per-CPU lock (slab.c's hook). */
void slab_percpu_fork_prepare(void);
void slab_percpu_fork_parent(void);
void slab_percpu_fork_child(void);

#endif /* KSLAB_SLAB_PERCPU_H */
