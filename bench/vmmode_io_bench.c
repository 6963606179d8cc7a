/*
 * bench/vmmode_io_bench.c — what the host kernel's access to fresh heap
 * memory costs under libkslab-vm.so (run it with LD_PRELOAD; it links no
 * kslab), beside a first write by the program itself.  It writes a
 * 32 MiB memfd, then ROUNDS times fills a fresh 32 MiB malloc block:
 *   pin      by pread(3): libkslab-vm.so's wrapper pins the block first
 *            (get_user_pages, vmmode/io.c);
 *   syscall  by syscall(SYS_pread64): no wrapper sees it, so the block's
 *            faults are the userfaultfd handler thread's (vm/mm/uffd.c),
 *            or EFAULT without it (the program then exits 1);
 *   write    one byte a page, by the program (the user's first write).
 * It prints the best and the mean microseconds a page over the rounds;
 * farm-bench times whole runs side by side (docs/vm-mode.md).
 * Usage: vmmode_io_bench pin|syscall|write [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BYTES (32UL << 20)
#define PAGE 4096UL

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int usage(FILE *f)
{
    fprintf(f, "usage: vmmode_io_bench pin|syscall|write [ROUNDS]\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help"))
        return usage(argc < 2 ? stderr : stdout);
    const char *mode = argv[1];
    int pin = !strcmp(mode, "pin"), sys = !strcmp(mode, "syscall");
    if (!pin && !sys && strcmp(mode, "write"))
        return usage(stderr);
    int rounds = argc > 2 ? atoi(argv[2]) : 8;
    if (rounds < 1)
        return usage(stderr);
    int fd = (int)syscall(SYS_memfd_create, "vmmode_io_bench", 0);
    static char chunk[1 << 16];
    memset(chunk, 7, sizeof chunk);
    for (size_t off = 0; fd >= 0 && off < BYTES; off += sizeof chunk)
        if (syscall(SYS_pwrite64, fd, chunk, sizeof chunk, (off_t)off) !=
            (long)sizeof chunk)
            return 1;
    if (fd < 0)
        return 1;
    double best = 1e30, sum = 0;
    for (int r = 0; r < rounds; r++) {
        char *p = malloc(BYTES);
        if (!p)
            return 1;
        double t0 = now_us();
        if (pin) {
            if (pread(fd, p, BYTES, 0) != (ssize_t)BYTES)
                return 1;
        } else if (sys) {
            if (syscall(SYS_pread64, fd, p, BYTES, 0) != (long)BYTES)
                return 1;
        } else {
            for (size_t i = 0; i < BYTES; i += PAGE)
                p[i] = 1;
        }
        double t = (now_us() - t0) / (double)(BYTES / PAGE);
        best = t < best ? t : best;
        sum += t;
        free(p);
    }
    printf("%s: best %.2f us a page, mean %.2f\n", mode, best, sum / rounds);
    return 0;
}
