/*
 * tests/interpose/test_realloc.c — every realloc path of the malloc family,
 * table-driven: slab -> slab, slab -> large, large -> slab, large -> large
 * (in place and moved), large -> own mapping ("huge"), huge -> huge,
 * huge -> slab, huge -> large, and blocks from memalign, posix_memalign and
 * aligned_alloc at 16, 64, 4096, 8192 and 2 MiB alignment of each kind.
 *
 * Each case fills the old block (its whole usable size) with a pattern,
 * reallocs up and down and checks the content.  That nothing past the old
 * block is read is checked two ways:
 *  - a guard page (PROT_NONE, MAP_FIXED_NOREPLACE) right after the old
 *    block wherever the address is free (own mappings, and the trimmed tail
 *    of a block aligned above a page): a read past it is a SIGSEGV;
 *  - a sentinel block: a block of the new size is filled with 0xEE and freed
 *    just before the realloc; when the realloc hands that block out again
 *    (the thread's array, the huge-mapping cache and the buddy lists are
 *    LIFO), the bytes past the old block's usable size must still be 0xEE;
 *  - under valgrind's memcheck (a second ctest entry), where kslab's hooks
 *    tell memcheck the extent of every block.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>

#include <kslab/kslab.h>

#include "ktest.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define KiB (1024UL)
#define MiB (1024UL * 1024UL)
#define PG 4096UL

enum how { MALLOC, MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC };
static const char *how_name[] = {"malloc", "memalign", "posix_memalign",
                                 "aligned_alloc"};

static void *alloc_how(enum how how, size_t align, size_t size)
{
    void *p = NULL;
    switch (how) {
    case MALLOC:
        return malloc(size);
    case MEMALIGN:
        return memalign(align, size);
    case POSIX_MEMALIGN:
        return posix_memalign(&p, align, size) ? NULL : p;
    case ALIGNED_ALLOC:
        return aligned_alloc(align, size);
    }
    return NULL;
}

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u + seed) % 251u);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

static void check(const unsigned char *p, size_t n, unsigned seed,
                  const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            fail_msg("%s: byte %zu is %#x, expected %#x", what, i, p[i],
                     pat(i, seed));
}

/* A PROT_NONE page at addr if nothing is mapped there; addr or NULL. */
static void *guard_at(void *addr)
{
    if ((uintptr_t)addr & (PG - 1))
        return NULL;
    void *g = mmap(addr, PG, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (g == MAP_FAILED)
        return NULL;
    if (g != addr) { /* a kernel without MAP_FIXED_NOREPLACE */
        munmap(g, PG);
        return NULL;
    }
    return g;
}

static unsigned guards, sentinels;

/* A large block at the sentinel's address may be a new mapping that the
 * kernel placed where the sentinel's was (the cache unmapped it): its
 * bytes past the copy are all zero.  Only blocks past the slab sizes can
 * be that. */
static int fresh_tail(const unsigned char *q, size_t from, size_t to)
{
    if (to <= 128 * KiB)
        return 0;
    for (size_t i = from; i < to; i++)
        if (q[i])
            return 0;
    return 1;
}

/* One realloc of p (its usable bytes filled with pattern seed) to size,
 * checked; the new block's usable bytes are filled with pattern seed + 1. */
static unsigned char *realloc_checked(unsigned char *p, size_t size,
                                      unsigned seed, const char *what)
{
    size_t old = malloc_usable_size(p);
    size_t keep = old < size ? old : size;
    void *guard = guard_at(p + old);
    unsigned char *sentinel = NULL;
    if (size > old) {
        sentinel = malloc(size);
        assert_non_null(sentinel);
        memset(sentinel, 0xEE, size);
        __asm__ volatile("" : : "r"(sentinel) : "memory"); /* keep the fill */
        free(sentinel);
    }
    unsigned char *q = realloc(p, size);
    if (guard) {
        munmap(guard, PG);
        guards++;
    }
    if (!q)
        fail_msg("%s: realloc to %zu failed", what, size);
    assert_true(malloc_usable_size(q) >= size);
    check(q, keep, seed, what);
    if (sentinel && q == sentinel && q != p && !fresh_tail(q, keep, size)) {
        sentinels++;
        for (size_t i = keep; i < size; i++)
            if (q[i] != 0xEE)
                fail_msg("%s: byte %zu past the old block (%zu bytes) was "
                         "copied: %#x",
                         what, i, old, q[i]);
    }
    fill(q, malloc_usable_size(q), seed + 1);
    return q;
}

struct step {
    size_t old, up, down;
};

/* old -> up -> down covers, with the sizes below: slab -> slab, slab ->
 * large, large -> slab, large -> large (in place and moved), large -> huge,
 * huge -> huge, huge -> slab, huge -> large. */
static const struct step steps[] = {
    {100, 1000, 40},                   /* slab -> slab -> slab */
    {1000, 200 * KiB, 500},            /* slab -> large -> slab */
    {200 * KiB, 400 * KiB, 150 * KiB}, /* large -> large -> large */
    {200 * KiB, 3 * MiB, 300 * KiB},   /* large -> huge -> large */
    {3 * MiB, 5 * MiB, 1000},          /* huge -> huge -> slab */
    {5 * MiB, 3 * MiB, 100},           /* huge -> huge (shrink) -> slab */
    {3 * MiB, 6 * MiB, 200 * KiB},     /* huge -> huge -> large */
    {100000, 120000, 50},              /* an aligned block smaller than a slab
                                        * size: -> slab -> slab */
    {100000, 300 * KiB, 100},          /* -> large -> slab */
    {100000, 3 * MiB, 100000},         /* -> huge -> large */
    {120000, 128 * KiB, 64},           /* up to the largest slab size */
};

static void run_case(enum how how, size_t align, const struct step *st)
{
    char what[160];
    snprintf(what, sizeof what, "%s(%zu, %zu) -> %zu -> %zu", how_name[how],
             align, st->old, st->up, st->down);
    unsigned char *p = alloc_how(how, align, st->old);
    if (!p)
        fail_msg("%s: allocation failed", what);
    assert_int_equal((uintptr_t)p & (align - 1), 0);
    size_t usable = malloc_usable_size(p);
    assert_true(usable >= st->old);
    unsigned seed = (unsigned)(st->old + align);
    fill(p, usable, seed);
    p = realloc_checked(p, st->up, seed, what);
    p = realloc_checked(p, st->down, seed + 1, what);
    free(p);
}

static void test_realloc_paths(void **s)
{
    (void)s;
    static const size_t aligns[] = {16, 64, 4096, 8192, 2 * MiB};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        run_case(MALLOC, 16, &steps[i]);
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
            for (enum how h = MEMALIGN; h <= ALIGNED_ALLOC; h++)
                run_case(h, aligns[a], &steps[i]);
    }
    print_message("realloc paths: %u guarded, %u sentinel checks\n", guards,
                  sentinels);
    /* Under memcheck (ctest runs this test there too) a block's usable
     * size is the size asked for and freed blocks wait in a quarantine:
     * memcheck itself sees every byte read past a block instead. */
    if (!RUNNING_ON_VALGRIND) {
        assert_true(guards > 0);
        assert_true(sentinels > 0);
    }
}

/* The reported crash: a 2 MiB-aligned 100000-byte block realloc'd to
 * 120000 bytes (a slab size) copied 120000 bytes out of a 102400-byte
 * mapping. */
static void test_aligned_grow_to_slab(void **s)
{
    (void)s;
    for (size_t align = 8192; align <= 2 * MiB; align <<= 1) {
        unsigned char *p = NULL;
        assert_int_equal(posix_memalign((void **)&p, align, 100000), 0);
        fill(p, malloc_usable_size(p), 7);
        p = realloc_checked(p, 120000, 7, "posix_memalign -> 120000");
        free(p);
    }
}

/* The edges glibc defines: realloc(NULL, n) is malloc(n), realloc(p, 0)
 * frees p and returns NULL, reallocarray refuses an overflowing product
 * and leaves the block as it was. */
static void test_realloc_edges(void **s)
{
    (void)s;
    unsigned char *p = realloc(NULL, 300 * KiB);
    assert_non_null(p);
    fill(p, 300 * KiB, 3);
    errno = 0;
    /* through a volatile pointer: the compiler knows the product overflows
     * and would not let p be used after it */
    void *(*volatile ra)(void *, size_t, size_t) = reallocarray;
    volatile size_t big = SIZE_MAX / 2;
    assert_null(ra(p, big, 3));
    assert_int_equal(errno, ENOMEM);
    check(p, 300 * KiB, 3, "after a refused reallocarray");
    unsigned char *q = reallocarray(p, 100, 5 * KiB);
    assert_non_null(q);
    p = q;
    check(p, 300 * KiB, 3, "reallocarray");
    assert_null(realloc(p, 0));
    p = realloc(NULL, 10);
    assert_non_null(p);
    assert_null(realloc(p, 0));
}

/* A buffer grown by small appends is copied O(log n) times: a slab object
 * grown past its size moves to a block with half as much room again (not
 * to the next class, four a doubling), whose usable bytes are all usable;
 * the contents come along at every step. */
static void test_realloc_growth_headroom(void **s)
{
    (void)s;
    unsigned char *p = NULL;
    unsigned moves = 0;
    for (size_t n = 16; n <= 4096; n += 16) {
        uintptr_t was = (uintptr_t)p;
        unsigned char *q = realloc(p, n);
        assert_non_null(q);
        moves += (uintptr_t)q != was && was;
        check(q, n - 16, 5, "growth by appends");
        for (size_t i = n - 16; i < n; i++)
            q[i] = pat(i, 5);
        assert_true(malloc_usable_size(q) >= n);
        p = q;
    }
    memset(p, 1, malloc_usable_size(p));
    free(p);
    print_message("16 B to 4 KiB by 16 B: %u moves\n", moves);
    if (!RUNNING_ON_VALGRIND) /* there every realloc moves */
        assert_true(moves <= 16);
}

/* The "large: N allocated" figure of kslab_stats_print(). */
static unsigned long large_allocated(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    kslab_stats_print(f);
    fclose(f);
    unsigned long n = 0;
    const char *at = strstr(buf, "large: ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "large: %lu allocated", &n), 1);
    free(buf);
    return n;
}

/* A slab object grown past 32 KiB becomes a block of pages (which later
 * growth extends in place over the free frames after it), not a slab
 * object of the next class; it keeps its pages while asked for down to
 * two thirds of them, and shrunk to 32 KiB or less it is a slab object
 * again, smaller. */
static void test_realloc_grows_into_pages(void **s)
{
    (void)s;
    unsigned char *p = malloc(30000);
    assert_non_null(p);
    size_t old = malloc_usable_size(p);
    fill(p, old, 9);
    unsigned long before = large_allocated();
    unsigned char *q = realloc_checked(p, 40000, 9, "30000 -> 40000");
    unsigned long after = large_allocated();
    size_t have = malloc_usable_size(q);
    assert_true(have >= 40000);
    if (!RUNNING_ON_VALGRIND) {
        assert_int_equal(after, before + 1);
        assert_int_equal((uintptr_t)q & (PG - 1), 0);
        uintptr_t was = (uintptr_t)q;
        unsigned char *same = realloc(q, have - have / 3);
        assert_non_null(same);
        assert_int_equal((uintptr_t)same, was);
        q = same;
        assert_int_equal(malloc_usable_size(q), have);
    }
    q = realloc_checked(q, 10000, 10, "40000 -> 10000");
    assert_true(malloc_usable_size(q) < 16 * KiB);
    free(q);
}

/* calloc of a recycled own mapping is zero over the whole request, though
 * the mapping was dirty and bigger; malloc_usable_size covers the request. */
static void test_calloc_recycled_huge(void **s)
{
    (void)s;
    size_t n = 6 * MiB;
    unsigned char *p = malloc(n);
    assert_non_null(p);
    memset(p, 0xAB, malloc_usable_size(p));
    __asm__ volatile("" : : "r"(p) : "memory"); /* keep the fill */
    free(p);
    size_t m = 5 * MiB + 123;
    unsigned char *q = calloc(1, m);
    assert_non_null(q);
    assert_true(malloc_usable_size(q) >= m);
    for (size_t i = 0; i < m; i++)
        if (q[i])
            fail_msg("calloc byte %zu is %#x", i, q[i]);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realloc_paths),
        cmocka_unit_test(test_aligned_grow_to_slab),
        cmocka_unit_test(test_realloc_edges),
        cmocka_unit_test(test_calloc_recycled_huge),
        cmocka_unit_test(test_realloc_growth_headroom),
        cmocka_unit_test(test_realloc_grows_into_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
