/*
 * tests/interpose/test_mallinfo.c — glibc's extras with kslab's figures:
 * mallinfo2/mallinfo move as the program allocates and frees, malloc_trim
 * gives memory back (RSS falls), malloc_stats and malloc_info print in
 * glibc's shape, mallopt honours M_MMAP_THRESHOLD, M_PERTURB and
 * M_TRIM_THRESHOLD and answers every param as glibc 2.36 does.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>

#include <kslab/gfp.h>
#include <kslab/vm.h>

#include "ktest.h"

#define KiB (1024UL)
#define MiB (1024UL * 1024UL)

/* mallinfo() is deprecated in glibc's header; it is tested all the same. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static void touch(void *p, size_t n)
{
    memset(p, 0x33, n);
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void test_uordblks_moves(void **s)
{
    (void)s;
    enum { N = 2000 };
    static void *v[N];
    struct mallinfo2 a = mallinfo2();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(1000);
        assert_non_null(v[i]);
    }
    struct mallinfo2 b = mallinfo2();
    size_t grown = b.uordblks - a.uordblks;
    print_message("2000 x 1000 bytes: uordblks +%zu, arena +%zu\n", grown,
                  b.arena - a.arena);
    assert_true(grown >= N * 1000UL);
    assert_true(grown <= N * 1300UL);
    assert_int_equal(b.arena, b.uordblks + b.fordblks);
    for (int i = 0; i < N; i++)
        free(v[i]);
    struct mallinfo2 c = mallinfo2();
    assert_true(c.uordblks < b.uordblks - N * 900UL);
    assert_true(c.fordblks > b.fordblks);

    /* large buddy blocks count in uordblks */
    void *l[8];
    for (int i = 0; i < 8; i++) {
        l[i] = malloc(MiB);
        assert_non_null(l[i]);
    }
    struct mallinfo2 d = mallinfo2();
    assert_true(d.uordblks - c.uordblks >= 8 * MiB);
    for (int i = 0; i < 8; i++)
        free(l[i]);
    assert_true(mallinfo2().uordblks < d.uordblks - 7 * MiB);
}

static void test_hblks(void **s)
{
    (void)s;
    struct mallinfo2 a = mallinfo2();
    void *p = malloc(40 * MiB); /* an own mapping, too big for the cache */
    touch(p, 64);
    assert_non_null(p);
    struct mallinfo2 b = mallinfo2();
    assert_int_equal(b.hblks, a.hblks + 1);
    assert_true(b.hblkhd - a.hblkhd >= 40 * MiB);
    struct mallinfo old = mallinfo();
    assert_int_equal(old.hblks, (int)b.hblks);
    assert_int_equal(old.hblkhd, (int)b.hblkhd);
    free(p);
    struct mallinfo2 c = mallinfo2();
    assert_int_equal(c.hblks, a.hblks);
    assert_int_equal(c.hblkhd, a.hblkhd);
}

static void test_trim(void **s)
{
    (void)s;
    enum { N = 16384 };
    static void *v[N];
    for (int i = 0; i < N; i++) { /* 64 MiB of slab objects */
        v[i] = malloc(4000);
        assert_non_null(v[i]);
        touch(v[i], 4000);
    }
    void *big[16]; /* 16 MiB of buddy blocks, 16 MiB of cached mappings */
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(i < 8 ? 2 * MiB : 3 * MiB);
        assert_non_null(big[i]);
        touch(big[i], 2 * MiB);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
    for (int i = 0; i < 16; i++)
        free(big[i]);
    size_t rss = ktest_rss();
    struct mallinfo2 a = mallinfo2();
    int first = malloc_trim(0);
    int second = malloc_trim(0); /* nothing left to give back */
    assert_int_equal(first, 1);
    assert_int_equal(second, 0);
    size_t rss2 = ktest_rss();
    struct mallinfo2 b = mallinfo2();
    print_message("malloc_trim(0): RSS %zu -> %zu KiB, keepcost %zu -> %zu "
                  "KiB, arena %zu -> %zu KiB\n",
                  rss / KiB, rss2 / KiB, a.keepcost / KiB, b.keepcost / KiB,
                  a.arena / KiB, b.arena / KiB);
    assert_true(rss2 + 32 * MiB <= rss);
    assert_true(b.keepcost < a.keepcost);
    assert_true(b.arena < a.arena);
    /* what is left free after a trim is little: arena counts the frames
     * the zones really hold, not the address range up to the highest one */
    assert_true(b.fordblks < 4 * MiB);
}

/* Frames free_pages gave back to the zones are free memory kslab holds
 * (dirty) and malloc_trim gives back: keepcost counts them. */
static void test_keepcost_counts_freed_frames(void **s)
{
    (void)s;
    malloc_trim(0);
    struct mallinfo2 a = mallinfo2();
    unsigned long p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = __get_free_pages(GFP_KERNEL, 0);
        assert_true(p[i] != 0);
        touch((void *)p[i], 4096);
    }
    for (int i = 0; i < 8; i++)
        free_pages(p[i], 0);
    struct mallinfo2 b = mallinfo2();
    assert_true(b.keepcost >= a.keepcost + 8 * 4096);
    assert_int_equal(malloc_trim(0), 1);
    struct mallinfo2 c = mallinfo2();
    assert_true(c.keepcost + 8 * 4096 <= b.keepcost);
}

static void test_mallopt(void **s)
{
    (void)s;
    assert_int_equal(mallopt(M_ARENA_MAX, 2), 1);
    assert_int_equal(mallopt(M_ARENA_TEST, 2), 1);
    assert_int_equal(mallopt(M_TOP_PAD, 1 << 20), 1);
    assert_int_equal(mallopt(M_MMAP_MAX, 65536), 1);
    assert_int_equal(mallopt(M_CHECK_ACTION, 3), 1);
    assert_int_equal(mallopt(M_MXFAST, 64), 1);
    assert_int_equal(mallopt(M_MXFAST, 100000), 0);
    assert_int_equal(mallopt(M_MXFAST, -1), 0);
    assert_int_equal(mallopt(M_MXFAST, 160), 1);
    assert_int_equal(mallopt(M_MXFAST, 161), 0);
    /* glibc 2.36 ignores a param it does not know and says 1 */
    assert_int_equal(mallopt(12345, 1), 1);
    assert_int_equal(mallopt(0, 1), 1);
    assert_int_equal(mallopt(-100, -1), 1);
    assert_int_equal(mallopt(M_ARENA_MAX, 0), 1);
    assert_int_equal(mallopt(M_ARENA_TEST, -1), 1);

    /* M_MMAP_THRESHOLD: a 512 KiB block becomes an own mapping */
    struct mallinfo2 a = mallinfo2();
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 256 * KiB), 1);
    void *p = malloc(512 * KiB);
    touch(p, 64); /* used: the compiler may not drop the pair */
    assert_int_equal(mallinfo2().hblks, a.hblks + 1);
    free(p);
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 2 * MiB + 4096), 1);
    p = malloc(512 * KiB);
    touch(p, 64);
    assert_int_equal(mallinfo2().hblks, a.hblks);
    free(p);
}

/* Any M_MMAP_THRESHOLD is taken, as glibc 2.36 takes it (1; a negative
 * one is a size_t too: no block is a mapping for the threshold), so a
 * threshold above glibc's old 32 MiB limit undoes a small one. */
static void test_mallopt_mmap_threshold_any(void **s)
{
    (void)s;
    int values[] = {64 << 20, -1, INT_MAX};
    for (int i = 0; i < 3; i++) {
        struct mallinfo2 a = mallinfo2();
        assert_int_equal(mallopt(M_MMAP_THRESHOLD, 256 * KiB), 1);
        void *p = malloc(512 * KiB);
        touch(p, 64);
        assert_int_equal(mallinfo2().hblks, a.hblks + 1);
        free(p);
        assert_int_equal(mallopt(M_MMAP_THRESHOLD, values[i]), 1);
        p = malloc(512 * KiB);
        touch(p, 64);
        assert_int_equal(mallinfo2().hblks, a.hblks); /* a buddy block */
        free(p);
    }
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 2 * MiB + 4096), 1);
}

static void test_perturb(void **s)
{
    (void)s;
    assert_int_equal(mallopt(M_PERTURB, 0x5A), 1);
    size_t sizes[] = {100, 5000, 300 * KiB};
    for (int k = 0; k < 3; k++) {
        unsigned char *p = malloc(sizes[k]);
        assert_non_null(p);
        for (size_t i = 0; i < sizes[k]; i++)
            assert_int_equal(p[i], 0xA5);
        unsigned char *z = calloc(1, sizes[k]);
        for (size_t i = 0; i < sizes[k]; i++)
            assert_int_equal(z[i], 0);
        free(z);
        /* the block is still kslab's memory: freed bytes are 0x5A (read
         * through an address the compiler does not follow) */
        uintptr_t addr = (uintptr_t)p;
        __asm__ volatile("" : "+r"(addr));
        free(p);
        assert_int_equal(((volatile unsigned char *)addr)[sizes[k] / 2], 0x5A);
    }
    assert_int_equal(mallopt(M_PERTURB, 0), 1);
    unsigned char *p = malloc(100);
    touch(p, 100);
    free(p);
    p = malloc(100);
    volatile unsigned char *vp = p;
    assert_int_equal(vp[50], 0x33); /* no fill any more: the same object */
    free(p);
}

/* M_TRIM_THRESHOLD 0: freed buddy blocks go back at once, no trim call. */
static void test_trim_threshold(void **s)
{
    (void)s;
    malloc_trim(0);
    assert_int_equal(mallopt(M_TRIM_THRESHOLD, 0), 1);
    void *v[16];
    for (int i = 0; i < 16; i++) {
        v[i] = malloc(MiB);
        touch(v[i], MiB);
    }
    size_t rss = ktest_rss();
    for (int i = 0; i < 16; i++)
        free(v[i]);
    size_t rss2 = ktest_rss();
    print_message("M_TRIM_THRESHOLD 0: free of 16 MiB: RSS %zu -> %zu KiB\n",
                  rss / KiB, rss2 / KiB);
    assert_true(rss2 + 12 * MiB <= rss);
    assert_int_equal(mallopt(M_TRIM_THRESHOLD, 32 << 20), 1);
}

static void print_stats(void *arg)
{
    (void)arg;
    void *p = malloc(40 * MiB);
    touch(p, 64);
    malloc_stats();
    free(p);
}

static void test_malloc_stats(void **s)
{
    (void)s;
    char err[65536];
    int st = ktest_run_child(print_stats, NULL, err, sizeof err);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    const char *want[] = {"Arena 0:\nsystem bytes     = ",
                          "\nin use bytes     = ",
                          "Total (incl. mmap):\n",
                          "max mmap regions = ",
                          "max mmap bytes   = ",
                          "slabinfo - version: 1.1",
                          "large: "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err, want[i]))
            fail_msg("malloc_stats lacks \"%s\": %s", want[i], err);
}

static void test_malloc_info(void **s)
{
    (void)s;
    void *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = malloc(64);
    free(keep[50]);
    void *huge = malloc(40 * MiB);
    touch(huge, 64);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(malloc_info(0, f), 0);
    fclose(f);
    const char *want[] = {"<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n",
                          "<size from=\"64\" to=\"64\" total=\"",
                          "<total type=\"fast\" count=\"",
                          "<total type=\"rest\" count=\"",
                          "<system type=\"current\" size=\"",
                          "<aspace type=\"total\" size=\"",
                          "</heap>\n",
                          "<total type=\"mmap\" count=\"",
                          "</malloc>\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(buf, want[i]))
            fail_msg("malloc_info lacks \"%s\": %s", want[i], buf);
    free(buf);
    free(huge);
    for (int i = 0; i < 100; i++)
        if (i != 50)
            free(keep[i]);
    assert_int_equal(malloc_info(1, stdout), EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uordblks_moves),
        cmocka_unit_test(test_hblks),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_keepcost_counts_freed_frames),
        cmocka_unit_test(test_mallopt),
        cmocka_unit_test(test_mallopt_mmap_threshold_any),
        cmocka_unit_test(test_perturb),
        cmocka_unit_test(test_trim_threshold),
        cmocka_unit_test(test_malloc_stats),
        cmocka_unit_test(test_malloc_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
