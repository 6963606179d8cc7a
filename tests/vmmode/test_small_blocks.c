/*
 * tests/vmmode/test_small_blocks.c — the malloc family's small blocks
 * (slab objects, 64 KiB and less) under libkslab-vm.so (LD_PRELOAD, set by
 * CMakeLists.txt with 8 MiB of emulated memory), where KSLAB_VM_SMALL is
 * on by default: they live in the
 * process's mm (every entry point: malloc, calloc, realloc, the aligned
 * calls), go to swap under pressure and come back byte-exact to four
 * threads, are freed and reused (calloc clears what it reuses), keep
 * their bytes across a realloc from a slab object to a large block and
 * back, a host fork's child has its own copy of them, and the host
 * kernel writes into a small block never touched (read(2), and recvmsg
 * where the handler thread serves the mm); freed, their pages are zapped
 * after the decay time.  With KSLAB_VM_SMALL=0 they are host memory.
 *
 * The mm is observed through kslab_stats_print, found with dlsym, as in
 * test_vmmode.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ktest.h"
#include "vmmtest.h"

/* Size of small block i: 16 bytes to about 3 KiB, every class's cache. */
static size_t small_size(size_t i)
{
    return 16 + (i * 37) % 3000;
}

/* Every allocation call's small blocks are the mm's, usable as asked. */
static void test_small_blocks_live_in_mm(void **state)
{
    (void)state;
    size_t sizes[] = {1, 24, 100, 500, 1000, 4000, 20000, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        assert_non_null(p);
        assert_true(in_mm(p));
        assert_true(malloc_usable_size(p) >= sizes[i]);
        fill(p, sizes[i], (unsigned)i);
        unsigned char *z = calloc(1, sizes[i]);
        assert_non_null(z);
        assert_true(in_mm(z));
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(z[j], 0);
        assert_true(check(p, sizes[i], (unsigned)i));
        free(z);
        free(p);
    }
    void *a = memalign(256, 200);
    void *b = aligned_alloc(64, 1000);
    void *c = NULL;
    assert_int_equal(posix_memalign(&c, 128, 3000), 0);
    assert_true(a && b && c);
    assert_true(in_mm(a) && in_mm(b) && in_mm(c));
    assert_int_equal((uintptr_t)a % 256, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_int_equal((uintptr_t)c % 128, 0);
    free(a);
    free(b);
    free(c);
}

/* 24 MB of small blocks, about three times the emulated memory: written, then
 * read back by four threads, every byte, after they went to swap. */
#define NBLOCKS 8000
#define NREADERS 4
static unsigned char *blocks[NBLOCKS];

static void *reader(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    for (size_t i = k; i < NBLOCKS; i += NREADERS)
        if (!check(blocks[i], small_size(i) * 2, (unsigned)i))
            return (void *)1;
    return NULL;
}

static void test_small_blocks_swap_and_read_back_by_threads(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    size_t total = 0;
    for (size_t i = 0; i < NBLOCKS; i++) {
        blocks[i] = malloc(small_size(i) * 2);
        assert_non_null(blocks[i]);
        fill(blocks[i], small_size(i) * 2, (unsigned)i);
        total += small_size(i) * 2;
    }
    assert_true(total > 2 * (size_t)a.mem_kb * 1024);
    assert_true(in_mm(blocks[0]) && in_mm(blocks[NBLOCKS - 1]));
    pthread_t t[NREADERS];
    for (uintptr_t k = 0; k < NREADERS; k++)
        assert_int_equal(pthread_create(&t[k], NULL, reader, (void *)k), 0);
    int bad = 0;
    for (int k = 0; k < NREADERS; k++) {
        void *r;
        pthread_join(t[k], &r);
        bad |= r != NULL;
    }
    read_stats(&b);
    assert_false(bad);
    assert_true(b.pswpout > a.pswpout);
    assert_true(b.pgmajfault > a.pgmajfault);
    for (size_t i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
}

/* Chunks of the mm that the slabs took so far (the report's slab line). */
static unsigned long slab_chunks(void)
{
    struct vmstat s;
    read_stats(&s);
    return s.slab_chunks;
}

/* Freed small blocks are reused; calloc clears a reused one; realloc
 * keeps the bytes from a slab object to a large block and back. */
static void test_small_blocks_reused_and_realloc_across_kinds(void **state)
{
    (void)state;
    enum { N = 4000 };
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(900);
        assert_non_null(p[i]);
        memset(p[i], 0xab, 900);
    }
    unsigned long chunks = slab_chunks();
    for (int i = 0; i < N; i++)
        free(p[i]);
    for (int i = 0; i < N; i++) {
        p[i] = calloc(1, 900);
        assert_non_null(p[i]);
        assert_true(in_mm(p[i]));
        for (int j = 0; j < 900; j += 7)
            assert_int_equal(p[i][j], 0);
    }
    assert_int_equal(slab_chunks(), chunks); /* the same pages again */
    for (int i = 0; i < N; i++)
        free(p[i]);

    unsigned char *q = malloc(300);
    fill(q, 300, 5);
    assert_true(in_mm(q));
    unsigned char *r = realloc(q, 200 * 1024); /* a large block */
    assert_non_null(r);
    q = r;
    assert_true(in_mm(q) && check(q, 300, 5));
    fill(q, 200 * 1024, 6);
    r = realloc(q, 5000); /* a slab object again */
    assert_non_null(r);
    q = r;
    assert_true(in_mm(q) && check(q, 5000, 6));
    assert_true(malloc_usable_size(q) >= 5000);
    free(q);
}

/* A host fork: the child reads the parent's small blocks (some swapped
 * out), overwrites them and allocates; the parent's stay as they were. */
static void test_small_blocks_fork_child_has_own_copy(void **state)
{
    (void)state;
    enum { N = 12000 }; /* 12 MB: some of it in swap */
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(1000);
        assert_non_null(p[i]);
        fill(p[i], 1000, (unsigned)i);
    }
    assert_true(in_mm(p[0]));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = 1;
        for (int i = 0; i < N; i++) {
            ok = ok && check(p[i], 1000, (unsigned)i);
            fill(p[i], 1000, (unsigned)i + 1);
        }
        unsigned char *c[1000];
        for (int i = 0; i < 1000; i++) {
            c[i] = malloc(700);
            ok = ok && c[i];
            if (c[i])
                fill(c[i], 700, 77);
        }
        for (int i = 0; i < 1000; i++) {
            ok = ok && c[i] && check(c[i], 700, 77);
            free(c[i]);
        }
        for (int i = 0; i < N; i++)
            ok = ok && check(p[i], 1000, (unsigned)i + 1);
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    for (int i = 0; i < N; i++) {
        assert_true(check(p[i], 1000, (unsigned)i));
        free(p[i]);
    }
}

/* A pipe holding n bytes of pattern seed, written from a stack buffer. */
static void pattern_into(int fd, size_t n, unsigned seed)
{
    unsigned char chunk[4096];
    for (size_t off = 0; off < n; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(off + i, seed);
        assert_int_equal(write(fd, chunk, sizeof chunk), (long)sizeof chunk);
    }
}

/* The kernel writes into pages of a small block that nothing touched:
 * read(2) (wrapped: pinned, or served by the thread) and, where the
 * handler thread serves the mm, recvmsg made with syscall(2). */
static void test_kernel_writes_into_untouched_small_block(void **state)
{
    (void)state;
    enum { SZ = 32768, OFF = 8192, LEN = 16384 };
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    unsigned char *p = malloc(SZ); /* a slab object of 8 pages */
    assert_non_null(p);
    assert_true(in_mm(p));
    pattern_into(fds[1], LEN, 9);
    size_t got = 0;
    while (got < LEN) {
        ssize_t r = read(fds[0], p + OFF + got, LEN - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_true(check(p + OFF, LEN, 9));
    close(fds[0]);
    close(fds[1]);
    free(p);

    struct vmstat s;
    read_stats(&s);
    if (!s.thread)
        return; /* recvmsg made by syscall(2) needs the thread */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    unsigned char *q = malloc(SZ);
    assert_non_null(q);
    assert_true(in_mm(q));
    pattern_into(sv[0], LEN, 10);
    struct iovec iov = {q + OFF, LEN};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    assert_int_equal(syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL), (long)LEN);
    assert_true(check(q + OFF, LEN, 10));
    close(sv[0]);
    close(sv[1]);
    free(q);
}

/* The slab line of the report: kB in slabs, kB freed and kept. */
static void slab_kb(unsigned long *in_slabs, unsigned long *kept)
{
    struct vmstat s;
    read_stats(&s);
    *in_slabs = s.slab_kb;
    *kept = s.slab_kept_kb;
}

/* Small blocks freed: their empty slabs go back to the page source after
 * the decay time, whose pages are zapped after it again (the kept kB
 * fall to 0). */
static void test_small_blocks_freed_pages_decay(void **state)
{
    (void)state;
    enum { N = 16000 }; /* 16 MB: worth the background purge */
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(1000);
        assert_non_null(p[i]);
        memset(p[i], 1, 1000);
    }
    unsigned long in0, kept;
    slab_kb(&in0, &kept);
    for (int i = 0; i < N; i++)
        free(p[i]);
    unsigned long in = in0;
    /* bounded: two decay times; a loaded machine gets a minute */
    for (int t = 0; t < 600; t++) {
        free(malloc(40000)); /* a cache grows: the purge is asked for */
        slab_kb(&in, &kept);
        if (kept == 0 && in < in0 / 2)
            break;
        usleep(100000);
    }
    assert_int_equal(kept, 0);
    assert_true(in < in0 / 2);
}

/* This program again with KSLAB_VM_SMALL=0: its small blocks are host
 * memory, its big ones the mm's. */
static int small_off_child(void)
{
    void *small = malloc(100), *big = malloc(1 << 20);
    return small && big && !in_mm(small) && in_mm(big) ? 0 : 1;
}

static void test_small_off_keeps_host_memory(void **state)
{
    (void)state;
    static const char *const env[] = {"KSLAB_VM_SMALL=0", NULL};
    struct ktest_exec x = {"/proc/self/exe", "small-off", env};
    char err[1024];
    int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("KSLAB_VM_SMALL=0: status %#x; stderr: %s", st, err);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "small-off"))
        return small_off_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_blocks_live_in_mm),
        cmocka_unit_test(test_small_blocks_swap_and_read_back_by_threads),
        cmocka_unit_test(test_small_blocks_reused_and_realloc_across_kinds),
        cmocka_unit_test(test_small_blocks_fork_child_has_own_copy),
        cmocka_unit_test(test_kernel_writes_into_untouched_small_block),
        cmocka_unit_test(test_small_blocks_freed_pages_decay),
        cmocka_unit_test(test_small_off_keeps_host_memory),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_small_blocks_live_in_mm),
    };
    return ktest_main(argc, argv, tests, alone, vmm_test_setup, NULL);
}
