/*
 * tests/vmmode/test_vmmode.c — a program run under libkslab-vm.so
 * (LD_PRELOAD, set by CMakeLists.txt with a small KSLAB_VM_MEM): its
 * malloc blocks (above 64 KiB in the heap below the mmap threshold,
 * mappings above; smaller ones in slabs of the mm), anonymous mappings
 * and break live in the emulated mm,
 * are swapped out under pressure and read back; every access works — a
 * thread that blocks every signal, read(2) and write(2) on pages never
 * touched or swapped out, eight threads checking every byte under
 * pressure, a host fork; exec leaves nothing behind; a fault outside
 * every emulated range still reaches the program's handler.
 *
 * The mm is observed through kslab_stats_print (the KSLAB_STATS report:
 * its "window" and vmstat lines), found with dlsym so that the program
 * links no kslab.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ktest.h"
#include "vmmtest.h"

/* Touches twice the emulated memory elsewhere, so that what was written
 * before goes to swap. */
static void push_out(void)
{
    struct vmstat s;
    read_stats(&s);
    size_t n = (size_t)s.mem_kb * 1024 * 2;
    unsigned char *q = malloc(n);
    assert_non_null(q);
    for (size_t i = 0; i < n; i += 4096)
        q[i] = 1;
    free(q);
}

/* Malloc blocks big and small (KSLAB_VM_SMALL is on by default),
 * anonymous mappings and the break are the mm's; shared mappings are
 * not. */
static void test_memory_lives_in_mm(void **state)
{
    (void)state;
    void *big = malloc(1 * MB);
    void *small = malloc(100);
    void *m = mmap(NULL, 3 * MB, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *shared = mmap(NULL, MB, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    void *brk0 = sbrk(0);
    assert_true(in_mm(big));
    assert_true(in_mm(small));
    assert_true(m != MAP_FAILED && in_mm(m));
    assert_true(shared != MAP_FAILED && !in_mm(shared));
    assert_true(in_mm(brk0));
    char *b = sbrk(2 * MB);
    assert_ptr_equal(b, brk0);
    fill((unsigned char *)b, 2 * MB, 7);
    assert_true(check((unsigned char *)b, 2 * MB, 7));
    assert_ptr_equal(sbrk(-(intptr_t)(2 * MB)), (char *)brk0 + 2 * MB);
    assert_ptr_equal(sbrk(0), brk0);
    /* a read of a page never written is the ZERO_PAGE's zeros */
    for (size_t i = 0; i < 3 * MB; i += 4096)
        assert_int_equal(((volatile char *)m)[i], 0);
    fill(m, 3 * MB, 3);
    assert_true(check(m, 3 * MB, 3));
    assert_int_equal(munmap(m, 3 * MB), 0);
    assert_int_equal(munmap(shared, MB), 0);
    free(big);
    free(small);
}

/* Blocks between 64 and 128 KiB (below the mmap threshold) are cut from
 * the mm's heap: the break grows over them, a freed one's pages are
 * zapped (the next block there reads zeros) and the break comes down
 * over a free top; they shrink in place and keep their bytes. */
#define NMEDIUM 48
#define MEDIUM (100 * 1024)
static void test_medium_blocks_in_heap(void **state)
{
    (void)state;
    char *b0 = sbrk(0);
    unsigned char *p[NMEDIUM];
    for (int i = 0; i < NMEDIUM; i++) {
        p[i] = malloc(MEDIUM);
        assert_non_null(p[i]);
        fill(p[i], MEDIUM, (unsigned)i);
    }
    char *b1 = sbrk(0);
    assert_true(b1 >= b0 + (size_t)NMEDIUM * MEDIUM);
    for (int i = 0; i < NMEDIUM; i++) {
        assert_true(in_mm(p[i]));
        assert_true((char *)p[i] + MEDIUM <= b1); /* under the break */
        assert_true(check(p[i], MEDIUM, (unsigned)i));
    }
    /* a shrink stays put and keeps its bytes */
    assert_ptr_equal(realloc(p[0], 70 * 1024), p[0]);
    assert_true(check(p[0], 70 * 1024, 0));
    /* a block freed and taken again reads zeros through calloc */
    unsigned char *z = p[NMEDIUM / 2];
    free(z);
    unsigned char *c = calloc(1, MEDIUM);
    assert_non_null(c);
    for (size_t i = 0; i < MEDIUM; i++)
        assert_int_equal(c[i], 0);
    free(c);
    for (int i = 0; i < NMEDIUM; i++)
        if (i != NMEDIUM / 2)
            free(p[i]);
    assert_true((char *)sbrk(0) < b1); /* the free top went back */
}

/* The kB of freed heap pages kept (not yet zapped), from the report. */
static unsigned long heap_kept_kb(void)
{
    void (*print)(FILE *) =
        (void (*)(FILE *))dlsym(RTLD_DEFAULT, "kslab_stats_print");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    print(f);
    fclose(f);
    char *h = strstr(buf, "vm: heap (brk) ");
    assert_non_null(h);
    char *k = strstr(h, " blocks (");
    assert_non_null(k);
    k = strstr(k, "), ");
    assert_non_null(k);
    unsigned long kb = strtoul(k + 3, NULL, 10);
    free(buf);
    return kb;
}

/* Freed heap pages stay (the next block takes them without a fault) and
 * are zapped once free for the decay time, by the purge passes: the
 * pages kept fall to none, the live block above them keeps its bytes. */
static void test_medium_freed_pages_decay(void **state)
{
    (void)state;
    enum { N = 120 }; /* 12 MB: worth the background purge */
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(MEDIUM);
        assert_non_null(p[i]);
        fill(p[i], MEDIUM, (unsigned)i);
    }
    unsigned char *top = malloc(MEDIUM); /* holds the break up */
    assert_non_null(top);
    fill(top, MEDIUM, 99);
    for (int i = 0; i < N; i++)
        free(p[i]);
    /* bounded: the decay is seconds; a loaded machine gets a minute */
    for (int t = 0; t < 600 && heap_kept_kb() != 0; t++)
        usleep(100000);
    assert_int_equal(heap_kept_kb(), 0);
    assert_true(check(top, MEDIUM, 99));
    free(top);
}

/* Blocks of the heap go to swap under pressure and come back whole. */
static void test_medium_blocks_swap(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    size_t n = (size_t)a.mem_kb * 1024 * 3 / MEDIUM;
    unsigned char **p = calloc(n, sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = malloc(MEDIUM);
        assert_non_null(p[i]);
        assert_true(i % 64 || in_mm(p[i]));
        fill(p[i], MEDIUM, (unsigned)i);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(check(p[i], MEDIUM, (unsigned)i));
    read_stats(&b);
    assert_true(b.pswpout > a.pswpout);
    assert_true(b.pswpin > a.pswpin);
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

/* mremap keeps the contents as it grows, moves and shrinks; madvise
 * (MADV_DONTNEED) gives zeros back; mprotect makes a page read-only. */
static sigjmp_buf jb;
static void *volatile fault_addr;
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    fault_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void test_mremap_madvise_mprotect(void **state)
{
    (void)state;
    unsigned char *p = mmap(NULL, MB, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED && in_mm(p));
    fill(p, MB, 1);
    /* a neighbour right after it forces the growth to move */
    void *block =
        mmap(p + MB, 4096, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    unsigned char *q = mremap(p, MB, 4 * MB, MREMAP_MAYMOVE);
    assert_true(q != MAP_FAILED && in_mm(q));
    if (block != MAP_FAILED)
        assert_ptr_not_equal(q, p);
    assert_true(check(q, MB, 1));
    q = mremap(q, 4 * MB, MB / 2, 0);
    assert_true(q != MAP_FAILED);
    assert_true(check(q, MB / 2, 1));
    assert_int_equal(madvise(q, 64 * 1024, MADV_DONTNEED), 0);
    for (size_t i = 0; i < 64 * 1024; i++)
        assert_int_equal(q[i], 0);
    for (size_t i = 64 * 1024; i < MB / 2; i++)
        assert_int_equal(q[i], pat(i, 1));
    assert_int_equal(mprotect(q, 4096, PROT_READ), 0);
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    fault_addr = NULL;
    if (!sigsetjmp(jb, 1))
        ((volatile unsigned char *)q)[10] = 5;
    sigaction(SIGSEGV, &old, NULL);
    assert_ptr_equal(fault_addr, q + 10);
    assert_int_equal(q[10], 0); /* zapped above; the store did not happen */
    assert_int_equal(munmap(q, MB / 2), 0);
    if (block != MAP_FAILED)
        munmap(block, 4096);
}

/* A mapping moved by mremap takes its pages along: the part of it that
 * was swapped out is not read back by the move (pswpin unchanged), and
 * every byte is there afterwards. */
static void test_mremap_moves_swapped_pages(void **state)
{
    (void)state;
    struct vmstat s;
    read_stats(&s);
    size_t n = (size_t)s.mem_kb * 1024 / 2;
    unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED && in_mm(p));
    fill(p, n, 7);
    void *block =
        mmap(p + n, 4096, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    push_out();
    struct vmstat before;
    read_stats(&before);
    unsigned char *q = mremap(p, n, 2 * n, MREMAP_MAYMOVE);
    assert_true(q != MAP_FAILED && in_mm(q));
    struct vmstat after;
    read_stats(&after);
    assert_true(before.pswpout > s.pswpout); /* some of it was in swap */
    assert_int_equal(after.pswpin, before.pswpin);
    assert_true(check(q, n, 7));
    assert_int_equal(munmap(q, 2 * n), 0);
    if (block != MAP_FAILED)
        munmap(block, 4096);
}

/* Pressure: 32 MiB written under a smaller KSLAB_VM_MEM goes to swap
 * and comes back whole. */
static void test_swap_out_and_in(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    size_t n = (size_t)a.mem_kb * 1024 * 4;
    unsigned char *p = malloc(n);
    assert_non_null(p);
    assert_true(in_mm(p));
    fill(p, n, 11);
    assert_true(check(p, n, 11));
    read_stats(&b);
    assert_true(b.pswpout > a.pswpout);
    assert_true(b.pswpin > a.pswpin);
    assert_true(b.pgmajfault > a.pgmajfault);
    free(p);
}

/* A thread that blocks every signal writes to a page that is swapped
 * out (the signal calls keep SIGSEGV and SIGBUS deliverable). */
static void *blocked_writer(void *arg)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    unsigned char *p = arg;
    for (size_t i = 0; i < MB; i += 512)
        p[i] = (unsigned char)(p[i] + 1);
    return NULL;
}

static void test_blocked_thread_writes_swapped_page(void **state)
{
    (void)state;
    unsigned char *p = malloc(MB);
    fill(p, MB, 5);
    struct vmstat a, b;
    read_stats(&a);
    push_out();
    read_stats(&b);
    assert_true(b.pswpout > a.pswpout);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_writer, p), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    for (size_t i = 0; i < MB; i++)
        assert_int_equal(p[i], (unsigned char)(pat(i, 5) + (i % 512 == 0)));
    free(p);
}

static int data_file(size_t n, unsigned seed)
{
    int fd = memfd_create("vmmode-data", 0);
    assert_true(fd >= 0);
    unsigned char *buf = malloc(64 * 1024); /* below the mm's threshold */
    for (size_t off = 0; off < n; off += 64 * 1024) {
        for (size_t i = 0; i < 64 * 1024; i++)
            buf[i] = pat(off + i, seed);
        assert_int_equal(pwrite(fd, buf, 64 * 1024, (off_t)off), 64 * 1024);
    }
    free(buf);
    return fd;
}

/* read(2) into a 64 MiB buffer never touched: the host kernel writes it
 * (no EFAULT); then into the same buffer once it is swapped out; and
 * write(2) from it. */
static void test_read_into_untouched_and_swapped(void **state)
{
    (void)state;
    size_t n = 64 * MB;
    int fd = data_file(n, 9);
    unsigned char *p = malloc(n);
    assert_true(in_mm(p));
    assert_int_equal(pread(fd, p, n, 0), (ssize_t)n);
    assert_true(check(p, n, 9));
    push_out();
    struct vmstat a;
    read_stats(&a);
    assert_true(a.pswpout > 0);
    int fd2 = data_file(n, 4);
    assert_int_equal(lseek(fd2, 0, SEEK_SET), 0);
    assert_int_equal(read(fd2, p, n), (ssize_t)n);
    assert_true(check(p, n, 4));
    push_out();
    int out = memfd_create("vmmode-out", 0);
    assert_int_equal(write(out, p, n), (ssize_t)n);
    unsigned char *back = malloc(n);
    assert_int_equal(pread(out, back, n, 0), (ssize_t)n);
    assert_true(check(back, n, 4));
    /* stdio: fread straight into the untouched buffer */
    FILE *f = fdopen(dup(fd), "r");
    unsigned char *q = malloc(8 * MB);
    assert_int_equal(fread(q, 1, 8 * MB, f), 8 * MB);
    assert_true(check(q, 8 * MB, 9));
    fclose(f);
    free(q);
    free(back);
    free(p);
    close(out);
    close(fd2);
    close(fd);
}

/* Eight threads allocate blocks of every kind, fill them, check every
 * byte and free them, under memory pressure, for a bounded time. */
#define NTHREADS 8
static _Atomic int stop_threads;
static _Atomic unsigned long blocks_checked;
static _Atomic int bad_bytes;

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    size_t sizes[] = {200 * 1024, 1 * MB,    3 * MB,    40,
                      5000,       70 * 1024, 120 * 1024};
    enum { N = sizeof sizes / sizeof sizes[0] };
    while (!stop_threads) {
        unsigned char *b[N];
        for (int i = 0; i < N; i++) {
            b[i] = malloc(sizes[i]);
            if (!b[i])
                abort();
            fill(b[i], sizes[i], seed + (unsigned)i);
        }
        for (int i = 0; i < N; i++) {
            if (!check(b[i], sizes[i], seed + (unsigned)i))
                bad_bytes = 1;
            free(b[i]);
            blocks_checked++;
        }
    }
    return NULL;
}

static void test_threads_under_pressure(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    pthread_t t[NTHREADS];
    stop_threads = 0;
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(
            pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i * 17)),
            0);
    time_t end = time(NULL) + 3;
    while (time(NULL) < end || blocks_checked < 200)
        usleep(20000);
    stop_threads = 1;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    read_stats(&b);
    assert_false(bad_bytes);
    assert_true(blocks_checked >= 200);
    assert_true(b.pswpout > a.pswpout); /* it was under pressure */
}

/* A host fork: the child has its own copy and a working allocator; the
 * parent's memory is unchanged by the child's writes. */
static void test_host_fork(void **state)
{
    (void)state;
    size_t n = 6 * MB;
    unsigned char *p = malloc(n);
    fill(p, n, 21);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = check(p, n, 21);
        fill(p, n, 22);
        unsigned char *c = malloc(4 * MB);
        fill(c, 4 * MB, 23);
        ok = ok && check(c, 4 * MB, 23) && check(p, n, 22);
        free(c);
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(check(p, n, 21));
    free(p);
}

/* exec leaves no swap file and no memfd of kslab's: the new program's
 * descriptors name neither, and the swap directory is empty. */
static void test_exec_leaves_nothing(void **state)
{
    (void)state;
    const char *dir = getenv("KSLAB_VM_SWAP_DIR");
    assert_non_null(dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_true(e->d_name[0] == '.');
    closedir(d);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        unsetenv("LD_PRELOAD");
        execl("/bin/sh", "sh", "-c",
              "for f in /proc/$$/fd/*; do readlink $f; done", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char out[8192];
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* kslab's memfds are "memfd:kslab-...", its swap file kslab-swap.* */
    assert_null(strstr(out, "kslab"));
}

/* A fault outside every emulated range, and one inside the window where
 * the mm has no vma, reach the program's handler with their address. */
static void test_own_segv_reaches_program(void **state)
{
    (void)state;
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    assert_int_equal(sigaction(SIGSEGV, &sa, &old), 0);
    static volatile uintptr_t sixteen = 16;
    volatile int *low = (volatile int *)sixteen;
    fault_addr = NULL;
    if (!sigsetjmp(jb, 1))
        *low = 1;
    assert_ptr_equal(fault_addr, (void *)low);
    struct vmstat s;
    read_stats(&s);
    volatile char *hole = (volatile char *)(s.window + 0x1000);
    fault_addr = NULL;
    if (!sigsetjmp(jb, 1))
        *hole = 1;
    assert_ptr_equal(fault_addr, (void *)hole);
    sigaction(SIGSEGV, &old, NULL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_lives_in_mm),
        cmocka_unit_test(test_medium_blocks_in_heap),
        cmocka_unit_test(test_medium_blocks_swap),
        cmocka_unit_test(test_medium_freed_pages_decay),
        cmocka_unit_test(test_mremap_madvise_mprotect),
        cmocka_unit_test(test_mremap_moves_swapped_pages),
        cmocka_unit_test(test_swap_out_and_in),
        cmocka_unit_test(test_blocked_thread_writes_swapped_page),
        cmocka_unit_test(test_read_into_untouched_and_swapped),
        cmocka_unit_test(test_threads_under_pressure),
        cmocka_unit_test(test_host_fork),
        cmocka_unit_test(test_exec_leaves_nothing),
        cmocka_unit_test(test_own_segv_reaches_program),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_memory_lives_in_mm),
    };
    return ktest_main(argc, argv, tests, alone, vmm_test_setup, NULL);
}
