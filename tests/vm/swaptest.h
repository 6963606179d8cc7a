/*
 * tests/vm/swaptest.h — helpers of the swap tests: a temporary directory
 * for swap files (removed at teardown), a filled working set with a
 * per-page pattern that is checked word by word, and the pte of a user
 * address.  Each test sets the user-memory limit, swap areas and
 * page_cluster it needs; swap_test_teardown (run after every test, also
 * one an assert ended) lifts the limit, turns off and removes every swap
 * file and puts page_cluster back.
 */
#ifndef KSLAB_TESTS_SWAPTEST_H
#define KSLAB_TESTS_SWAPTEST_H

#include "vmtest.h"

#include <dirent.h>
#include <sys/stat.h>

static char swap_dir[64];
static int swap_default_cluster;

/* Group setup: the temporary directory; page_cluster as it was. */
static inline int swap_dir_setup(void **state)
{
    (void)state;
    swap_default_cluster = vm_set_page_cluster(3);
    vm_set_page_cluster(swap_default_cluster);
    const char *t = getenv("TMPDIR");
    snprintf(swap_dir, sizeof swap_dir, "%s/kslab-swap-XXXXXX",
             t && strlen(t) < 30 ? t : "/tmp");
    return mkdtemp(swap_dir) ? 0 : -1;
}

/* Turns off (if on) and removes every swap file of the directory. */
static inline void swap_dir_empty(void)
{
    DIR *d = opendir(swap_dir);
    struct dirent *e;
    char p[400];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", swap_dir, e->d_name);
            sys_swapoff(p); /* -EINVAL when it was not on */
            unlink(p);
        }
    if (d)
        closedir(d);
}

/* After every test: no user-memory limit (so that swapoff has room), no
 * swap area on, no swap file left, the default page_cluster. */
static inline int swap_test_teardown(void **state)
{
    vm_ram_teardown(state);
    swap_dir_empty();
    vm_set_page_cluster(swap_default_cluster);
    return 0;
}

#define swap_unit_test(f) cmocka_unit_test_teardown(f, swap_test_teardown)

static inline int swap_dir_teardown(void **state)
{
    (void)state;
    swap_dir_empty();
    return rmdir(swap_dir);
}

/* The path of swap file name in the temporary directory (static buffer
 * per name slot: up to 4 live at once). */
static inline const char *swap_path(const char *name)
{
    static char buf[4][128];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 128, "%s/%s", swap_dir, name);
    return p;
}

/* mkswap + swapon, asserting success. */
static inline const char *swap_on(const char *name, unsigned long pages,
                                  int flags)
{
    const char *p = swap_path(name);
    assert_int_equal(mkswap(p, pages), 0);
    assert_int_equal(sys_swapon(p, flags), 0);
    return p;
}

static inline unsigned long pattern(unsigned long page, unsigned long word,
                                    unsigned long seed)
{
    return (page * 0x9E3779B97F4A7C15UL) ^ (word * 0x2545F4914F6CDD1DUL) ^ seed;
}

/* Writes page i of [a, a + n pages): eight words spread over the page. */
static inline void fill_page(struct mm_struct *mm, unsigned long a,
                             unsigned long i, unsigned long seed)
{
    for (unsigned long w = 0; w < 8; w++)
        U64(mm, a + i * PAGE_SIZE + w * 512) = pattern(i, w, seed);
}

static inline int page_ok(struct mm_struct *mm, unsigned long a,
                          unsigned long i, unsigned long seed)
{
    for (unsigned long w = 0; w < 8; w++)
        if (U64(mm, a + i * PAGE_SIZE + w * 512) != pattern(i, w, seed))
            return 0;
    return 1;
}

static inline pte_t pte_of(struct mm_struct *mm, unsigned long addr)
{
    pthread_mutex_lock(&mm->mmap_sem);
    pte_t *p = vm_pte_lookup(mm, addr);
    pte_t v = p ? *p : __pte(0);
    pthread_mutex_unlock(&mm->mmap_sem);
    return v;
}

static inline unsigned long count_swapped(struct mm_struct *mm, unsigned long a,
                                          unsigned long n)
{
    unsigned long k = 0;
    for (unsigned long i = 0; i < n; i++)
        k += pte_is_swap(pte_of(mm, a + i * PAGE_SIZE));
    return k;
}

/* A "Name:  value kB" line of vm_meminfo. */
static inline unsigned long meminfo(const char *name)
{
    char buf[2048];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    vm_meminfo(f);
    fclose(f);
    char *p = strstr(buf, name);
    assert_non_null(p);
    return strtoul(p + strlen(name) + 1, NULL, 10);
}

#endif
