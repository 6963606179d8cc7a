/*
 * examples/vmdemo.c — a tour of the emulated address spaces: create an
 * mm, map anonymous private and shared memory and grow the brk, write
 * through the host window (real faults resolved by kslab), fork it, write
 * on both sides, and print both /proc/PID/maps views, what each side sees
 * and the fault counters.
 *
 * "vmdemo swap" shows swap instead: 1 MiB of user memory
 * (vm_set_ram_pages(256)), a swap file in a temporary directory, a
 * working set four times user memory written and read back, a fork that
 * shares the swapped pages, and after each step the fault and swap
 * counters and /proc/meminfo; then swapoff and the file removed.
 *
 * "vmdemo pagecache" shows the page cache: a file of four pages mapped
 * MAP_SHARED by two mms and MAP_PRIVATE by one of them; a store of one
 * mm seen at once by the other (one frame), the private mapping copying
 * the page at its first store, msync writing the stores back to the file,
 * and the maps of both mms, meminfo's Cached and the share lists of the
 * file's address_space (i_mmap_shared, i_mmap) after a fork and a split.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kslab/vm.h>

static void show(const char *name, struct mm_struct *mm, unsigned long priv,
                 unsigned long shared, unsigned long heap)
{
    struct mm_stat st;
    mm_get_stat(mm, &st);
    printf("--- %s: maps\n", name);
    mm_dump_maps(mm, stdout);
    printf("--- %s: private[0]=\"%s\" shared[0]=\"%s\" heap[0]=\"%s\"\n", name,
           (char *)mm_host(mm, priv), (char *)mm_host(mm, shared),
           (char *)mm_host(mm, heap));
    printf("--- %s: rss=%lu min_flt=%lu maj_flt=%lu cow_flt=%lu "
           "zero_flt=%lu\n",
           name, st.rss, st.min_flt, st.maj_flt, st.cow_flt, st.zero_flt);
}

static void swap_stat(const char *step, struct mm_struct *mm)
{
    struct mm_stat st;
    mm_get_stat(mm, &st);
    printf("--- %s: rss=%lu maj_flt=%lu min_flt=%lu swap_in=%lu "
           "swap_out=%lu\n",
           step, st.rss, st.maj_flt, st.min_flt, st.swap_in, st.swap_out);
}

static int swap_demo(void)
{
    const unsigned long ram = 256, n = 4 * ram;
    char dir[] = "/tmp/vmdemo-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/swapfile", dir);
    int r = mkswap(path, 2 * n);
    if (r == 0)
        r = sys_swapon(path, 0);
    if (r) {
        fprintf(stderr, "mkswap/swapon: %s\n", strerror(-r));
        rmdir(dir);
        return 1;
    }
    vm_set_ram_pages(ram);
    printf("user memory %lu pages, swap file %s of %lu pages\n", ram, path,
           2 * n);

    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, -1, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    for (unsigned long i = 0; i < n; i++)
        *(unsigned long *)mm_host(mm, a + i * PAGE_SIZE) = i;
    swap_stat("wrote 4x user memory", mm);
    unsigned long bad = 0;
    for (unsigned long i = 0; i < n; i++)
        bad += *(unsigned long *)mm_host(mm, a + i * PAGE_SIZE) != i;
    swap_stat("read it back", mm);
    printf("--- pages wrong: %lu\n", bad);

    struct mm_struct *child = mm_fork(mm);
    unsigned long freed = try_to_free_pages(2 * n);
    printf("--- fork, then try_to_free_pages: %lu frames freed\n", freed);
    for (unsigned long i = 0; i < 64; i++)
        bad += *(unsigned long *)mm_host(mm, a + i * PAGE_SIZE) != i;
    for (unsigned long i = 0; i < 64; i++)
        bad += *(unsigned long *)mm_host(child, a + i * PAGE_SIZE) != i;
    swap_stat("parent read 64 pages", mm);
    swap_stat("child read the same 64 (swap cache)", child);
    printf("--- /proc/meminfo\n");
    vm_meminfo(stdout);
    mmput(child);
    mmput(mm);
    r = sys_swapoff(path);
    printf("--- swapoff: %d; pages wrong: %lu\n", r, bad);
    vm_meminfo(stdout);
    unlink(path);
    rmdir(dir);
    vm_set_ram_pages(0);
    return bad || r ? 1 : 0;
}

static void cached(const char *step)
{
    char buf[1024] = "", *p;
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    if (!f)
        return;
    vm_meminfo(f);
    fclose(f);
    p = strstr(buf, "Cached:");
    printf("--- %s: %.*s\n", step, p ? (int)strcspn(p, "\n") : 0, p ? p : "");
}

static int pagecache_demo(void)
{
    char path[] = "/tmp/vmdemo-file-XXXXXX", word[32];
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    for (int i = 0; i < 4; i++) {
        char page[PAGE_SIZE];
        memset(page, 0, sizeof page);
        snprintf(page, sizeof page, "file page %d", i);
        if (write(fd, page, sizeof page) != (ssize_t)sizeof page)
            return 1;
    }
    const unsigned long len = 4 * PAGE_SIZE, rw = PROT_READ | PROT_WRITE;
    struct mm_struct *a = mm_alloc(), *b = mm_alloc();
    unsigned long x = do_mmap(a, fd, 0, len, rw, MAP_SHARED, 0);
    unsigned long y = do_mmap(b, fd, 0, len, rw, MAP_SHARED, 0);
    unsigned long z = do_mmap(b, fd, 0, len, rw, MAP_PRIVATE, 0);
    cached("two mms map the file, nothing touched");
    printf("--- b reads shared \"%s\", private \"%s\"\n", (char *)mm_host(b, y),
           (char *)mm_host(b, z));
    strcpy(mm_host(a, x), "stored by mm a");
    printf("--- a stored: b's shared mapping reads \"%s\", its private "
           "one \"%s\" (the same cached frame until it stores)\n",
           (char *)mm_host(b, y), (char *)mm_host(b, z));
    strcpy(mm_host(b, z + 32), "b's own copy");
    strcpy(mm_host(a, x), "stored by mm a again");
    printf("--- after b's private store: shared \"%s\", private \"%s\" / "
           "\"%s\"\n",
           (char *)mm_host(b, y), (char *)mm_host(b, z),
           (char *)mm_host(b, z + 32));
    if (pread(fd, word, sizeof word, 0) < 0)
        word[0] = 0;
    word[sizeof word - 1] = 0;
    printf("--- the file before msync: \"%s\"\n", word);
    int r = sys_msync(a, x, len, MS_SYNC);
    if (pread(fd, word, sizeof word, 0) < 0)
        word[0] = 0;
    printf("--- sys_msync: %d; the file now: \"%s\"\n", r, word);
    for (unsigned long i = 1; i < 4; i++)
        (void)*(volatile char *)mm_host(b, y + i * PAGE_SIZE);
    cached("b read every page");
    printf("--- mm a: maps\n");
    mm_dump_maps(a, stdout);
    printf("--- mm b: maps\n");
    mm_dump_maps(b, stdout);
    struct mm_struct *c = mm_fork(a);
    sys_mprotect(b, y + PAGE_SIZE, PAGE_SIZE, PROT_READ);
    printf("--- a forked (mm c), b's shared vma split by mprotect: the "
           "share lists\n");
    int n = mm_dump_mapping(a, x, stdout);
    mmput(c);
    mmput(b);
    mmput(a);
    cached("every mm gone (the pages stay cached)");
    unsigned long freed = try_to_free_pages(16);
    printf("--- try_to_free_pages: %lu frames\n", freed);
    cached("after reclaim");
    unlink(path);
    close(fd);
    return r || n != 6 ? 1 : 0;
}

static const char usage[] =
    "usage: vmdemo [MODE]\n"
    "  (none)     map private and shared memory and a brk heap in one mm,\n"
    "             fork it (COW), write on both sides, print maps and counters\n"
    "  swap       1 MiB of user memory, 4 MiB written through swap, a fork,\n"
    "             meminfo after each step, then swapoff\n"
    "  pagecache  one file mapped by two mms: shared stores, a private copy,\n"
    "             msync, meminfo's Cached and the file's share lists\n"
    "  --help     this text\n";

int main(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "vmdemo: one mode at most\n%s", usage);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "swap") == 0)
        return swap_demo();
    if (argc > 1 && strcmp(argv[1], "pagecache") == 0)
        return pagecache_demo();
    if (argc > 1) {
        fprintf(stderr, "vmdemo: unknown mode `%s'\n%s", argv[1], usage);
        return 2;
    }
    struct mm_struct *parent = mm_alloc();
    if (!parent) {
        fprintf(stderr, "mm_alloc failed\n");
        return 1;
    }
    unsigned long priv =
        do_mmap(parent, -1, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    unsigned long shared =
        do_mmap(parent, -1, 0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, 0);
    unsigned long heap = sys_brk(parent, 0);
    sys_brk(parent, heap + 3 * PAGE_SIZE);

    strcpy(mm_host(parent, priv), "parent's private page");
    strcpy(mm_host(parent, shared), "written by parent");
    strcpy(mm_host(parent, heap), "parent heap");
    /* a read of an untouched page maps the ZERO_PAGE */
    volatile char c = *(char *)mm_host(parent, priv + 2 * PAGE_SIZE);
    (void)c;

    struct mm_struct *child = mm_fork(parent);
    strcpy(mm_host(child, priv), "child's copy (COW)");
    strcpy(mm_host(child, shared), "written by child");
    strcpy(mm_host(parent, heap), "parent heap, after fork");

    show("parent", parent, priv, shared, heap);
    show("child", child, priv, shared, heap);
    mmput(child);
    mmput(parent);
    return 0;
}
