/*
 * tests/vm/test_pagecache_reclaim.c — reclaim of page-cache pages: clean
 * file pages are dropped without I/O and read again at the next fault;
 * two mms sharing a file under a small user memory (a writer and a reader
 * checking every byte) keep every store, dirty pages written back before
 * their frames go; shared anonymous memory shared across mm_fork goes to
 * swap and comes back shared (and swapoff brings it back); pages of a
 * locked mapping never leave.
 */
#include "swaptest.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>

#define RW (PROT_READ | PROT_WRITE)
#define RAM 64UL

static int make_file(unsigned long pages)
{
    int fd = tmp_file();
    assert_int_equal(ftruncate(fd, (off_t)(pages * PAGE_SIZE)), 0);
    return fd;
}

static unsigned long byte_of(unsigned long page, unsigned long off,
                             unsigned long seed)
{
    return (page * 131 + off * 7 + seed * 29 + (off >> 8)) & 0xff;
}

static void test_clean_file_pages_dropped_and_read_again(void **state)
{
    (void)state;
    unsigned long n = 32;
    int fd = make_file(n);
    for (unsigned long i = 0; i < n; i++) {
        unsigned long w = 0xabc000 + i;
        assert_int_equal(pwrite(fd, &w, 8, (off_t)(i * PAGE_SIZE + 64)), 8);
    }
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        do_mmap(mm, fd, 0, n * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    unsigned long p =
        do_mmap(mm, fd, 0, n * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 0);
    for (unsigned long i = 0; i < n; i++) {
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 64), 0xabc000 + i);
        assert_int_equal(U64(mm, p + i * PAGE_SIZE + 64), 0xabc000 + i);
    }
    unsigned long cached = vm_page_cache_pages(), maj = stat_of(mm).maj_flt;
    unsigned long out = vm_pswpout;
    assert_true(cached >= n);
    /* no swap area: only page-cache pages can go */
    assert_true(try_to_free_pages(n) >= n / 2);
    assert_true(vm_page_cache_pages() <= cached - n / 2);
    assert_int_equal(vm_pswpout, out);
    assert_true(stat_of(mm).rss < 2 * n);
    unsigned long gone = 0;
    for (unsigned long i = 0; i < n; i++)
        gone += pte_none(pte_of(mm, a + i * PAGE_SIZE));
    assert_true(gone > 0);
    /* the file changed behind the cache: a dropped page reads it again */
    for (unsigned long i = 0; i < n; i++) {
        unsigned long w = 0xdef000 + i;
        assert_int_equal(pwrite(fd, &w, 8, (off_t)(i * PAGE_SIZE + 64)), 8);
    }
    unsigned long fresh = 0;
    for (unsigned long i = 0; i < n; i++) {
        unsigned long v = U64(mm, a + i * PAGE_SIZE + 64);
        assert_true(v == 0xabc000 + i || v == 0xdef000 + i);
        fresh += v == 0xdef000 + i;
    }
    assert_true(fresh > 0); /* a page goes once no pte of either vma maps it */
    assert_true(stat_of(mm).maj_flt >= maj + fresh);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
}

struct pair {
    struct mm_struct *w, *r;
    unsigned long a, b, n, seed;
};

static void write_page(struct pair *p, unsigned long i)
{
    for (unsigned long off = 0; off < PAGE_SIZE; off++)
        U8(p->w, p->a + i * PAGE_SIZE + off) =
            (unsigned char)byte_of(i, off, p->seed);
}

static int read_page_ok(struct pair *p, unsigned long i)
{
    for (unsigned long off = 0; off < PAGE_SIZE; off++)
        if (U8(p->r, p->b + i * PAGE_SIZE + off) != byte_of(i, off, p->seed))
            return 0;
    return 1;
}

static void test_writer_reader_under_reclaim(void **state)
{
    (void)state;
    const char *sw = swap_on("wr", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    unsigned long n = 4 * RAM;
    int fd = make_file(n);
    struct pair p = {mm_alloc(), mm_alloc(), 0, 0, n, 0};
    p.a = do_mmap(p.w, fd, 0, n * PAGE_SIZE, RW, MAP_SHARED, 0);
    p.b = do_mmap(p.r, fd, 0, n * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(p.a));
    assert_false(IS_ERR_VALUE(p.b));
    unsigned long cached_max = 0;
    for (p.seed = 1; p.seed <= 3; p.seed++) {
        for (unsigned long i = 0; i < n; i++) {
            write_page(&p, i);
            assert_true(read_page_ok(&p, i));
            unsigned long c = vm_page_cache_pages();
            cached_max = c > cached_max ? c : cached_max;
        }
        /* and again, in another order, after the others pushed them out */
        for (unsigned long i = n; i-- > 0;)
            assert_true(read_page_ok(&p, i));
    }
    assert_true(cached_max <= RAM);
    p.seed = 3;
    /* every byte is in the file: what reclaim wrote back and the rest */
    assert_int_equal(sys_msync(p.w, p.a, n * PAGE_SIZE, MS_SYNC), 0);
    unsigned char buf[PAGE_SIZE];
    for (unsigned long i = 0; i < n; i++) {
        assert_int_equal(pread(fd, buf, PAGE_SIZE, (off_t)(i * PAGE_SIZE)),
                         PAGE_SIZE);
        for (unsigned long off = 0; off < PAGE_SIZE; off++)
            if (buf[off] != byte_of(i, off, p.seed))
                fail_msg("file page %lu byte %lu: %u", i, off, buf[off]);
    }
    assert_true(stat_of(p.r).maj_flt > n);
    vm_check_mm(p.w);
    vm_check_mm(p.r);
    vm_check_swap();
    mmput(p.r);
    mmput(p.w);
    close(fd);
    assert_int_equal(sys_swapoff(sw), 0);
}

static void test_shared_anonymous_swapped_and_shared_again(void **state)
{
    (void)state;
    const char *sw = swap_on("shm", 8 * RAM, 0);
    unsigned long n = 2 * RAM;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, n * PAGE_SIZE, RW, MAP_SHARED);
    for (unsigned long i = 0; i < n / 2; i++)
        fill_page(mm, a, i, 7);
    struct mm_struct *c = mm_fork(mm);
    assert_non_null(c);
    for (unsigned long i = n / 2; i < n; i++)
        fill_page(c, a, i, 7); /* first touched after the fork */
    struct address_space *m = find_vma(mm, a)->vm_private_data;
    unsigned long out = vm_pswpout;
    vm_set_ram_pages(RAM);
    try_to_free_pages(n);
    assert_true(m->nrswapped > 0);
    assert_true(vm_pswpout > out);
    vm_check_swap();
    /* back in: both sides see every page, then each other's stores */
    for (unsigned long i = 0; i < n; i++) {
        assert_true(page_ok(c, a, i, 7));
        assert_true(page_ok(mm, a, i, 7));
    }
    for (unsigned long i = 0; i < n; i++) {
        U64(mm, a + i * PAGE_SIZE + 8) = 1000 + i;
        assert_int_equal(U64(c, a + i * PAGE_SIZE + 8), 1000 + i);
    }
    /* out again, and swapoff brings the object's pages back */
    try_to_free_pages(n);
    assert_true(m->nrswapped > 0);
    vm_set_ram_pages(0);
    assert_int_equal(sys_swapoff(sw), 0);
    assert_int_equal(m->nrswapped, 0);
    for (unsigned long i = 0; i < n; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE + 8), 1000 + i);
    vm_check_mm(mm);
    vm_check_mm(c);
    mmput(c);
    mmput(mm);
}

static void test_locked_file_pages_stay(void **state)
{
    (void)state;
    swap_on("lock", 8 * RAM, 0);
    vm_set_ram_pages(RAM);
    unsigned long n = RAM / 4;
    int fd = make_file(n);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        do_mmap(mm, fd, 0, n * PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, 0);
    unsigned long s = anon(mm, 0, n * PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED);
    assert_false(IS_ERR_VALUE(a));
    for (unsigned long i = 0; i < n; i++) {
        fill_page(mm, a, i, 3);
        fill_page(mm, s, i, 4);
    }
    /* a working set four times user memory pushes everything else */
    unsigned long big = 4 * RAM;
    unsigned long b = anon(mm, 0, big * PAGE_SIZE, RW, MAP_PRIVATE);
    for (unsigned long i = 0; i < big; i++)
        fill_page(mm, b, i, 5);
    try_to_free_pages(RAM);
    for (unsigned long i = 0; i < n; i++) {
        pte_t pf = pte_of(mm, a + i * PAGE_SIZE);
        pte_t ps = pte_of(mm, s + i * PAGE_SIZE);
        assert_true(pte_present(pf) && !(pte_val(pf) & _PAGE_OLD));
        assert_true(pte_present(ps) && !(pte_val(ps) & _PAGE_OLD));
    }
    for (unsigned long i = 0; i < n; i++) {
        assert_true(page_ok(mm, a, i, 3));
        assert_true(page_ok(mm, s, i, 4));
    }
    mmput(mm);
    close(fd);
}

/* Threads racing: each has its own mm mapping one file MAP_SHARED (its
 * own pages of it to write, the others' to read) and a shared anonymous
 * region forked into a child mm, with user memory small enough that each
 * fault reclaims pages of the others' mms. */
#define RACE_THREADS 3
#define RACE_PAGES 48

struct racer {
    pthread_t tid;
    int t, fd;
    _Atomic unsigned long *rounds; /* per file page: the last round stored */
    int bad;
};

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void *race(void *arg)
{
    struct racer *r = arg;
    unsigned long n = RACE_THREADS * RACE_PAGES;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, r->fd, 0, n * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long s = anon(mm, 0, RACE_PAGES * PAGE_SIZE, RW, MAP_SHARED);
    struct mm_struct *c = mm_fork(mm);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned long round = 1; ms_since(&t0) < 1500; round++) {
        for (unsigned long i = 0; i < RACE_PAGES; i++) {
            unsigned long pg = i * RACE_THREADS + (unsigned long)r->t;
            U64(mm, a + pg * PAGE_SIZE) = round;
            U64(mm, a + pg * PAGE_SIZE + 2048) = round ^ pg;
            atomic_store(&r->rounds[pg], round);
            U64(mm, s + i * PAGE_SIZE) = round + i;
        }
        for (unsigned long i = 0; i < RACE_PAGES; i++) {
            unsigned long pg = i * RACE_THREADS + (unsigned long)r->t;
            if (U64(c, s + i * PAGE_SIZE) != round + i ||
                U64(mm, a + pg * PAGE_SIZE) != round ||
                U64(mm, a + pg * PAGE_SIZE + 2048) != (round ^ pg))
                r->bad++;
        }
        /* the others' pages: never older than what they had stored
         * before this read began */
        for (unsigned long pg = 0; pg < n; pg++) {
            unsigned long want = atomic_load(&r->rounds[pg]);
            if (U64(mm, a + pg * PAGE_SIZE) < want)
                r->bad++;
        }
    }
    mmput(c);
    mmput(mm);
    return NULL;
}

static void test_threads_share_file_under_reclaim(void **state)
{
    (void)state;
    swap_on("race", 8 * RAM, 0);
    unsigned long n = RACE_THREADS * RACE_PAGES;
    int fd = make_file(n);
    static _Atomic unsigned long rounds[RACE_THREADS * RACE_PAGES];
    struct racer r[RACE_THREADS];
    vm_set_ram_pages(2 * RAM);
    for (int t = 0; t < RACE_THREADS; t++) {
        r[t] = (struct racer){0, t, fd, rounds, 0};
        assert_int_equal(pthread_create(&r[t].tid, NULL, race, &r[t]), 0);
    }
    for (int t = 0; t < RACE_THREADS; t++) {
        pthread_join(r[t].tid, NULL);
        assert_int_equal(r[t].bad, 0);
    }
    /* everything was written back at the last mmput */
    for (unsigned long pg = 0; pg < n; pg++) {
        unsigned long v[2];
        assert_int_equal(pread(fd, &v[0], 8, (off_t)(pg * PAGE_SIZE)), 8);
        assert_int_equal(pread(fd, &v[1], 8, (off_t)(pg * PAGE_SIZE + 2048)),
                         8);
        assert_int_equal(v[0], atomic_load(&rounds[pg]));
        assert_int_equal(v[1], v[0] ^ pg);
    }
    vm_check_swap();
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        swap_unit_test(test_clean_file_pages_dropped_and_read_again),
        swap_unit_test(test_writer_reader_under_reclaim),
        swap_unit_test(test_shared_anonymous_swapped_and_shared_again),
        swap_unit_test(test_locked_file_pages_stay),
        swap_unit_test(test_threads_share_file_under_reclaim),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
