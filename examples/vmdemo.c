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
 *
 * "vmdemo driver" shows the driver's view: a "character device" whose
 * mmap method maps a reserved __get_free_pages buffer with
 * remap_page_range (offset 0) or a vmalloc ring through its nopage
 * (offset RING_OFF), both mapped into two mms; every open, close and
 * nopage call is printed, with each mm's maps and the ptes of its
 * mappings walked from pgd_offset, and what the kernel and the mms read
 * of each other's stores.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kslab/slab.h>
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

/* ---- vmdemo driver ---- */

#define DEV_PAGES 2UL
#define RING_OFF (DEV_PAGES * PAGE_SIZE)

static char *dev_buf, *dev_ring;

static void dev_open(struct vm_area_struct *vma)
{
    printf("  [dev] open  %08lx-%08lx pgoff %lu\n", vma->vm_start, vma->vm_end,
           vma->vm_pgoff);
}

static void dev_close(struct vm_area_struct *vma)
{
    printf("  [dev] close %08lx-%08lx pgoff %lu\n", vma->vm_start, vma->vm_end,
           vma->vm_pgoff);
}

static struct page *dev_nopage(struct vm_area_struct *vma,
                               unsigned long address, int write_access)
{
    unsigned long off =
        address - vma->vm_start + (vma->vm_pgoff << PAGE_SHIFT) - RING_OFF;
    struct page *page = NOPAGE_SIGBUS;
    if (off < DEV_PAGES * PAGE_SIZE) {
        unsigned long k = (unsigned long)dev_ring + off;
        pgd_t *pgd = pgd_offset_k(k);
        if (!pgd_none(*pgd)) {
            pmd_t *pmd = pmd_offset(pgd, k);
            if (!pmd_none(*pmd)) {
                pte_t *pte = pte_offset(pmd, k);
                if (pte_present(*pte))
                    page = pte_page(*pte);
            }
        }
    }
    if (page != NOPAGE_SIGBUS)
        get_page(page);
    printf("  [dev] nopage %08lx (%s): %s\n", address,
           write_access ? "write" : "read",
           page ? "the vmalloc page" : "NOPAGE_SIGBUS");
    return page;
}

static const struct vm_operations_struct dev_vm_ops = {dev_open, dev_close,
                                                       dev_nopage};

static int dev_mmap(struct file *file, struct vm_area_struct *vma)
{
    unsigned long size = vma->vm_end - vma->vm_start;
    (void)file;
    printf("  [dev] mmap  %08lx-%08lx pgoff %lu\n", vma->vm_start, vma->vm_end,
           vma->vm_pgoff);
    vma->vm_ops = &dev_vm_ops;
    if (vma->vm_pgoff << PAGE_SHIFT == RING_OFF)
        return 0; /* any length: nopage says NOPAGE_SIGBUS past the ring */
    if (vma->vm_pgoff || size > DEV_PAGES * PAGE_SIZE)
        return -ENXIO;
    return remap_page_range(vma, vma->vm_start, virt_to_phys(dev_buf), size,
                            vma->vm_page_prot);
}

static const struct file_operations dev_fops = {dev_mmap};

/* The ptes of [a, a + n pages) of mm, from the public walk. */
static void show_ptes(struct mm_struct *mm, unsigned long a, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++, a += PAGE_SIZE) {
        pgd_t *pgd = pgd_offset(mm, a);
        pte_t *pte = NULL;
        if (!pgd_none(*pgd) && !pmd_none(*pmd_offset(pgd, a)))
            pte = pte_offset(pmd_offset(pgd, a), a);
        if (pte && pte_present(*pte))
            printf("    %08lx: pte %08lx (frame %lu)\n", a, pte_val(*pte),
                   pte_val(*pte) >> PAGE_SHIFT);
        else
            printf("    %08lx: pte none\n", a);
    }
}

static int driver_demo(void)
{
    dev_buf = (char *)__get_free_pages(GFP_KERNEL, 1);
    dev_ring = vmalloc(DEV_PAGES * PAGE_SIZE);
    if (!dev_buf || !dev_ring)
        return 1;
    for (unsigned long i = 0; i < DEV_PAGES; i++)
        mem_map_reserve(virt_to_page(dev_buf + i * PAGE_SIZE));
    strcpy(dev_buf, "the kernel's buffer");
    strcpy(dev_ring, "the kernel's ring");
    printf("--- the device: a %lu-page __get_free_pages buffer (phys %#lx, "
           "reserved) and a vmalloc ring\n",
           DEV_PAGES, virt_to_phys(dev_buf));
    struct file dev = {&dev_fops, NULL};
    struct mm_struct *mm[2] = {mm_alloc(), mm_alloc()};
    unsigned long b[2], r[2];
    int bad = 0;
    for (int i = 0; i < 2; i++) {
        printf("--- mm %d maps the buffer and the ring\n", i);
        b[i] = do_mmap_pgoff(mm[i], &dev, 0, DEV_PAGES * PAGE_SIZE,
                             PROT_READ | PROT_WRITE, MAP_SHARED, 0);
        r[i] = do_mmap_pgoff(mm[i], &dev, 0, (DEV_PAGES + 1) * PAGE_SIZE,
                             PROT_READ | PROT_WRITE, MAP_SHARED,
                             RING_OFF >> PAGE_SHIFT);
        if (IS_ERR_VALUE(b[i]) || IS_ERR_VALUE(r[i]))
            return 1;
    }
    char s1[64], s2[64];
    printf("--- mm 0 reads the buffer and the ring\n");
    snprintf(s1, sizeof s1, "%s", (char *)mm_host(mm[0], b[0]));
    snprintf(s2, sizeof s2, "%s", (char *)mm_host(mm[0], r[0]));
    printf("--- mm 0 read \"%s\" and \"%s\"\n", s1, s2);
    printf("--- mm 1 writes the buffer and the ring\n");
    snprintf(mm_host(mm[1], b[1]), 64, "mm 1 wrote the buffer");
    snprintf(mm_host(mm[1], r[1] + PAGE_SIZE), 64, "mm 1 wrote the ring");
    printf("--- the kernel reads \"%s\" and \"%s\"\n", dev_buf,
           dev_ring + PAGE_SIZE);
    bad += strcmp(dev_buf, "mm 1 wrote the buffer") != 0;
    printf("--- mm 0 reads the ring's second page\n");
    bad += strcmp((char *)mm_host(mm[0], r[0] + PAGE_SIZE),
                  "mm 1 wrote the ring") != 0;
    bad += strcmp(dev_ring + PAGE_SIZE, "mm 1 wrote the ring") != 0;
    for (int i = 0; i < 2; i++) {
        printf("--- mm %d: maps\n", i);
        mm_dump_maps(mm[i], stdout);
        printf("--- mm %d: ptes of the buffer (mapped at once) and the ring "
               "(by faults; its last page is past the ring)\n",
               i);
        show_ptes(mm[i], b[i], DEV_PAGES);
        show_ptes(mm[i], r[i], DEV_PAGES + 1);
    }
    printf("--- mm 0 forked, then a hole punched in its ring mapping\n");
    struct mm_struct *child = mm_fork(mm[0]);
    do_munmap(mm[0], r[0], PAGE_SIZE);
    printf("--- every mm goes\n");
    mmput(child);
    mmput(mm[1]);
    mmput(mm[0]);
    for (unsigned long i = 0; i < DEV_PAGES; i++)
        mem_map_unreserve(virt_to_page(dev_buf + i * PAGE_SIZE));
    free_pages((unsigned long)dev_buf, 1);
    vfree(dev_ring);
    return bad ? 1 : 0;
}

static const char usage[] =
    "usage: vmdemo [MODE]\n"
    "  (none)     map private and shared memory and a brk heap in one mm,\n"
    "             fork it (COW), write on both sides, print maps and counters\n"
    "  swap       1 MiB of user memory, 4 MiB written through swap, a fork,\n"
    "             meminfo after each step, then swapoff\n"
    "  pagecache  one file mapped by two mms: shared stores, a private copy,\n"
    "             msync, meminfo's Cached and the file's share lists\n"
    "  driver     a character device's mmap: a reserved buffer mapped with\n"
    "             remap_page_range and a vmalloc ring through nopage, in two\n"
    "             mms, with the open/close/nopage calls, maps and ptes\n"
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
    if (argc > 1 && strcmp(argv[1], "driver") == 0)
        return driver_demo();
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
