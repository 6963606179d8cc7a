/*
 * tests/reliability/vg_plant.c — a program with planted bugs for
 * test_valgrind.sh: two leaked blocks (plant_leak), a read one byte past
 * a 40-byte block and a read after free (plant_invalid_read), beside
 * ordinary realloc/calloc/posix_memalign traffic that must report nothing.
 * Run preloaded with libkslab.so under memcheck, it must be reported as
 * under glibc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *keep; /* reachable at exit: not a leak */

__attribute__((noinline)) static void plant_leak(void)
{
    char *volatile a = malloc(100);
    char *volatile b = malloc(100);
    memset(a, 1, 100);
    memset(b, 2, 100);
    // cppcheck-suppress memleak
    a = NULL; /* planted */
    // cppcheck-suppress memleak
    b = NULL;
}

__attribute__((noinline)) static int plant_invalid_read(void)
{
    char *volatile p = malloc(40); /* volatile: hidden from the compiler */
    memset(p, 3, 40);
    // cppcheck-suppress arrayIndexOutOfBounds
    volatile char past = p[40]; /* one byte past the end */
    free(p);
    // cppcheck-suppress deallocuse
    volatile char after = p[0]; /* after free */
    return past + after;
}

__attribute__((noinline)) static void clean_traffic(void)
{
    char *s = malloc(10);
    strcpy(s, "kslab");
    char *t = realloc(s, 5000);
    if (!t)
        abort();
    s = realloc(t, 300000); /* a large block */
    if (!s || strcmp(s, "kslab") != 0)
        abort();
    free(s);
    void *al = NULL;
    if (posix_memalign(&al, 64, 100) != 0)
        abort();
    free(al);
    char *z = calloc(10, 10);
    for (int i = 0; i < 100; i++)
        if (z[i])
            abort();
    free(z);
    for (int i = 0; i < 1000; i++)
        free(malloc((size_t)i * 37 % 4000 + 1));
}

int main(void)
{
    keep = malloc(1000);
    plant_leak();
    clean_traffic();
    int r = plant_invalid_read();
    printf("vg_plant: done\n");
    return r & 0;
}
