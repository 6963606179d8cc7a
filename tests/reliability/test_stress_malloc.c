/*
 * tests/reliability/test_stress_malloc.c — the malloc family of libkslab.so
 * under threads (this program's malloc is kslab's): 2 and 8 threads doing
 * random malloc / calloc / realloc / posix_memalign / free, small and large
 * blocks, every byte verified, blocks handed between threads (cross-thread
 * frees), each case bounded in time.  Nothing lost: the active objects of
 * all caches (kmem_slabinfo) do not grow from one round to the next.
 */
#include "ktest.h"
#include "stress_util.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <kslab/kslab.h>

#define RUN_MS 500
#define SLOTS 128

static size_t rnd_size(unsigned int *seed)
{
    unsigned int r = rnd(seed);
    switch (r & 15) {
    case 0:
        return (r >> 8) % (1 << 20) + 1; /* up to 1 MiB: large blocks */
    case 1:
    case 2:
        return (r >> 8) % 131072 + 1;
    case 3:
    case 4:
    case 5:
        return (r >> 8) % 4096 + 1;
    default:
        return (r >> 8) % 512;
    }
}

static pthread_mutex_t mail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk mailbox[64];
static int nmail;

static _Atomic unsigned long total_ops;

static void *worker(void *arg)
{
    unsigned int seed = (unsigned int)(uintptr_t)arg;
    double until = now_ms() + RUN_MS;
    struct blk slot[SLOTS] = {{0}};
    unsigned long ops = 0;
    while ((ops & 127) || now_ms() < until) {
        ops++;
        unsigned int r = rnd(&seed);
        struct blk *b = &slot[r % SLOTS];
        if (b->p) {
            blk_check(b);
            switch ((r >> 8) & 3) {
            case 0: { /* realloc keeps the common prefix */
                size_t n = rnd_size(&seed) + 1;
                unsigned char *q = realloc(b->p, n);
                assert_non_null(q);
                b->p = q;
                b->size = n < b->size ? n : b->size;
                blk_check(b);
                b->size = n;
                memset(b->p, b->fill, n);
                break;
            }
            case 1: /* hand it to another thread */
                pthread_mutex_lock(&mail_lock);
                if (nmail < 64) {
                    mailbox[nmail++] = *b;
                    b->p = NULL;
                }
                pthread_mutex_unlock(&mail_lock);
                if (!b->p)
                    break;
                /* fall through */
            default:
                assert_true(malloc_usable_size(b->p) >= b->size);
                free(b->p);
                b->p = NULL;
            }
            continue;
        }
        struct blk m = {0};
        pthread_mutex_lock(&mail_lock);
        if (nmail && (r & 0x10000))
            m = mailbox[--nmail];
        pthread_mutex_unlock(&mail_lock);
        if (m.p) { /* someone else's block */
            blk_check(&m);
            free(m.p);
            continue;
        }
        b->size = rnd_size(&seed);
        switch ((r >> 12) & 3) {
        case 0:
            b->p = calloc(1, b->size);
            assert_non_null(b->p);
            for (size_t i = 0; i < b->size; i++)
                assert_int_equal(b->p[i], 0);
            break;
        case 1: {
            void *p = NULL;
            size_t align = (size_t)16 << ((r >> 16) % 9);
            assert_int_equal(posix_memalign(&p, align, b->size), 0);
            assert_int_equal((uintptr_t)p & (align - 1), 0);
            b->p = p;
            break;
        }
        default:
            b->p = malloc(b->size);
            assert_true(b->p || b->size == 0);
        }
        b->fill = (unsigned char)(rnd(&seed) | 1);
        if (b->p)
            memset(b->p, b->fill, b->size);
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i].p) {
            blk_check(&slot[i]);
            free(slot[i].p);
        }
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

/* Sum of active objects over the caches of /proc/slabinfo text. */
static unsigned long active_objects(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kmem_cache_reap(GFP_KERNEL);
    kmem_slabinfo(f);
    fclose(f);
    unsigned long sum = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        unsigned long active;
        if (sscanf(line, "%63s %lu", name, &active) == 2)
            sum += active;
    }
    free(buf);
    return sum;
}

/* One round: nthreads workers for RUN_MS, then the mailbox emptied. */
static void round_of(int nthreads)
{
    pthread_t t[8];
    for (int i = 0; i < nthreads; i++)
        assert_int_equal(
            pthread_create(&t[i], NULL, worker,
                           (void *)(uintptr_t)(0x1234567u * (i + 1))),
            0);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    while (nmail) {
        struct blk *m = &mailbox[--nmail];
        blk_check(m);
        free(m->p);
    }
}

/*
 * Nothing lost: glibc keeps the stacks (and their TLS blocks, malloc'ed)
 * of exited threads for reuse, and arrays are made at first use, so the
 * first round leaves some objects behind for good; a leak would grow with
 * every round.  Four rounds; the last may not end more than 64 objects
 * above the larger of the first two (glibc's own caches move by a few
 * dozen; the rounds do tens of thousands of allocations).
 */
static void run(int nthreads)
{
    unsigned long active[4];
    atomic_store(&total_ops, 0);
    for (int r = 0; r < 4; r++) {
        round_of(nthreads);
        active[r] = active_objects();
    }
    unsigned long base = active[0] > active[1] ? active[0] : active[1];
    if (active[3] > base + 64)
        fail_msg("objects active after rounds 1-4: %lu %lu %lu %lu", active[0],
                 active[1], active[2], active[3]);
    printf("stress: malloc family, %d threads, 4 x %d ms, %lu operations; "
           "objects active after each round: %lu %lu %lu %lu\n",
           nthreads, RUN_MS, atomic_load(&total_ops), active[0], active[1],
           active[2], active[3]);
}

static void test_malloc_2_threads(void **state)
{
    (void)state;
    run(2);
}

static void test_malloc_8_threads(void **state)
{
    (void)state;
    run(8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_2_threads),
        cmocka_unit_test(test_malloc_8_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
