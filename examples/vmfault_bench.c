/*
 * examples/vmfault_bench.c — what an emulated fault costs, beside the
 * host kernel doing the same thing in the same run:
 *   - one anonymous write fault (emulated: SIGSEGV → handle_mm_fault →
 *     do_anonymous_page → mmap of the frame; host: the kernel's own);
 *   - one COW break after a fork (emulated do_wp_page copy; host: a write
 *     in a forked child);
 *   - mm_fork of an mm with 64 MiB resident beside fork() of this process
 *     with 64 MiB resident;
 *   - with --maxmap: how much emulated memory one process can hold before
 *     the host's vm.max_map_count stops it, sequential and scattered.
 * Each figure is the best of a few rounds.  Usage: vmfault_bench [--maxmap]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kslab/vm.h>

#define FAULT_PAGES 8192 /* 32 MiB */
#define FORK_BYTES (64UL << 20)
#define ROUNDS 5

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void touch(volatile char *p, unsigned long pages)
{
    for (unsigned long i = 0; i < pages; i++)
        p[i * PAGE_SIZE] = 1;
}

static double host_fault_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double t = now_us();
    touch(p, FAULT_PAGES);
    t = now_us() - t;
    munmap(p, len);
    return t / FAULT_PAGES;
}

static double host_cow_us(void)
{
    size_t len = FAULT_PAGES * PAGE_SIZE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(p, FAULT_PAGES);
    int fd[2];
    if (pipe(fd) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        double t = now_us();
        touch(p, FAULT_PAGES);
        t = (now_us() - t) / FAULT_PAGES;
        if (write(fd[1], &t, sizeof t) != sizeof t)
            _exit(1);
        _exit(0);
    }
    double t = 0;
    if (read(fd[0], &t, sizeof t) != sizeof t)
        t = 0;
    waitpid(pid, NULL, 0);
    close(fd[0]);
    close(fd[1]);
    munmap(p, len);
    return t;
}

static double host_fork_us(void)
{
    char *p = mmap(NULL, FORK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touch(p, FORK_BYTES / PAGE_SIZE);
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_us();
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        t = now_us() - t;
        waitpid(pid, NULL, 0);
        if (t < best)
            best = t;
    }
    munmap(p, FORK_BYTES);
    return best;
}

static unsigned long map_anon(struct mm_struct *mm, unsigned long len)
{
    return do_mmap(mm, -1, 0, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, 0);
}

static double emu_fault_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FAULT_PAGES * PAGE_SIZE);
    double t = now_us();
    touch(mm_host(mm, a), FAULT_PAGES);
    t = now_us() - t;
    mmput(mm);
    return t / FAULT_PAGES;
}

static double emu_cow_us(void)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FAULT_PAGES * PAGE_SIZE);
    touch(mm_host(mm, a), FAULT_PAGES);
    struct mm_struct *child = mm_fork(mm);
    double t = now_us();
    touch(mm_host(child, a), FAULT_PAGES);
    t = now_us() - t;
    struct mm_stat st;
    mm_get_stat(child, &st);
    if (st.cow_flt != FAULT_PAGES)
        fprintf(stderr, "warning: %lu COW faults, expected %d\n", st.cow_flt,
                FAULT_PAGES);
    mmput(child);
    mmput(mm);
    return t / FAULT_PAGES;
}

static double emu_fork_us(double *put_us)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long a = map_anon(mm, FORK_BYTES);
    touch(mm_host(mm, a), FORK_BYTES / PAGE_SIZE);
    double best = 1e30;
    *put_us = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_us();
        struct mm_struct *child = mm_fork(mm);
        t = now_us() - t;
        double u = now_us();
        mmput(child);
        u = now_us() - u;
        if (t < best)
            best = t;
        if (u < *put_us)
            *put_us = u;
    }
    mmput(mm);
    return best;
}

static double best_of(double (*fn)(void))
{
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t = fn();
        if (t < best)
            best = t;
    }
    return best;
}

/* Faults pages in (order: sequential, or every other page) with
 * handle_mm_fault until the host refuses a mapping; returns MiB held. */
static unsigned long max_resident_mib(int stride, unsigned long limit_pages)
{
    struct mm_struct *mm = mm_alloc();
    unsigned long len = limit_pages * PAGE_SIZE * stride;
    unsigned long a = do_mmap(mm, -1, 0x100000, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (IS_ERR_VALUE(a))
        return 0;
    struct vm_area_struct *vma = find_vma(mm, a);
    unsigned long n = 0;
    for (unsigned long i = 0; i < limit_pages; i++, n++)
        if (handle_mm_fault(mm, vma, a + i * stride * PAGE_SIZE, 1) <= 0)
            break;
    struct mm_stat st;
    mm_get_stat(mm, &st);
    mmput(mm);
    return st.rss * PAGE_SIZE >> 20;
}

int main(int argc, char **argv)
{
    /* host figures first, before this process maps its emulated windows */
    double hf = best_of(host_fault_us);
    double hc = best_of(host_cow_us);
    double hk = host_fork_us();
    double ef = best_of(emu_fault_us);
    double ec = best_of(emu_cow_us);
    double put;
    double ek = emu_fork_us(&put);

    printf("anonymous write fault: emulated %.2f us, host kernel %.2f us "
           "(%.1fx)\n",
           ef, hf, ef / hf);
    printf("COW break after fork:  emulated %.2f us, host kernel %.2f us "
           "(%.1fx)\n",
           ec, hc, ec / hc);
    printf("fork, 64 MiB resident: mm_fork %.0f us (mmput of the child "
           "%.0f us), host fork() %.0f us\n",
           ek, put, hk);

    if (argc > 1 && !strcmp(argv[1], "--maxmap")) {
        FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
        long maxmap = 0;
        if (f) {
            if (fscanf(f, "%ld", &maxmap) != 1)
                maxmap = 0;
            fclose(f);
        }
        printf("vm.max_map_count = %ld\n", maxmap);
        printf("scattered (every other page): %lu MiB resident before the "
               "host refused a mapping\n",
               max_resident_mib(2, (TASK_SIZE - 0x100000) / PAGE_SIZE / 2));
        printf("sequential: %lu MiB resident (stopped at 3 GiB = TASK_SIZE "
               "or when frames ran out)\n",
               max_resident_mib(1, (TASK_SIZE - 0x100000) / PAGE_SIZE));
    }
    return 0;
}
