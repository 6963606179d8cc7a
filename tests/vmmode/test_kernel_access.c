/*
 * tests/vmmode/test_kernel_access.c — the host kernel's own accesses to
 * the program's memory under libkslab-vm.so, through system calls that no
 * wrapper of vmmode/io.c sees (each is made with syscall(2)): recvmsg and
 * getdents64 into heap buffers never touched, readv into a swapped-out
 * buffer, a stat result written into a swapped-out page; the same from a
 * thread that blocks every signal, SIGSEGV and SIGBUS included (its own
 * loads and stores too); and threads doing such calls into heap blocks
 * under memory pressure, every byte checked.  Each needs the userfaultfd
 * handler thread (vm/mm/uffd.c): without it the host kernel's access to a
 * page that is not present fails with EFAULT.  Where the thread does not
 * serve the mm (the SIGSEGV back end, a host without userfaultfd) the
 * program exits 77.
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

#define MB (1UL << 20)
#define TASK_BYTES 0xC0000000UL
#define PAGE 4096UL

struct vmstat {
    uintptr_t window;
    unsigned long pswpin, pswpout, mem_kb, served;
    int thread;
};

static void read_stats(struct vmstat *s)
{
    void (*print)(FILE *) =
        (void (*)(FILE *))dlsym(RTLD_DEFAULT, "kslab_stats_print");
    assert_non_null(print);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    print(f);
    fclose(f);
    memset(s, 0, sizeof *s);
    char *w = strstr(buf, "at window ");
    assert_non_null(w);
    s->window = (uintptr_t)strtoull(w + 10, NULL, 16);
    struct {
        const char *key;
        unsigned long *v;
    } keys[] = {{"\npswpin ", &s->pswpin},
                {"\npswpout ", &s->pswpout},
                {"\nMemTotal:", &s->mem_kb}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char *k = strstr(buf, keys[i].key);
        assert_non_null(k);
        *keys[i].v = strtoul(k + strlen(keys[i].key), NULL, 10);
    }
    char *t = strstr(buf, "served by the userfaultfd handler thread (");
    s->thread = t != NULL;
    if (t)
        s->served = strtoul(strchr(t, '(') + 1, NULL, 10);
    free(buf);
}

static int in_mm(const void *p)
{
    struct vmstat s;
    read_stats(&s);
    return (uintptr_t)p >= s.window && (uintptr_t)p < s.window + TASK_BYTES;
}

static unsigned char pat(uintptr_t i, unsigned seed)
{
    return (unsigned char)((i * 2654435761u) >> 13) ^ (unsigned char)seed;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

static int check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            return 0;
    return 1;
}

/* A memfd holding n bytes of pattern seed, written from a stack buffer
 * (so that no page of the mm is involved). */
static int pattern_file(size_t n, unsigned seed)
{
    int fd = (int)syscall(SYS_memfd_create, "kslab-test", 0);
    assert_true(fd >= 0);
    unsigned char chunk[4096];
    for (size_t off = 0; off < n; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(off + i, seed);
        assert_int_equal(
            syscall(SYS_pwrite64, fd, chunk, sizeof chunk, (off_t)off),
            (long)sizeof chunk);
    }
    return fd;
}

/* A block of the mm, written with pattern seed and then pushed to swap
 * by twice the emulated memory written elsewhere; pswpout grew. */
static unsigned char *swapped_block(size_t n, unsigned seed)
{
    struct vmstat before, after;
    unsigned char *p = malloc(n);
    assert_non_null(p);
    assert_true(in_mm(p));
    fill(p, n, seed);
    read_stats(&before);
    size_t m = (size_t)before.mem_kb * 1024 * 2;
    unsigned char *q = malloc(m);
    assert_non_null(q);
    for (size_t i = 0; i < m; i += PAGE)
        q[i] = 1;
    free(q);
    read_stats(&after);
    assert_true(after.pswpout > before.pswpout);
    return p;
}

/* ---- the calls, each on its own; run by the tests below ---- */

/* recvmsg of 256 KiB, a page at a time, into a block never touched. */
static void recvmsg_into_untouched(void)
{
    size_t n = 256 * 1024;
    unsigned char *buf = malloc(n + PAGE);
    assert_non_null(buf);
    assert_true(in_mm(buf));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    unsigned char chunk[PAGE];
    for (size_t off = 0; off < n; off += PAGE) {
        for (size_t i = 0; i < PAGE; i++)
            chunk[i] = pat(off + i, 5);
        assert_int_equal(syscall(SYS_sendto, sv[0], chunk, PAGE, 0, NULL, 0),
                         (long)PAGE);
        struct iovec iov = {buf + off, PAGE};
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        long r = syscall(SYS_recvmsg, sv[1], &mh, MSG_WAITALL);
        if (r < 0)
            fail_msg("recvmsg into an untouched page: errno %d", errno);
        assert_int_equal(r, (long)PAGE);
    }
    assert_true(check(buf, n, 5));
    close(sv[0]);
    close(sv[1]);
    free(buf);
}

/* getdents64 of a directory of 40 files into a block never touched. */
static void getdents_into_untouched(void)
{
    char dir[] = "/tmp/kslab-dents.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "%s/f%02d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    size_t n = 512 * 1024;
    char *buf = malloc(n);
    assert_non_null(buf);
    assert_true(in_mm(buf));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    /* the middle of the block: pages no one has touched */
    char *at = buf + n / 2;
    int found = 0;
    for (;;) {
        long r = syscall(SYS_getdents64, dfd, at, 64 * 1024);
        if (r < 0)
            fail_msg("getdents64 into an untouched page: errno %d", errno);
        if (r == 0)
            break;
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
    assert_int_equal(found, 40);
    close(dfd);
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "%s/f%02d", dir, i);
        unlink(path);
    }
    rmdir(dir);
    free(buf);
}

/* readv of two pieces into a block that was swapped out; the bytes
 * around them keep their contents. */
static void readv_into_swapped(void)
{
    size_t n = 4 * MB;
    unsigned char *p = swapped_block(n, 9);
    int fd = pattern_file(MB, 3);
    struct iovec iov[2] = {{p + PAGE + 100, 300 * 1024},
                           {p + 2 * MB, MB - 300 * 1024}};
    long r = syscall(SYS_readv, fd, iov, 2);
    if (r < 0)
        fail_msg("readv into a swapped-out page: errno %d", errno);
    assert_int_equal(r, (long)MB);
    for (size_t i = 0; i < 300 * 1024; i++)
        assert_int_equal(p[PAGE + 100 + i], pat(i, 3));
    for (size_t i = 0; i < MB - 300 * 1024; i++)
        assert_int_equal(p[2 * MB + i], pat(300 * 1024 + i, 3));
    assert_true(check(p, PAGE + 100, 9));
    for (size_t i = PAGE + 100 + 300 * 1024; i < 2 * MB; i++)
        assert_int_equal(p[i], pat(i, 9));
    for (size_t i = 3 * MB - 300 * 1024; i < n; i++)
        assert_int_equal(p[i], pat(i, 9));
    close(fd);
    free(p);
}

/* fstat and newfstatat writing their struct stat into swapped-out
 * pages (one straddling two of them). */
static void stat_into_swapped(void)
{
    size_t n = 2 * MB;
    unsigned char *p = swapped_block(n, 11);
    int fd = pattern_file(3 * PAGE, 1);
    struct stat want;
    assert_int_equal(syscall(SYS_fstat, fd, &want), 0);
    struct stat *a = (struct stat *)(p + MB + 64);
    struct stat *b = (struct stat *)(p + MB + 8 * PAGE - 40);
    if (syscall(SYS_fstat, fd, a) != 0)
        fail_msg("fstat into a swapped-out page: errno %d", errno);
    assert_int_equal(a->st_size, 3 * PAGE);
    assert_int_equal(a->st_ino, want.st_ino);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (syscall(SYS_newfstatat, AT_FDCWD, self, b, 0) != 0)
        fail_msg("stat into a swapped-out page: errno %d", errno);
    assert_int_equal(b->st_ino, want.st_ino);
    assert_true(check(p, MB + 64, 11));
    close(fd);
    free(p);
}

/* A store and a load of the thread itself into pages never touched and
 * swapped out. */
static void own_accesses(void)
{
    size_t n = 2 * MB;
    unsigned char *p = swapped_block(n, 13);
    assert_true(check(p, MB, 13));
    for (size_t i = MB; i < n; i += PAGE)
        p[i] = 0x5a;
    unsigned char *q = malloc(MB);
    assert_non_null(q);
    for (size_t i = 0; i < MB; i += PAGE)
        q[i] = (unsigned char)i;
    for (size_t i = 0; i < MB; i += PAGE)
        assert_int_equal(q[i], (unsigned char)i);
    free(q);
    free(p);
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
    recvmsg_into_untouched();
    read_stats(&b);
    assert_true(b.served > a.served);
}

static void test_getdents_into_untouched(void **state)
{
    (void)state;
    getdents_into_untouched();
}

static void test_readv_into_swapped(void **state)
{
    (void)state;
    struct vmstat a, b;
    readv_into_swapped();
    read_stats(&a);
    readv_into_swapped();
    read_stats(&b);
    assert_true(b.pswpin > a.pswpin);
}

static void test_stat_into_swapped(void **state)
{
    (void)state;
    stat_into_swapped();
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
    recvmsg_into_untouched();
    getdents_into_untouched();
    readv_into_swapped();
    stat_into_swapped();
    own_accesses();
    return NULL;
}

static void test_from_thread_blocking_every_signal(void **state)
{
    (void)state;
    pthread_t t;
    void *r = (void *)"not run";
    assert_int_equal(pthread_create(&t, NULL, all_blocked, NULL), 0);
    assert_int_equal(pthread_join(t, &r), 0);
    assert_null(r);
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
    pthread_t t[STRESS_THREADS];
    struct stress st[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (struct stress){i, src, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &st[i]),
                         0);
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
        cmocka_unit_test(test_threads_calls_under_pressure),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_recvmsg_into_untouched),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
