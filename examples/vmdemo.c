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
 */
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

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "swap") == 0)
        return swap_demo();
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
