/*
 * tests/vm/test_fork.c — mm_fork: copy-on-write isolation in both
 * directions, shared mappings staying shared, fork of a fork, mmput of
 * any side leaving the others intact, and the COW counters; and a host
 * fork() while another thread works in an emulated mm.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmtest.h"

#define NPAGES 16

static unsigned long filled(struct mm_struct *mm, int flags, unsigned long v)
{
    unsigned long a =
        anon(mm, 0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, flags);
    for (int i = 0; i < NPAGES; i++)
        U64(mm, a + i * PAGE_SIZE) = v + i;
    return a;
}

static void test_child_write_invisible_to_parent(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 100);
    struct mm_struct *c = mm_fork(p);
    assert_non_null(c);
    assert_int_equal(stat_of(c).rss, NPAGES);
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 100 + i);
    U64(c, a) = 1;
    assert_int_equal(U64(p, a), 100);
    assert_int_equal(U64(c, a), 1);
    assert_int_equal(stat_of(c).cow_flt, 1);
    /* the parent's page is now its own: reused, not copied */
    U64(p, a) = 2;
    assert_int_equal(stat_of(p).cow_flt, 0);
    assert_int_equal(U64(c, a), 1);
    vm_check_mm(p);
    vm_check_mm(c);
    mmput(c);
    mmput(p);
}

static void test_parent_write_invisible_to_child(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 200);
    struct mm_struct *c = mm_fork(p);
    for (int i = 0; i < NPAGES; i++)
        U64(p, a + i * PAGE_SIZE) = 7;
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 200 + i);
    assert_int_equal(stat_of(p).cow_flt, NPAGES);
    mmput(p); /* parent first: the child keeps its frames */
    for (int i = 0; i < NPAGES; i++)
        assert_int_equal(U64(c, a + i * PAGE_SIZE), 200 + i);
    U64(c, a) = 3; /* last reference: reused */
    assert_int_equal(stat_of(c).cow_flt, 0);
    vm_check_mm(c);
    mmput(c);
}

static void test_shared_visible_both_sides(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
    U64(p, a) = 11; /* touched before the fork */
    struct mm_struct *c = mm_fork(p);
    U64(c, a) = 12;
    assert_int_equal(U64(p, a), 12);
    /* first touched after the fork: still one page */
    U64(p, a + 5 * PAGE_SIZE) = 13;
    assert_int_equal(U64(c, a + 5 * PAGE_SIZE), 13);
    (void)U64(c, a + 6 * PAGE_SIZE);
    U64(p, a + 6 * PAGE_SIZE) = 14;
    assert_int_equal(U64(c, a + 6 * PAGE_SIZE), 14);
    assert_int_equal(stat_of(c).cow_flt, 0);
    mmput(p);
    assert_int_equal(U64(c, a + 5 * PAGE_SIZE), 13);
    vm_check_mm(c);
    mmput(c);
}

static void test_fork_of_fork(void **state)
{
    (void)state;
    struct mm_struct *a = mm_alloc();
    unsigned long x = filled(a, MAP_PRIVATE, 300);
    struct mm_struct *b = mm_fork(a);
    U64(b, x + PAGE_SIZE) = 1;
    struct mm_struct *c = mm_fork(b);
    U64(c, x + 2 * PAGE_SIZE) = 2;
    U64(a, x + 3 * PAGE_SIZE) = 3;
    assert_int_equal(U64(a, x + PAGE_SIZE), 301);
    assert_int_equal(U64(b, x + PAGE_SIZE), 1);
    assert_int_equal(U64(c, x + PAGE_SIZE), 1);
    assert_int_equal(U64(a, x + 2 * PAGE_SIZE), 302);
    assert_int_equal(U64(b, x + 2 * PAGE_SIZE), 302);
    assert_int_equal(U64(c, x + 2 * PAGE_SIZE), 2);
    assert_int_equal(U64(b, x + 3 * PAGE_SIZE), 303);
    assert_int_equal(U64(c, x + 3 * PAGE_SIZE), 303);
    mmput(b); /* the middle one goes */
    assert_int_equal(U64(a, x), 300);
    assert_int_equal(U64(c, x), 300);
    U64(c, x) = 9;
    assert_int_equal(U64(a, x), 300);
    vm_check_mm(a);
    vm_check_mm(c);
    mmput(a);
    assert_int_equal(U64(c, x + 3 * PAGE_SIZE), 303);
    mmput(c);
}

static void test_fork_keeps_zero_page_and_layout(void **state)
{
    (void)state;
    struct mm_struct *p = mm_alloc();
    unsigned long a =
        anon(p, 0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    (void)U64(p, a); /* zero page */
    unsigned long r = anon(p, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE);
    assert_int_equal(sys_brk(p, sys_brk(p, 0) + 3 * PAGE_SIZE),
                     VM_DEFAULT_BRK + 3 * PAGE_SIZE);
    struct mm_struct *c = mm_fork(p);
    assert_int_equal(count_vmas(c), count_vmas(p));
    assert_int_equal(sys_brk(c, 0), sys_brk(p, 0));
    assert_int_equal(stat_of(c).rss, 0);
    assert_int_equal(U64(c, a), 0);
    assert_int_equal(U64(c, r), 0);
    U64(c, a) = 5;
    assert_int_equal(U64(p, a), 0);
    vm_check_mm(c);
    mmput(c);
    mmput(p);
}

static void child_write_ro_after_fork(void *arg)
{
    (void)arg;
    child_default_segv();
    struct mm_struct *p = mm_alloc();
    unsigned long a = filled(p, MAP_PRIVATE, 1);
    if (sys_mprotect(p, a, PAGE_SIZE, PROT_READ) != 0)
        _exit(3);
    struct mm_struct *c = mm_fork(p);
    U64(c, a + PAGE_SIZE) = 1; /* fine: COW */
    U64(c, a) = 1;             /* read-only vma: dies */
    _exit(4);
}

static void test_forked_mm_read_only_write_dies(void **state)
{
    (void)state;
    ktest_expect_death(child_write_ro_after_fork, NULL, SIGSEGV, "read-only");
}

/* A thread that faults, mmaps and munmaps in an mm without pause. */
struct busy {
    struct mm_struct *mm;
    unsigned long a;
    atomic_int stop, pause, paused;
};

static void *busy_thread(void *arg)
{
    struct busy *b = arg;
    for (unsigned long n = 0; !atomic_load(&b->stop); n++) {
        int p;
        while ((p = atomic_load(&b->pause)) != 0) {
            atomic_store(&b->paused, p); /* acknowledges pause round p */
            sched_yield();
        }
        unsigned long x =
            anon(b->mm, 0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
        for (int i = 0; i < 8; i++)
            U64(b->mm, x + i * PAGE_SIZE) = n;
        U64(b->mm, b->a + (n % NPAGES) * PAGE_SIZE) = n;
        do_munmap(b->mm, x, 8 * PAGE_SIZE);
        void *v = vmalloc(2 * PAGE_SIZE);
        vfree(v);
    }
    return NULL;
}

/*
 * In the child of a host fork(): every vm lock must be free again.  The
 * child starts once the parent's thread is paused: the memfd of user
 * memory is shared with the parent, which would hand out the same free
 * frames (a known limit, see vm_mm_fork_child).
 */
static int child_uses_vm(struct mm_struct *busy_mm, unsigned long a, int go)
{
    char ch;
    alarm(20); /* a lock left held would hang here */
    if (read(go, &ch, 1) != 1)
        return 2;
    for (int i = 0; i < NPAGES; i++)
        U64(busy_mm, a + i * PAGE_SIZE) = 7;
    struct mm_struct *mm = mm_alloc();
    if (!mm)
        return 3;
    unsigned long b = filled(mm, MAP_PRIVATE, 100);
    struct mm_struct *c = mm_fork(mm);
    if (!c)
        return 4;
    U64(c, b) = 1;
    if (U64(mm, b) != 100 || U64(c, b) != 1)
        return 5;
    void *v = vmalloc(4 * PAGE_SIZE);
    if (!v)
        return 6;
    memset(v, 1, 4 * PAGE_SIZE);
    vfree(v);
    if (try_to_free_pages(1) > NPAGES * 4)
        return 7;
    vm_check_mm(mm);
    vm_check_mm(busy_mm);
    mmput(c);
    mmput(mm);
    for (int i = 0; i < NPAGES; i++)
        if (U64(busy_mm, a + i * PAGE_SIZE) != 7)
            return 8;
    return 0;
}

static void test_host_fork_while_thread_faults(void **state)
{
    (void)state;
    struct busy b = {.mm = mm_alloc()};
    b.a = filled(b.mm, MAP_PRIVATE, 1);
    atomic_init(&b.stop, 0);
    atomic_init(&b.pause, 0);
    atomic_init(&b.paused, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, busy_thread, &b), 0);
    for (int round = 0; round < 20; round++) {
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_uses_vm(b.mm, b.a, go[0]));
        atomic_store(&b.pause, round + 1);
        while (atomic_load(&b.paused) != round + 1)
            sched_yield();
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[0]);
        close(go[1]);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        atomic_store(&b.pause, 0);
    }
    atomic_store(&b.stop, 1);
    pthread_join(t, NULL);
    vm_check_mm(b.mm);
    mmput(b.mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_write_invisible_to_parent),
        cmocka_unit_test(test_parent_write_invisible_to_child),
        cmocka_unit_test(test_shared_visible_both_sides),
        cmocka_unit_test(test_fork_of_fork),
        cmocka_unit_test(test_fork_keeps_zero_page_and_layout),
        cmocka_unit_test(test_forked_mm_read_only_write_dies),
        cmocka_unit_test(test_host_fork_while_thread_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
