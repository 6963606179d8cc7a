/*
 * tests/interpose/test_malloc_env.c — glibc's malloc variables read at
 * start (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_, MALLOC_MMAP_MAX_,
 * MALLOC_PERTURB_, MALLOC_TOP_PAD_, MALLOC_ARENA_MAX, MALLOC_ARENA_TEST and
 * the glibc.malloc.* names of GLIBC_TUNABLES), honoured as the mallopt()
 * call with the same value, and mallopt(M_MMAP_MAX).  The program runs
 * itself again with the variables set (argv[1] names what the child does);
 * the child's exit status is what it measured.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "ktest.h"

static const char *self;
static char err[1 << 14];

/* Runs `self mode` with env; returns its exit status (-1 when it did not
 * exit), its stderr in err. */
static int run(const char *mode, const char *const *env)
{
    struct ktest_exec x = {self, mode, env};
    int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void *volatile sink;

/* Four live blocks of kib KiB (256 unless said): how many are own
 * mappings (hblks). */
static int child_mmap_of(size_t kib)
{
    void *v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = malloc(kib << 10);
        if (!v[i])
            return 100;
        memset(v[i], i, kib << 10);
    }
    int n = (int)mallinfo2().hblks;
    for (int i = 0; i < 4; i++)
        free(v[i]);
    return n;
}

static int child_mmap(void)
{
    return child_mmap_of(256);
}

/* The same after mallopt(M_MMAP_THRESHOLD, 128 KiB) and
 * mallopt(M_MMAP_MAX, 1); then, the mappings freed, once more: 10 * the
 * first count + the second. */
static int child_mallopt_mmap_max(void)
{
    if (mallopt(M_MMAP_THRESHOLD, 128 << 10) != 1 ||
        mallopt(M_MMAP_MAX, 1) != 1)
        return 100;
    int a = child_mmap();
    int b = child_mmap();
    return 10 * a + b;
}

/* A new block is filled with ~perturb, a freed one with perturb: 0 when
 * both hold for MALLOC_PERTURB_=0xa5, else 1. */
static int child_perturb(void)
{
    unsigned char *p = malloc(200);
    if (!p)
        return 100;
    sink = p;
    for (int i = 0; i < 200; i++)
        if (p[i] != (0xa5 ^ 0xff))
            return 1;
    /* a large size class too (read through a volatile pointer: its
     * contents are what is tested) */
    volatile unsigned char *q = malloc(64 << 10);
    if (!q)
        return 100;
    for (int i = 0; i < (64 << 10); i += 997)
        if (q[i] != (0xa5 ^ 0xff))
            return 1;
    free((void *)q);
    uintptr_t addr = (uintptr_t)p;
    free(p);
    /* the middle of the freed object (its first words may be links) */
    if (((volatile unsigned char *)addr)[100] != 0xa5)
        return 1;
    return 0;
}

/* 64 blocks of 1 MiB freed: MiB of free memory kept (keepcost). */
static int child_trim(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = malloc(1 << 20);
        if (!v[i])
            return 255;
        memset(v[i], 1, 1 << 20);
    }
    for (int i = 0; i < 64; i++)
        free(v[i]);
    size_t mib = mallinfo2().keepcost >> 20;
    return mib < 250 ? (int)mib : 250;
}

#define THRESH "MALLOC_MMAP_THRESHOLD_=131072"

static void test_mmap_threshold(void **s)
{
    (void)s;
    assert_int_equal(run("mmap", NULL), 0); /* default: 2 MiB and up */
    const char *env[] = {THRESH, NULL};
    assert_int_equal(run("mmap", env), 4);
    /* 0x40000 is 256 KiB: blocks of 256 KiB are mapped, of 192 KiB not;
     * read as decimal (40000, under the slab's 128 KiB) both would be,
     * and 01000000 (octal, 256 KiB) as decimal would map neither */
    const char *hex[] = {"MALLOC_MMAP_THRESHOLD_=0x40000", NULL};
    assert_int_equal(run("mmap", hex), 4);
    assert_int_equal(run("mmap192", hex), 0);
    const char *oct[] = {"MALLOC_MMAP_THRESHOLD_=01000000", NULL};
    assert_int_equal(run("mmap", oct), 4);
    assert_int_equal(run("mmap192", oct), 0);
    const char *dec[] = {"MALLOC_MMAP_THRESHOLD_=196608", NULL};
    assert_int_equal(run("mmap192", dec), 4);
    /* beyond glibc's 32 MiB: ignored, silently, as glibc does */
    const char *big[] = {"MALLOC_MMAP_THRESHOLD_=99999999", NULL};
    assert_int_equal(run("mmap", big), 0);
    assert_string_equal(err, "");
}

static void test_mmap_max(void **s)
{
    (void)s;
    const char *none[] = {THRESH, "MALLOC_MMAP_MAX_=0", NULL};
    assert_int_equal(run("mmap", none), 0);
    const char *two[] = {THRESH, "MALLOC_MMAP_MAX_=2", NULL};
    assert_int_equal(run("mmap", two), 2);
}

static void test_mallopt_mmap_max(void **s)
{
    (void)s;
    /* one mapping at a time, and one again once it is freed */
    assert_int_equal(run("mallopt_mmap_max", NULL), 11);
}

static void test_tunables(void **s)
{
    (void)s;
    const char *env[] = {"GLIBC_TUNABLES=glibc.rtld.optional_static_tls=512:"
                         "glibc.malloc.mmap_threshold=131072:"
                         "glibc.malloc.mmap_max=3",
                         NULL};
    assert_int_equal(run("mmap", env), 3);
    /* GLIBC_TUNABLES over MALLOC_MMAP_MAX_, whichever comes first in the
     * environment (the child's putenv appends in this order: neither name
     * is in it before) */
    unsetenv("MALLOC_MMAP_MAX_");
    unsetenv("GLIBC_TUNABLES");
    const char *env_first[] = {"MALLOC_MMAP_MAX_=1", THRESH,
                               "GLIBC_TUNABLES=glibc.malloc.mmap_max=3", NULL};
    assert_int_equal(run("mmap", env_first), 3);
    assert_string_equal(err, "");
    const char *tunables_first[] = {"GLIBC_TUNABLES=glibc.malloc.mmap_max=3",
                                    THRESH, "MALLOC_MMAP_MAX_=1", NULL};
    assert_int_equal(run("mmap", tunables_first), 3);
    assert_string_equal(err, "");
}

static void test_perturb(void **s)
{
    (void)s;
    const char *env[] = {"MALLOC_PERTURB_=165", NULL};
    assert_int_equal(run("perturb", env), 0);
    const char *tun[] = {"GLIBC_TUNABLES=glibc.malloc.perturb=0xa5", NULL};
    assert_int_equal(run("perturb", tun), 0);
    assert_int_equal(run("perturb", NULL), 1);
}

static void test_trim_threshold(void **s)
{
    (void)s;
    /* no time decay during the test: only the cap gives memory back */
    const char *dflt[] = {"KSLAB_DECAY_MS=3600000", NULL};
    assert_true(run("trim", dflt) >= 48);
    const char *env[] = {"KSLAB_DECAY_MS=3600000",
                         "MALLOC_TRIM_THRESHOLD_=1048576", NULL};
    assert_true(run("trim", env) <= 2);
}

/* The parameters with no kslab meaning are taken as mallopt takes them:
 * no effect, no complaint; glibc's other variables are glibc's. */
static void test_no_effect_ones_are_quiet(void **s)
{
    (void)s;
    const char *env[] = {"MALLOC_TOP_PAD_=65536", "MALLOC_ARENA_MAX=2",
                         "MALLOC_ARENA_TEST=1",   "MALLOC_ARENA_MAX=0",
                         "MALLOC_CHECK_=3",       NULL};
    assert_int_equal(run("mmap", env), 0);
    assert_string_equal(err, "");
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1) {
        if (!strcmp(argv[1], "mmap"))
            return child_mmap();
        if (!strcmp(argv[1], "mmap192"))
            return child_mmap_of(192);
        if (!strcmp(argv[1], "mallopt_mmap_max"))
            return child_mallopt_mmap_max();
        if (!strcmp(argv[1], "perturb"))
            return child_perturb();
        if (!strcmp(argv[1], "trim"))
            return child_trim();
        return 99;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmap_threshold),
        cmocka_unit_test(test_mmap_max),
        cmocka_unit_test(test_mallopt_mmap_max),
        cmocka_unit_test(test_tunables),
        cmocka_unit_test(test_perturb),
        cmocka_unit_test(test_trim_threshold),
        cmocka_unit_test(test_no_effect_ones_are_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
