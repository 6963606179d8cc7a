/*
 * tests/vm/test_uffd_thread.c — the userfaultfd handler thread
 * (vm/mm/uffd.c) through the emulator's own API: after
 * vm_uffd_serve_by_thread, the host kernel writes into an mm's pages
 * that were never touched (pread made with syscall(2) into mm_host's
 * pointer) from several threads at once, every byte checked; its access
 * to a page of no vma or of a PROT_NONE vma still fails with EFAULT.
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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_writes_untouched_pages_from_threads),
        cmocka_unit_test(test_kernel_access_not_allowed_fails),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_kernel_access_not_allowed_fails),
    };
    return ktest_main(argc, argv, tests, alone, setup, NULL);
}
