/*
 * lib/assert.h — the two levels of checking (mimalloc's MI_DEBUG levels,
 * musl mallocng's always-on metadata checks).
 *
 * Level 1, always on, release builds included: KSLAB_CHECK(cond, fmt, ...)
 * tests metadata the allocator is about to trust — a bufctl index taken
 * from a slab's free chain, the order of a free buddy head, the flags of a
 * frame being freed — and reports a broken one with one line through
 * kslab_die() (function and values), then aborts.  A check is one compare
 * and a not-taken branch (__builtin_expect); the report is out of line.
 * Level-1 checks stand on the slow paths (refill, flush, grow, the buddy
 * lists), never on the array-cache hits of malloc/free/kmem_cache_alloc/
 * kmem_cache_free.
 *
 * Level 2, KSLAB_DEBUG_LEVEL >= 2 at compile time (the ASan, TSan and fuzz
 * builds set it): KSLAB_DEBUG_CHECK(stmt) runs the whole-structure
 * validators (slab_check_cache(), vm_check_zones()) at the points where
 * a structure has just changed shape: after a cache grows, shrinks or is
 * reaped, after a zone grows.  At level 1 the statement is compiled (so it
 * cannot rot) and dropped as dead code.
 */
#ifndef KSLAB_LIB_ASSERT_H
#define KSLAB_LIB_ASSERT_H

#include "lib/compiler.h"
#include "lib/report.h"

#ifndef KSLAB_DEBUG_LEVEL
#define KSLAB_DEBUG_LEVEL 1
#endif

/* Level 1: dies with "kslab: <fmt>" unless cond holds. */
#define KSLAB_CHECK(cond, ...)                                                 \
    do {                                                                       \
        if (__builtin_expect(!(cond), 0))                                      \
            kslab_die(__VA_ARGS__);                                            \
    } while (0)

/* Level 2: stmt runs only when KSLAB_DEBUG_LEVEL >= 2. */
#define KSLAB_DEBUG_CHECK(stmt)                                                \
    do {                                                                       \
        if (KSLAB_DEBUG_LEVEL >= 2) {                                          \
            stmt;                                                              \
        }                                                                      \
    } while (0)

#endif /* KSLAB_LIB_ASSERT_H */
