/*
 * tests/vm/test_file.c — file mappings: private ones read the file through
 * nopage and never write it; shared ones are written back to the file at
 * munmap and at mmput, also from a forked mm, and stay one set of frames
 * across splits and forks (vm_ops open/close); a vma copied by a fork or
 * a split while another mm's vma of the same file joins and leaves the
 * file's share list is copied whole and the list stays sound (the race
 * is the ThreadSanitizer build's to see).
 */
#include <pthread.h>
#include <stdatomic.h>

#include <kslab/kslab.h>

#include "vmtest.h"

#define RW (PROT_READ | PROT_WRITE)

static unsigned long file_word(int fd, unsigned long page, unsigned long j)
{
    unsigned long v = 0;
    assert_int_equal(pread(fd, &v, sizeof v, page * PAGE_SIZE + j * 8), 8);
    return v;
}

static void test_private_file_mapping(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        do_mmap(mm, fd, 0, 3 * PAGE_SIZE, RW, MAP_PRIVATE, PAGE_SIZE);
    assert_false(IS_ERR_VALUE(a));
    assert_int_equal(U64(mm, a), 1000);
    assert_int_equal(U64(mm, a + PAGE_SIZE + 16), 2002);
    assert_int_equal(stat_of(mm).maj_flt, 2);
    U64(mm, a) = 5;
    U64(mm, a + 2 * PAGE_SIZE) = 6;
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE + 8), 3001);
    assert_int_equal(file_word(fd, 1, 0), 1000);
    /* fork: private file pages are COW like anonymous ones */
    struct mm_struct *c = mm_fork(mm);
    U64(c, a) = 7;
    assert_int_equal(U64(mm, a), 5);
    mmput(c);
    assert_int_equal(do_munmap(mm, a, 3 * PAGE_SIZE), 0);
    assert_int_equal(file_word(fd, 1, 0), 1000);
    assert_int_equal(file_word(fd, 3, 0), 3000);
    vm_check_mm(mm);
    mmput(mm);
    close(fd);
}

static void test_shared_file_written_back(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    assert_int_equal(U64(mm, a + 3 * PAGE_SIZE), 3000);
    U64(mm, a + 8) = 111;
    U64(mm, a + 3 * PAGE_SIZE) = 333;
    /* munmap of the head writes it back; the rest waits */
    assert_int_equal(do_munmap(mm, a, PAGE_SIZE), 0);
    assert_int_equal(file_word(fd, 0, 1), 111);
    /* a forked mm shares the frames and writes back too */
    struct mm_struct *c = mm_fork(mm);
    assert_int_equal(U64(c, a + 3 * PAGE_SIZE), 333);
    U64(c, a + 2 * PAGE_SIZE) = 222;
    assert_int_equal(U64(mm, a + 2 * PAGE_SIZE), 222);
    mmput(c);
    assert_int_equal(file_word(fd, 2, 0), 222);
    mmput(mm);
    assert_int_equal(file_word(fd, 3, 0), 333);
    assert_int_equal(file_word(fd, 1, 0), 1000);
    close(fd);
}

static void test_shared_split_keeps_object(void **state)
{
    (void)state;
    int fd = patterned_file(4);
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_int_equal(sys_mprotect(mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ), 0);
    assert_int_equal(count_vmas(mm), 3);
    assert_int_equal(find_vma(mm, a + 2 * PAGE_SIZE)->vm_pgoff, 2);
    U64(mm, a + 2 * PAGE_SIZE) = 5;
    assert_int_equal(do_munmap(mm, a, PAGE_SIZE), 0);
    assert_int_equal(U64(mm, a + PAGE_SIZE), 1000);
    mmput(mm);
    assert_int_equal(file_word(fd, 2, 0), 5);
    close(fd);
}

/* ---- copies of a vma while the file's share list changes ---- */

#define SHARE_ROUNDS 400

struct share_churn {
    int fd;
    _Atomic int done;
    _Atomic unsigned long rounds;
};

/* Another mm maps the file and unmaps it, over and over: its vma goes on
 * the head of the share list, in front of the copier's vmas, and off it. */
static void *share_churner(void *arg)
{
    struct share_churn *c = arg;
    struct mm_struct *mm = mm_alloc();
    while (!atomic_load(&c->done)) {
        unsigned long a =
            do_mmap(mm, c->fd, 0, 2 * PAGE_SIZE, RW, MAP_SHARED, 0);
        if (IS_ERR_VALUE(a))
            break;
        if (U64(mm, a + 8) != 1 || do_munmap(mm, a, 2 * PAGE_SIZE) != 0)
            break;
        c->rounds++;
    }
    mmput(mm);
    return NULL;
}

/* This thread forks an mm that maps the file, splits a mapping of it by
 * mprotect and by munmap of its middle page: every copy reads the file's
 * words, and the share list is sound at the end (mmput of all unlinks
 * every vma; kslab_verify). */
static void test_vma_copies_beside_share_list_churn(void **state)
{
    (void)state;
    struct share_churn c = {.fd = patterned_file(6)};
    struct mm_struct *mm = mm_alloc();
    unsigned long a = do_mmap(mm, c.fd, 0, 4 * PAGE_SIZE, RW, MAP_SHARED, 0);
    assert_false(IS_ERR_VALUE(a));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, share_churner, &c), 0);
    for (unsigned long i = 0; i < SHARE_ROUNDS; i++) {
        struct mm_struct *child = mm_fork(mm);
        assert_non_null(child);
        assert_int_equal(U64(child, a + 2 * PAGE_SIZE + 8), 2001);
        mmput(child);
        struct mm_struct *m2 = mm_alloc();
        unsigned long b =
            do_mmap(m2, c.fd, 0, 6 * PAGE_SIZE, RW, MAP_SHARED, 0);
        assert_false(IS_ERR_VALUE(b));
        /* split by mprotect: three vmas */
        assert_int_equal(sys_mprotect(m2, b + PAGE_SIZE, PAGE_SIZE, PROT_READ),
                         0);
        /* a hole punched in the middle of the last one: split by munmap */
        assert_int_equal(do_munmap(m2, b + 3 * PAGE_SIZE, PAGE_SIZE), 0);
        assert_int_equal(count_vmas(m2), 4);
        assert_int_equal(U64(m2, b + 4 * PAGE_SIZE), 4000);
        assert_int_equal(U64(m2, b + PAGE_SIZE + 16), 1002);
        mmput(m2);
    }
    atomic_store(&c.done, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(c.rounds > 0);
    assert_int_equal(U64(mm, a + 8), 1);
    mmput(mm);
    close(c.fd);
    assert_int_equal(kslab_verify(), 0);
}

static void touch_past_eof(void *arg)
{
    (void)arg;
    child_default_segv();
    signal(SIGBUS, SIG_DFL); /* cmocka's handler would catch it */
    int fd = patterned_file(1);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        do_mmap(mm, fd, 0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 0);
    if (U64(mm, a) != 0)
        _exit(3);
    (void)U64(mm, a + PAGE_SIZE);
    _exit(4);
}

static void test_past_eof_dies(void **state)
{
    (void)state;
    ktest_expect_death(touch_past_eof, NULL, SIGBUS, "bus error");
}

/* What the program's handler is told of the access past the end: Linux's
 * SIGBUS of a file page wholly past EOF carries BUS_ADRERR (not
 * BUS_ADRALN, an alignment fault) and the faulting address. */
static void *volatile eof_want; /* the host address of the access */

static void eof_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGBUS)
        _exit(9);
    if (si->si_code != BUS_ADRERR)
        _exit(5);
    _exit(si->si_addr == eof_want ? 0 : 6);
}

static void past_eof_with_handler(void *arg)
{
    (void)arg;
    child_default_segv();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = eof_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    int fd = patterned_file(1);
    struct mm_struct *mm = mm_alloc();
    unsigned long a =
        do_mmap(mm, fd, 0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 0);
    if (U64(mm, a) != 0)
        _exit(3);
    eof_want = mm_host(mm, a + PAGE_SIZE + 8);
    (void)U64(mm, a + PAGE_SIZE + 8);
    _exit(4);
}

static void test_past_eof_is_bus_adrerr(void **state)
{
    (void)state;
    char err[1024];
    int st = ktest_run_child(past_eof_with_handler, NULL, err, sizeof err);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child status %#x (exit 5: si_code not BUS_ADRERR, 6: "
                 "si_addr not the address, 4: no SIGBUS); stderr: %s",
                 st, err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_private_file_mapping),
        cmocka_unit_test(test_past_eof_is_bus_adrerr),
        cmocka_unit_test(test_shared_file_written_back),
        cmocka_unit_test(test_shared_split_keeps_object),
        cmocka_unit_test(test_vma_copies_beside_share_list_churn),
        cmocka_unit_test(test_past_eof_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
