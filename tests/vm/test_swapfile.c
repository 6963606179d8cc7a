/*
 * tests/vm/test_swapfile.c — swap areas: mkswap's header, sys_swapon
 * refusing a foreign, corrupted, truncated or already active file (and
 * changing nothing), MAX_SWAPFILES, priorities deciding where pages go,
 * sys_swapoff bringing every page back when user memory has room and
 * failing with -ENOMEM, changing nothing, when it has not; and the
 * /proc/meminfo view.
 */
#include "swaptest.h"

#define RAM 128UL

static void write_file(const char *p, const void *buf, size_t len, off_t at)
{
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, at), (ssize_t)len);
    close(fd);
}

static void test_mkswap_writes_linux_header(void **state)
{
    (void)state;
    const char *p = swap_path("hdr");
    assert_int_equal(mkswap(p, 100), 0);
    char page[PAGE_SIZE];
    int fd = open(p, O_RDONLY);
    assert_int_equal(pread(fd, page, PAGE_SIZE, 0), PAGE_SIZE);
    struct stat st;
    fstat(fd, &st);
    close(fd);
    assert_int_equal(st.st_size, 100 * PAGE_SIZE);
    assert_memory_equal(page + PAGE_SIZE - 10, "SWAPSPACE2", 10);
    uint32_t v[2];
    memcpy(v, page + 1024, sizeof v);
    assert_int_equal(v[0], 1);  /* version */
    assert_int_equal(v[1], 99); /* last_page */
    assert_int_equal(mkswap(p, 9), -EINVAL);
    assert_int_equal(mkswap(NULL, 100), -EINVAL);
    assert_int_equal(mkswap(swap_path("no/such/dir"), 100), -ENOENT);
}

static void test_bad_swap_files_refused(void **state)
{
    (void)state;
    unsigned long total = meminfo("SwapTotal:");
    char junk[PAGE_SIZE * 4];
    memset(junk, 'x', sizeof junk);
    const char *foreign = swap_path("foreign");
    for (int i = 0; i < 8; i++)
        write_file(foreign, junk, sizeof junk, (off_t)i * (off_t)sizeof junk);
    assert_int_equal(sys_swapon(foreign, 0), -EINVAL);
    assert_int_equal(sys_swapon(swap_path("missing"), 0), -ENOENT);
    assert_int_equal(sys_swapon(swap_dir, 0), -EISDIR);

    const char *bad_magic = swap_path("magic");
    assert_int_equal(mkswap(bad_magic, 64), 0);
    write_file(bad_magic, "SWAP-SPACE", 10, PAGE_SIZE - 10); /* v0 magic */
    assert_int_equal(sys_swapon(bad_magic, 0), -EINVAL);

    const char *bad_version = swap_path("version");
    assert_int_equal(mkswap(bad_version, 64), 0);
    uint32_t two = 2;
    write_file(bad_version, &two, 4, 1024);
    assert_int_equal(sys_swapon(bad_version, 0), -EINVAL);

    const char *truncated = swap_path("short");
    assert_int_equal(mkswap(truncated, 64), 0);
    assert_int_equal(truncate(truncated, 32 * PAGE_SIZE), 0);
    assert_int_equal(sys_swapon(truncated, 0), -EINVAL);

    assert_int_equal(sys_swapon(NULL, 0), -EINVAL);
    const char *ok = swap_path("ok");
    assert_int_equal(mkswap(ok, 64), 0);
    assert_int_equal(sys_swapon(ok, 0x10000), -EINVAL); /* bad flags */
    assert_int_equal(meminfo("SwapTotal:"), total);     /* nothing on */

    assert_int_equal(sys_swapon(ok, 0), 0);
    assert_int_equal(meminfo("SwapTotal:"), total + 63 * 4);
    assert_int_equal(sys_swapon(ok, 0), -EBUSY);
    assert_int_equal(mkswap(ok, 64), -EBUSY);
    assert_int_equal(meminfo("SwapTotal:"), total + 63 * 4);
    assert_int_equal(sys_swapoff(ok), 0);
    assert_int_equal(sys_swapoff(ok), -EINVAL);
    assert_int_equal(sys_swapoff(foreign), -EINVAL);
    assert_int_equal(meminfo("SwapTotal:"), total);
}

static void test_max_swapfiles(void **state)
{
    (void)state;
    char name[16];
    for (int i = 0; i < MAX_SWAPFILES; i++) {
        snprintf(name, sizeof name, "max%d", i);
        swap_on(name, 16, 0);
    }
    const char *extra = swap_path("extra");
    assert_int_equal(mkswap(extra, 16), 0);
    assert_int_equal(sys_swapon(extra, 0), -EPERM);
    for (int i = 0; i < MAX_SWAPFILES; i++) {
        snprintf(name, sizeof name, "max%d", i);
        assert_int_equal(sys_swapoff(swap_path(name)), 0);
    }
    assert_int_equal(sys_swapon(extra, 0), 0);
    assert_int_equal(sys_swapoff(extra), 0);
}

static void test_priority_decides_area(void **state)
{
    (void)state;
    const char *low = swap_on("low", 256, SWAP_FLAG_PREFER | 5);
    const char *high = swap_on("high", 256, SWAP_FLAG_PREFER | 10);
    struct mm_struct *mm = mm_alloc();
    unsigned long n = 32;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, 1);
    assert_int_equal(try_to_free_pages(n), n);
    /* every page went to the high-priority area: swapping the low one
     * off reads nothing */
    assert_int_equal(sys_swapoff(low), 0);
    assert_int_equal(stat_of(mm).rss, 0);
    assert_int_equal(sys_swapoff(high), 0);
    assert_int_equal(stat_of(mm).rss, n);
    for (unsigned long i = 0; i < n; i++)
        assert_true(page_ok(mm, a, i, 1));
    mmput(mm);
}

/* A working set of 2 * RAM pages with user memory of RAM pages: about
 * RAM pages live in swap. */
static unsigned long swapped_set(struct mm_struct *mm, unsigned long seed)
{
    unsigned long n = 2 * RAM;
    unsigned long a =
        anon(mm, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (unsigned long i = 0; i < n; i++)
        fill_page(mm, a, i, seed);
    return a;
}

static void test_swapoff_with_room(void **state)
{
    (void)state;
    const char *sw = swap_on("room", 4 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = swapped_set(mm, 2);
    struct mm_struct *c = mm_fork(mm); /* shared slots come back once */
    assert_true(count_swapped(mm, a, 2 * RAM) >= RAM - 16);
    vm_set_ram_pages(4 * RAM);
    unsigned long in0 = vm_pswpin;
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
    assert_int_equal(count_swapped(mm, a, 2 * RAM), 0);
    assert_int_equal(count_swapped(c, a, 2 * RAM), 0);
    assert_true(vm_pswpin - in0 <= 2 * RAM);
    assert_int_equal(stat_of(mm).rss, 2 * RAM);
    assert_int_equal(meminfo("SwapTotal:"), 0);
    assert_int_equal(meminfo("SwapCached:"), 0);
    for (unsigned long i = 0; i < 2 * RAM; i++) {
        assert_true(page_ok(mm, a, i, 2));
        assert_true(page_ok(c, a, i, 2));
    }
    fill_page(c, a, 0, 3);
    assert_true(page_ok(mm, a, 0, 2));
    vm_check_mm(mm);
    vm_check_mm(c);
    mmput(c);
    mmput(mm);
}

static void test_swapoff_without_room(void **state)
{
    (void)state;
    const char *sw = swap_on("noroom", 4 * RAM, 0);
    vm_set_ram_pages(RAM);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = swapped_set(mm, 4);
    unsigned long swapped = count_swapped(mm, a, 2 * RAM);
    unsigned long total = meminfo("SwapTotal:"), free = meminfo("SwapFree:");
    assert_true(swapped >= RAM - 16);
    assert_int_equal(sys_swapoff(sw), -ENOMEM);
    /* nothing changed: still on, the same pages out */
    assert_int_equal(count_swapped(mm, a, 2 * RAM), swapped);
    assert_int_equal(meminfo("SwapTotal:"), total);
    assert_int_equal(meminfo("SwapFree:"), free);
    assert_int_equal(sys_swapon(sw, 0), -EBUSY);
    for (unsigned long i = 0; i < 2 * RAM; i++)
        assert_true(page_ok(mm, a, i, 4));
    /* more user memory makes room */
    vm_set_ram_pages(3 * RAM);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
    assert_int_equal(count_swapped(mm, a, 2 * RAM), 0);
    for (unsigned long i = 0; i < 2 * RAM; i++)
        assert_true(page_ok(mm, a, i, 4));
    vm_check_mm(mm);
    mmput(mm);
}

static void test_meminfo_fields(void **state)
{
    (void)state;
    vm_set_ram_pages(RAM);
    const char *sw = swap_on("info", 65, 0);
    char buf[2048];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_true(vm_meminfo(f) > 0);
    fclose(f);
    const char *fields[] = {"MemTotal:",   "MemFree:",   "Cached:",
                            "SwapCached:", "SwapTotal:", "SwapFree:"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        assert_non_null(strstr(buf, fields[i]));
    assert_int_equal(meminfo("HighTotal:"), RAM * 4);
    assert_int_equal(meminfo("SwapTotal:"), 64 * 4);
    assert_int_equal(meminfo("SwapFree:"), 64 * 4);
    assert_true(meminfo("MemTotal:") >= meminfo("MemFree:"));
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        anon(mm, 0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    unsigned long hf = meminfo("HighFree:");
    for (unsigned long i = 0; i < 16; i++)
        fill_page(mm, a, i, 5);
    assert_int_equal(meminfo("HighFree:"), hf - 16 * 4);
    try_to_free_pages(16);
    assert_int_equal(meminfo("SwapFree:"), (64 - 16) * 4);
    mmput(mm);
    assert_int_equal(meminfo("SwapFree:"), 64 * 4);
    vm_check_swap();
    assert_int_equal(sys_swapoff(sw), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        swap_unit_test(test_mkswap_writes_linux_header),
        swap_unit_test(test_bad_swap_files_refused),
        swap_unit_test(test_max_swapfiles),
        swap_unit_test(test_priority_decides_area),
        swap_unit_test(test_swapoff_with_room),
        swap_unit_test(test_swapoff_without_room),
        swap_unit_test(test_meminfo_fields),
    };
    return cmocka_run_group_tests(tests, swap_dir_setup, swap_dir_teardown);
}
