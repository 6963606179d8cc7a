/*
 * tests/vm/test_truncate.c — sys_ftruncate/sys_truncate, the emulator's
 * truncate(2) (2.4's vmtruncate): a file cut while mms map it loses the
 * pages wholly beyond the new end in every mapping — pages that were
 * present already, private copies included, in a fork child too — so an
 * access there gets SIGBUS (BUS_ADRERR, si_addr the address), while the
 * pages before it keep their data; the page cache loses them too and the
 * last page's tail is zeroed, so the file grown again reads zeroes, not
 * the old bytes; a driver's mapping in the same mm is left alone; bad
 * input changes nothing.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include <kslab/kslab.h>

#include "bustest.h"

#define RW (PROT_READ | PROT_WRITE)
#define W(i, j) ((unsigned long)(i)*1000 + (j)) /* patterned_file's word */
#define STORED(i) (0xC0FFEEUL + (i))            /* what touch() writes */

/* Every page of [a, a + pages) of mm made present (read, or written). */
static void touch(struct mm_struct *mm, unsigned long a, unsigned long pages,
                  int write)
{
    for (unsigned long i = 0; i < pages; i++) {
        if (write)
            U64(mm, a + i * PAGE_SIZE + 8) = STORED(i);
        else
            assert_int_equal(U64(mm, a + i * PAGE_SIZE), W(i, 0));
    }
}

/* Is the pte of user address a present? */
static int present(struct mm_struct *mm, unsigned long a)
{
    pte_t *pte = vm_pte_lookup(mm, a);
    return pte && pte_present(*pte);
}

static off_t file_size(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_size;
}

/* Present pages of a shared mapping beyond the new end go: SIGBUS there,
 * the data before it intact, the last page's tail zeroed. */
static void test_truncate_zaps_present_shared_pages(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    touch(mm, a, 4, 0);
    assert_true(present(mm, a + 3 * PAGE_SIZE));
    assert_int_equal(stat_of(mm).rss, 4);

    assert_int_equal(sys_ftruncate(fd, PAGE_SIZE + 100), 0);
    assert_int_equal(file_size(fd), PAGE_SIZE + 100);
    assert_false(present(mm, a + 2 * PAGE_SIZE));
    assert_false(present(mm, a + 3 * PAGE_SIZE));
    assert_int_equal(stat_of(mm).rss, 2);
    assert_true(bus_on_access(mm, a + 2 * PAGE_SIZE + 16, 0));
    assert_true(bus_on_access(mm, a + 3 * PAGE_SIZE, 1));
    /* before the end: intact; the partial page's tail reads zero */
    assert_false(bus_on_access(mm, a + 8, 0));
    assert_int_equal(U64(mm, a + 8), W(0, 1));
    assert_int_equal(U64(mm, a + PAGE_SIZE + 96), W(1, 12));
    assert_int_equal(U64(mm, a + PAGE_SIZE + 200), 0);
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE - 8), 0);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

/* A private mapping's own copies of pages beyond the end go too (2.4
 * zaps every vma of i_mmap), its pages before the end stay its own. */
static void test_truncate_zaps_private_copies(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = patterned_file(3);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 3 * PAGE_SIZE, RW, MAP_PRIVATE, 0);
    assert_false(IS_ERR_VALUE(a));
    touch(mm, a, 3, 1); /* every page copied */
    assert_int_equal(sys_ftruncate(fd, PAGE_SIZE), 0);
    assert_true(bus_on_access(mm, a + PAGE_SIZE, 0));
    assert_true(bus_on_access(mm, a + 2 * PAGE_SIZE + 8, 1));
    assert_int_equal(U64(mm, a + 8), STORED(0)); /* the copy, not the file */
    assert_int_equal(U64(mm, a + 16), W(0, 2));
    assert_int_equal(stat_of(mm).rss, 1);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

/* A shared mapping in an mm_fork child, and in a second mm mapping the
 * file at another offset: the same, in each. */
static void test_truncate_reaches_fork_child_and_other_mm(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc(), *other = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long b =
        do_mmap(other, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 2 * PAGE_SIZE);
    assert_false(IS_ERR_VALUE(a));
    assert_false(IS_ERR_VALUE(b));
    touch(mm, a, 4, 0);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    touch(child, a, 4, 0);
    assert_int_equal(U64(other, b), W(2, 0));
    assert_int_equal(U64(other, b + PAGE_SIZE), W(3, 0));
    assert_true(present(child, a + 3 * PAGE_SIZE));

    assert_int_equal(sys_ftruncate(fd, 2 * PAGE_SIZE), 0);
    assert_true(bus_on_access(child, a + 2 * PAGE_SIZE, 0));
    assert_true(bus_on_access(child, a + 3 * PAGE_SIZE + 8, 1));
    assert_true(bus_on_access(mm, a + 3 * PAGE_SIZE, 0));
    assert_true(bus_on_access(other, b, 0));
    assert_true(bus_on_access(other, b + PAGE_SIZE, 1));
    /* before the end: one page, seen by the parent and the child */
    assert_int_equal(U64(child, a + PAGE_SIZE), W(1, 0));
    U64(mm, a + PAGE_SIZE + 8) = 77;
    assert_int_equal(U64(child, a + PAGE_SIZE + 8), 77);
    assert_int_equal(stat_of(child).rss, 2);
    assert_int_equal(stat_of(other).rss, 0);
    vm_check_mm(child);
    vm_check_mm(other);
    mmput(child);
    mmput(other);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

/* Cut and grown again: the pages beyond the cut read zero in the mapping
 * and in the file — whether they were mapped, or only cached — and the
 * bytes of the partial page past the cut as well. */
static void test_truncate_then_grow_reads_zeroes(void **state)
{
    (void)state;
    install_bus_handler();
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc(), *reader = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    touch(mm, a, 3, 0);
    U64(mm, a + 2 * PAGE_SIZE + 8) = 99; /* dirty, mapped */
    /* page 3 cached but mapped nowhere */
    unsigned long r =
        do_mmap(reader, fd, 0, PAGE_SIZE, PROT_READ, MAP_SHARED, 3 * PAGE_SIZE);
    assert_int_equal(U64(reader, r + 8), W(3, 1));
    assert_int_equal(do_munmap(reader, r, PAGE_SIZE), 0);

    assert_int_equal(sys_ftruncate(fd, PAGE_SIZE + 64), 0);
    assert_int_equal(sys_ftruncate(fd, 4 * PAGE_SIZE), 0);
    for (unsigned long i = 2; i < 4; i++) {
        assert_false(bus_on_access(mm, a + i * PAGE_SIZE + 8, 0));
        assert_int_equal(U64(mm, a + i * PAGE_SIZE + 8), 0);
    }
    assert_int_equal(U64(mm, a + PAGE_SIZE + 56), W(1, 7));
    assert_int_equal(U64(mm, a + PAGE_SIZE + 64), 0);
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE - 8), 0);
    assert_int_equal(sys_msync(mm, a, 4 * PAGE_SIZE, MS_SYNC), 0);
    unsigned long w[2];
    assert_int_equal(pread(fd, w, sizeof w, PAGE_SIZE + 64), sizeof w);
    assert_int_equal(w[0], 0);
    assert_int_equal(pread(fd, w, sizeof w, 2 * PAGE_SIZE), sizeof w);
    assert_int_equal(w[1], 0);
    assert_int_equal(pread(fd, w, sizeof w, PAGE_SIZE + 48), sizeof w);
    assert_int_equal(w[1], W(1, 7));
    vm_check_mm(mm);
    mmput(reader);
    mmput(mm);
    close(fd);
    restore_bus_handler();
}

/* ---- a driver's mapping beside the file's ---- */

static char *dev_buf;
static int dev_closes;

static void dev_close(struct vm_area_struct *vma)
{
    (void)vma;
    dev_closes++;
}

static const struct vm_operations_struct dev_vm_ops = {.close = dev_close};

static int dev_mmap(struct file *file, struct vm_area_struct *vma)
{
    (void)file;
    vma->vm_ops = &dev_vm_ops;
    return remap_page_range(vma, vma->vm_start, virt_to_phys(dev_buf),
                            PAGE_SIZE, vma->vm_page_prot);
}

static const struct file_operations dev_fops = {.mmap = dev_mmap};

/* The driver's mapping has no address_space: a file cut to nothing
 * leaves its page, its pte and its close count alone. */
static void test_truncate_leaves_driver_mapping(void **state)
{
    (void)state;
    install_bus_handler();
    dev_buf = (char *)__get_free_page(GFP_KERNEL);
    assert_non_null(dev_buf);
    memset(dev_buf, 0x5a, PAGE_SIZE);
    mem_map_reserve(virt_to_page(dev_buf));
    struct file dev = {.f_op = &dev_fops};
    int fd = patterned_file(2);
    struct mm_struct *mm = mm_alloc();
    unsigned long d = do_mmap_pgoff(mm, &dev, 0, PAGE_SIZE, RW, MAP_SHARED, 0);
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(d));
    assert_false(IS_ERR_VALUE(a));
    touch(mm, a, 2, 0);
    assert_int_equal(U8(mm, d + 10), 0x5a);

    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    assert_int_equal(sys_truncate(path, 0), 0);
    assert_true(bus_on_access(mm, a, 0));
    assert_true(present(mm, d));
    assert_int_equal(U8(mm, d + 10), 0x5a);
    dev_buf[10] = 0x11;
    assert_int_equal(U8(mm, d + 10), 0x11);
    assert_int_equal(dev_closes, 0);
    mmput(mm);
    assert_int_equal(dev_closes, 1);
    mem_map_unreserve(virt_to_page(dev_buf));
    free_page((unsigned long)dev_buf);
    close(fd);
    restore_bus_handler();
}

/* Bad input: an error, and the file and its mappings as they were. */
static void test_truncate_bad_input(void **state)
{
    (void)state;
    int fd = patterned_file(2);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
    touch(mm, a, 2, 0);
    assert_int_equal(sys_ftruncate(-1, 0), -EBADF);
    assert_int_equal(sys_ftruncate(fd, -1), -EINVAL);
    assert_int_equal(sys_truncate(NULL, 0), -EFAULT);
    assert_int_equal(sys_truncate("/nonexistent/kslab", 0), -ENOENT);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY);
    assert_true(ro >= 0);
    int r = sys_ftruncate(ro, 0);
    assert_true(r == -EINVAL || r == -EBADF);
    close(ro);
    assert_int_equal(file_size(fd), 2 * PAGE_SIZE);
    assert_true(present(mm, a + PAGE_SIZE));
    assert_int_equal(U64(mm, a + PAGE_SIZE), W(1, 0));
    mmput(mm);
    close(fd);
}

/* ---- truncation beside forks and faults ---- */

#define STRESS_ROUNDS 200

struct stress {
    struct mm_struct *mm;
    unsigned long a;
    int fd;
    _Atomic int done;
    _Atomic unsigned long forks, reads;
};

/* Forks the mm over and over and reads page 0 in each child (always
 * inside the file), until the truncating thread is done. */
static void *stress_forker(void *arg)
{
    struct stress *s = arg;
    while (!atomic_load(&s->done)) {
        struct mm_struct *child = mm_fork(s->mm);
        if (!child)
            continue;
        if (U64(child, s->a + 8) == W(0, 1))
            s->reads++;
        mmput(child);
        s->forks++;
    }
    return NULL;
}

/* sys_ftruncate cutting and growing a file while another thread forks
 * the mm that maps it and this one faults its first page: no deadlock,
 * page 0 always intact, and once the file is cut for good no pte of the
 * mm maps a page beyond the end and the cache holds none. */
static void test_truncate_races_fork_and_faults(void **state)
{
    (void)state;
    struct stress s = {.fd = patterned_file(4), .mm = mm_alloc()};
    s.a = do_mmap(s.mm, s.fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(s.a));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stress_forker, &s), 0);
    unsigned long page[PAGE_SIZE / sizeof(unsigned long)];
    for (size_t j = 0; j < PAGE_SIZE / sizeof(unsigned long); j++)
        page[j] = 3000 + j;
    for (unsigned long i = 0; i < STRESS_ROUNDS; i++) {
        while (atomic_load(&s.forks) < i) /* the two threads interleave */
            sched_yield();
        assert_int_equal(U64(s.mm, s.a + 8), W(0, 1));
        assert_int_equal(sys_ftruncate(s.fd, PAGE_SIZE), 0);
        assert_int_equal(sys_ftruncate(s.fd, 4 * PAGE_SIZE), 0);
        /* page 3 written back into the file, then mapped again */
        assert_int_equal(pwrite(s.fd, page, PAGE_SIZE, 3 * PAGE_SIZE),
                         PAGE_SIZE);
        assert_int_equal(U64(s.mm, s.a + 3 * PAGE_SIZE + 8), 3001);
    }
    atomic_store(&s.done, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(sys_ftruncate(s.fd, PAGE_SIZE), 0);
    for (unsigned long i = 1; i < 4; i++)
        assert_false(present(s.mm, s.a + i * PAGE_SIZE));
    assert_int_equal(U64(s.mm, s.a + 8), W(0, 1));
    assert_int_equal(s.reads, s.forks);
    assert_true(s.forks >= STRESS_ROUNDS - 1);
    vm_check_mm(s.mm);
    mmput(s.mm);
    close(s.fd);
    assert_int_equal(kslab_verify(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncate_zaps_present_shared_pages),
        cmocka_unit_test(test_truncate_zaps_private_copies),
        cmocka_unit_test(test_truncate_reaches_fork_child_and_other_mm),
        cmocka_unit_test(test_truncate_then_grow_reads_zeroes),
        cmocka_unit_test(test_truncate_leaves_driver_mapping),
        cmocka_unit_test(test_truncate_bad_input),
        cmocka_unit_test(test_truncate_races_fork_and_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
