/*
 * tests/vm/test_vma.c — the vmas of an mm: find_vma/find_vma_prev and the
 * mmap_cache, the AVL tree past AVL_MIN_MAP_COUNT, merging, do_munmap
 * splits, MAP_FIXED and hints, brk, mprotect splits and merges, errors
 * that change nothing, and the /proc/PID/maps text.
 */
#include <sys/stat.h>

#include "vmtest.h"

#define RW (PROT_READ | PROT_WRITE)

static void test_new_mm_has_brk(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long b = sys_brk(mm, 0);
    assert_int_equal(b, VM_DEFAULT_BRK);
    assert_true(b < TASK_UNMAPPED_BASE);
    assert_int_equal(sys_brk(mm, b + 10000), b + 10000);
    U8(mm, b + 9999) = 1;
    assert_int_equal(count_vmas(mm), 1);
    assert_int_equal(sys_brk(mm, b + 5 * PAGE_SIZE), b + 5 * PAGE_SIZE);
    for (int i = 0; i < 5; i++)
        U64(mm, b + i * PAGE_SIZE) = i;
    assert_int_equal(stat_of(mm).rss, 5);
    /* shrink: the pages above go */
    assert_int_equal(sys_brk(mm, b + PAGE_SIZE), b + PAGE_SIZE);
    assert_int_equal(stat_of(mm).rss, 1);
    assert_null(find_vma(mm, b + PAGE_SIZE));
    /* grow again: fresh zero pages */
    assert_int_equal(sys_brk(mm, b + 3 * PAGE_SIZE), b + 3 * PAGE_SIZE);
    assert_int_equal(U64(mm, b + 2 * PAGE_SIZE), 0);
    assert_int_equal(U64(mm, b), 0);
    /* below start_brk: refused, unchanged */
    assert_int_equal(sys_brk(mm, b - PAGE_SIZE), b + 3 * PAGE_SIZE);
    /* into another mapping: refused */
    unsigned long m =
        anon(mm, b + 8 * PAGE_SIZE, PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(m, b + 8 * PAGE_SIZE);
    assert_int_equal(sys_brk(mm, b + 10 * PAGE_SIZE), b + 3 * PAGE_SIZE);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_find_vma_and_prev(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0x40000000, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED);
    unsigned long b =
        anon(mm, 0x40010000, PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED);
    struct vm_area_struct *prev;
    assert_int_equal(find_vma(mm, 0)->vm_start, a);
    assert_int_equal(find_vma(mm, a + PAGE_SIZE)->vm_start, b);
    assert_null(find_vma(mm, b + PAGE_SIZE));
    assert_ptr_equal(mm->mmap_cache, find_vma(mm, b));
    struct vm_area_struct *v = find_vma_prev(mm, a + PAGE_SIZE, &prev);
    assert_int_equal(v->vm_start, b);
    assert_int_equal(prev->vm_start, a);
    v = find_vma_prev(mm, a, &prev);
    assert_int_equal(v->vm_start, a);
    assert_null(prev);
    mmput(mm);
}

static void test_avl_tree_many_vmas(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long base = 0x50000000;
    /* alternate protections so nothing merges */
    for (int i = 0; i < 200; i++)
        assert_int_equal(anon(mm, base + i * 2 * PAGE_SIZE, PAGE_SIZE,
                              i & 1 ? PROT_READ : RW, MAP_PRIVATE | MAP_FIXED),
                         base + i * 2 * PAGE_SIZE);
    assert_int_equal(mm->map_count, 200);
    assert_non_null(mm->mmap_avl);
    vm_check_mm(mm);
    for (int i = 199; i >= 0; i--) {
        unsigned long a = base + i * 2 * PAGE_SIZE;
        struct vm_area_struct *v = find_vma(mm, a - PAGE_SIZE);
        assert_int_equal(v->vm_start, a);
        struct vm_area_struct *prev;
        find_vma_prev(mm, a, &prev);
        if (i)
            assert_int_equal(prev->vm_start, a - 2 * PAGE_SIZE);
    }
    /* remove every third and check again */
    for (int i = 0; i < 200; i += 3)
        assert_int_equal(do_munmap(mm, base + i * 2 * PAGE_SIZE, PAGE_SIZE), 0);
    vm_check_mm(mm);
    assert_int_equal(mm->map_count, 200 - 67);
    for (int i = 0; i < 200; i++) {
        struct vm_area_struct *v = find_vma(mm, base + i * 2 * PAGE_SIZE);
        assert_int_equal(v->vm_start,
                         base + (i % 3 ? i : i + 1) * 2 * PAGE_SIZE);
    }
    mmput(mm);
}

static void test_adjacent_anon_merge(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0x60000000, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED);
    anon(mm, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED);
    anon(mm, a - 2 * PAGE_SIZE, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(count_vmas(mm), 1);
    assert_int_equal(find_vma(mm, a)->vm_start, a - 2 * PAGE_SIZE);
    assert_int_equal(find_vma(mm, a)->vm_end, a + 4 * PAGE_SIZE);
    /* incompatible: shared, or other protection */
    anon(mm, a + 4 * PAGE_SIZE, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED);
    anon(mm, a + 5 * PAGE_SIZE, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(count_vmas(mm), 3);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_munmap_splits(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, 10 * PAGE_SIZE, RW, MAP_PRIVATE);
    for (int i = 0; i < 10; i++)
        U64(mm, a + i * PAGE_SIZE) = i + 1;
    /* middle */
    assert_int_equal(do_munmap(mm, a + 4 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
    assert_int_equal(count_vmas(mm), 2);
    assert_int_equal(stat_of(mm).rss, 8);
    /* head */
    assert_int_equal(do_munmap(mm, a, PAGE_SIZE), 0);
    /* tail */
    assert_int_equal(do_munmap(mm, a + 9 * PAGE_SIZE, PAGE_SIZE), 0);
    assert_int_equal(find_vma(mm, 0)->vm_start, a + PAGE_SIZE);
    assert_int_equal(find_vma(mm, 0)->vm_end, a + 4 * PAGE_SIZE);
    assert_int_equal(find_vma(mm, a + 4 * PAGE_SIZE)->vm_start,
                     a + 6 * PAGE_SIZE);
    assert_int_equal(find_vma(mm, a + 4 * PAGE_SIZE)->vm_end,
                     a + 9 * PAGE_SIZE);
    for (int i = 1; i < 9; i++)
        if (i < 4 || i >= 6)
            assert_int_equal(U64(mm, a + i * PAGE_SIZE), i + 1);
    assert_int_equal(stat_of(mm).rss, 6);
    /* one call over a gap and two vmas: whole */
    assert_int_equal(do_munmap(mm, a, 10 * PAGE_SIZE), 0);
    assert_int_equal(count_vmas(mm), 0);
    assert_int_equal(stat_of(mm).rss, 0);
    /* errors */
    assert_int_equal(do_munmap(mm, a + 1, PAGE_SIZE), -EINVAL);
    assert_int_equal(do_munmap(mm, a, 0), -EINVAL);
    assert_int_equal(do_munmap(mm, TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE),
                     -EINVAL);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_map_fixed_replaces_and_hints(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, 4 * PAGE_SIZE, RW, MAP_PRIVATE);
    assert_int_equal(a, TASK_UNMAPPED_BASE);
    U64(mm, a + PAGE_SIZE) = 42;
    unsigned long b =
        anon(mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(b, a + PAGE_SIZE);
    assert_int_equal(U64(mm, b), 0);
    assert_int_equal(count_vmas(mm), 3);
    /* a hint that is taken moves; a free one is honoured */
    unsigned long c = anon(mm, a, PAGE_SIZE, RW, MAP_PRIVATE);
    assert_int_not_equal(c, a);
    unsigned long d = anon(mm, 0x70000000, PAGE_SIZE, RW, MAP_PRIVATE);
    assert_int_equal(d, 0x70000000);
    /* errors change nothing */
    int n = count_vmas(mm);
    assert_int_equal(
        (long)anon(mm, a + 1, PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED), -EINVAL);
    assert_int_equal((long)anon(mm, 0, 0, RW, MAP_PRIVATE), -EINVAL);
    assert_int_equal((long)anon(mm, 0, PAGE_SIZE, RW, 0), -EINVAL);
    assert_int_equal((long)anon(mm, 0, TASK_SIZE, RW, MAP_PRIVATE), -ENOMEM);
    assert_int_equal((long)do_mmap(mm, -1, 0, PAGE_SIZE, RW, MAP_PRIVATE, 0),
                     -EBADF);
    assert_int_equal((long)do_mmap(mm, -1, 0, PAGE_SIZE, 0x100,
                                   MAP_PRIVATE | MAP_ANONYMOUS, 0),
                     -EINVAL);
    assert_int_equal(count_vmas(mm), n);
    assert_int_equal(U64(mm, a), 0);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_mprotect_split_merge_errors(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    unsigned long a = anon(mm, 0, 8 * PAGE_SIZE, RW, MAP_PRIVATE);
    assert_int_equal(
        sys_mprotect(mm, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(count_vmas(mm), 3);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(count_vmas(mm), 4);
    assert_int_equal(sys_mprotect(mm, a, 8 * PAGE_SIZE, RW), 0);
    assert_int_equal(count_vmas(mm), 1);
    /* errors: nothing changes */
    assert_int_equal(sys_mprotect(mm, a + 1, PAGE_SIZE, PROT_READ), -EINVAL);
    assert_int_equal(sys_mprotect(mm, a, PAGE_SIZE, 0x100), -EINVAL);
    assert_int_equal(sys_mprotect(mm, a, 9 * PAGE_SIZE, PROT_READ), -ENOMEM);
    assert_int_equal(count_vmas(mm), 1);
    assert_true(find_vma(mm, a)->vm_flags & VM_WRITE);
    /* a read-only file mapped shared may not become writable */
    char path[] = "/tmp/kslab-vma-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, PAGE_SIZE), 0);
    int ro = open(path, O_RDONLY);
    unlink(path);
    unsigned long f = do_mmap(mm, ro, 0, PAGE_SIZE, PROT_READ, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(f));
    assert_int_equal(sys_mprotect(mm, f, PAGE_SIZE, RW), -EACCES);
    assert_int_equal((long)do_mmap(mm, ro, 0, PAGE_SIZE, RW, MAP_SHARED, 0),
                     -EACCES);
    close(ro);
    close(fd);
    vm_check_mm(mm);
    mmput(mm);
}

static void test_dump_maps(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    sys_brk(mm, VM_DEFAULT_BRK + PAGE_SIZE);
    anon(mm, 0x40000000, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED);
    anon(mm, 0x40001000, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED);
    char buf[1024];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(mm_dump_maps(mm, f), 3);
    fclose(f);
    assert_non_null(strstr(buf, "10000000-10001000 rwxp 00000000 00:00 0"));
    assert_non_null(strstr(buf, "[heap]"));
    assert_non_null(strstr(buf, "40000000-40001000 r--p 00000000 00:00 0\n"));
    assert_non_null(strstr(buf, "40001000-40002000 rw-s 00000000 00:00 0\n"));
    mmput(mm);
}

/* A file mapping's line ends with the file's path, its device and inode
 * before it, as /proc/PID/maps shows them. */
static void test_dump_maps_names_the_file(void **state)
{
    (void)state;
    struct mm_struct *mm = mm_alloc();
    char path[] = "/tmp/kslab-maps-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, PAGE_SIZE), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned long f = do_mmap(mm, fd, 0x50000000, PAGE_SIZE, PROT_READ,
                              MAP_PRIVATE | MAP_FIXED, 0);
    assert_int_equal(f, 0x50000000);
    char buf[1024], want[512];
    FILE *out = fmemopen(buf, sizeof buf, "w");
    assert_non_null(out);
    assert_int_equal(mm_dump_maps(mm, out), 1); /* one vma, one line */
    fclose(out);
    snprintf(want, sizeof want,
             "50000000-50001000 r--p 00000000 %02lx:%02lx %lu",
             ((unsigned long)st.st_dev >> 8) & 0xfff,
             (unsigned long)st.st_dev & 0xff, (unsigned long)st.st_ino);
    char *line = strstr(buf, want);
    if (!line)
        fail_msg("no line \"%s\" in:\n%s", want, buf);
    char *end = strchr(line, '\n');
    assert_non_null(end);
    *end = 0;
    size_t n = strlen(path);
    if (strlen(line) < n || strcmp(line + strlen(line) - n, path) != 0)
        fail_msg("the line does not end with %s: %s", path, line);
    unlink(path);
    close(fd);
    mmput(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_mm_has_brk),
        cmocka_unit_test(test_find_vma_and_prev),
        cmocka_unit_test(test_avl_tree_many_vmas),
        cmocka_unit_test(test_adjacent_anon_merge),
        cmocka_unit_test(test_munmap_splits),
        cmocka_unit_test(test_map_fixed_replaces_and_hints),
        cmocka_unit_test(test_mprotect_split_merge_errors),
        cmocka_unit_test(test_dump_maps),
        cmocka_unit_test(test_dump_maps_names_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
