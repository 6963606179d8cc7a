/*
 * tests/reliability/test_oom.c — out of memory under RLIMIT_AS.
 *
 * Each case runs in a child that sets RLIMIT_AS and then executes this
 * program again (argv[1] names the case), so that kslab starts under the
 * limit as a real program would (its low memory then grows by sections as
 * it is used).  The child allocates until kslab says no, checks that
 * the answer is NULL with errno ENOMEM (0 from __get_free_pages, NULL from
 * mm_alloc/mm_fork, -ENOMEM from the vm calls), that nothing was left
 * half-done (every cache and zone validates, and after everything is freed
 * the objects and frames in use are what they were at the start), and that
 * allocation works again once memory is freed.  It exits 0 on success.
 *
 * Skipped in the sanitizer builds (exit 77, SKIP_RETURN_CODE for ctest):
 * ASan and TSan reserve terabytes of shadow address space at start, which
 * no RLIMIT_AS leaves room for.
 */
#include "reltest.h"

#include <errno.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REL_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define REL_SANITIZER 1
#endif
#endif

#define CHILD_CHECK(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "test_oom: %s:%d: %s\n", __FILE__, __LINE__,       \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Allocates objects of `size` from kmalloc (cache NULL) or a cache until
 * it fails, chaining them through their first word; returns the count. */
static unsigned long fill_until_fail(kmem_cache_t *cache, size_t size,
                                     void **head)
{
    unsigned long n = 0;
    for (;;) {
        errno = 0;
        void **p = cache ? kmem_cache_alloc(cache, GFP_KERNEL)
                         : kmalloc(size, GFP_KERNEL);
        if (!p) {
            CHILD_CHECK(errno == ENOMEM);
            return n;
        }
        *p = *head;
        *head = p;
        n++;
    }
}

static void free_chain(kmem_cache_t *cache, void *head)
{
    while (head) {
        void *next = *(void **)head;
        if (cache)
            kmem_cache_free(cache, head);
        else
            kfree(head);
        head = next;
    }
}

static int child_kmalloc(void)
{
    struct rel_snapshot before, after;
    rel_snapshot(&before);
    void *big = NULL, *small = NULL;
    unsigned long nbig = fill_until_fail(NULL, 131072, &big);
    CHILD_CHECK(nbig > 100);
    /* the last crumbs: small objects until they fail too */
    unsigned long nsmall = fill_until_fail(NULL, 200, &small);
    /* a page block, a new cache's object: no memory either */
    CHILD_CHECK(__get_free_pages(GFP_KERNEL, 3) == 0);
    kmem_cache_t *c = kmem_cache_create("oom-cache", 1000, 0, 0, NULL, NULL);
    if (c)
        CHILD_CHECK(kmem_cache_alloc(c, GFP_KERNEL) == NULL);
    else
        CHILD_CHECK(errno == ENOMEM);
    struct rel_snapshot mid;
    rel_snapshot(&mid); /* validates every cache and every zone */
    free_chain(NULL, small);
    free_chain(NULL, big);
    /* memory is back: the same amount can be had again */
    big = NULL;
    unsigned long again = fill_until_fail(NULL, 131072, &big);
    CHILD_CHECK(again >= nbig);
    free_chain(NULL, big);
    if (c) {
        void *o = kmem_cache_alloc(c, GFP_KERNEL);
        CHILD_CHECK(o);
        kmem_cache_free(c, o);
        CHILD_CHECK(kmem_cache_destroy(c) == 0);
    }
    rel_snapshot(&after);
    for (int i = 0; i < before.n; i++)
        for (int j = 0; j < after.n; j++)
            if (after.cache[j] == before.cache[i])
                CHILD_CHECK(after.inuse[j] == before.inuse[i]);
    CHILD_CHECK(after.frames_used <= before.frames_used + 256);
    printf("oom: %lu x 128 KiB + %lu x 200 B before ENOMEM, %lu again after "
           "freeing\n",
           nbig, nsmall, again);
    return 0;
}

static int child_cache(void)
{
    /* a user cache with off-slab management and a constructor-free cache
     * of small objects, filled to the end */
    kmem_cache_t *a = kmem_cache_create("oom-a", 3000, 0, 0, NULL, NULL);
    kmem_cache_t *b =
        kmem_cache_create("oom-b", 40, 0, SLAB_HWCACHE_ALIGN, NULL, NULL);
    CHILD_CHECK(a && b);
    void *ha = NULL, *hb = NULL;
    unsigned long na = fill_until_fail(a, 0, &ha);
    unsigned long nb = fill_until_fail(b, 0, &hb);
    CHILD_CHECK(na > 1000);
    slab_check_cache(a);
    slab_check_cache(b);
    free_chain(a, ha);
    ha = NULL;
    unsigned long nb2 = fill_until_fail(b, 0, &hb);
    CHILD_CHECK(nb2 > 0);
    free_chain(b, hb);
    CHILD_CHECK(kmem_cache_shrink(a) == 0 && kmem_cache_shrink(b) == 0);
    CHILD_CHECK(kmem_cache_destroy(a) == 0 && kmem_cache_destroy(b) == 0);
    vm_check_zones();
    printf("oom: cache of 3000 B: %lu objects, then %lu + %lu of 40 B\n", na,
           nb, nb2);
    return 0;
}

/* Address space in use by this process, in bytes (VmSize). */
static unsigned long vm_size(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (unsigned long)sysconf(_SC_PAGESIZE);
}

static int child_vm(void)
{
    struct rel_snapshot before, after;
    rel_snapshot(&before);
    /* room for one more 3 GiB window, not for two */
    unsigned long lim = vm_size() + TASK_SIZE + (512UL << 20);
    struct rlimit rl = {lim, lim};
    CHILD_CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    struct mm_struct *mm = mm_alloc();
    CHILD_CHECK(mm);
    unsigned long a = do_mmap(mm, -1, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    CHILD_CHECK(!IS_ERR_VALUE(a));
    for (int i = 0; i < 16; i++)
        *(volatile unsigned long *)mm_host(mm, a + i * PAGE_SIZE) = 40 + i;
    /* a second address space does not fit under the limit */
    errno = 0;
    struct mm_struct *c = mm_fork(mm);
    CHILD_CHECK(c == NULL && errno == ENOMEM);
    errno = 0;
    CHILD_CHECK(mm_alloc() == NULL && errno == ENOMEM);
    vm_check_mm(mm);
    /* the emulated address space is full past 3 GiB: -ENOMEM */
    unsigned long big = do_mmap(mm, -1, 0, TASK_SIZE, PROT_READ,
                                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    CHILD_CHECK(big == (unsigned long)-ENOMEM);
    vm_check_mm(mm);
    for (int i = 0; i < 16; i++)
        CHILD_CHECK(*(volatile unsigned long *)mm_host(mm, a + i * PAGE_SIZE) ==
                    40 + (unsigned long)i);
    mmput(mm);
    /* the space is back: a new mm works */
    mm = mm_alloc();
    CHILD_CHECK(mm);
    a = do_mmap(mm, -1, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    CHILD_CHECK(!IS_ERR_VALUE(a));
    *(volatile unsigned long *)mm_host(mm, a) = 1;
    mmput(mm);
    rel_snapshot(&after);
    for (int i = 0; i < before.n; i++)
        for (int j = 0; j < after.n; j++)
            if (after.cache[j] == before.cache[i])
                CHILD_CHECK(after.inuse[j] == before.inuse[i]);
    CHILD_CHECK(after.user_free == before.user_free);
    printf("oom: mm_fork and mm_alloc: NULL/ENOMEM under the limit, "
           "nothing left behind\n");
    return 0;
}

static char self_path[4096];

/* Runs `what` in a fresh child process under an address-space limit. */
static void run_limited(const char *what, unsigned long limit_mb)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {limit_mb << 20, limit_mb << 20};
        if (limit_mb && setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(90);
        execl(self_path, self_path, what, (char *)NULL);
        _exit(91);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("case %s under RLIMIT_AS %lu MiB: status %#x", what, limit_mb,
                 st);
}

static void test_kmalloc_enomem_then_recovers(void **state)
{
    (void)state;
    run_limited("kmalloc", 512);
}

static void test_cache_enomem_then_recovers(void **state)
{
    (void)state;
    run_limited("cache", 384);
}

static void test_vm_enomem_nothing_left_behind(void **state)
{
    (void)state;
    /* the child sets its limit itself, once kslab is up */
    run_limited("vm", 0);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "kmalloc"))
            return child_kmalloc();
        if (!strcmp(argv[1], "cache"))
            return child_cache();
        if (!strcmp(argv[1], "vm"))
            return child_vm();
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0)
        return 1;
    self_path[n] = 0;
#ifdef REL_SANITIZER
    printf("test_oom: skipped under a sanitizer (shadow memory needs more "
           "address space than any RLIMIT_AS allows)\n");
    return KTEST_SKIP;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kmalloc_enomem_then_recovers),
        cmocka_unit_test(test_cache_enomem_then_recovers),
        cmocka_unit_test(test_vm_enomem_nothing_left_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
