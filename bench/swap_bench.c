/*
 * bench/swap_bench.c — swap throughput: a sequential and a random scan
 * (one read per page) over a working set four times user memory, in
 * pages/s, with readahead (page_cluster 3) and without (0), beside the
 * raw sequential and random 4 KiB read rate of the swap file itself on the
 * same disk, measured in the same run — the limit the scans can approach.
 * Before every measurement the swap file is synced and dropped from the
 * host page cache (posix_fadvise DONTNEED), so both the scans and the raw
 * reads start cold.  A benchmark, not a test.
 *
 *   swap_bench [ram_pages (4096)] [directory for the swap file (.)]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <kslab/vm.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void shuffle(unsigned long *v, unsigned long n)
{
    unsigned long s = 88172645463325252UL;
    for (unsigned long i = 0; i < n; i++)
        v[i] = i;
    for (unsigned long i = n - 1; i > 0; i--) {
        unsigned long j = rnd(&s) % (i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Raw 4 KiB reads of slots 1..n of the swap file, in order or in
 * order[]; pages/s. */
static double raw_rate(const char *path, unsigned long n,
                       const unsigned long *order)
{
    drop_cache(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    char *buf = malloc(PAGE_SIZE);
    double t = now();
    for (unsigned long i = 0; i < n; i++) {
        unsigned long slot = 1 + (order ? order[i] : i);
        if (pread(fd, buf, PAGE_SIZE, (off_t)(slot * PAGE_SIZE)) !=
            (ssize_t)PAGE_SIZE)
            break;
    }
    t = now() - t;
    free(buf);
    close(fd);
    return (double)n / t;
}

static double scan(struct mm_struct *mm, unsigned long a, unsigned long n,
                   const unsigned long *order, const char *path,
                   unsigned long *majors)
{
    struct mm_stat st0, st1;
    drop_cache(path);
    mm_get_stat(mm, &st0);
    unsigned long sum = 0;
    double t = now();
    for (unsigned long i = 0; i < n; i++) {
        unsigned long pg = order ? order[i] : i;
        sum += *(volatile unsigned long *)mm_host(mm, a + pg * PAGE_SIZE);
    }
    t = now() - t;
    mm_get_stat(mm, &st1);
    *majors = st1.maj_flt - st0.maj_flt;
    if (sum == 42)
        puts("");
    return (double)n / t;
}

int main(int argc, char **argv)
{
    if (argc > 1 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: swap_bench [RAM_PAGES [DIR]]\n  sequential and random "
              "scans of 4x user memory through swap (a swap\n  file in DIR, "
              "default .) against raw reads of the swap file\n",
              stdout);
        return 0;
    }
    unsigned long ram = argc > 1 ? strtoul(argv[1], NULL, 0) : 4096;
    const char *dir = argc > 2 ? argv[2] : ".";
    unsigned long n = 4 * ram;
    char path[4096];
    snprintf(path, sizeof path, "%s/swap_bench.swap", dir);
    int r = mkswap(path, n + n / 4 + 16);
    if (r == 0)
        r = sys_swapon(path, 0);
    if (r) {
        fprintf(stderr, "swap_bench: mkswap/swapon %s: %s\n", path,
                strerror(-r));
        return 1;
    }
    vm_set_ram_pages(ram);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, -1, 0, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    unsigned long *order = malloc(n * sizeof *order);
    shuffle(order, n);
    double t = now();
    for (unsigned long i = 0; i < n; i++)
        *(unsigned long *)mm_host(mm, a + i * PAGE_SIZE) = i;
    t = now() - t;
    printf("user memory %lu pages (%lu MiB), working set %lu pages, swap "
           "file %s\n",
           ram, ram >> 8, n, path);
    printf("%-34s %12.0f pages/s\n", "fill (write, swap-out)", (double)n / t);

    for (int ra = 1; ra >= 0; ra--) {
        vm_set_page_cluster(ra ? 3 : 0);
        unsigned long maj;
        double seq = scan(mm, a, n, NULL, path, &maj);
        printf("sequential scan, %-17s %12.0f pages/s  (%lu major faults)\n",
               ra ? "readahead 8:" : "no readahead:", seq, maj);
        double rnd_rate = scan(mm, a, n, order, path, &maj);
        printf("random scan,     %-17s %12.0f pages/s  (%lu major faults)\n",
               ra ? "readahead 8:" : "no readahead:", rnd_rate, maj);
    }
    printf("%-34s %12.0f pages/s\n", "raw sequential 4 KiB pread",
           raw_rate(path, n, NULL));
    printf("%-34s %12.0f pages/s\n", "raw random 4 KiB pread",
           raw_rate(path, n, order));
    mmput(mm);
    free(order);
    vm_set_page_cluster(3);
    sys_swapoff(path);
    unlink(path);
    vm_set_ram_pages(0);
    return 0;
}
