/*
 * threads.c — the two-thread workloads, where objects cross threads.
 *
 * prodcons: two threads joined by two single-producer single-consumer rings.
 * Each thread allocates into its outgoing ring and frees what arrives on its
 * incoming ring, so every object is freed by the thread that did not
 * allocate it — the remote-free path of every allocator.
 *
 * larson: a shared array of object pointers (the "server's" live objects);
 * each thread repeatedly picks a random slot, allocates a replacement and
 * frees the object it displaced, which another thread may have allocated.
 * The slot swap is an atomic exchange, so no lock but the allocator's own
 * is taken.  Both follow Larson & Krishnan's server benchmark in spirit.
 *
 * Threads wait with sched_yield(): the machine may have fewer free cores
 * than threads.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "bench.h"

#define RING_SIZE 1024 /* power of two */

/* One SPSC ring: head written only by the consumer, tail by the producer. */
struct ring {
    _Alignas(64) _Atomic size_t head;
    _Alignas(64) _Atomic size_t tail;
    _Alignas(64) void *slot[RING_SIZE];
};

struct pc_side {
    struct ring *out, *in;
    uint64_t n;
    uint64_t seed;
};

static void *pc_thread(void *arg)
{
    struct pc_side *me = arg;
    uint64_t made = 0, freed = 0, s = me->seed;

    while (made < me->n || freed < me->n) {
        int idle = 1;
        /* Produce while there is room. */
        size_t t = atomic_load_explicit(&me->out->tail, memory_order_relaxed);
        size_t h = atomic_load_explicit(&me->out->head, memory_order_acquire);
        while (made < me->n && t - h < RING_SIZE) {
            char *p = malloc(16 + bench_rand(&s) % 241);
            p[0] = 1;
            me->out->slot[t % RING_SIZE] = p;
            t++;
            made++;
            idle = 0;
        }
        atomic_store_explicit(&me->out->tail, t, memory_order_release);
        /* Consume what the other side sent. */
        h = atomic_load_explicit(&me->in->head, memory_order_relaxed);
        t = atomic_load_explicit(&me->in->tail, memory_order_acquire);
        while (h != t) {
            free(me->in->slot[h % RING_SIZE]);
            h++;
            freed++;
            idle = 0;
        }
        atomic_store_explicit(&me->in->head, h, memory_order_release);
        if (idle)
            sched_yield();
    }
    return NULL;
}

uint64_t wl_prodcons(uint64_t n)
{
    struct ring *r = bench_map(2 * sizeof(struct ring));
    if (!r)
        return 0;
    struct pc_side a = {&r[0], &r[1], n, 11}, b = {&r[1], &r[0], n, 13};
    pthread_t tb;
    if (pthread_create(&tb, NULL, pc_thread, &b) != 0) {
        bench_unmap(r, 2 * sizeof(struct ring));
        return 0;
    }
    pc_thread(&a);
    pthread_join(tb, NULL);
    bench_unmap(r, 2 * sizeof(struct ring));
    return 2 * n;
}

struct wl_larson {
    size_t slots;
    void *_Atomic *slot;
};

struct larson_arg {
    struct wl_larson *l;
    uint64_t n, seed;
};

static void *larson_thread(void *arg)
{
    struct larson_arg *a = arg;
    struct wl_larson *l = a->l;
    uint64_t s = a->seed;
    for (uint64_t i = 0; i < a->n; i++) {
        uint64_t x = bench_rand(&s);
        char *p = malloc(16 + (x >> 20) % 1009);
        p[0] = 1;
        void *old = atomic_exchange_explicit(&l->slot[x % l->slots], p,
                                             memory_order_acq_rel);
        free(old);
    }
    return NULL;
}

struct wl_larson *wl_larson_init(size_t slots)
{
    struct wl_larson *l = bench_map(sizeof(*l) + slots * sizeof(void *));
    if (!l)
        return NULL;
    l->slots = slots;
    l->slot = (void *_Atomic *)(l + 1);
    uint64_t s = 5;
    for (size_t i = 0; i < slots; i++)
        atomic_init(&l->slot[i], malloc(16 + bench_rand(&s) % 1009));
    return l;
}

uint64_t wl_larson_run(struct wl_larson *l, int threads, uint64_t n)
{
    pthread_t tid[16];
    struct larson_arg arg[16] = {0};
    if (threads < 1)
        threads = 1;
    if (threads > 16)
        threads = 16;
    int started = 1;
    for (int i = 0; i < threads; i++)
        arg[i] = (struct larson_arg){l, n, 1000 + 77 * (uint64_t)i};
    for (int i = 1; i < threads; i++, started++)
        if (pthread_create(&tid[i], NULL, larson_thread, &arg[i]) != 0)
            break;
    larson_thread(&arg[0]);
    for (int i = 1; i < started; i++)
        pthread_join(tid[i], NULL);
    return (uint64_t)started * n;
}

void wl_larson_fini(struct wl_larson *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->slots; i++)
        free(atomic_load(&l->slot[i]));
    bench_unmap(l, sizeof(*l) + l->slots * sizeof(void *));
}
