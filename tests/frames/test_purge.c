/*
 * tests/frames/test_purge.c — giving free frames back to the host: the time
 * decay run by the background purge (RSS falls while the program sleeps,
 * small free blocks included), no system call under a zone lock, purged
 * blocks read as zero and are reused, memory freed and reused soon is not
 * given back, and the purge in a fork child.  Who purges: a free of less
 * than 8 MiB starts no thread and the program's own slow paths give the
 * memory back as time passes; a larger free starts the background purge.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ktest.h"
#include "vm/frames/page.h"

/* A sanitizer's shadow of the memory written stays resident: RSS says
 * nothing there (the zone's counters still do). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

static void set_decay(unsigned long ms)
{
    __atomic_store_n(&vm_purge_decay_ms, ms, __ATOMIC_RELAXED);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned long zone_field(const unsigned long *field)
{
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&zone->lock);
    unsigned long v = *field;
    pthread_mutex_unlock(&zone->lock);
    return v;
}

/* Frees 15 of every 16 order-0 frames of 64 MiB: no free run reaches
 * order 4, so only a purge of small blocks can give them back. */
enum { NPAGES = 16384, KEEP_EVERY = 16 };
static struct page *pages[NPAGES];

static void fill_and_free_most(void)
{
    for (int i = 0; i < NPAGES; i++) {
        pages[i] = alloc_pages(GFP_KERNEL, 0);
        assert_non_null(pages[i]);
        memset(page_address(pages[i]), 0x5a, PAGE_SIZE);
    }
    for (int i = 0; i < NPAGES; i++)
        if (i % KEEP_EVERY)
            __free_pages(pages[i], 0);
}

static void free_the_rest(void)
{
    for (int i = 0; i < NPAGES; i += KEEP_EVERY)
        __free_pages(pages[i], 0);
}

/* RSS falls to near the live size within seconds while the program makes
 * no kslab call at all. */
static void test_rss_falls_while_the_program_sleeps(void **state)
{
    (void)state;
    set_decay(500);
    vm_release_free(0, 0);
    size_t base = ktest_rss();
    fill_and_free_most();
    size_t high = ktest_rss();
    assert_true(high > base + (56UL << 20));
    size_t live = (NPAGES / KEEP_EVERY) * PAGE_SIZE; /* 4 MiB */
    size_t rss = high;
    unsigned long dirty = NPAGES;
    for (int t = 0; t < 100; t++) {
        if (dirty <= NPAGES / 16 &&
            (!RSS_MEANINGFUL || rss <= base + live + (8UL << 20)))
            break;
        sleep_ms(100); /* no allocator call meanwhile */
        rss = ktest_rss();
        dirty = zone_field(&vm_zones[ZONE_NORMAL].dirty_pages);
    }
    assert_true(dirty <= NPAGES / 16);
    if (RSS_MEANINGFUL)
        assert_true(rss <= base + live + (8UL << 20));
    free_the_rest();
    vm_check_zones();
}

/* Memory freed and needed again within the decay time stays dirty: no
 * purge, no page fault (the policy does not oscillate). */
static void test_recently_freed_memory_is_kept(void **state)
{
    (void)state;
    set_decay(60000);
    sleep_ms(300); /* a pass under the old decay ends */
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    unsigned long released = zone_field(&zone->released_pages);
    for (int round = 0; round < 4; round++) {
        fill_and_free_most();
        free_the_rest();
        sleep_ms(50);
    }
    assert_int_equal(zone_field(&zone->released_pages), released);
    assert_true(zone_field(&zone->dirty_pages) >= NPAGES);
    set_decay(500);
}

/* The purge hook runs just before each madvise: the purging thread may
 * hold no zone lock then.  Another thread (the background purge pass
 * looking at its clock) may hold one for a moment, so the lock's owner is
 * what is checked (glibc records it), not whether it is free. */
static int hook_calls, hook_locked;

static void check_no_lock(void *addr, size_t len)
{
    (void)addr;
    (void)len;
    __atomic_add_fetch(&hook_calls, 1, __ATOMIC_RELAXED);
    int self = (int)syscall(SYS_gettid);
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        if (__atomic_load_n(&vm_zones[z].lock.__data.__owner,
                            __ATOMIC_RELAXED) == self)
            __atomic_add_fetch(&hook_locked, 1, __ATOMIC_RELAXED);
}

static void test_no_system_call_under_the_zone_lock(void **state)
{
    (void)state;
    set_decay(ULONG_MAX); /* only this thread purges */
    sleep_ms(300);        /* a background pass under way ends */
    fill_and_free_most();
    vm_purge_hook = check_no_lock;
    vm_release_free(0, 0); /* the malloc_trim path */
    free_the_rest();
    vm_release_free(0, 0);
    vm_purge_hook = NULL;
    assert_true(hook_calls > 0);
    assert_int_equal(hook_locked, 0);
    assert_int_equal(zone_field(&vm_zones[ZONE_NORMAL].dirty_pages), 0);
    vm_check_zones();
    set_decay(500);
}

/* The free frames counted (vm_check_zones, what kslab_verify and the
 * stress tests' "nothing lost" read) while a purge pass has its blocks off
 * the lists, giving them back: as many as before the pass. */
static unsigned long free_before;
static int counts_seen, counts_wrong;

static void count_free(void *addr, size_t len)
{
    (void)addr;
    (void)len;
    counts_seen++;
    counts_wrong += vm_check_zones() != free_before;
}

static void test_frames_being_purged_count_as_free(void **state)
{
    (void)state;
    set_decay(ULONG_MAX); /* only this thread purges */
    sleep_ms(300);        /* a background pass under way ends */
    fill_and_free_most();
    free_before = vm_check_zones();
    counts_seen = counts_wrong = 0;
    vm_purge_hook = count_free;
    vm_release_free(0, 0);
    vm_purge_hook = NULL;
    assert_true(counts_seen > 0);
    assert_int_equal(counts_wrong, 0);
    assert_int_equal(vm_check_zones(), free_before);
    free_the_rest();
    set_decay(500);
}

/* Purged blocks, small ones included, read back as zero, carry PG_clean
 * and are handed out again. */
static void test_purged_blocks_read_zero_and_are_reused(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    enum { N = 64 };
    unsigned long a[N];
    for (int i = 0; i < N; i++) {
        a[i] = __get_free_pages(GFP_KERNEL, i % 3);
        assert_true(a[i] != 0);
        memset((void *)a[i], 0xab, PAGE_SIZE << (i % 3));
    }
    for (int i = 0; i < N; i += 2)
        free_pages(a[i], i % 3);
    vm_release_free(0, 0);
    for (int i = 0; i < N; i += 2) {
        struct page *p = virt_to_page((void *)a[i]);
        unsigned char *c = (unsigned char *)a[i];
        for (size_t k = 0; k < (PAGE_SIZE << (i % 3)); k += 256)
            assert_int_equal(c[k], 0);
        (void)p;
    }
    vm_check_zones();
    for (int i = 0; i < N; i += 2) {
        a[i] = __get_free_pages(GFP_KERNEL, i % 3);
        assert_true(a[i] != 0);
        memset((void *)a[i], 0xcd, PAGE_SIZE << (i % 3));
    }
    for (int i = 0; i < N; i++)
        free_pages(a[i], i % 3);
    vm_check_zones();
    set_decay(500);
}

/* While a purge gives memory back, another thread allocates and frees in
 * the same zone without waiting for it: the hook holds the purge inside
 * its "system call" until the other thread has done its work. */
static int other_done, done_during_purge;

static void *other_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        struct page *p = alloc_pages(GFP_KERNEL, i % 4);
        if (!p)
            return (void *)1;
        __free_pages(p, i % 4);
    }
    __atomic_store_n(&other_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void wait_for_other(void *addr, size_t len)
{
    (void)addr;
    (void)len;
    for (int t = 0; t < 500 && !__atomic_load_n(&other_done, __ATOMIC_ACQUIRE);
         t++)
        sleep_ms(10);
    if (__atomic_load_n(&other_done, __ATOMIC_ACQUIRE))
        done_during_purge = 1;
}

static void test_allocation_does_not_wait_for_a_purge(void **state)
{
    (void)state;
    set_decay(ULONG_MAX);
    sleep_ms(300);
    fill_and_free_most();
    free_the_rest();
    other_done = 0;
    vm_purge_hook = wait_for_other;
    pthread_t t;
    void *ret;
    pthread_create(&t, NULL, other_thread, NULL);
    vm_release_free(0, 0);
    vm_purge_hook = NULL;
    pthread_join(t, &ret);
    assert_null(ret);
    assert_int_equal(done_during_purge, 1); /* not after it */
    vm_check_zones();
    set_decay(500);
}

/* In a fork child the background purge is started anew and works. */
static void test_purge_runs_in_a_fork_child(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    ktest_skip("sanitizer build: no thread in a fork child (purge.c)");
#endif
    set_decay(300);
    fill_and_free_most(); /* the parent's purge thread exists now */
    free_the_rest();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fill_and_free_most();
        free_the_rest();
        /* the child of a threaded parent: a free only asks for the
         * background purge, an allocation starts it (purge.c) */
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0);
        for (int t = 0; t < 100; t++) {
            sleep_ms(100);
            if (zone_field(&vm_zones[ZONE_NORMAL].dirty_pages) == 0)
                _exit(0);
        }
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    set_decay(500);
}

/* ---- who purges: the slow paths' ticks, or a thread when worth it ----
 * In a fork child: only the forking thread lives there, and the child's
 * purge state starts anew (no background thread yet). */

static unsigned long zone_dirty(void)
{
    return zone_field(&vm_zones[ZONE_NORMAL].dirty_pages) +
           zone_field(&vm_zones[ZONE_DMA].dirty_pages);
}

/* Allocates, writes and frees n order-0 frames. */
static int churn_frames(int n)
{
    for (int i = 0; i < n; i++) {
        pages[i] = alloc_pages(GFP_KERNEL, 0);
        if (!pages[i])
            return 0;
        memset(page_address(pages[i]), 0x6b, PAGE_SIZE);
    }
    for (int i = 0; i < n; i++)
        __free_pages(pages[i], 0);
    return 1;
}

/* 4 MiB freed: no thread, then or later; the next slow path after the
 * decay time (a free that reaches the zone) gives it back. */
static void small_free_child(void *arg)
{
    (void)arg;
    set_decay(60000); /* nothing past the decay while freeing, however slow */
    if (ktest_threads() != 1 || !churn_frames(1024))
        _exit(2);
    set_decay(200);
    unsigned long dirty = zone_dirty();
    if (ktest_threads() != 1)
        _exit(3); /* a thread for 4 MiB */
    if (dirty < 512)
        _exit(4);
    sleep_ms(400); /* past the decay time, no allocator call */
    if (ktest_threads() != 1)
        _exit(5);
    struct page *p = alloc_pages(GFP_KERNEL, 5); /* the slow path */
    if (!p)
        _exit(6);
    __free_pages(p, 5);
    unsigned long after = zone_dirty();
    if (after > 256) {
        fprintf(stderr, "dirty %lu -> %lu frames\n", dirty, after);
        _exit(7);
    }
    if (ktest_threads() != 1)
        _exit(8);
    _exit(0);
}

static void test_small_free_starts_no_thread_slow_paths_purge(void **state)
{
    (void)state;
#ifdef __SANITIZE_THREAD__
    ktest_skip(
        "TSan: a fork child of a threaded process starts no thread there");
#endif
    char err[512];
    int st = ktest_run_child(small_free_child, NULL, err, sizeof err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child status %#x: %s", st, err);
}

/* 64 MiB freed: the background purge starts at once and gives it back
 * while the program sleeps. */
static void big_free_child(void *arg)
{
    (void)arg;
    set_decay(60000); /* all 64 MiB wait at once, however slow the frees */
    if (ktest_threads() != 1 || !churn_frames(NPAGES))
        _exit(2);
    if (ktest_threads() < 2)
        _exit(3); /* no thread for 64 MiB */
    set_decay(200);
    for (int t = 0; t < 100 && zone_dirty() > 256; t++)
        sleep_ms(100); /* no allocator call */
    if (zone_dirty() > 256)
        _exit(4);
    _exit(0);
}

static void test_big_free_starts_the_background_purge(void **state)
{
    (void)state;
#ifdef __SANITIZE_THREAD__
    ktest_skip(
        "TSan: a fork child of a threaded process starts no thread there");
#endif
    char err[512];
    int st = ktest_run_child(big_free_child, NULL, err, sizeof err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child status %#x: %s", st, err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_falls_while_the_program_sleeps),
        cmocka_unit_test(test_recently_freed_memory_is_kept),
        cmocka_unit_test(test_no_system_call_under_the_zone_lock),
        cmocka_unit_test(test_frames_being_purged_count_as_free),
        cmocka_unit_test(test_purged_blocks_read_zero_and_are_reused),
        cmocka_unit_test(test_allocation_does_not_wait_for_a_purge),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_purge_runs_in_a_fork_child),
        ktest_alone(test_small_free_starts_no_thread_slow_paths_purge),
        ktest_alone(test_big_free_starts_the_background_purge),
    };
    return ktest_main(argc, argv, tests, alone, NULL, NULL);
}
