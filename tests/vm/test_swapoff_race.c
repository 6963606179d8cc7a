/*
 * tests/vm/test_swapoff_race.c — sys_swapoff against the rest: an area
 * that holds no page goes off whatever memory is free; and swapoff/swapon
 * of one area in a loop while threads fault, mm_fork, COW-write and exit
 * under reclaim never loses a value, never leaves the area busy with
 * pages that kept arriving (-EBUSY), and leaves the swap counts right.
 * The loop runs 3 s and on until the area went off MIN_OFFS times and each
 * thread made MIN_ROUNDS rounds beside it, so the work asserted does not
 * depend on the machine's speed or load.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "swaptest.h"

static void test_swapoff_of_empty_area_needs_no_memory(void **state)
{
    (void)state;
    vm_set_ram_pages(64);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    unsigned long i;
    for (i = 0; i < 64 && vm_free_user_frames() > 0; i++)
        U64(mm, a + i * PAGE_SIZE) = i; /* user memory full, no swap */
    const char *sw = swap_on("empty", 64, 0);
    assert_int_equal(sys_swapoff(sw), 0);
    assert_int_equal(sys_swapon(sw, 0), 0); /* not left on */
    assert_int_equal(sys_swapoff(sw), 0);
    mmput(mm);
    vm_set_ram_pages(0);
}

#define THREADS 2
#define PAGES 400
#define MIN_ROUNDS 20 /* a thread's rounds while the area goes on and off */
#define MIN_OFFS 10

static double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static _Atomic int stop;
static _Atomic unsigned long wrong, rounds[THREADS], reads, cows;

static void *worker(void *arg)
{
    unsigned long id = (unsigned long)arg;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < PAGES; i++)
        U64(mm, a + i * PAGE_SIZE) = (id << 32) | i;
    unsigned long round = 0;
    while (!atomic_load(&stop)) {
        round++;
        for (unsigned long i = round % 7; i < PAGES; i += 7) {
            if (U64(mm, a + i * PAGE_SIZE) != ((id << 32) | i))
                atomic_fetch_add(&wrong, 1);
            atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
        }
        struct mm_struct *c = mm_fork(mm);
        if (!c) {
            atomic_fetch_add(&wrong, 1);
            continue;
        }
        for (unsigned long i = round % 5; i < PAGES; i += 25) {
            U64(c, a + i * PAGE_SIZE) = ~i;
            atomic_fetch_add_explicit(&cows, 1, memory_order_relaxed);
        }
        for (unsigned long i = round % 5; i < PAGES; i += 25)
            if (U64(c, a + i * PAGE_SIZE) != ~i)
                atomic_fetch_add(&wrong, 1);
        mmput(c);
        atomic_fetch_add(&rounds[id], 1);
    }
    for (unsigned long i = 0; i < PAGES; i++)
        if (U64(mm, a + i * PAGE_SIZE) != ((id << 32) | i))
            atomic_fetch_add(&wrong, 1);
    mmput(mm);
    return NULL;
}

/* Whether the loop has done its work: each thread MIN_ROUNDS rounds (one
 * mm_fork each) and the area MIN_OFFS times off. */
static int work_done(int offs)
{
    for (int i = 0; i < THREADS; i++)
        if (atomic_load(&rounds[i]) < MIN_ROUNDS)
            return 0;
    return offs >= MIN_OFFS;
}

static void test_swapoff_loop_beside_fork_and_reclaim(void **state)
{
    (void)state;
    const char *keep = swap_on("keep", 4096, SWAP_FLAG_PREFER | 1);
    const char *flip = swap_on("flip", 4096, SWAP_FLAG_PREFER | 2);
    vm_set_ram_pages(950);
    pthread_t t[THREADS];
    for (unsigned long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    int offs = 0, busy = 0, nomem = 0;
    double until = ms_now() + 3000;
    /* past a minute more the work will not come: the asserts say so */
    while ((ms_now() < until || !work_done(offs)) && ms_now() < until + 60000) {
        int r = sys_swapoff(flip);
        if (r == 0) {
            offs++;
            assert_int_equal(sys_swapon(flip, SWAP_FLAG_PREFER | 2), 0);
        } else if (r == -EBUSY) {
            busy++;
        } else {
            assert_int_equal(r, -ENOMEM);
            nomem++;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("swapoff_race: %d swapoffs, %d -EBUSY, %d -ENOMEM; %lu + %lu "
           "rounds, %lu reads, %lu COW writes; %lu wrong\n",
           offs, busy, nomem, atomic_load(&rounds[0]), atomic_load(&rounds[1]),
           atomic_load(&reads), atomic_load(&cows), atomic_load(&wrong));
    assert_int_equal(atomic_load(&wrong), 0);
    /* a round reads at least PAGES / 7 pages and writes PAGES / 25 */
    assert_true(offs >= MIN_OFFS);
    for (int i = 0; i < THREADS; i++)
        assert_true(atomic_load(&rounds[i]) >= MIN_ROUNDS);
    assert_true(atomic_load(&reads) >= THREADS * MIN_ROUNDS * (PAGES / 7));
    assert_true(atomic_load(&cows) >= THREADS * MIN_ROUNDS * (PAGES / 25));
    assert_int_equal(busy, 0);
    vm_check_swap();
    assert_int_equal(sys_swapoff(flip), 0);
    assert_int_equal(sys_swapoff(keep), 0);
    vm_set_ram_pages(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swapoff_of_empty_area_needs_no_memory),
        cmocka_unit_test(test_swapoff_loop_beside_fork_and_reclaim),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
