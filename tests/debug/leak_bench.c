/*
 * tests/debug/leak_bench.c — the program of the README's leak-finder
 * comparison (KSLAB_DEBUG=leaks beside valgrind memcheck, LeakSanitizer
 * and gperftools' heap checker): 200000 malloc/free pairs of mixed sizes,
 * then three planted leaks: 123 bytes, a list of four 48-byte nodes
 * (one direct, three indirect), 300000 bytes.  Not a test: built beside
 * the tests so that the figures can be measured again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline, noipa))

struct node {
    struct node *next;
    char pad[40];
};

void *volatile bench_sink;

NOINLINE void bench_leak_small(void)
{
    bench_sink = malloc(123);
    bench_sink = NULL;
}

NOINLINE void bench_leak_list(void)
{
    struct node *volatile head = NULL;
    for (int i = 0; i < 4; i++) {
        struct node *n = malloc(sizeof *n);
        n->next = head;
        head = n;
    }
    head = NULL;
}

NOINLINE void bench_leak_large(void)
{
    char *p = malloc(300000);
    memset(p, 1, 4096);
    bench_sink = p;
    bench_sink = NULL;
}

NOINLINE void bench_scrub(void)
{
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    void *keep[64] = {0};
    for (long i = 0; i < rounds; i++) {
        size_t k = (size_t)i % 64;
        free(keep[k]);
        keep[k] = malloc(16 + (size_t)(i * 37 % 2000));
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    bench_leak_small();
    bench_leak_list();
    bench_leak_large();
    bench_scrub();
    printf("done %ld\n", rounds);
    return 0;
}
