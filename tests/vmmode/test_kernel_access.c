/*
 * tests/vmmode/test_kernel_access.c — the host kernel's own accesses to
 * the program's memory under libkslab-vm.so, through system calls that no
 * wrapper of vmmode/io.c sees (each is made with syscall(2)): recvmsg and
 * getdents64 into heap buffers never touched, readv into a swapped-out
 * buffer, a stat result written into a swapped-out page; the host
 * kernel's write into a present read-only page (read(2), recvmsg,
 * getdents64, fstat into a page that was only read — the ZERO_PAGE — and
 * into a page swapped in by a read); the same from a thread that blocks
 * every signal, SIGSEGV and SIGBUS included (its own loads and stores
 * too); and threads doing such calls into heap blocks under memory
 * pressure, every byte checked.  Each needs the userfaultfd handler
 * thread (vm/mm/uffd.c): without it the host kernel's access to a page
 * that is not present fails with EFAULT, and without its write-protect
 * mode so does its write into a read-only page.  Where the thread does not
 * serve the mm (the SIGSEGV back end, a host without userfaultfd) the
 * program exits 77; the read-only cases also where the host has no
 * write-protect faults on shared memory.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ktest.h"
#include "vmmtest.h"

#define PAGE 4096UL

/*
 * The calls, each on its own, run by the tests below.  Each returns 0, or
 * the line of the first check that failed (printed with errno): they also
 * run on a thread of their own, where cmocka's asserts cannot.
 */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: %s (errno %d)\n", __FILE__, __LINE__,      \
                    #cond, errno);                                             \
            return __LINE__;                                                   \
        }                                                                      \
    } while (0)

/* A memfd holding n bytes of pattern seed, written from a stack buffer
 * (so that no page of the mm is involved): the descriptor, or -1. */
static int pattern_file(size_t n, unsigned seed)
{
    int fd = (int)syscall(SYS_memfd_create, "kslab-test", 0);
    unsigned char chunk[4096];
    for (size_t off = 0; fd >= 0 && off < n; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(off + i, seed);
        if (syscall(SYS_pwrite64, fd, chunk, sizeof chunk, (off_t)off) !=
            (long)sizeof chunk) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* A block of the mm, written with pattern seed and then pushed to swap
 * by twice the emulated memory written elsewhere (pswpout grew); NULL
 * when not. */
static unsigned char *swapped_block(size_t n, unsigned seed)
{
    struct vmstat before, after;
    unsigned char *p = malloc(n);
    if (!p || !in_mm(p))
        return NULL;
    fill(p, n, seed);
    read_stats(&before);
    size_t m = (size_t)before.mem_kb * 1024 * 2;
    unsigned char *q = malloc(m);
    if (!q)
        return NULL;
    for (size_t i = 0; i < m; i += PAGE)
        q[i] = 1;
    free(q);
    read_stats(&after);
    return after.pswpout > before.pswpout ? p : NULL;
}

/* recvmsg of 256 KiB, a page at a time, into a block never touched. */
static int recvmsg_into_untouched(void)
{
    size_t n = 256 * 1024;
    unsigned char *buf = malloc(n + PAGE);
    CHECK(buf && in_mm(buf));
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    unsigned char chunk[PAGE];
    for (size_t off = 0; off < n; off += PAGE) {
        for (size_t i = 0; i < PAGE; i++)
            chunk[i] = pat(off + i, 5);
        CHECK(syscall(SYS_sendto, sv[0], chunk, PAGE, 0, NULL, 0) ==
              (long)PAGE);
        struct iovec iov = {buf + off, PAGE};
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        CHECK(syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL) == (long)PAGE);
    }
    CHECK(check(buf, n, 5));
    close(sv[0]);
    close(sv[1]);
    free(buf);
    return 0;
}

/* getdents64 of a directory of 40 files into a block never touched. */
static int getdents_into_untouched(void)
{
    char dir[] = "/tmp/kslab-dents.XXXXXX";
    CHECK(mkdtemp(dir));
    char path[64];
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "%s/f%02d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        CHECK(fd >= 0);
        close(fd);
    }
    size_t n = 512 * 1024;
    char *buf = malloc(n);
    CHECK(buf && in_mm(buf));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0);
    /* the middle of the block: pages no one has touched */
    char *at = buf + n / 2;
    int found = 0;
    long r;
    while ((r = syscall(SYS_getdents64, dfd, at, 64 * 1024)) > 0) {
        for (long off = 0; off < r;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(at + off);
            if (d->name[0] == 'f')
                found++;
            off += d->reclen;
        }
    }
    CHECK(r == 0);
    CHECK(found == 40);
    close(dfd);
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "%s/f%02d", dir, i);
        unlink(path);
    }
    rmdir(dir);
    free(buf);
    return 0;
}

/* readv of two pieces into a block that was swapped out; the bytes
 * around them keep their contents.  Then writev of the same pieces out of
 * it again, swapped out once more (the host kernel reading). */
static int readv_into_swapped(void)
{
    size_t n = 4 * MB, a = 300 * 1024;
    unsigned char *p = swapped_block(n, 9);
    CHECK(p);
    int fd = pattern_file(MB, 3);
    CHECK(fd >= 0);
    struct iovec iov[2] = {{p + PAGE + 100, a}, {p + 2 * MB, MB - a}};
    CHECK(syscall(SYS_readv, fd, iov, 2) == (long)MB);
    for (size_t i = 0; i < a; i++)
        CHECK(p[PAGE + 100 + i] == pat(i, 3));
    for (size_t i = 0; i < MB - a; i++)
        CHECK(p[2 * MB + i] == pat(a + i, 3));
    CHECK(check(p, PAGE + 100, 9));
    for (size_t i = PAGE + 100 + a; i < 2 * MB; i++)
        CHECK(p[i] == pat(i, 9));
    for (size_t i = 3 * MB - a; i < n; i++)
        CHECK(p[i] == pat(i, 9));
    free(swapped_block(MB, 1));
    int out = (int)syscall(SYS_memfd_create, "kslab-out", 0);
    CHECK(out >= 0);
    CHECK(syscall(SYS_writev, out, iov, 2) == (long)MB);
    unsigned char chunk[4096];
    for (size_t off = 0; off < MB; off += sizeof chunk) {
        CHECK(syscall(SYS_pread64, out, chunk, sizeof chunk, (off_t)off) ==
              (long)sizeof chunk);
        for (size_t i = 0; i < sizeof chunk; i++)
            CHECK(chunk[i] == pat(off + i, 3));
    }
    close(out);
    close(fd);
    free(p);
    return 0;
}

/* fstat and newfstatat writing their struct stat into swapped-out
 * pages (one straddling two of them). */
static int stat_into_swapped(void)
{
    size_t n = 2 * MB;
    unsigned char *p = swapped_block(n, 11);
    CHECK(p);
    int fd = pattern_file(3 * PAGE, 1);
    CHECK(fd >= 0);
    struct stat want;
    CHECK(syscall(SYS_fstat, fd, &want) == 0);
    struct stat *a = (struct stat *)(p + MB + 64);
    struct stat *b = (struct stat *)(p + MB + 8 * PAGE - 40);
    CHECK(syscall(SYS_fstat, fd, a) == 0);
    CHECK(a->st_size == 3 * (long)PAGE);
    CHECK(a->st_ino == want.st_ino);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    CHECK(syscall(SYS_newfstatat, AT_FDCWD, self, b, 0) == 0);
    CHECK(b->st_ino == want.st_ino);
    CHECK(check(p, MB + 64, 11));
    close(fd);
    free(p);
    return 0;
}

/* A block of n bytes of the mm whose pages were only read (each one the
 * ZERO_PAGE, mapped read-only), or NULL. */
static unsigned char *read_only_block(size_t n)
{
    unsigned char *p = malloc(n);
    if (!p || !in_mm(p))
        return NULL;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i += PAGE)
        sum += ((volatile unsigned char *)p)[i];
    return sum == 0 ? p : NULL;
}

/* read(2), recvmsg, getdents64 and fstat into pages that were only read:
 * each a write of the host kernel into the ZERO_PAGE, which must become
 * the page's own frame (do_wp_page) with the rest of it still zero. */
static int calls_into_zero_pages(void)
{
    size_t n = 2 * MB;
    unsigned char *p = read_only_block(n);
    CHECK(p);
    int fd = pattern_file(3 * PAGE, 21);
    CHECK(fd >= 0);
    /* read(2) of two pages and a half, from the middle of a page on */
    unsigned char *at = p + 4 * PAGE + 1000;
    size_t len = 2 * PAGE + PAGE / 2;
    CHECK(syscall(SYS_read, fd, at, len) == (long)len);
    for (size_t i = 0; i < len; i++)
        CHECK(at[i] == pat(i, 21));
    for (unsigned char *q = p + 4 * PAGE; q < at; q++)
        CHECK(*q == 0);
    for (unsigned char *q = at + len; q < p + 8 * PAGE; q++)
        CHECK(*q == 0);
    /* recvmsg into another */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    unsigned char chunk[512];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = pat(i, 22);
    CHECK(syscall(SYS_sendto, sv[0], chunk, sizeof chunk, 0, NULL, 0) ==
          (long)sizeof chunk);
    struct iovec iov = {p + 20 * PAGE + 8, sizeof chunk};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    CHECK(syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL) == (long)sizeof chunk);
    CHECK(memcmp(p + 20 * PAGE + 8, chunk, sizeof chunk) == 0);
    close(sv[0]);
    close(sv[1]);
    /* getdents64 of /, fstat */
    int dfd = open("/", O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0);
    CHECK(syscall(SYS_getdents64, dfd, p + 40 * PAGE, 4096) > 0);
    close(dfd);
    struct stat want;
    CHECK(syscall(SYS_fstat, fd, &want) == 0);
    struct stat *st = (struct stat *)(p + 60 * PAGE - 16);
    CHECK(syscall(SYS_fstat, fd, st) == 0);
    CHECK(st->st_ino == want.st_ino && st->st_size == 3 * (long)PAGE);
    /* the pages only read stay zero */
    for (size_t i = 100 * PAGE; i < n; i += PAGE / 4)
        CHECK(p[i] == 0);
    close(fd);
    free(p);
    return 0;
}

/* read(2) and recvmsg into pages swapped out and then swapped in by a
 * load (mapped read-only: the swap cache still holds the page). */
static int calls_into_swapped_in_pages(void)
{
    size_t n = 2 * MB;
    unsigned char *p = swapped_block(n, 23);
    CHECK(p);
    /* a load brings each page of the first half back, read-only */
    for (size_t i = 0; i < MB; i += PAGE)
        CHECK(((volatile unsigned char *)p)[i + 7] == pat(i + 7, 23));
    int fd = pattern_file(PAGE, 24);
    CHECK(fd >= 0);
    unsigned char *at = p + 8 * PAGE + 300;
    CHECK(syscall(SYS_read, fd, at, 1000) == 1000);
    for (size_t i = 0; i < 1000; i++)
        CHECK(at[i] == pat(i, 24));
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    unsigned char chunk[PAGE];
    for (size_t i = 0; i < PAGE; i++)
        chunk[i] = pat(i, 25);
    CHECK(syscall(SYS_sendto, sv[0], chunk, PAGE, 0, NULL, 0) == (long)PAGE);
    struct iovec iov = {p + 30 * PAGE, PAGE};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    CHECK(syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL) == (long)PAGE);
    CHECK(memcmp(p + 30 * PAGE, chunk, PAGE) == 0);
    close(sv[0]);
    close(sv[1]);
    /* every other byte as it was */
    for (size_t i = 0; i < n; i++) {
        if ((p + i >= at && p + i < at + 1000) ||
            (i >= 30 * PAGE && i < 31 * PAGE))
            continue;
        CHECK(p[i] == pat(i, 23));
    }
    close(fd);
    free(p);
    return 0;
}

/* A store and a load of the thread itself into pages never touched and
 * swapped out. */
static int own_accesses(void)
{
    size_t n = 2 * MB;
    unsigned char *p = swapped_block(n, 13);
    CHECK(p);
    CHECK(check(p, MB, 13));
    for (size_t i = MB; i < n; i += PAGE)
        p[i] = 0x5a;
    for (size_t i = MB; i < n; i++)
        CHECK(p[i] == ((i & (PAGE - 1)) ? pat(i, 13) : 0x5a));
    unsigned char *q = malloc(MB);
    CHECK(q);
    for (size_t i = 0; i < MB; i += PAGE)
        q[i] = (unsigned char)(i >> 12);
    for (size_t i = 0; i < MB; i += PAGE)
        CHECK(q[i] == (unsigned char)(i >> 12));
    free(q);
    free(p);
    return 0;
}

/* The read-only cases need the thread's write-protect mode, which the
 * statistics report (vmmode/stats.c). */
static int write_protect_mode(void)
{
    struct vmstat s;
    read_stats(&s);
    return s.wp;
}

/* ---- the tests ---- */

static int setup(void **state)
{
    (void)state;
    if (!dlsym(RTLD_DEFAULT, "kslab_stats_print") ||
        !dlsym(RTLD_DEFAULT, "sbrk")) {
        fprintf(stderr, "not run under libkslab-vm.so\n");
        exit(KTEST_SKIP);
    }
    struct vmstat s;
    read_stats(&s);
    if (!s.window || !s.thread) {
        fprintf(stderr, "no userfaultfd handler thread serves the mm\n");
        exit(KTEST_SKIP);
    }
    return 0;
}

static void test_recvmsg_into_untouched(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    assert_int_equal(recvmsg_into_untouched(), 0);
    read_stats(&b);
    assert_true(b.served > a.served);
}

static void test_getdents_into_untouched(void **state)
{
    (void)state;
    assert_int_equal(getdents_into_untouched(), 0);
}

static void test_readv_into_swapped(void **state)
{
    (void)state;
    struct vmstat a, b;
    assert_int_equal(readv_into_swapped(), 0);
    read_stats(&a);
    assert_int_equal(readv_into_swapped(), 0);
    read_stats(&b);
    assert_true(b.pswpin > a.pswpin);
}

static void test_stat_into_swapped(void **state)
{
    (void)state;
    assert_int_equal(stat_into_swapped(), 0);
}

/* Every signal blocked by the system call itself (libc's
 * pthread_sigmask, which kslab wraps, keeps SIGSEGV and SIGBUS): no
 * fault of this thread can be served by a signal handler. */
static void *all_blocked(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8) != 0)
        return (void *)"rt_sigprocmask";
    int line = recvmsg_into_untouched();
    if (!line)
        line = getdents_into_untouched();
    if (!line)
        line = readv_into_swapped();
    if (!line)
        line = stat_into_swapped();
    if (!line)
        line = own_accesses();
    if (!line && write_protect_mode())
        line = calls_into_zero_pages();
    if (!line && write_protect_mode())
        line = calls_into_swapped_in_pages();
    return line ? (void *)"a check failed (above)" : NULL;
}

static void test_calls_into_zero_pages(void **state)
{
    (void)state;
    if (!write_protect_mode())
        ktest_skip("the handler thread has no write-protect mode here");
    assert_int_equal(calls_into_zero_pages(), 0);
}

static void test_calls_into_swapped_in_pages(void **state)
{
    (void)state;
    if (!write_protect_mode())
        ktest_skip("the handler thread has no write-protect mode here");
    struct vmstat a, b;
    read_stats(&a);
    assert_int_equal(calls_into_swapped_in_pages(), 0);
    read_stats(&b);
    assert_true(b.pswpin > a.pswpin);
}

static void test_from_thread_blocking_every_signal(void **state)
{
    (void)state;
    pthread_t t;
    void *r = (void *)"not run";
    assert_int_equal(pthread_create(&t, NULL, all_blocked, NULL), 0);
    assert_int_equal(pthread_join(t, &r), 0);
    if (r)
        fail_msg("%s", (const char *)r);
}

/*
 * Threads that fill heap blocks by pread, recvmsg and readv made with
 * syscall(2) (no wrapper pins them), keep eight of them each, check every
 * byte of a block — the user's loads, after swap — before freeing it and
 * write a stat into it, under memory pressure: 4 threads × 8 live blocks
 * of up to 1 MiB against 8 MiB of emulated memory.  Bounded by work (48
 * blocks a thread), not by time.
 */
#define STRESS_THREADS 4
#define STRESS_LIVE 8
#define STRESS_BLOCKS 48

struct stress {
    int id, src, bad;
    unsigned long bytes;
};

static void *stress_thread(void *arg)
{
    struct stress *st = arg;
    unsigned char *live[STRESS_LIVE] = {0};
    size_t len[STRESS_LIVE] = {0};
    unsigned seed = (unsigned)st->id * 7919u + 1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        st->bad = 1;
        return NULL;
    }
    for (int k = 0; k < STRESS_BLOCKS && !st->bad; k++) {
        int slot = k % STRESS_LIVE;
        if (live[slot]) {
            /* pattern of file offset 0 for len bytes, then a stat */
            if (!check(live[slot], len[slot], 0x77))
                st->bad = 2;
            st->bytes += len[slot];
            free(live[slot]);
        }
        seed = seed * 1103515245u + 12345u;
        size_t n = 128 * 1024 + (seed >> 8) % (896 * 1024);
        n &= ~(size_t)63;
        unsigned char *p = malloc(n);
        if (!p) {
            st->bad = 3;
            break;
        }
        long r = 0;
        switch (k % 3) {
        case 0:
            r = syscall(SYS_pread64, st->src, p, n, 0);
            break;
        case 1: {
            struct iovec iov[2] = {{p, n / 2}, {p + n / 2, n - n / 2}};
            r = syscall(SYS_preadv, st->src, iov, 2, 0, 0);
            break;
        }
        default:
            for (size_t off = 0; off < n && r >= 0; off += 4096) {
                size_t c = n - off < 4096 ? n - off : 4096;
                unsigned char chunk[4096];
                for (size_t i = 0; i < c; i++)
                    chunk[i] = pat(off + i, 0x77);
                if (syscall(SYS_sendto, sv[0], chunk, c, 0, NULL, 0) !=
                    (long)c) {
                    r = -1;
                    break;
                }
                struct iovec iov = {p + off, c};
                struct msghdr mh = {0};
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                if (syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL) != (long)c)
                    r = -1;
            }
            if (r >= 0)
                r = (long)n;
        }
        if (r != (long)n) {
            st->bad = 4;
            free(p);
            break;
        }
        live[slot] = p;
        len[slot] = n;
        /* a stat written into another live block's swapped-out tail,
         * then that tail's pattern put back */
        unsigned char *o = live[(slot + 3) % STRESS_LIVE];
        size_t on = len[(slot + 3) % STRESS_LIVE];
        if (o && on >= sizeof(struct stat) + 64) {
            struct stat sb;
            unsigned char *at = o + on - sizeof sb - 8;
            if (syscall(SYS_fstat, st->src, at) != 0)
                st->bad = 5;
            memcpy(&sb, at, sizeof sb);
            if (sb.st_size != 8 * (long)MB)
                st->bad = 6;
            for (size_t i = 0; i < sizeof sb; i++)
                at[i] = pat((size_t)(at - o) + i, 0x77);
        }
    }
    for (int i = 0; i < STRESS_LIVE; i++) {
        if (live[i] && !check(live[i], len[i], 0x77))
            st->bad = 7;
        if (live[i])
            st->bytes += len[i];
        free(live[i]);
    }
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_threads_calls_under_pressure(void **state)
{
    (void)state;
    struct vmstat a, b;
    read_stats(&a);
    int src = pattern_file(8 * MB, 0x77);
    assert_true(src >= 0);
    pthread_t t[STRESS_THREADS];
    struct stress st[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (struct stress){i, src, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &st[i]), 0);
    }
    unsigned long bytes = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (st[i].bad)
            fail_msg("thread %d: failure %d", i, st[i].bad);
        bytes += st[i].bytes;
    }
    read_stats(&b);
    close(src);
    /* every block of every thread was checked: at least 48 × 128 KiB */
    assert_true(bytes >= STRESS_THREADS * STRESS_BLOCKS * 128UL * 1024);
    assert_true(b.pswpout > a.pswpout);
    assert_true(b.served > a.served);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recvmsg_into_untouched),
        cmocka_unit_test(test_getdents_into_untouched),
        cmocka_unit_test(test_readv_into_swapped),
        cmocka_unit_test(test_stat_into_swapped),
        cmocka_unit_test(test_from_thread_blocking_every_signal),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_calls_into_zero_pages),
        ktest_alone(test_calls_into_swapped_in_pages),
        ktest_alone(test_threads_calls_under_pressure),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
