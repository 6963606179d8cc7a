/*
 * tests/frames/test_sections.c — low memory under an address-space limit
 * (RLIMIT_AS): it grows by sections reserved as the zones need them, so a
 * process started under a limit reserves only what it uses; objects in
 * every section are found by virt_to_page() (the kfree() path) with the
 * right struct page, frame number and address; ZONE_DMA stays in the first
 * section; a large block does not grow in place into the next section; a
 * limit set after start gives the unused direct map back at the next growth;
 * a section whose frames are all free is given back (at once on request,
 * by the purge after the decay time) and grown into again; an allocation
 * that cannot grow waits for the blocks a purge has off the lists.
 * Each case runs this program again (argv[1] names it) with the limit set.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include <kslab/slab.h>

#include "ktest.h"
#include "slab/kmalloc.h"
#include "vm/frames/page.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SECT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SECT_SANITIZER 1
#endif
#endif

static const char *self;

/* Runs this program with argv[1] = mode under an address-space limit of
 * limit bytes (0: none); returns its exit status, or 100 + the signal. */
static int run_limited(const char *mode, unsigned long limit)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (limit) {
            struct rlimit rl = {limit, limit};
            if (setrlimit(RLIMIT_AS, &rl))
                _exit(126);
        }
        unsetenv("KSLAB_LOWMEM_MB");
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* VmSize of this process in bytes. */
static unsigned long vm_size(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    fclose(f);
    return pages * (unsigned long)sysconf(_SC_PAGESIZE);
}

static int nr_sections(void)
{
    return atomic_load(&vm_lowmem.nr_sections);
}

/* Checks one object: its frame is a slab frame whose address, number and
 * section agree; counts it when it is in section 3. */
static int check_obj(void *p, int *in3)
{
    struct page *page = virt_to_page(p);
    if (!page || !PageSlab(page))
        return 12;
    if (page_address(page) != (void *)((uintptr_t)p & PAGE_MASK))
        return 13;
    unsigned long pfn = vm_page_to_pfn(page);
    if (pfn >= atomic_load(&vm_lowmem.committed_pages))
        return 14;
    const struct vm_section *s = &vm_sections[3];
    if ((char *)p >= s->base &&
        (char *)p < s->base + (s->nr_pages << PAGE_SHIFT)) {
        if (pfn != s->start_pfn + (((char *)p - s->base) >> PAGE_SHIFT))
            return 15;
        if (page != &s->map[pfn - s->start_pfn])
            return 15;
        (*in3)++;
    }
    return 0;
}

#define NOBJ ((160UL << 20) / 512)

/* Under a 1 GiB limit: 160 MiB of 512-byte objects (six sections), each
 * found; the struct pages of a section are not frames; then all freed. */
static int child_objects(void)
{
    kfree(kmalloc(8, GFP_KERNEL)); /* start-up */
    if (nr_sections() != 1)
        return 9;
    void **v = calloc(NOBJ, sizeof *v);
    if (!v)
        return 8;
    for (size_t i = 0; i < NOBJ; i++) {
        v[i] = kmalloc(512, GFP_KERNEL);
        if (!v[i])
            return 10;
        memset(v[i], (int)(i & 0xff), 512);
    }
    if (nr_sections() < 5)
        return 11;
    int in3 = 0;
    for (size_t i = 0; i < NOBJ; i++) {
        int r = check_obj(v[i], &in3);
        if (r)
            return r;
        if (*(unsigned char *)v[i] != (i & 0xff))
            return 16;
    }
    if (in3 == 0)
        return 17;
    /* past a section's frames lie its struct pages: no frame there */
    const struct vm_section *s = &vm_sections[3];
    if (virt_to_page(s->base + (s->nr_pages << PAGE_SHIFT)) ||
        virt_to_page(s->map))
        return 18;
    /* ZONE_DMA stays in the first section */
    void *d = kmalloc(256, GFP_DMA);
    if (!d || !vm_addr_is_dma(d) || virt_to_page(d)->zone != ZONE_DMA)
        return 19;
    kfree(d);
    /* freed in two sweeps, the later section first */
    for (size_t i = NOBJ; i-- > 0;)
        if (i & 1)
            kfree(v[i]);
    for (size_t i = 0; i < NOBJ; i++)
        if (!(i & 1))
            kfree(v[i]);
    free(v);
    slab_shrink_all();
    vm_check_zones();
    return 0;
}

/* Under a 1 GiB limit: top-order blocks across several sections, each
 * address and frame round-trips; a block at the end of a section grows in
 * place within it but not into the next section. */
static int child_blocks(void)
{
    enum { N = 160 }; /* 320 MiB */
    struct page *b[N];
    struct page *edge = NULL;
    for (int i = 0; i < N; i++) {
        b[i] = alloc_pages(GFP_KERNEL, MAX_ORDER - 1);
        if (!b[i])
            return 10;
        char *a = page_address(b[i]);
        if (!a || virt_to_page(a) != b[i] ||
            virt_to_page(a + (PAGE_SIZE << (MAX_ORDER - 1)) - 1) !=
                b[i] + (1UL << (MAX_ORDER - 1)) - 1)
            return 11;
        memset(a, i, PAGE_SIZE << (MAX_ORDER - 1));
    }
    for (int i = 0; i < N && !edge; i++) {
        unsigned long end = vm_page_to_pfn(b[i]) + (1UL << (MAX_ORDER - 1));
        for (int k = 1; k < nr_sections() - 1; k++)
            if (end == vm_sections[k + 1].start_pfn)
                edge = b[i];
    }
    if (nr_sections() < 8 || !edge) {
        fprintf(stderr, "%d sections, edge %p\n", nr_sections(), (void *)edge);
        return 12;
    }
    for (int i = 0; i < N; i++)
        if (b[i] != edge)
            __free_pages(b[i], MAX_ORDER - 1);
    /* the block at the section's end becomes a 256-frame large block */
    unsigned long half = 1UL << (MAX_ORDER - 2);
    vm_shrink_pages_exact(edge, 2 * half, half);
    if (vm_grow_pages_exact(edge, half, 3 * half) != -ENOMEM)
        return 13; /* would run into the next section */
    if (vm_grow_pages_exact(edge, half, 2 * half) != 0)
        return 14; /* the frames after it in its section are free */
    vm_free_pages_exact(edge, 2 * half);
    vm_check_zones();
    return 0;
}

/* No limit at start, then one: the next growth gives back the direct map
 * beyond what is used, and low memory grows by sections from there. */
static int child_later(void)
{
    void *first = kmalloc(4096, GFP_KERNEL);
    if (!first || nr_sections() != 1)
        return 10;
    if (vm_size() < (32UL << 30))
        return 11; /* the whole direct map is reserved */
    struct rlimit rl = {2UL << 30, 2UL << 30};
    if (setrlimit(RLIMIT_AS, &rl))
        return 12;
    enum { N = (64 << 20) / 4096 };
    static void *v[N];
    int in3 = 0;
    for (int i = 0; i < N; i++) {
        v[i] = kmalloc(4096, GFP_KERNEL);
        if (!v[i])
            return 13;
        memset(v[i], 1, 4096);
    }
    if (nr_sections() < 2 || vm_size() > (1UL << 30))
        return 14;
    for (int i = 0; i < N; i++) {
        int r = check_obj(v[i], &in3);
        if (r)
            return r;
    }
    size_t len = 512UL << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 15;
    m[0] = m[len - 1] = 1;
    munmap(m, len);
    for (int i = 0; i < N; i++)
        kfree(v[i]);
    kfree(first);
    vm_check_zones();
    return 0;
}

/* Under a limit of 200000 KiB: start-up succeeds and leaves the program
 * most of the limit (a 120 MiB mapping of its own). */
static int child_small(void)
{
    void *p = kmalloc(100, GFP_KERNEL);
    if (!p)
        return 10;
    kfree(p);
    if (nr_sections() != 1)
        return 11;
    size_t len = 120UL << 20;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 12;
    munmap(m, len);
    return 0;
}

/* The program's own mmap of len bytes: 1 when the limit allowed it. */
static int can_map(size_t len)
{
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    m[0] = m[len - 1] = 1;
    munmap(m, len);
    return 1;
}

enum { GB_MAX = 1024 }; /* top-order blocks: 2 GiB, past the limit */

/* Top-order blocks until the limit stops them: how many (into b). */
static int fill_blocks(struct page **b)
{
    int n = 0;
    while (n < GB_MAX && (b[n] = alloc_pages(GFP_KERNEL, MAX_ORDER - 1))) {
        memset(page_address(b[n]), n, PAGE_SIZE << (MAX_ORDER - 1));
        n++;
    }
    return n;
}

/* Under a 1 GiB limit: low memory grown to the limit, then all freed:
 * vm_release_sections() gives the sections back at once and the program
 * can map 256 MiB; low memory grows into them again (each frame's address
 * and struct page agree); freed again, the purge gives them back by
 * itself within the decay time. */
static int child_give_back(void)
{
    static struct page *b[GB_MAX];
    size_t len = 256UL << 20;
    __atomic_store_n(&vm_purge_decay_ms, ULONG_MAX, __ATOMIC_RELAXED);
    int n = fill_blocks(b);
    if (n < 128 || n >= GB_MAX || nr_sections() < 5)
        return 10; /* at least 256 MiB, stopped by the limit */
    if (can_map(len))
        return 11; /* the limit is used up */
    for (int i = 0; i < n; i++)
        __free_pages(b[i], MAX_ORDER - 1);
    if (vm_release_sections() < len)
        return 12;
    if (!can_map(len))
        return 13;
    vm_check_zones();
    /* back again: sections reserved anew, wherever the host puts them */
    int again = fill_blocks(b);
    if (again < n - 16)
        return 14;
    for (int i = 0; i < again; i++) {
        char *a = page_address(b[i]);
        size_t last = (PAGE_SIZE << (MAX_ORDER - 1)) - 1;
        if (virt_to_page(a) != b[i] ||
            virt_to_page(a + last) != b[i] + (1UL << (MAX_ORDER - 1)) - 1 ||
            vm_page_to_pfn(virt_to_page(a + last)) !=
                vm_page_to_pfn(b[i]) + (1UL << (MAX_ORDER - 1)) - 1 ||
            a[0] != (char)i || a[last] != (char)i)
            return 15;
    }
    vm_check_zones();
    __atomic_store_n(&vm_purge_decay_ms, 200UL, __ATOMIC_RELAXED);
    for (int i = 0; i < again; i++)
        __free_pages(b[i], MAX_ORDER - 1);
    for (int t = 0; !can_map(len); t++) {
        if (t >= 600)
            return 16; /* 30 s: far past the decay time */
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    vm_check_zones();
    return 0;
}

/* The purge's hook (vm_purge_hook) for child_purge_wait: its first call
 * in ZONE_NORMAL, with a batch of free blocks off the lists, waits until the
 * allocating thread is done or 2 s have passed. */
static int pw_go, pw_entered, pw_done;

static void pw_hook(void *addr, size_t len)
{
    (void)len;
    if (vm_addr_is_dma(addr)) /* ZONE_DMA is purged first: not that one */
        return;
    if (__atomic_exchange_n(&pw_entered, 1, __ATOMIC_ACQ_REL))
        return;
    for (int t = 0; t < 200 && !__atomic_load_n(&pw_done, __ATOMIC_ACQUIRE);
         t++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *pw_purge(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&pw_go, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    vm_release_free(0, 0);
    return NULL;
}

/* Under a 1 GiB limit, low memory grown to the limit and all freed: while
 * a purge has free blocks off the lists (madvise), an allocation that
 * finds the zone empty and cannot grow waits for them rather than fail
 * (with a short decay time the purge can hold most of the zone). */
static int child_purge_wait(void)
{
    static struct page *b[GB_MAX];
    __atomic_store_n(&vm_purge_decay_ms, ULONG_MAX, __ATOMIC_RELAXED);
    pthread_t t; /* before the limit is used up: its stack is a mapping */
    if (pthread_create(&t, NULL, pw_purge, NULL))
        return 11;
    int n = fill_blocks(b);
    if (n < 128 || n >= GB_MAX)
        return 10;
    for (int i = 0; i < n; i++)
        __free_pages(b[i], MAX_ORDER - 1);
    vm_purge_hook = pw_hook;
    __atomic_store_n(&pw_go, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&pw_entered, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    int again = 0;
    while (again < n && (b[again] = alloc_pages(GFP_KERNEL, MAX_ORDER - 1)))
        again++;
    __atomic_store_n(&pw_done, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    vm_purge_hook = NULL;
    if (getenv("PW_DEBUG"))
        fprintf(stderr, "%d of %d blocks again\n", again, n);
    if (again < n - 8) {
        fprintf(stderr, "%d of %d blocks again\n", again, n);
        return 12;
    }
    for (int i = 0; i < again; i++)
        __free_pages(b[i], MAX_ORDER - 1);
    vm_check_zones();
    return 0;
}

static void test_objects_in_every_section(void **s)
{
    (void)s;
    assert_int_equal(run_limited("objects", 1UL << 30), 0);
}

static void test_blocks_do_not_cross_sections(void **s)
{
    (void)s;
    assert_int_equal(run_limited("blocks", 1UL << 30), 0);
}

static void test_limit_set_later(void **s)
{
    (void)s;
    assert_int_equal(run_limited("later", 0), 0);
}

static void test_free_sections_given_back(void **s)
{
    (void)s;
    assert_int_equal(run_limited("give-back", 1UL << 30), 0);
}

static void test_allocation_waits_for_a_purge(void **s)
{
    (void)s;
    assert_int_equal(run_limited("purge-wait", 1UL << 30), 0);
}

static void test_small_limit(void **s)
{
    (void)s;
    assert_int_equal(run_limited("small", 200000UL << 10), 0);
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1) {
        if (!strcmp(argv[1], "objects"))
            return child_objects();
        if (!strcmp(argv[1], "blocks"))
            return child_blocks();
        if (!strcmp(argv[1], "later"))
            return child_later();
        if (!strcmp(argv[1], "small"))
            return child_small();
        if (!strcmp(argv[1], "give-back"))
            return child_give_back();
        if (!strcmp(argv[1], "purge-wait"))
            return child_purge_wait();
        return 2;
    }
#ifdef SECT_SANITIZER
    /* a sanitizer's shadow memory needs terabytes of address space */
    fprintf(stderr, "test_sections: skipped under a sanitizer\n");
    return KTEST_SKIP;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_in_every_section),
        cmocka_unit_test(test_blocks_do_not_cross_sections),
        cmocka_unit_test(test_limit_set_later),
        cmocka_unit_test(test_free_sections_given_back),
        cmocka_unit_test(test_allocation_waits_for_a_purge),
        cmocka_unit_test(test_small_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
