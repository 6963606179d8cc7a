/*
 * tests/vm/test_pagecache.c — the page cache: two mms (and two mappings
 * in one mm) that map a file MAP_SHARED map the same frame and see each
 * other's stores at once; a private mapping reads the cached page until
 * its first store and is its own after it; sys_msync writes the stores
 * back (its errors as msync(2)); munmap and mmput write back; a shared
 * file page is mapped clean and its first store marks it dirty; the share
 * lists (i_mmap, i_mmap_shared) follow fork, splits and unmaps; Cached
 * counts the cached pages; two threads faulting the same pages at once
 * get one frame a page.
 */
#include "swaptest.h"

#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>

#define RW (PROT_READ | PROT_WRITE)

/* A second, independent fd of the same file. */
static int reopen(int fd)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int fd2 = open(link, O_RDWR);
    assert_true(fd2 >= 0);
    return fd2;
}

static unsigned long file_word(int fd, unsigned long page, unsigned long j)
{
    unsigned long v = 0;
    assert_int_equal(pread(fd, &v, sizeof v, page * PAGE_SIZE + j * 8), 8);
    return v;
}

static unsigned long pfn_of(struct mm_struct *mm, unsigned long a)
{
    pte_t pte = pte_of(mm, a);
    assert_true(pte_present(pte));
    return pte_pfn(pte);
}

static struct address_space *mapping_of(struct mm_struct *mm, unsigned long a)
{
    struct vm_area_struct *v = find_vma(mm, a);
    assert_non_null(v);
    return v->vm_private_data;
}

static int count_share(struct vm_area_struct *head)
{
    int n = 0;
    pthread_mutex_lock(&pagecache_lock);
    for (struct vm_area_struct *v = head; v; v = v->vm_next_share) {
        if (*v->vm_pprev_share != v)
            fail_msg("share list: vm_pprev_share does not point at the vma");
        n++;
    }
    pthread_mutex_unlock(&pagecache_lock);
    return n;
}

static void test_two_mms_share_file_frames(void **state)
{
    (void)state;
    int fd = patterned_file(4), fd2 = reopen(fd);
    struct mm_struct *w = mm_alloc(), *r = mm_alloc();
    unsigned long a = do_mmap(w, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long b =
        do_mmap(r, fd2, 0, 3 * PAGE_SIZE, PROT_READ, MAP_SHARED, PAGE_SIZE);
    assert_false(IS_ERR_VALUE(a));
    assert_false(IS_ERR_VALUE(b));
    assert_ptr_equal(mapping_of(w, a), mapping_of(r, b));
    /* the reader sees the file, then every store of the writer at once */
    assert_int_equal(U64(r, b + 8), 1001);
    unsigned long maj = stat_of(r).maj_flt;
    U64(w, a + PAGE_SIZE + 8) = 77;
    assert_int_equal(U64(r, b + 8), 77);
    U64(w, a + 3 * PAGE_SIZE) = 78; /* a page the reader faults in after */
    assert_int_equal(U64(r, b + 2 * PAGE_SIZE), 78);
    assert_int_equal(pfn_of(w, a + PAGE_SIZE), pfn_of(r, b));
    assert_int_equal(pfn_of(w, a + 3 * PAGE_SIZE),
                     pfn_of(r, b + 2 * PAGE_SIZE));
    /* two mappings of the file in one mm: one frame too */
    unsigned long c = do_mmap(w, fd, 0, PAGE_SIZE, RW, MAP_SHARED, PAGE_SIZE);
    assert_false(IS_ERR_VALUE(c));
    U64(w, c + 16) = 79;
    assert_int_equal(U64(w, a + PAGE_SIZE + 16), 79);
    assert_int_equal(U64(r, b + 16), 79);
    assert_int_equal(pfn_of(w, c), pfn_of(w, a + PAGE_SIZE));
    /* the page the writer brought in was found in the cache: no read */
    assert_int_equal(stat_of(r).maj_flt, maj);
    vm_check_mm(w);
    vm_check_mm(r);
    mmput(r);
    mmput(w);
    assert_int_equal(file_word(fd, 1, 1), 77);
    assert_int_equal(file_word(fd, 3, 0), 78);
    close(fd2);
    close(fd);
}

static void test_private_mapping_diverges_after_first_store(void **state)
{
    (void)state;
    int fd = patterned_file(2);
    struct mm_struct *s = mm_alloc(), *p = mm_alloc();
    unsigned long a = do_mmap(s, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long b = do_mmap(p, fd, 0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, 0);
    /* before its first store the private mapping maps the cached page,
     * read-only */
    assert_int_equal(U64(p, b), 0);
    assert_int_equal(U64(s, a), 0);
    assert_int_equal(pfn_of(p, b), pfn_of(s, a));
    assert_false(pte_write(pte_of(p, b)));
    U64(s, a + 8) = 11;
    assert_int_equal(U64(p, b + 8), 11);
    /* the first store copies it */
    U64(p, b + 16) = 12;
    assert_int_not_equal(pfn_of(p, b), pfn_of(s, a));
    U64(s, a + 8) = 13;
    U64(s, a + 24) = 14;
    assert_int_equal(U64(p, b + 8), 11);
    assert_int_equal(U64(p, b + 24), 3);
    assert_int_equal(U64(p, b + 16), 12);
    assert_int_equal(U64(s, a + 16), 2);
    /* a store to a page never read before copies it too */
    U64(p, b + PAGE_SIZE) = 15;
    assert_int_equal(U64(s, a + PAGE_SIZE), 1000);
    mmput(p);
    assert_int_equal(sys_msync(s, a, 2 * PAGE_SIZE, MS_SYNC), 0);
    assert_int_equal(file_word(fd, 0, 1), 13);
    assert_int_equal(file_word(fd, 0, 2), 2);
    assert_int_equal(file_word(fd, 1, 0), 1000);
    mmput(s);
    close(fd);
}

static void test_msync_writes_back(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    U64(mm, a + 8) = 21;
    U64(mm, a + 2 * PAGE_SIZE) = 22;
    assert_int_equal(file_word(fd, 0, 1), 1); /* not written yet */
    assert_int_equal(sys_msync(mm, a, 4 * PAGE_SIZE, MS_SYNC), 0);
    assert_int_equal(file_word(fd, 0, 1), 21);
    assert_int_equal(file_word(fd, 2, 0), 22);
    /* msync cleaned the ptes: the next store is seen as well */
    assert_false(pte_write(pte_of(mm, a)));
    U64(mm, a + 8) = 23;
    assert_true(pte_write(pte_of(mm, a)));
    assert_int_equal(sys_msync(mm, a, PAGE_SIZE, MS_ASYNC), 0);
    assert_int_equal(file_word(fd, 0, 1), 23);
    U64(mm, a + 3 * PAGE_SIZE + 8) = 24;
    assert_int_equal(sys_msync(mm, a + 3 * PAGE_SIZE, 1, MS_INVALIDATE), 0);
    assert_int_equal(file_word(fd, 3, 1), 24);
    /* stores made through another mm's mapping are flushed too */
    struct mm_struct *o = mm_alloc();
    unsigned long b = do_mmap(o, fd, 0, PAGE_SIZE, RW, MAP_SHARED, PAGE_SIZE);
    U64(o, b + 8) = 25;
    assert_int_equal(sys_msync(mm, a, 4 * PAGE_SIZE, MS_SYNC), 0);
    assert_int_equal(file_word(fd, 1, 1), 25);
    mmput(o);
    mmput(mm);
    close(fd);
}

static void test_msync_errors(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    U64(mm, a) = 31;
    assert_int_equal(sys_msync(mm, a + 1, PAGE_SIZE, MS_SYNC), -EINVAL);
    assert_int_equal(sys_msync(mm, a, PAGE_SIZE, MS_SYNC | MS_ASYNC), -EINVAL);
    assert_int_equal(sys_msync(mm, a, PAGE_SIZE, 0x100), -EINVAL);
    assert_int_equal(sys_msync(NULL, a, PAGE_SIZE, MS_SYNC), -EINVAL);
    assert_int_equal(file_word(fd, 0, 0), 0); /* nothing written */
    assert_int_equal(sys_msync(mm, a, 0, MS_SYNC), 0);
    /* a hole in the range: -ENOMEM, the mapped part still written */
    assert_int_equal(sys_msync(mm, a, 3 * PAGE_SIZE, MS_SYNC), -ENOMEM);
    assert_int_equal(file_word(fd, 0, 0), 31);
    assert_int_equal(sys_msync(mm, a + 2 * PAGE_SIZE, PAGE_SIZE, MS_SYNC),
                     -ENOMEM);
    assert_int_equal(sys_msync(mm, 0, 2 * PAGE_SIZE, MS_ASYNC), -ENOMEM);
    assert_int_equal(sys_msync(mm, a, (size_t)-1, MS_SYNC), -ENOMEM);
    /* anonymous and private mappings: nothing to write, no error */
    unsigned long p = do_mmap(mm, fd, 0, PAGE_SIZE, RW, MAP_PRIVATE, 0);
    U64(mm, p) = 32;
    assert_int_equal(sys_msync(mm, p, PAGE_SIZE, MS_SYNC), 0);
    assert_int_equal(file_word(fd, 0, 0), 31);
    /* MS_INVALIDATE over a locked vma: -EBUSY */
    unsigned long l =
        do_mmap(mm, fd, 0, PAGE_SIZE, RW, MAP_SHARED | MAP_LOCKED, PAGE_SIZE);
    assert_false(IS_ERR_VALUE(l));
    assert_int_equal(sys_msync(mm, l, PAGE_SIZE, MS_INVALIDATE), -EBUSY);
    assert_int_equal(sys_msync(mm, l, PAGE_SIZE, MS_SYNC), 0);
    mmput(mm);
    close(fd);
}

static void test_munmap_and_mmput_write_back(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *w = mm_alloc(), *r = mm_alloc();
    unsigned long a = do_mmap(w, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long b = do_mmap(r, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    U64(w, a) = 41;
    U64(w, a + 2 * PAGE_SIZE) = 42;
    assert_int_equal(U64(r, b), 41);
    assert_int_equal(do_munmap(w, a, PAGE_SIZE), 0);
    assert_int_equal(file_word(fd, 0, 0), 41);
    /* the reader still maps page 0: a later store there is its own to
     * write back; mmput of the writer writes page 2 */
    mmput(w);
    assert_int_equal(file_word(fd, 2, 0), 42);
    U64(r, b + 8) = 43;
    mmput(r);
    assert_int_equal(file_word(fd, 0, 1), 43);
    close(fd);
}

static void test_shared_page_mapped_clean_until_stored(void **state)
{
    (void)state;
    int fd = patterned_file(2);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_int_equal(U64(mm, a), 0);
    pte_t pte = pte_of(mm, a);
    struct page *page = pte_page(pte);
    assert_false(pte_write(pte));
    assert_false(PageFlag(page, PG_dirty));
    assert_true(PageFlag(page, PG_pagecache));
    U64(mm, a) = 1;
    assert_true(pte_write(pte_of(mm, a)));
    assert_true(PageFlag(page, PG_dirty));
    /* a store fault on a page never read: writable and dirty at once */
    U64(mm, a + PAGE_SIZE) = 2;
    assert_true(PageFlag(pte_page(pte_of(mm, a + PAGE_SIZE)), PG_dirty));
    /* written back with no other mapper: clean again */
    assert_int_equal(sys_msync(mm, a, 2 * PAGE_SIZE, MS_SYNC), 0);
    assert_false(PageFlag(page, PG_dirty));
    /* mprotect back to writable keeps a clean page read-only */
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, RW), 0);
    assert_false(pte_write(pte_of(mm, a)));
    U64(mm, a) = 3;
    assert_true(PageFlag(page, PG_dirty));
    mmput(mm);
    assert_int_equal(file_word(fd, 0, 0), 3);
    close(fd);
}

static void test_share_lists_follow_fork_split_unmap(void **state)
{
    (void)state;
    int fd = patterned_file(8);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 8 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long p = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, 0);
    struct address_space *m = mapping_of(mm, a);
    assert_ptr_equal(mapping_of(mm, p), m);
    assert_int_equal(count_share(m->i_mmap_shared), 1);
    assert_int_equal(count_share(m->i_mmap), 1);
    assert_int_equal(m->i_count, 2);
    /* fork: the child's vmas join the lists */
    struct mm_struct *c = mm_fork(mm);
    assert_non_null(c);
    assert_int_equal(count_share(m->i_mmap_shared), 2);
    assert_int_equal(count_share(m->i_mmap), 2);
    /* mprotect of the middle: two more shared vmas */
    assert_int_equal(sys_mprotect(mm, a + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ),
                     0);
    assert_int_equal(count_share(m->i_mmap_shared), 4);
    /* a hole punched by munmap splits one; unmapping the head drops one */
    assert_int_equal(do_munmap(c, a + 5 * PAGE_SIZE, PAGE_SIZE), 0);
    assert_int_equal(count_share(m->i_mmap_shared), 5);
    assert_int_equal(do_munmap(mm, a, 2 * PAGE_SIZE), 0);
    assert_int_equal(count_share(m->i_mmap_shared), 4);
    assert_int_equal(m->i_count, 6);
    /* every vma on the list is a live vma of the file */
    pthread_mutex_lock(&pagecache_lock);
    for (struct vm_area_struct *v = m->i_mmap_shared; v; v = v->vm_next_share)
        assert_true(v->vm_private_data == m && (v->vm_flags & VM_SHARED));
    pthread_mutex_unlock(&pagecache_lock);
    U64(c, a + 6 * PAGE_SIZE) = 51;
    assert_int_equal(U64(mm, a + 6 * PAGE_SIZE), 51);
    mmput(c);
    assert_int_equal(count_share(m->i_mmap_shared), 2);
    assert_int_equal(count_share(m->i_mmap), 1);
    assert_int_equal(do_munmap(mm, p, 2 * PAGE_SIZE), 0);
    assert_int_equal(count_share(m->i_mmap), 0);
    mmput(mm);
    assert_int_equal(file_word(fd, 6, 0), 51);
    close(fd);
}

static void test_shared_anonymous_lists(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, 4 * PAGE_SIZE, RW, MAP_SHARED);
    struct address_space *m = mapping_of(mm, a);
    assert_int_equal(m->fd, -1);
    assert_int_equal(count_share(m->i_mmap_shared), 1);
    struct mm_struct *c = mm_fork(mm);
    assert_int_equal(count_share(m->i_mmap_shared), 2);
    U64(c, a + 3 * PAGE_SIZE) = 61; /* first touched after the fork */
    assert_int_equal(U64(mm, a + 3 * PAGE_SIZE), 61);
    mmput(c);
    assert_int_equal(count_share(m->i_mmap_shared), 1);
    mmput(mm);
}

/* Open fds of the process: an address_space holds one of its file. */
static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_cached_counts_page_cache(void **state)
{
    (void)state;
    /* a file with a name: a deleted one's pages go at its last unmap */
    char path[] = "/tmp/kslab-pcache-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    for (unsigned long i = 0; i < 16; i++) {
        unsigned long w = i * 1000;
        assert_int_equal(pwrite(fd, &w, 8, (off_t)(i * PAGE_SIZE)), 8);
    }
    assert_int_equal(ftruncate(fd, 16 * PAGE_SIZE), 0);
    unsigned long before = meminfo("Cached:");
    struct mm_struct *mm = mm_alloc();
    int fds = open_fds();
    unsigned long a =
        do_mmap(mm, fd, 0, 16 * PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    for (unsigned long i = 0; i < 16; i++)
        assert_int_equal(U64(mm, a + i * PAGE_SIZE), i * 1000);
    assert_int_equal(meminfo("Cached:"), before + 16 * PAGE_SIZE / 1024);
    assert_int_equal(vm_page_cache_pages() >= 16, 1);
    mmput(mm);
    /* the pages stay cached after the last unmap, until reclaim */
    assert_int_equal(meminfo("Cached:"), before + 16 * PAGE_SIZE / 1024);
    assert_int_equal(open_fds(), fds + 1); /* the address_space's */
    /* the last cached page gone, the address_space goes */
    try_to_free_pages(1UL << 20);
    assert_int_equal(meminfo("Cached:"), 0);
    assert_int_equal(open_fds(), fds);
    /* a deleted file's address_space goes with its last mapping */
    unlink(path);
    mm = mm_alloc();
    a = do_mmap(mm, fd, 0, PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    assert_int_equal(U64(mm, a), 0);
    mmput(mm);
    assert_int_equal(meminfo("Cached:"), 0);
    assert_int_equal(open_fds(), fds);
    close(fd);
}

static void test_dump_mapping(void **state)
{
    (void)state;
    int fd = patterned_file(2);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long p = do_mmap(mm, fd, 0, PAGE_SIZE, RW, MAP_PRIVATE, 0);
    unsigned long q = anon(mm, 0, PAGE_SIZE, RW, MAP_PRIVATE);
    struct mm_struct *c = mm_fork(mm);
    (void)U64(mm, a);
    char buf[2048];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(mm_dump_mapping(mm, p, f), 4);
    fclose(f);
    assert_non_null(strstr(buf, "4 vmas, 1 pages cached"));
    char *sh = strstr(buf, "i_mmap_shared:"), *pr = strstr(buf, "i_mmap:");
    assert_non_null(sh);
    assert_non_null(pr);
    int n = 0;
    for (char *s = sh; (s = strstr(s, "[mm ")) && s < pr; s++)
        n++;
    assert_int_equal(n, 2);
    f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(mm_dump_mapping(mm, q, f), -ENOENT);
    assert_int_equal(mm_dump_mapping(NULL, a, f), -EINVAL);
    assert_int_equal(mm_dump_mapping(mm, a, NULL), -EINVAL);
    fclose(f);
    mmput(c);
    mmput(mm);
    close(fd);
}

/*
 * Two threads, each with its own mm mapping one file MAP_SHARED, fault the
 * same pages in the same order at the same time.  filemap_nopage drops
 * pagecache_lock to allocate a frame (allocation may reclaim), so the
 * other thread may add the page meanwhile: after the lock is taken again
 * the page is looked up once more and the spare frame freed, as 2.4's
 * filemap_nopage does after page_cache_alloc.  Each page is then read from
 * the file once, both mms map one frame, and the cache grew by one page a
 * page.  The threads go page by page in step (neither faults page i before
 * the other reached it), so they often meet in filemap_nopage; many
 * rounds.
 */
#define RACE_PAGES 256
#define RACE_ROUNDS 32

struct racer {
    struct mm_struct *mm;
    unsigned long a;
    _Atomic unsigned long *at, *other_at; /* the page each has reached */
    unsigned long faulted, wrong;
};

static void *race_reader(void *arg)
{
    struct racer *r = arg;
    for (unsigned long i = 0; i < RACE_PAGES; i++) {
        atomic_store(r->at, i + 1);
        while (atomic_load(r->other_at) < i + 1)
            sched_yield();
        /* no ktest_check: a thread that ended would stop the other */
        if (U64(r->mm, r->a + i * PAGE_SIZE + 8) != i * 1000 + 1)
            r->wrong++;
        r->faulted++;
    }
    return NULL;
}

static void test_two_threads_fault_one_frame_a_page(void **state)
{
    (void)state;
    unsigned long both_read = 0; /* rounds in which both read the file */
    for (int round = 0; round < RACE_ROUNDS; round++) {
        int fd = patterned_file(RACE_PAGES), fd2 = reopen(fd);
        struct racer r[2] = {{.mm = mm_alloc()}, {.mm = mm_alloc()}};
        int fds[2] = {fd, fd2};
        _Atomic unsigned long at[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            r[k].a = do_mmap(r[k].mm, fds[k], 0, RACE_PAGES * PAGE_SIZE, RW,
                             MAP_SHARED, 0);
            assert_false(IS_ERR_VALUE(r[k].a));
            r[k].at = &at[k];
            r[k].other_at = &at[1 - k];
        }
        unsigned long cached = vm_page_cache_pages();
        pthread_t t[2];
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&t[k], NULL, race_reader, &r[k]),
                             0);
        for (int k = 0; k < 2; k++)
            pthread_join(t[k], NULL);
        assert_int_equal(r[0].wrong + r[1].wrong, 0);
        assert_int_equal(r[0].faulted, RACE_PAGES);
        assert_int_equal(r[1].faulted, RACE_PAGES);
        unsigned long maj0 = stat_of(r[0].mm).maj_flt;
        unsigned long maj1 = stat_of(r[1].mm).maj_flt;
        both_read += maj0 && maj1;
        assert_int_equal(maj0 + maj1, RACE_PAGES); /* each page read once */
        assert_int_equal(vm_page_cache_pages() - cached, RACE_PAGES);
        for (unsigned long i = 0; i < RACE_PAGES; i++)
            if (pfn_of(r[0].mm, r[0].a + i * PAGE_SIZE) !=
                pfn_of(r[1].mm, r[1].a + i * PAGE_SIZE))
                fail_msg("round %d: page %lu has two frames", round, i);
        U64(r[0].mm, r[0].a + 8) = 5; /* and one is seen by the other */
        assert_int_equal(U64(r[1].mm, r[1].a + 8), 5);
        mmput(r[0].mm);
        mmput(r[1].mm);
        close(fd);
        close(fd2);
    }
    print_message("%lu of %d rounds with both threads reading the file\n",
                  both_read, RACE_ROUNDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_mms_share_file_frames),
        cmocka_unit_test(test_private_mapping_diverges_after_first_store),
        cmocka_unit_test(test_msync_writes_back),
        cmocka_unit_test(test_msync_errors),
        cmocka_unit_test(test_munmap_and_mmput_write_back),
        cmocka_unit_test(test_shared_page_mapped_clean_until_stored),
        cmocka_unit_test(test_share_lists_follow_fork_split_unmap),
        cmocka_unit_test(test_shared_anonymous_lists),
        cmocka_unit_test(test_cached_counts_page_cache),
        cmocka_unit_test(test_dump_mapping),
        cmocka_unit_test(test_two_threads_fault_one_frame_a_page),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
