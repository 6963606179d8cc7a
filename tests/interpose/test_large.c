/*
 * tests/interpose/test_large.c — interpose/large.c on its own (no interposer,
 * so it runs in the sanitizer build too): buddy blocks and own mappings,
 * alignment, usable size, in-place growth, realloc across the kinds, the
 * huge-mapping cache and its bound, and the answers for pointers that are
 * not large blocks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "ktest.h"
#include "interpose/large.h"
#include "vm/frames/os.h"

#define KiB (1024UL)
#define MiB (1024UL * 1024UL)

static void test_buddy_block(void **s)
{
    (void)s;
    char *p = ip_large_alloc(200 * KiB, PAGE_SIZE, 1);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p & (PAGE_SIZE - 1), 0);
    assert_non_null(vm_virt_to_page(p)); /* low memory */
    assert_int_equal(ip_large_usable(p), PAGE_ALIGN(200 * KiB));
    for (size_t i = 0; i < 200 * KiB; i++)
        assert_int_equal(p[i], 0);
    memset(p, 1, 200 * KiB);
    assert_int_equal(ip_large_usable(p + PAGE_SIZE), 0);
    assert_int_equal(ip_large_free(p + PAGE_SIZE), IP_LARGE_BAD);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(p), IP_LARGE_BAD); /* double free */
}

static void test_huge_block(void **s)
{
    (void)s;
    size_t n = 3 * LARGE_BUDDY_MAX_PAGES * PAGE_SIZE;
    char *p = ip_large_alloc(n, PAGE_SIZE, 1);
    assert_non_null(p);
    assert_null(vm_virt_to_page(p)); /* a mapping of its own */
    assert_int_equal(ip_large_usable(p), n);
    memset(p, 2, n);
    assert_int_equal(ip_large_free(p + PAGE_SIZE), IP_LARGE_NOT_OURS);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(p), IP_LARGE_NOT_OURS);
    /* The same size again comes from the cache, zeroed on request. */
    char *q = ip_large_alloc(n, PAGE_SIZE, 1);
    for (size_t i = 0; i < n; i += 4096)
        assert_int_equal(q[i], 0);
    assert_int_equal(ip_large_free(q), IP_LARGE_FREED);
}

static void test_alignment(void **s)
{
    (void)s;
    for (size_t a = PAGE_SIZE; a <= 16 * MiB; a <<= 1) {
        char *p = ip_large_alloc(300 * KiB, a, 0);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p & (a - 1), 0);
        assert_true(ip_large_usable(p) >= 300 * KiB);
        memset(p, 3, 300 * KiB);
        assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    }
}

static void test_realloc_kinds(void **s)
{
    (void)s;
    size_t sizes[] = {150 * KiB, 1 * MiB,   5 * MiB, 30 * MiB,
                      2 * MiB,   300 * KiB, 9 * MiB, 140 * KiB};
    unsigned char *p = ip_large_alloc(140 * KiB, PAGE_SIZE, 0);
    size_t have = 140 * KiB;
    for (size_t i = 0; i < have; i++)
        p[i] = (unsigned char)(i * 7);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t keep = have < sizes[k] ? have : sizes[k];
        p = ip_large_realloc(p, sizes[k]);
        assert_non_null(p);
        for (size_t i = 0; i < keep; i += 61)
            assert_int_equal(p[i], (unsigned char)(i * 7));
        for (size_t i = 0; i < sizes[k]; i++)
            p[i] = (unsigned char)(i * 7);
        have = sizes[k];
    }
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
}

/* A buddy block that realloc grows takes half as much again (room for
 * its next growth, in place or where it moves): a block grown by a tenth
 * at a time from 80 KiB to 1.5 MiB is resized (grown in place or moved)
 * at most every other step, not at every step; and it keeps its frames
 * while asked for down to two thirds of them, giving the tail back below. */
static void test_realloc_growth_room(void **s)
{
    (void)s;
    struct ip_large_stats a, b;
    size_t n = 80 * KiB;
    unsigned char *p = ip_large_alloc(n, PAGE_SIZE, 0);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7);
    ip_large_get_stats(&a);
    unsigned steps = 0;
    while (n + n / 10 <= 1536 * KiB) {
        size_t next = n + n / 10;
        p = ip_large_realloc(p, next);
        assert_non_null(p);
        assert_true(ip_large_usable(p) >= next);
        for (size_t i = 0; i < n; i += 97)
            assert_int_equal(p[i], (unsigned char)(i * 7));
        for (size_t i = n; i < next; i++)
            p[i] = (unsigned char)(i * 7);
        n = next;
        steps++;
    }
    ip_large_get_stats(&b);
    unsigned long resized =
        (b.grow_in_place - a.grow_in_place) + (b.moved - a.moved);
    print_message("%u growth steps, %lu resized\n", steps, resized);
    assert_true(steps >= 20);
    assert_true(resized <= steps / 2);
    /* down to two thirds of the block: it stays as it is */
    size_t have = ip_large_usable(p);
    assert_ptr_equal(ip_large_realloc(p, have - have / 3), p);
    assert_int_equal(ip_large_usable(p), have);
    /* below: the tail goes back */
    assert_ptr_equal(ip_large_realloc(p, have / 2), p);
    assert_int_equal(ip_large_usable(p), PAGE_ALIGN(have / 2));
    for (size_t i = 0; i < have / 2; i += 97)
        assert_int_equal(p[i], (unsigned char)(i * 7));
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
}

static void test_grow_in_place(void **s)
{
    (void)s;
    struct ip_large_stats a, b;
    ip_large_get_stats(&a);
    char *p = ip_large_alloc(140 * KiB, PAGE_SIZE, 0);
    int same = 0;
    for (size_t n = 200 * KiB; n < 1800 * KiB; n += 100 * KiB) {
        char *q = ip_large_realloc(p, n);
        same += q == p;
        p = q;
    }
    ip_large_free(p);
    ip_large_get_stats(&b);
    assert_true(same > 0);
    assert_true(b.grow_in_place > a.grow_in_place);
}

/* The pool keeps at most the recent peak of live huge bytes plus
 * HUGE_CACHE_MAX_BYTES, in at most HUGE_CACHE_SLOTS ranges; the rest is
 * unmapped at once. */
static void test_cache_is_bounded(void **s)
{
    (void)s;
    ip_large_trim();
    void *v[12];
    for (int i = 0; i < 12; i++)
        v[i] = ip_large_alloc(12 * MiB, PAGE_SIZE, 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(ip_large_free(v[i]), IP_LARGE_FREED);
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_true(st.huge_cached <= HUGE_CACHE_SLOTS);
    assert_true(st.huge_cached_bytes <= 12 * 12 * MiB + HUGE_CACHE_MAX_BYTES);
    /* 80 blocks of 4 MiB live, then freed: more ranges than slots */
    void *w[80];
    unsigned long unmapped = st.huge_unmapped_bytes;
    for (int i = 0; i < 80; i++)
        w[i] = ip_large_alloc(4 * MiB, PAGE_SIZE, 0);
    for (int i = 0; i < 80; i += 2) /* every other: ranges that cannot merge */
        assert_int_equal(ip_large_free(w[i]), IP_LARGE_FREED);
    ip_large_get_stats(&st);
    assert_int_equal(st.huge_cached, HUGE_CACHE_SLOTS);
    assert_true(st.huge_unmapped_bytes > unmapped);
    for (int i = 1; i < 80; i += 2)
        assert_int_equal(ip_large_free(w[i]), IP_LARGE_FREED);
    ip_large_get_stats(&st);
    assert_true(st.huge_cached <= HUGE_CACHE_SLOTS);
    assert_true(ip_large_trim() >= st.huge_cached_bytes);
}

/* A block taken from a bigger freed range gets only its own pages: the
 * rest of the range stays free in the pool, for the next blocks. */
static void test_huge_split_no_slack(void **s)
{
    (void)s;
    ip_large_trim();
    char *big = ip_large_alloc(24 * MiB, PAGE_SIZE, 0);
    assert_non_null(big);
    assert_int_equal(ip_large_free(big), IP_LARGE_FREED);
    struct ip_large_stats a, b;
    ip_large_get_stats(&a);
    assert_int_equal(a.huge_cached_bytes, 24 * MiB);
    char *p = ip_large_alloc(6 * MiB, PAGE_SIZE, 0);
    char *q = ip_large_alloc(6 * MiB, PAGE_SIZE, 0);
    ip_large_get_stats(&b);
    assert_int_equal(b.huge_cache_hits, a.huge_cache_hits + 2);
    assert_int_equal(ip_large_usable(p), 6 * MiB);
    assert_int_equal(ip_large_usable(q), 6 * MiB);
    assert_int_equal(b.huge_cached_bytes, 12 * MiB);
    assert_true(p >= big && p + 6 * MiB <= big + 24 * MiB);
    assert_true(q >= big && q + 6 * MiB <= big + 24 * MiB);
    /* freed again, the pieces merge back into the one range */
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(q), IP_LARGE_FREED);
    ip_large_get_stats(&b);
    assert_int_equal(b.huge_cached, 1);
    assert_int_equal(b.huge_cached_bytes, 24 * MiB);
    ip_large_trim();
}

/* A huge block grows by realloc into the freed range that follows it,
 * in place and without a system call; shrunk below half, it gives its
 * tail back to that range. */
static void test_huge_realloc_into_pool(void **s)
{
    (void)s;
    ip_large_trim();
    char *big = ip_large_alloc(24 * MiB, PAGE_SIZE, 0);
    assert_non_null(big);
    assert_int_equal(ip_large_free(big), IP_LARGE_FREED);
    char *p = ip_large_alloc(6 * MiB, PAGE_SIZE, 0);
    assert_ptr_equal(p, big);
    memset(p, 7, 6 * MiB);
    struct vm_os_counts a, b;
    vm_os_get_counts(&a);
    char *q = ip_large_realloc(p, 12 * MiB);
    vm_os_get_counts(&b);
    assert_ptr_equal(q, p);
    assert_int_equal(b.remap, a.remap);
    assert_int_equal(b.map, a.map);
    assert_int_equal(ip_large_usable(q), 12 * MiB);
    assert_int_equal(q[6 * MiB - 1], 7);
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_int_equal(st.huge_cached_bytes, 12 * MiB);
    q = ip_large_realloc(q, 4 * MiB); /* below half: the tail goes back */
    assert_ptr_equal(q, p);
    ip_large_get_stats(&st);
    assert_int_equal(st.huge_cached_bytes, 20 * MiB);
    assert_int_equal(st.huge_cached, 1);
    assert_int_equal(ip_large_free(q), IP_LARGE_FREED);
    ip_large_trim();
}

/* When no freed range holds a block and the pool may not grow, its ranges
 * are moved together into the block: their pages (and bytes) come along,
 * none is faulted in fresh. */
static void test_huge_gather(void **s)
{
    (void)s;
    ip_large_trim();
    char *v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = ip_large_alloc(40 * MiB, PAGE_SIZE, 0);
        assert_non_null(v[i]);
        for (size_t o = 0; o < 40 * MiB; o += PAGE_SIZE)
            v[i][o] = (char)(i + 1);
    }
    assert_int_equal(ip_large_free(v[0]), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(v[2]), IP_LARGE_FREED);
    struct ip_large_stats a, b;
    ip_large_get_stats(&a);
    assert_int_equal(a.huge_cached_bytes, 80 * MiB);
    /* 40 live + 80 kept + 70 asked is past the peak (120) + 64 MiB */
    char *p = ip_large_alloc(70 * MiB, PAGE_SIZE, 0);
    assert_non_null(p);
    ip_large_get_stats(&b);
    assert_int_equal(b.huge_gathered, a.huge_gathered + 1);
    assert_int_equal(b.huge_cached_bytes, 10 * MiB);
    assert_int_equal(ip_large_usable(p), 70 * MiB);
    /* every page is one of the freed blocks' (1 or 3), none fresh (0) */
    for (size_t o = 0; o < 70 * MiB; o += PAGE_SIZE)
        if (p[o] != 1 && p[o] != 3)
            fail_msg("page at %zu reads %d", o, p[o]);
    memset(p, 5, 70 * MiB);
    /* calloc from gathered pages is zeroed */
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    char *z = ip_large_alloc(75 * MiB, PAGE_SIZE, 1);
    assert_non_null(z);
    for (size_t o = 0; o < 75 * MiB; o += PAGE_SIZE)
        assert_int_equal(z[o], 0);
    assert_int_equal(ip_large_free(z), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(v[1]), IP_LARGE_FREED);
    ip_large_trim();
}

static void test_impossible_sizes(void **s)
{
    (void)s;
    errno = 0;
    assert_null(ip_large_alloc(SIZE_MAX, PAGE_SIZE, 0));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(ip_large_alloc((size_t)PTRDIFF_MAX, 4 * MiB, 0));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(ip_large_alloc(1, (size_t)1 << 62, 0));
    assert_int_equal(errno, ENOMEM);
    void *z = ip_large_alloc(0, PAGE_SIZE, 0); /* size 0: one page */
    assert_non_null(z);
    assert_int_equal(ip_large_usable(z), PAGE_SIZE);
    assert_int_equal(ip_large_free(z), IP_LARGE_FREED);
    char buf[16];
    assert_int_equal(ip_large_free(buf), IP_LARGE_NOT_OURS);
    assert_int_equal(ip_large_usable(buf), 0);
}

/* M_MMAP_THRESHOLD's knob: blocks from the threshold up are own mappings;
 * ip_large_trim() unmaps the cached ones; the high-water marks follow. */
static void test_mmap_threshold_and_trim(void **s)
{
    (void)s;
    ip_large_trim();
    size_t saved = ip_large_mmap_threshold;
    ip_large_mmap_threshold = 256 * KiB;
    char *p = ip_large_alloc(512 * KiB, PAGE_SIZE, 0);
    assert_non_null(p);
    assert_null(vm_virt_to_page(p)); /* a mapping of its own */
    char *q = ip_large_alloc(200 * KiB, PAGE_SIZE, 0);
    assert_non_null(vm_virt_to_page(q)); /* below: a buddy block */
    /* a buddy block grown past the threshold becomes a mapping */
    q = ip_large_realloc(q, 300 * KiB);
    assert_null(vm_virt_to_page(q));
    ip_large_mmap_threshold = saved;
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_true(st.huge_max_blocks >= 2);
    assert_true(st.huge_max_bytes >= 812 * KiB);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    assert_int_equal(ip_large_free(q), IP_LARGE_FREED);
    ip_large_get_stats(&st);
    assert_true(st.huge_cached >= 1); /* two, or one if they touch */
    assert_int_equal(st.huge_cached_bytes, 812 * KiB);
    assert_int_equal(ip_large_trim(), st.huge_cached_bytes + st.tcache_bytes);
    ip_large_get_stats(&st);
    assert_int_equal(st.huge_cached, 0);
    assert_int_equal(st.tcache_bytes, 0);
    assert_int_equal(ip_large_trim(), 0);
}

/* A loop allocating and freeing blocks of 5 ... 25 MiB, a few alive at
 * once (the malloc-large shape): after a warm-up no mapping is made,
 * moved or unmapped; and the memory held (the blocks and the pool) stays
 * within the peak of the bytes asked for plus HUGE_CACHE_MAX_BYTES: no
 * block is backed by more than its own pages.  Each block is written at
 * its ends only: the counts are what is tested. */
static void test_huge_steady_state(void **s)
{
    (void)s;
    ip_large_trim();
    enum { LIVE = 4, WARM = 400, STEADY = 400 };
    char *v[LIVE] = {0};
    size_t len[LIVE] = {0}, asked = 0, asked_max = 0, held_max = 0;
    unsigned int seed = 42;
    struct vm_os_counts a = {0}, b;
    struct ip_large_stats st;
    for (int i = 0; i < WARM + STEADY; i++) {
        if (i == WARM)
            vm_os_get_counts(&a);
        seed = seed * 1103515245u + 12345u;
        size_t n = 5 * MiB + (seed >> 8) % (20 * MiB + 1);
        int k = (int)((seed >> 4) % LIVE);
        char *p = ip_large_alloc(n, PAGE_SIZE, 0);
        assert_non_null(p);
        p[0] = 1;
        p[n - 1] = 1;
        asked += PAGE_ALIGN(n);
        if (asked > asked_max)
            asked_max = asked;
        ip_large_get_stats(&st);
        if (st.huge_bytes + st.huge_cached_bytes > held_max)
            held_max = st.huge_bytes + st.huge_cached_bytes;
        if (v[k])
            assert_int_equal(ip_large_free(v[k]), IP_LARGE_FREED);
        asked -= len[k];
        v[k] = p;
        len[k] = PAGE_ALIGN(n);
    }
    vm_os_get_counts(&b);
    print_message("steady state: %lu maps, %lu unmaps, %lu remaps; held at "
                  "most %zu MiB for a peak of %zu MiB asked\n",
                  b.map - a.map, b.unmap - a.unmap, b.remap - a.remap,
                  held_max >> 20, asked_max >> 20);
    assert_int_equal(b.map - a.map, 0);
    assert_int_equal(b.unmap - a.unmap, 0);
    assert_int_equal(b.remap - a.remap, 0);
    assert_true(held_max <= asked_max + HUGE_CACHE_MAX_BYTES);
    for (int k = 0; k < LIVE; k++)
        assert_int_equal(ip_large_free(v[k]), IP_LARGE_FREED);
    ip_large_get_stats(&st);
    assert_true(st.huge_cached <= HUGE_CACHE_SLOTS);
    assert_true(st.huge_cached_bytes <= asked_max + HUGE_CACHE_MAX_BYTES);
    assert_true(ip_large_trim() >= st.huge_cached_bytes);
}

/* A freed buddy block stays with the thread and comes back for the next
 * block of its size class, with no frame taken from the zones. */
static void test_tcache_reuse(void **s)
{
    (void)s;
    ip_large_trim();
    struct ip_large_stats a, b;
    char *p = ip_large_alloc(300 * KiB, PAGE_SIZE, 0);
    assert_non_null(p);
    memset(p, 5, 300 * KiB);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    ip_large_get_stats(&a);
    assert_int_equal(a.tcache_blocks, 1);
    assert_int_equal(a.tcache_bytes, PAGE_ALIGN(300 * KiB));
    char *q = ip_large_alloc(290 * KiB, PAGE_SIZE, 1); /* same class */
    assert_ptr_equal(q, p);
    assert_int_equal(ip_large_usable(q), PAGE_ALIGN(300 * KiB));
    for (size_t i = 0; i < 290 * KiB; i++)
        assert_int_equal(q[i], 0); /* calloc's promise holds */
    ip_large_get_stats(&b);
    assert_int_equal(b.tcache_blocks, 0);
    assert_int_equal(b.tcache_hits, a.tcache_hits + 1);
    assert_int_equal(ip_large_free(q), IP_LARGE_FREED);
    /* the bound: at most LARGE_TCACHE_MAX_BYTES a thread */
    char *v[16];
    for (int i = 0; i < 16; i++)
        v[i] = ip_large_alloc(2 * MiB - 8 * KiB, PAGE_SIZE, 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(ip_large_free(v[i]), IP_LARGE_FREED);
    ip_large_get_stats(&b);
    assert_true(b.tcache_bytes <= LARGE_TCACHE_MAX_BYTES);
    assert_true(b.tcache_blocks <= LARGE_TCACHE_BIN + 1);
    ip_large_trim();
}

/* A block in the thread's cache is free: freeing it again, or asking its
 * size, is the answer for a freed block. */
static void test_tcache_double_free(void **s)
{
    (void)s;
    ip_large_trim();
    char *p = ip_large_alloc(160 * KiB, PAGE_SIZE, 0);
    assert_non_null(p);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_int_equal(st.tcache_blocks, 1); /* it sits in the cache */
    assert_int_equal(ip_large_usable(p), 0);
    assert_int_equal(ip_large_free(p), IP_LARGE_BAD);
    ip_large_get_stats(&st);
    assert_int_equal(st.tcache_blocks, 1); /* and stays there once */
    ip_large_trim();
}

static void *free_large_in_thread(void *arg)
{
    (void)arg;
    void *v[4];
    for (int i = 0; i < 4; i++)
        v[i] = ip_large_alloc((100 + 50 * (size_t)i) * KiB, PAGE_SIZE, 0);
    for (int i = 0; i < 4; i++)
        ip_large_free(v[i]);
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    return (void *)(uintptr_t)st.tcache_blocks;
}

static unsigned long zone_free_pages(void)
{
    unsigned long n = 0;
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        n += vm_zones[z].free_pages;
        pthread_mutex_unlock(&vm_zones[z].lock);
    }
    return n;
}

/* A thread's cache goes back to the zones when the thread exits. */
static void test_tcache_thread_exit(void **s)
{
    (void)s;
    ip_large_trim();
    unsigned long before = zone_free_pages();
    pthread_t t;
    void *held;
    assert_int_equal(pthread_create(&t, NULL, free_large_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &held), 0);
    assert_int_equal((uintptr_t)held, 4); /* it had cached them */
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_int_equal(st.tcache_blocks, 0);
    assert_int_equal(st.tcache_bytes, 0);
    /* every frame is back (the frames the zones grew by are free too) */
    assert_true(zone_free_pages() >= before);
}

/* A thread builds 16 blocks of 256 ... 976 KiB (9.9 MiB) and frees them
 * all, as a thread tearing down a tree does: it keeps a share of what it
 * had live, not LARGE_TCACHE_MAX_BYTES (8 MiB). */
#define TEARDOWN_BLOCKS 16
static void *teardown_in_thread(void *arg)
{
    size_t *total = arg; /* 0 when an allocation or a free failed */
    void *v[TEARDOWN_BLOCKS];
    *total = 0;
    for (int i = 0; i < TEARDOWN_BLOCKS; i++) {
        size_t len = (256 + 48 * (size_t)i) * KiB;
        v[i] = ip_large_alloc(len, PAGE_SIZE, 0);
        *total += len;
    }
    for (int i = 0; i < TEARDOWN_BLOCKS; i++)
        if (!v[i] || ip_large_free(v[i]) != IP_LARGE_FREED)
            *total = 0;
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    return (void *)(uintptr_t)st.tcache_bytes;
}

static void test_tcache_bound_follows_live(void **s)
{
    (void)s;
    ip_large_trim();
    size_t total;
    void *held;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, teardown_in_thread, &total), 0);
    assert_int_equal(pthread_join(t, &held), 0);
    assert_true(total > LARGE_TCACHE_MAX_BYTES);
    /* something is kept (the cache still serves), but at most the share */
    assert_true((uintptr_t)held >= LARGE_TCACHE_MIN_BYTES / 2);
    assert_true((uintptr_t)held <= total >> LARGE_TCACHE_LIVE_SHIFT);
}

/* ip_large_trim() (malloc_trim) empties the thread caches. */
static void test_tcache_trim(void **s)
{
    (void)s;
    ip_large_trim();
    void *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = ip_large_alloc(256 * KiB, PAGE_SIZE, 0);
    for (int i = 0; i < 3; i++)
        ip_large_free(v[i]);
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    assert_int_equal(st.tcache_bytes, 3 * 256 * KiB);
    assert_true(ip_large_trim() >= 3 * 256 * KiB);
    ip_large_get_stats(&st);
    assert_int_equal(st.tcache_blocks, 0);
    assert_int_equal(st.tcache_bytes, 0);
}

/* A cached mapping goes back to the host once it has been cached for the
 * decay time, while the program sleeps (the page layer's purge). */
static void test_cached_mapping_decays(void **s)
{
    (void)s;
    ip_large_trim();
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    unsigned long unmapped = st.huge_unmapped_bytes;
    __atomic_store_n(&vm_purge_decay_ms, 200, __ATOMIC_RELAXED);
    size_t n = 3 * LARGE_BUDDY_MAX_PAGES * PAGE_SIZE;
    char *p = ip_large_alloc(n, PAGE_SIZE, 0);
    assert_non_null(p);
    memset(p, 3, n);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    ip_large_get_stats(&st);
    assert_int_equal(st.huge_cached_bytes, n); /* kept for reuse at first */
    /* the purge thread takes it off the cache, then unmaps and counts it */
    for (int t = 0; t < 100 && (st.huge_cached_bytes ||
                                st.huge_unmapped_bytes < unmapped + n);
         t++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL); /* no allocator call meanwhile */
        ip_large_get_stats(&st);
    }
    __atomic_store_n(&vm_purge_decay_ms, 60000, __ATOMIC_RELAXED);
    assert_int_equal(st.huge_cached_bytes, 0);
    assert_int_equal(st.huge_unmapped_bytes, unmapped + n);
}

static int cmp_range(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* A block grown by realloc from 80 KiB to 1 MiB and freed, over and over
 * (the shape of a growing buffer): every round runs over the same frames,
 * as the thread's cached big block is cut down for the next small start
 * and grows in place again; the frames the rounds touch in all stay near
 * one block's worth. */
static void test_realloc_growth_reuses_frames(void **s)
{
    (void)s;
    ip_large_trim();
    enum { ROUNDS = 40, MAXR = ROUNDS * 16 };
    static uintptr_t r[MAXR][2];
    int nr = 0;
    for (int round = 0; round < ROUNDS; round++) {
        size_t n = 80 * KiB;
        char *p = ip_large_alloc(n, PAGE_SIZE, 0);
        assert_non_null(p);
        for (;;) {
            p[n - 1] = 1;
            size_t next = n + n / 2;
            if (next > 1 * MiB)
                break;
            char *q = ip_large_realloc(p, next);
            assert_non_null(q);
            if (q != p && nr < MAXR) { /* the old block was touched too */
                r[nr][0] = (uintptr_t)p;
                r[nr++][1] = (uintptr_t)p + PAGE_ALIGN(n);
            }
            p = q;
            n = next;
        }
        if (nr < MAXR) {
            r[nr][0] = (uintptr_t)p;
            r[nr++][1] = (uintptr_t)p + PAGE_ALIGN(n);
        }
        assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    }
    qsort(r, (size_t)nr, sizeof r[0], cmp_range);
    size_t touched = 0;
    uintptr_t lo = r[0][0], hi = r[0][1];
    for (int i = 1; i < nr; i++) {
        if (r[i][0] > hi) {
            touched += hi - lo;
            lo = r[i][0];
            hi = r[i][1];
        } else if (r[i][1] > hi) {
            hi = r[i][1];
        }
    }
    touched += hi - lo;
    print_message("%d rounds touched %zu KiB\n", ROUNDS, touched >> 10);
    assert_true(touched <= 2 * MiB);
    ip_large_trim();
}

/* A program that allocates no more huge blocks (it sleeps) gets its
 * freed ones back to the host after a quarter of the decay time, as the
 * page layer's idle zones do. */
static void test_idle_pool_decays_sooner(void **s)
{
    (void)s;
    ip_large_trim();
    struct ip_large_stats st;
    ip_large_get_stats(&st);
    unsigned long unmapped = st.huge_unmapped_bytes;
    __atomic_store_n(&vm_purge_decay_ms, 4000, __ATOMIC_RELAXED);
    size_t n = 8 * MiB;
    char *p = ip_large_alloc(n, PAGE_SIZE, 0);
    assert_non_null(p);
    memset(p, 3, n);
    assert_int_equal(ip_large_free(p), IP_LARGE_FREED);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ip_large_get_stats(&st);
    for (int t = 0; t < 60 && st.huge_unmapped_bytes < unmapped + n; t++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        ip_large_get_stats(&st);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    __atomic_store_n(&vm_purge_decay_ms, 60000, __ATOMIC_RELAXED);
    long ms =
        (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    print_message("unmapped after %ld ms (decay 4000 ms)\n", ms);
    assert_int_equal(st.huge_unmapped_bytes, unmapped + n);
    assert_true(ms < 2500);
}

int main(void)
{
    /* the cache's contents are tested: nothing decays meanwhile */
    vm_purge_decay_ms = 60000;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buddy_block),
        cmocka_unit_test(test_huge_block),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_realloc_kinds),
        cmocka_unit_test(test_realloc_growth_room),
        cmocka_unit_test(test_grow_in_place),
        cmocka_unit_test(test_cache_is_bounded),
        cmocka_unit_test(test_huge_split_no_slack),
        cmocka_unit_test(test_huge_realloc_into_pool),
        cmocka_unit_test(test_huge_gather),
        cmocka_unit_test(test_impossible_sizes),
        cmocka_unit_test(test_mmap_threshold_and_trim),
        cmocka_unit_test(test_huge_steady_state),
        cmocka_unit_test(test_tcache_reuse),
        cmocka_unit_test(test_tcache_double_free),
        cmocka_unit_test(test_tcache_thread_exit),
        cmocka_unit_test(test_tcache_trim),
        cmocka_unit_test(test_tcache_bound_follows_live),
        cmocka_unit_test(test_cached_mapping_decays),
        cmocka_unit_test(test_realloc_growth_reuses_frames),
        cmocka_unit_test(test_idle_pool_decays_sooner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
