/*
 * tests/interpose/test_static.c — a fully static program (cc -static, with
 * libkslab.a) that calls the whole malloc family and glibc's extras links
 * and runs: kslab defines mallopt, mallinfo, mallinfo2, malloc_trim,
 * malloc_stats and malloc_info, so none of them pulls glibc's malloc.o out
 * of libc.a (whose malloc and free would clash with kslab's).  No cmocka:
 * the program checks and exits 0 or 1.  With argv[1] "stacks" and
 * KSLAB_DEBUG=...,log, the events of the log must carry stacks
 * (test_static_link.sh: linked with nothing but -lpthread, the unwinder is
 * backtrace() or a libunwind found at run time).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kslab/kslab.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "test_static: %s:%d: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                    \
            failed = 1;                                                        \
        }                                                                      \
    } while (0)

/* The log's events have frames: a stack was taken. */
static void check_stacks(void)
{
    const char *dbg = getenv("KSLAB_DEBUG");
    if (!dbg || !strstr(dbg, "log"))
        return;
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    free(malloc(77));
    kslab_log_print(f);
    rewind(f);
    char line[512];
    int frames = 0, events = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            events++;
        else if (!strncmp(line, "    #0 0x", 9))
            frames++;
    }
    fclose(f);
    CHECK(events >= 2);
    CHECK(frames >= 2);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "stacks"))
        check_stacks();
    CHECK(mallopt(M_ARENA_MAX, 1) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
    struct mallinfo2 a = mallinfo2();
    void *v[8];
    for (int i = 0; i < 8; i++) {
        v[i] = malloc(512 << 10);
        CHECK(v[i] != NULL);
        memset(v[i], i, 512 << 10);
    }
    /* kslab's figures: 512 KiB blocks are buddy blocks, in uordblks (glibc
     * would have mapped them: hblkhd) */
    struct mallinfo2 b = mallinfo2();
    CHECK(b.uordblks - a.uordblks >= 8UL * (512 << 10));
    CHECK(b.hblks == a.hblks);
    void *q = realloc(v[0], 3 << 20);
    CHECK(q != NULL && ((unsigned char *)q)[1000] == 0);
    v[0] = q;
    void *al = aligned_alloc(4096, 100);
    void *me = memalign(64, 100);
    void *pm = NULL;
    CHECK(posix_memalign(&pm, 8192, 100000) == 0);
    void *ca = calloc(10, 10);
    CHECK(al && me && pm && ca);
    CHECK(malloc_usable_size(ca) >= 100);
    struct mallinfo old = mallinfo();
    CHECK(old.uordblks > 0);
    FILE *null = fopen("/dev/null", "w");
    CHECK(null != NULL);
    CHECK(malloc_info(0, null) == 0);
    CHECK(malloc_info(1, null) == EINVAL);
    kslab_stats_print(null);
    fclose(null);
    for (int i = 0; i < 8; i++)
        free(v[i]);
    free(al);
    free(me);
    free(pm);
    free(ca);
    CHECK(malloc_trim(0) == 1);
    malloc_stats();
    if (!failed)
        puts("test_static: ok");
    return failed;
}
