/*
 * tests/reliability/stress_util.h — what the stress tests share: a
 * monotonic clock in milliseconds, a xorshift generator, and a block whose
 * every byte holds one fill value, checked before it is freed.
 */
#ifndef KSLAB_TESTS_STRESS_UTIL_H
#define KSLAB_TESTS_STRESS_UTIL_H

#include <time.h>

#include "ktest.h"

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline unsigned int rnd(unsigned int *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

struct blk {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

static inline void blk_fill(struct blk *b, unsigned int *seed)
{
    b->fill = (unsigned char)(rnd(seed) | 1);
    memset(b->p, b->fill, b->size);
}

static inline void blk_check(const struct blk *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->p[i] != b->fill)
            ktest_fail("block %p byte %zu of %zu is %#x, not %#x", (void *)b->p,
                       i, b->size, b->p[i], b->fill);
}

#endif /* KSLAB_TESTS_STRESS_UTIL_H */
