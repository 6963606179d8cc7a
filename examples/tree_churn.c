/*
 * examples/tree_churn.c — a malloc workload: threads that build binary
 * trees and tear them down again, one node in 64 carrying a block of
 * 64–360 KiB, the others 16–700 bytes.  Every page of a block is touched.
 * After the last round every thread has freed everything; the program then
 * sleeps one second without calling malloc and prints its RSS, so the
 * memory an allocator gives back on its own shows.
 *
 *   tree_churn [threads=2] [rounds=40] [depth=14]
 *
 * Run it under LD_PRELOAD of each allocator to compare them; it prints
 * "rss_after_free_kib=N" on stdout.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node {
    struct node *left, *right;
    char *payload;
    size_t size;
};

static int rounds = 40, depth = 14;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t payload_size(uint64_t *s)
{
    uint64_t r = next_rand(s);
    if (r % 64 == 0)
        return (64UL << 10) + (size_t)((r >> 8) % ((360UL - 64UL) << 10));
    return 16 + (size_t)((r >> 8) % (700 - 16 + 1));
}

static struct node *build(int d, uint64_t *s)
{
    if (!d)
        return NULL;
    struct node *n = malloc(sizeof *n);
    if (!n)
        abort();
    n->size = payload_size(s);
    n->payload = malloc(n->size);
    if (!n->payload)
        abort();
    for (size_t i = 0; i < n->size; i += 4096)
        n->payload[i] = (char)d;
    n->payload[n->size - 1] = (char)d;
    n->left = build(d - 1, s);
    n->right = build(d - 1, s);
    return n;
}

static unsigned long sum(const struct node *n)
{
    return n ? (unsigned long)(unsigned char)n->payload[0] + sum(n->left) +
                   sum(n->right)
             : 0;
}

static void destroy(struct node *n)
{
    if (!n)
        return;
    destroy(n->left);
    destroy(n->right);
    free(n->payload);
    free(n);
}

static void *worker(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ULL ^ (uintptr_t)arg;
    unsigned long total = 0;
    for (int r = 0; r < rounds; r++) {
        struct node *t = build(depth, &s);
        total += sum(t);
        destroy(t);
    }
    return (void *)(uintptr_t)total;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv)
{
    if (argc > 1 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: tree_churn [THREADS [ROUNDS [DEPTH]]]\n  threads "
              "building and tearing down binary trees through malloc\n",
              stdout);
        return 0;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (argc > 3)
        depth = atoi(argv[3]);
    if (threads < 1 || threads > 64 || rounds < 1 || depth < 1 || depth > 24) {
        fprintf(stderr, "usage: tree_churn [threads] [rounds] [depth]\n");
        return 2;
    }
    pthread_t tid[64];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)(i + 1)))
            return 1;
    unsigned long total = 0;
    for (int i = 0; i < threads; i++) {
        void *ret;
        pthread_join(tid[i], &ret);
        total += (unsigned long)(uintptr_t)ret;
    }
    sleep(1); /* no malloc call: what goes back now, the allocator did */
    printf("checksum=%lu rss_after_free_kib=%ld\n", total, rss_kib());
    return 0;
}
