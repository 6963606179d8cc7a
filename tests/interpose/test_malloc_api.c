/*
 * tests/interpose/test_malloc_api.c — the malloc family's contracts, as
 * glibc keeps them: alignment, zero sizes, realloc's special cases,
 * overflow and impossible sizes, the memalign family's argument checks,
 * malloc_usable_size, calloc zeroing of recycled memory, errno across free,
 * large and huge blocks (in-place growth, no system call in steady state,
 * memory given back).  The program links libkslab.so, so these are kslab's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <kslab/kslab.h>

#include "ktest.h"

/* These tests misuse the API on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

#define KiB (1024UL)
#define MiB (1024UL * 1024UL)

/* The statistics text of kslab_stats_print(). */
static __attribute__((noinline)) char *stats_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    kslab_stats_print(f);
    fclose(f);
    return buf;
}

/* A number that follows `key` in the large-block line. */
static unsigned long stats_number(const char *key)
{
    char *t = stats_text();
    char *l = strstr(t, "large:");
    assert_non_null(l);
    char *k = strstr(l, key);
    assert_non_null(k);
    unsigned long v = strtoul(k + strlen(key), NULL, 10);
    free(t);
    return v;
}

static void test_malloc_is_kslab(void **state)
{
    (void)state;
    void *p = malloc(100);
    assert_non_null(p);
    assert_true(ksize(p) >= 100); /* a kmalloc object */
    free(p);
    char *t = stats_text();
    assert_non_null(strstr(t, "slabinfo - version: 1.1"));
    assert_non_null(strstr(t, "size-128"));
    free(t);
}

static void test_alignment_16(void **state)
{
    (void)state;
    void *ps[600];
    for (size_t i = 0; i < 600; i++) {
        size_t n = i < 300 ? i : (i * 457) % (200 * KiB);
        ps[i] = malloc(n);
        assert_non_null(ps[i]);
        assert_int_equal((uintptr_t)ps[i] & 15, 0);
        memset(ps[i], 0xab, n);
    }
    for (size_t i = 0; i < 600; i++)
        free(ps[i]);
}

static void test_zero_sizes(void **state)
{
    (void)state;
    void *p = malloc(0);
    assert_non_null(p);
    free(p);
    p = calloc(0, 10);
    assert_non_null(p);
    free(p);
    p = realloc(NULL, 0);
    assert_non_null(p);
    /* realloc(p, 0) frees and returns NULL, as glibc does. */
    assert_null(realloc(p, 0));
    free(NULL);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + seed);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed))
            fail_msg("byte %zu differs", i);
}

static void test_realloc_keeps_contents(void **state)
{
    (void)state;
    /* small -> larger small -> large -> huge -> large -> small */
    size_t sizes[] = {10,      100,      3000,    100 * KiB, 200 * KiB, 1 * MiB,
                      6 * MiB, 40 * MiB, 3 * MiB, 300 * KiB, 50,        7};
    unsigned char *p = realloc(NULL, 5);
    fill(p, 5, 7);
    size_t have = 5;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t keep = have < sizes[i] ? have : sizes[i];
        unsigned char *q = realloc(p, sizes[i]);
        assert_non_null(q);
        p = q;
        assert_int_equal((uintptr_t)p & 15, 0);
        check(p, keep, 7);
        fill(p, sizes[i], 7);
        have = sizes[i];
    }
    free(p);
}

static void test_overflow_and_impossible(void **state)
{
    (void)state;
    errno = 0;
    assert_null(calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    void *p = malloc(10);
    errno = 0;
    assert_null(reallocarray(p, SIZE_MAX / 4, 8));
    assert_int_equal(errno, ENOMEM);
    free(p); /* still valid */
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX,
                     (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < 4; i++) {
        errno = 0;
        assert_null(malloc(huge[i]));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(calloc(1, huge[i]));
        assert_int_equal(errno, ENOMEM);
        p = malloc(100);
        errno = 0;
        assert_null(realloc(p, huge[i]));
        assert_int_equal(errno, ENOMEM);
        free(p);
        errno = 0;
        assert_null(memalign(64, huge[i]));
        assert_int_equal(errno, ENOMEM);
    }
    void *q = (void *)1;
    assert_int_equal(posix_memalign(&q, 4096, SIZE_MAX), ENOMEM);
    assert_ptr_equal(q, (void *)1);
    /* An address-space sized request fails cleanly too. */
    errno = 0;
    assert_null(malloc((size_t)1 << 50));
    assert_int_equal(errno, ENOMEM);
}

static void test_memalign_family(void **state)
{
    (void)state;
    void *p = (void *)1;
    assert_int_equal(posix_memalign(&p, 0, 10), EINVAL);
    assert_int_equal(posix_memalign(&p, 4, 10), EINVAL);
    assert_int_equal(posix_memalign(&p, 24, 10), EINVAL);
    assert_int_equal(posix_memalign(&p, 3, 10), EINVAL);
    assert_ptr_equal(p, (void *)1);
    errno = 0;
    assert_null(aligned_alloc(3, 10));
    assert_int_equal(errno, EINVAL);

    size_t sizes[] = {1, 24, 100, 4096, 5000, 130 * KiB, 1 * MiB, 9 * MiB};
    for (size_t a = 8; a <= 8 * MiB; a <<= 1) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            void *q = NULL;
            assert_int_equal(posix_memalign(&q, a, sizes[s]), 0);
            assert_int_equal((uintptr_t)q & (a - 1), 0);
            assert_true(malloc_usable_size(q) >= sizes[s]);
            memset(q, 1, sizes[s]);
            free(q);
            q = aligned_alloc(a, sizes[s]);
            assert_non_null(q);
            assert_int_equal((uintptr_t)q & (a - 1), 0);
            free(q);
            q = memalign(a, sizes[s]);
            assert_non_null(q);
            assert_int_equal((uintptr_t)q & (a - 1), 0);
            free(q);
        }
    }
    /* Size 0 gives a unique, freeable block at every alignment. */
    for (size_t a = 16; a <= 8 * MiB; a <<= 1) {
        void *q = memalign(a, 0);
        assert_non_null(q);
        assert_int_equal((uintptr_t)q & (a - 1), 0);
        free(q);
    }
    /* An alignment larger than the address space cannot be met. */
    errno = 0;
    assert_null(aligned_alloc((size_t)1 << 62, 1));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(memalign((size_t)1 << 63, 1));
    assert_int_equal(errno, ENOMEM);
    /* memalign rounds an alignment that is not a power of two up. */
    p = memalign(48, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p & 63, 0);
    free(p);
    p = valloc(10);
    assert_int_equal((uintptr_t)p & 4095, 0);
    free(p);
    p = pvalloc(10);
    assert_int_equal((uintptr_t)p & 4095, 0);
    assert_true(malloc_usable_size(p) >= 4096);
    memset(p, 2, 4096);
    free(p);
    p = pvalloc(0);
    assert_non_null(p);
    free(p);
}

static void test_usable_size(void **state)
{
    (void)state;
    assert_int_equal(malloc_usable_size(NULL), 0);
    for (size_t n = 1; n < 3 * MiB; n = n * 3 / 2 + 1) {
        unsigned char *p = malloc(n);
        size_t u = malloc_usable_size(p);
        assert_true(u >= n);
        memset(p, 0x5c, u);               /* truly usable */
        unsigned char *q = realloc(p, u); /* and realloc to it stays put */
        assert_ptr_equal(q, p);
        p = q;
        assert_int_equal(malloc_usable_size(p), u);
        free(p);
    }
}

static void test_calloc_zero_when_recycled(void **state)
{
    (void)state;
    size_t sizes[] = {8, 100, 1000, 4096, 100 * KiB, 300 * KiB, 5 * MiB};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int round = 0; round < 20; round++) {
            unsigned char *p = malloc(sizes[s]);
            memset(p, 0xff, malloc_usable_size(p));
            free(p);
            unsigned char *q = calloc(1, sizes[s]);
            for (size_t i = 0; i < sizes[s]; i++)
                if (q[i])
                    fail_msg("calloc(%zu) byte %zu is %d", sizes[s], i, q[i]);
            free(q);
        }
    }
}

static void test_free_preserves_errno(void **state)
{
    (void)state;
    size_t sizes[] = {16, 5000, 200 * KiB, 8 * MiB};
    for (size_t s = 0; s < 4; s++) {
        void *p = malloc(sizes[s]);
        errno = 4242;
        free(p);
        assert_int_equal(errno, 4242);
    }
}

static void test_large_grows_in_place(void **state)
{
    (void)state;
    unsigned long before = stats_number("realloc in place ");
    int same = 0;
    /* Grow one block while nothing else allocates after it. */
    char *p = malloc(140 * KiB);
    for (size_t n = 160 * KiB; n <= 1800 * KiB; n += 64 * KiB) {
        char *q = realloc(p, n);
        assert_non_null(q);
        same += q == p;
        p = q;
    }
    free(p);
    assert_true(same > 0);
    assert_true(stats_number("realloc in place ") > before);
}

static void test_large_steady_state_no_munmap(void **state)
{
    (void)state;
    /* Warm up, then a loop of alloc/free must not unmap anything. */
    for (int i = 0; i < 3; i++)
        free(malloc(12 * MiB));
    unsigned long before = stats_number("unmapped ");
    for (int i = 0; i < 200; i++) {
        char *p = malloc(12 * MiB);
        p[0] = p[12 * MiB - 1] = 1;
        free(p);
        char *q = malloc(600 * KiB);
        q[0] = 1;
        free(q);
    }
    assert_int_equal(stats_number("unmapped "), before);
}

/* glibc's internal names and cfree are the same functions. */
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
void cfree(void *);

static void test_libc_aliases(void **state)
{
    (void)state;
    char *p = __libc_malloc(100);
    assert_true(ksize(p) >= 100);
    p = __libc_realloc(p, 200);
    assert_true(ksize(p) >= 200);
    __libc_free(p);
    p = __libc_calloc(10, 10);
    assert_int_equal(p[99], 0);
    cfree(p);
    p = __libc_memalign(256, 10);
    assert_int_equal((uintptr_t)p & 255, 0);
    free(p);
    p = __libc_valloc(10);
    assert_int_equal((uintptr_t)p & 4095, 0);
    free(p);
    p = __libc_pvalloc(10);
    assert_int_equal((uintptr_t)p & 4095, 0);
    free(p);
}

static void test_large_memory_returned(void **state)
{
    (void)state;
    /* Freed huge blocks go back to the host within the decay time (a
     * quarter of it for a program that allocates no more), whatever the
     * program does meanwhile (here it sleeps).  The tests before left
     * freed huge blocks in the pool (they would serve these blocks from
     * pages already resident): malloc_trim unmaps them first. */
    malloc_trim(0);
    size_t rss0 = ktest_rss();
    char *ps[4];
    for (int i = 0; i < 4; i++) {
        ps[i] = malloc(48 * MiB);
        memset(ps[i], 1, 48 * MiB);
    }
    assert_true(ktest_rss() > rss0 + 150 * MiB);
    for (int i = 0; i < 4; i++)
        free(ps[i]);
    for (int t = 0; t < 60 && ktest_rss() >= rss0 + 70 * MiB; t++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(ktest_rss() < rss0 + 70 * MiB);
}

/* kslab_stats_print(NULL) is a no-op, not a crash. */
static void test_stats_print_null(void **state)
{
    (void)state;
    kslab_stats_print(NULL);
}

/* Blocks above 64 KiB are runs of the pages they need, not the slab's
 * 128 KiB class: 64 KiB + 1 byte takes 17 pages (a thread's cache of freed
 * blocks may hand out one of up to a quarter more); calloc zeroes, realloc
 * keeps the bytes, free takes them back. */
static void test_blocks_above_64k_are_exact_page_runs(void **s)
{
    (void)s;
    for (size_t size = (64 << 10) + 1; size <= (128 << 10); size += 12345) {
        char *p = malloc(size);
        assert_non_null(p);
        size_t want = (size + 4095) & ~(size_t)4095;
        assert_in_range(malloc_usable_size(p), want, want + want / 4 + 4096);
        memset(p, 0x5c, size);
        char *q = realloc(p, size + 4096);
        assert_non_null(q);
        assert_true(malloc_usable_size(q) >= size + 4096);
        for (size_t i = 0; i < size; i += 511)
            assert_int_equal((unsigned char)q[i], 0x5c);
        free(q);
        char *z = calloc(1, size);
        assert_non_null(z);
        assert_in_range(malloc_usable_size(z), want, want + want / 4 + 4096);
        for (size_t i = 0; i < size; i += 97)
            assert_int_equal(z[i], 0);
        free(z);
    }
    /* 64 KiB itself is still a slab object */
    char *p = malloc(64 << 10);
    assert_int_equal(malloc_usable_size(p), 64 << 10);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_print_null),
        cmocka_unit_test(test_malloc_is_kslab),
        cmocka_unit_test(test_alignment_16),
        cmocka_unit_test(test_zero_sizes),
        cmocka_unit_test(test_realloc_keeps_contents),
        cmocka_unit_test(test_overflow_and_impossible),
        cmocka_unit_test(test_memalign_family),
        cmocka_unit_test(test_usable_size),
        cmocka_unit_test(test_calloc_zero_when_recycled),
        cmocka_unit_test(test_free_preserves_errno),
        cmocka_unit_test(test_large_grows_in_place),
        cmocka_unit_test(test_large_steady_state_no_munmap),
        cmocka_unit_test(test_libc_aliases),
        cmocka_unit_test(test_large_memory_returned),
        cmocka_unit_test(test_blocks_above_64k_are_exact_page_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
