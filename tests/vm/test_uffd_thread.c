/*
 * tests/vm/test_uffd_thread.c — the userfaultfd handler thread
 * (vm/mm/uffd.c) through the emulator's own API: after
 * vm_uffd_serve_by_thread, the host kernel writes into an mm's pages
 * that were never touched (pread made with syscall(2) into mm_host's
 * pointer) from several threads at once, every byte checked; its access
 * to a page of no vma or of a PROT_NONE vma still fails with EFAULT.  With
 * the thread's write-protect mode, the host kernel also writes into a
 * present read-only page — a COW page after mm_fork (the other mm keeps
 * its copy), the ZERO_PAGE after a read — while a page of a read-only
 * vma still refuses it with EFAULT.
 * Skipped (77) where no thread serves the mms (KSLAB_VM_BACKEND=sigsegv,
 * a host without userfaultfd, a sanitizer build unless
 * KSLAB_VM_BACKEND=uffd), so that ThreadSanitizer can watch the thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmtest.h"

#define MB (1UL << 20)
#define THREADS 4
#define SPAN (2 * MB)

static int src;
static struct mm_struct *mm;
static unsigned long base;

static unsigned char pat(unsigned long i)
{
    return (unsigned char)((i * 2654435761u) >> 11);
}

static int setup(void **state)
{
    (void)state;
    if (vm_uffd_serve_by_thread() != 0) {
        print_message("no userfaultfd handler thread: skipped\n");
        exit(KTEST_SKIP);
    }
    src = (int)syscall(SYS_memfd_create, "src", 0);
    assert_true(src >= 0);
    unsigned char chunk[4096];
    for (unsigned long off = 0; off < SPAN; off += sizeof chunk) {
        for (unsigned long i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(off + i);
        assert_int_equal(pwrite(src, chunk, sizeof chunk, (off_t)off),
                         (long)sizeof chunk);
    }
    return 0;
}

struct worker {
    int id, bad;
};

/* Reads SPAN bytes into its own part of the mm by system call, a page
 * at a time and whole, and checks them through the window. */
static void *worker(void *arg)
{
    struct worker *w = arg;
    unsigned long a = base + (unsigned long)w->id * 2 * SPAN;
    unsigned char *p = mm_host(mm, a);
    for (unsigned long off = 0; off < SPAN; off += 4096)
        if (syscall(SYS_pread64, src, p + off, 4096, (off_t)off) != 4096)
            w->bad = 1;
    p = mm_host(mm, a + SPAN);
    if (syscall(SYS_pread64, src, p, SPAN, 0) != (long)SPAN)
        w->bad = 2;
    for (int half = 0; half < 2; half++) {
        p = mm_host(mm, a + (unsigned long)half * SPAN);
        for (unsigned long i = 0; i < SPAN; i++)
            if (p[i] != pat(i))
                w->bad = 3;
    }
    return NULL;
}

static void test_kernel_writes_untouched_pages_from_threads(void **state)
{
    (void)state;
    mm = mm_alloc();
    assert_non_null(mm);
    base = anon(mm, 0, THREADS * 2 * SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(base));
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    struct mm_stat st;
    mm_get_stat(mm, &st);
    assert_true(st.rss >= THREADS * 2 * SPAN / PAGE_SIZE);
    mmput(mm);
}

/* No vma, a PROT_NONE vma, a vma gone: EFAULT, as without the thread. */
static void test_kernel_access_not_allowed_fails(void **state)
{
    (void)state;
    mm = mm_alloc();
    assert_non_null(mm);
    unsigned long a = anon(mm, 0, 4 * PAGE_SIZE, PROT_NONE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    unsigned long b =
        anon(mm, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(b));
    assert_int_equal(do_munmap(mm, b, 4 * PAGE_SIZE), 0);
    unsigned long where[] = {a, b, 0x1000};
    for (int i = 0; i < 3; i++) {
        errno = 0;
        assert_int_equal(
            syscall(SYS_pread64, src, mm_host(mm, where[i]), 100, (off_t)0),
            -1);
        assert_int_equal(errno, EFAULT);
    }
    /* the vma made again where the access failed: served again */
    unsigned long c = anon(mm, b, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_FIXED);
    assert_int_equal(c, b);
    unsigned char *p = mm_host(mm, c + PAGE_SIZE);
    assert_int_equal(syscall(SYS_pread64, src, p, 100, (off_t)0), 100);
    for (unsigned long i = 0; i < 100; i++)
        assert_int_equal(p[i], pat(i));
    mmput(mm);
}

/* An mm with len bytes of private anonymous memory at *a, written with
 * the pattern from offset seed. */
static struct mm_struct *written_mm(unsigned long len, unsigned long *a,
                                    unsigned long seed)
{
    struct mm_struct *m = mm_alloc();
    assert_non_null(m);
    *a = anon(m, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(*a));
    unsigned char *p = mm_host(m, *a);
    for (unsigned long i = 0; i < len; i++)
        p[i] = pat(seed + i);
    return m;
}

/* pread of n bytes of src from offset off into mm at a, by system call:
 * the host kernel's write; 0 or errno. */
static int kernel_read_into(struct mm_struct *m, unsigned long a, size_t n,
                            off_t off)
{
    errno = 0;
    long r = syscall(SYS_pread64, src, mm_host(m, a), n, off);
    return r == (long)n ? 0 : errno ? errno : EIO;
}

static void test_kernel_writes_cow_pages_after_fork(void **state)
{
    (void)state;
    if (!vm_uffd_wp())
        ktest_skip("no write-protect faults on shared memory here");
    unsigned long a, len = 64 * PAGE_SIZE;
    mm = written_mm(len, &a, 7);
    struct mm_struct *child = mm_fork(mm);
    assert_non_null(child);
    /* the parent's COW pages: a page and a half from the middle of one,
     * and a page of the child's */
    unsigned long at = a + 3 * PAGE_SIZE + 1000;
    assert_int_equal(kernel_read_into(mm, at, PAGE_SIZE + 2048, 0), 0);
    assert_int_equal(kernel_read_into(child, a + 10 * PAGE_SIZE, PAGE_SIZE,
                                      (off_t)PAGE_SIZE),
                     0);
    for (unsigned long i = 0; i < len; i++) {
        unsigned long o = a + i;
        unsigned char want = pat(7 + i);
        if (o >= at && o < at + PAGE_SIZE + 2048)
            want = pat(o - at);
        assert_int_equal(U8(mm, o), want);
        want = pat(7 + i);
        if (i >= 10 * PAGE_SIZE && i < 11 * PAGE_SIZE)
            want = pat(PAGE_SIZE + i - 10 * PAGE_SIZE);
        assert_int_equal(U8(child, o), want);
    }
    struct mm_stat st;
    mm_get_stat(mm, &st);
    assert_true(st.cow_flt >= 2);
    mmput(child);
    mmput(mm);
}

static void test_kernel_writes_zero_pages(void **state)
{
    (void)state;
    if (!vm_uffd_wp())
        ktest_skip("no write-protect faults on shared memory here");
    mm = mm_alloc();
    assert_non_null(mm);
    unsigned long len = 32 * PAGE_SIZE;
    unsigned long a = anon(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        assert_int_equal(U8(mm, a + o), 0);
    struct mm_stat st;
    mm_get_stat(mm, &st);
    assert_true(st.zero_flt >= len / PAGE_SIZE);
    unsigned long at = a + 5 * PAGE_SIZE + 100;
    assert_int_equal(kernel_read_into(mm, at, 3 * PAGE_SIZE, 0), 0);
    for (unsigned long o = a; o < a + len; o++)
        assert_int_equal(U8(mm, o),
                         o >= at && o < at + 3 * PAGE_SIZE ? pat(o - at) : 0);
    mmput(mm);
}

/* Present pages of a vma made read-only — one written, one only read
 * (the ZERO_PAGE) — still refuse the host kernel's write with EFAULT;
 * once the vma is writable again the ZERO_PAGE one (still a read-only
 * pte) takes it, through write-protect mode. */
static void test_kernel_write_into_read_only_vma_fails(void **state)
{
    (void)state;
    mm = mm_alloc();
    assert_non_null(mm);
    unsigned long len = 8 * PAGE_SIZE;
    unsigned long a = anon(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    assert_false(IS_ERR_VALUE(a));
    for (unsigned long o = 0; o < len; o += PAGE_SIZE)
        assert_int_equal(U8(mm, a + o), 0); /* the ZERO_PAGE, each */
    U8(mm, a) = 1;
    assert_int_equal(sys_mprotect(mm, a, len, PROT_READ), 0);
    assert_int_equal(kernel_read_into(mm, a, 100, 0), EFAULT);
    assert_int_equal(kernel_read_into(mm, a + PAGE_SIZE, 100, 0), EFAULT);
    assert_int_equal(U8(mm, a), 1);
    assert_int_equal(U8(mm, a + PAGE_SIZE), 0);
    if (vm_uffd_wp()) {
        assert_int_equal(sys_mprotect(mm, a, len, PROT_READ | PROT_WRITE), 0);
        assert_int_equal(kernel_read_into(mm, a + PAGE_SIZE, 100, 0), 0);
        assert_int_equal(U8(mm, a + PAGE_SIZE), pat(0));
        assert_int_equal(U8(mm, a + PAGE_SIZE + 100), 0);
    }
    mmput(mm);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_writes_untouched_pages_from_threads),
        cmocka_unit_test(test_kernel_access_not_allowed_fails),
        cmocka_unit_test(test_kernel_write_into_read_only_vma_fails),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(test_kernel_writes_cow_pages_after_fork),
        ktest_alone(test_kernel_writes_zero_pages),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
